//! The OpenAPI 3.1 description of the HTTP API, served at `/api/openapi.json`.
//!
//! Each operation is described by the `#[utoipa::path]` annotation beside its
//! handler, and [`api`] registers every route from that same annotation
//! (utoipa-axum's `routes!`), so a route cannot exist without being in the
//! document nor the document name a route the router lacks. This file only
//! holds what the operations share: the security schemes, the error body and
//! the error answers every operation may give.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    ack, alerts, contact, feeds, health, intake, opsgenie, people, push, silences, simulate, slack,
    twilio, watchers, AppState,
};

/// Every failure, from the one error mapping ([`super::ApiError`]): Rouse's
/// own endpoints add `status: "error"`, PagerDuty's `errors`, Opsgenie's
/// `took` and `requestId`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `error` (Rouse), or PagerDuty's label (`invalid event`, …).
    pub status: Option<String>,
    pub message: String,
    /// Every problem found: a list of strings (Rouse, PagerDuty) or, on the
    /// Opsgenie endpoints, Opsgenie's object of field → problem.
    pub errors: Option<serde_json::Value>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rouse",
        description = "An escalating pager and alert router. Intake formats (Rouse, PagerDuty Events v2, Alertmanager, Grafana, Opsgenie), the admin API, and the webhooks providers call back.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "intake", description = "Events in: each format authenticated by an integration key"),
        (name = "opsgenie", description = "Opsgenie's Alert API, key as `Authorization: GenieKey KEY`"),
        (name = "alerts", description = "The admin API (bearer admin token); 404 while no admin token is configured"),
        (name = "acknowledging", description = "Signed links and provider webhooks: the token or the provider's signature is the credential"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

/// Security schemes and the error answers common to every operation,
/// applied to the whole document once the routes have added their operations.
struct Shared;

impl Modify for Shared {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        let header_key = |name: &str, what: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, what)))
        };
        let query_key = |name: &str, what: &str| {
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(name, what)))
        };
        let schemes = [
            ("admin_token", bearer("`admin_token` from the configuration")),
            (
                "integration_key",
                header_key("X-Rouse-Key", "An integration key of the on-call configuration (also accepted as `Authorization: Bearer KEY`)"),
            ),
            (
                "genie_key",
                header_key("Authorization", "`GenieKey KEY`, KEY an integration key"),
            ),
            (
                "signed_link",
                query_key("t", "The token of an ack link or ntfy button, signed for one alert and purpose"),
            ),
            (
                "voice_token",
                query_key("n", "The token Rouse signed into the call's URL"),
            ),
            (
                "twilio_signature",
                header_key("X-Twilio-Signature", "HMAC-SHA1 over `public_url` + path and the form, with the Twilio auth token"),
            ),
            (
                "slack_signature",
                header_key("X-Slack-Signature", "`v0=` HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{body}` with the signing secret"),
            ),
        ];
        for (name, scheme) in schemes {
            components.add_security_scheme(name, scheme);
        }

        // Whatever else an operation answers is an error in the one shape:
        // 400 invalid, 401/403 credentials, 404 unknown, 408 too slow, 413 too
        // large, 429 throttled, 503 not ready or database down.
        let error = ResponseBuilder::new()
            .description("An error: 4xx for the client's mistakes, 503 (with `Retry-After`) while the database or configuration is unavailable")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                operation
                    .responses
                    .responses
                    .entry("default".to_owned())
                    .or_insert_with(|| RefOr::T(error.clone()));
            }
        }
    }
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Every route of the HTTP API, each registered from its handler's annotation.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(super::metrics))
        .routes(routes!(document))
        .routes(routes!(contact::card))
        .routes(routes!(intake::native))
        .routes(routes!(intake::pagerduty))
        .routes(routes!(intake::alertmanager))
        .routes(routes!(intake::grafana))
        .routes(routes!(intake::heartbeat))
        .routes(routes!(opsgenie::create))
        .routes(routes!(opsgenie::close))
        .routes(routes!(opsgenie::acknowledge))
        .routes(routes!(opsgenie::update_message))
        .routes(routes!(opsgenie::update_description))
        .routes(routes!(opsgenie::heartbeat))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::show))
        .routes(routes!(alerts::acknowledge))
        .routes(routes!(alerts::resolve))
        .routes(routes!(watchers::list))
        .routes(routes!(silences::list, silences::create))
        .routes(routes!(silences::expire))
        .routes(routes!(simulate::simulate))
        .routes(routes!(people::send_test_page))
        .routes(routes!(people::test_pages))
        .routes(routes!(ack::show, ack::confirm))
        .routes(routes!(twilio::voice))
        .routes(routes!(twilio::gather))
        .routes(routes!(twilio::call_status))
        .routes(routes!(twilio::sms_status))
        .routes(routes!(twilio::inbound_sms))
        .routes(routes!(slack::interactions))
        .routes(routes!(push::callback))
        .routes(routes!(push::ntfy_ack))
        .routes(routes!(feeds::list, feeds::create))
        .routes(routes!(feeds::revoke))
        .routes(routes!(feeds::ics))
}

/// The document, rendered once: it depends on nothing but the code.
pub fn openapi_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, mut doc) = api().split_for_parts();
        Shared.modify(&mut doc);
        doc.to_pretty_json().unwrap_or_else(|e| {
            format!("{{\"error\":\"cannot render the OpenAPI document: {e}\"}}")
        })
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", content_type = "application/json", body = serde_json::Value))
)]
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}
