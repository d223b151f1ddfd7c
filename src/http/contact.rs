//! `GET /contact.vcf`: the card with the numbers Rouse calls and texts from.
//! No login and nothing secret in it: the point is that anyone about to go
//! on call can save it (see the README for letting it through Do Not
//! Disturb).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::channel::vcard;

#[utoipa::path(
    get, path = "/contact.vcf", tag = "operations",
    responses((status = 200, description = "A vCard 4.0 with every number Rouse calls and texts from", content_type = "text/vcard", body = String))
)]
pub async fn card(State(state): State<AppState>) -> Result<Response, ApiError> {
    let from = state.config.channels.twilio.iter().map(|t| t.from.as_str());
    let numbers = vcard::numbers(from);
    if numbers.is_empty() {
        return Err(ApiError::NotFound(
            "Rouse calls and texts from no phone number: set channels.twilio.from".to_owned(),
        ));
    }
    let mut response = (StatusCode::OK, vcard::card(&numbers)).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/vcard; charset=utf-8"),
        (
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"rouse-pager.vcf\"",
        ),
        // The numbers change with the configuration.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}
