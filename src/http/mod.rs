//! The HTTP edge: routing, limits and wiring. Handlers translate requests into
//! calls on the modules beneath and their results into responses; they decide
//! nothing themselves.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::catalog::live::LiveCatalog;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::group_commit::GroupCommit;
use crate::store::Store;

mod ack;
mod alerts;
mod contact;
pub use ack::ACK_LINK_LIFETIME;
pub mod error;
mod extract;
mod feeds;
mod health;
mod intake;
mod opsgenie;
mod people;
mod push;
mod replay;
mod silences;
mod simulate;
mod slack;
pub mod throttle;
mod twilio;
mod watchers;

pub use error::ApiError;

/// Everything a handler may touch. axum clones it for every request, so it
/// is one `Arc`: cloning and dropping the fields one by one (ten reference
/// counts and the signer's keys) was ~3% of `perf record`'s samples during
/// the duplicate intake benchmark.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub commits: GroupCommit,
    pub catalog: Arc<LiveCatalog>,
    pub throttle: Arc<throttle::Throttle>,
    pub clock: Arc<dyn Clock>,
    /// Wakes the escalation engine when an alert opens.
    pub engine_wake: Arc<tokio::sync::Notify>,
    /// Signs and checks ack links and call URLs.
    pub signer: crate::ack::token::Signer,
    /// At most one SMS help reply per number per [`SMS_HELP_EVERY`].
    pub sms_help: Arc<governor::DefaultKeyedRateLimiter<String>>,
    /// For the few requests the HTTP layer makes itself (Slack `response_url`).
    pub http: reqwest::Client,
}

/// An auto-responder that answers our help text with its own must not get
/// another help text back for a while.
pub const SMS_HELP_EVERY: Duration = Duration::from_secs(600);

/// The limiter behind [`AppState::sms_help`].
pub fn sms_help_limiter() -> Arc<governor::DefaultKeyedRateLimiter<String>> {
    let quota = governor::Quota::with_period(SMS_HELP_EVERY)
        .unwrap_or_else(|| governor::Quota::per_hour(std::num::NonZeroU32::MIN));
    Arc::new(governor::RateLimiter::keyed(quota))
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.intake.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics))
        .route("/contact.vcf", get(contact::card))
        .route("/v1/events", post(intake::native))
        .route("/v2/enqueue", post(intake::pagerduty))
        .route(
            "/integrations/alertmanager/{key}",
            post(intake::alertmanager),
        )
        .route("/integrations/grafana/{key}", post(intake::grafana))
        .route("/v1/heartbeat/{key}", post(intake::heartbeat))
        .route("/v2/alerts", post(opsgenie::create))
        .route("/v2/alerts/{identifier}/close", post(opsgenie::close))
        .route(
            "/v2/alerts/{identifier}/acknowledge",
            post(opsgenie::acknowledge),
        )
        .route("/v2/alerts/{identifier}/message", put(opsgenie::update))
        .route("/v2/alerts/{identifier}/description", put(opsgenie::update))
        .route(
            "/v2/heartbeats/{name}/ping",
            get(opsgenie::heartbeat).post(opsgenie::heartbeat),
        )
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/{id}", get(alerts::show))
        .route("/v1/alerts/{id}/acknowledge", post(alerts::acknowledge))
        .route("/v1/alerts/{id}/resolve", post(alerts::resolve))
        .route("/v1/watchers", get(watchers::list))
        .route("/v1/silences", get(silences::list).post(silences::create))
        .route("/v1/silences/{id}", delete(silences::expire))
        .route("/v1/simulate", post(simulate::simulate))
        .route("/v1/people/{id}/test-page", post(people::send_test_page))
        .route("/v1/people/{id}/test-pages", get(people::test_pages))
        .route("/ack/{alert}", get(ack::show).post(ack::confirm))
        .route("/twilio/voice/{alert}", post(twilio::voice))
        .route("/twilio/voice/{alert}/gather", post(twilio::gather))
        .route("/twilio/status", post(twilio::call_status))
        .route("/twilio/sms/status", post(twilio::sms_status))
        .route("/twilio/sms", post(twilio::inbound_sms))
        .route("/slack/interactions", post(slack::interactions))
        .route(
            "/pushover/callback/{notification}/{secret}",
            post(push::callback),
        )
        .route("/ntfy/ack/{alert}", post(push::ntfy_ack))
        // Calendar feeds (src/feed/): subscriber URL and admin API.
        .route("/feeds/{file}", get(feeds::ics))
        .route("/v1/feeds", get(feeds::list).post(feeds::create))
        .route("/v1/feeds/{id}", delete(feeds::revoke))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http())
        // Last line of defence: a bug in a handler answers 500, never kills the process.
        .layer(CatchPanicLayer::new())
}

async fn metrics() -> String {
    crate::telemetry::metrics().render()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
