//! The one place where errors become HTTP answers. Client mistakes get a 4xx
//! with a short JSON reason; internal causes are logged and answered as a
//! generic 500 so nothing about the database or a provider leaks out.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::group_commit::CommitError;
use crate::store::StoreError;

/// What a client is told while the database cannot be reached; the cause is logged.
const UNAVAILABLE: &str = "the database is unavailable; the event was not stored, retry";

/// `Retry-After` on every 503: the database is back or a configuration
/// loaded within seconds more often than not, and senders that honour it
/// (Alertmanager, PagerDuty clients) then do not hammer a struggling server.
pub const RETRY_UNAVAILABLE_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// Field-level validation errors, all of them at once.
    #[error("{message}")]
    Invalid {
        message: String,
        errors: Vec<String>,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("rate limit exceeded; retry in {retry_after_secs}s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Commit(#[from] CommitError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_)
            | ApiError::Commit(CommitError::Closed | CommitError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Commit(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told; internal errors say only that something failed.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Store(e) if e.is_unavailable() => UNAVAILABLE.to_owned(),
            ApiError::Commit(CommitError::Unavailable(_)) => UNAVAILABLE.to_owned(),
            ApiError::Store(_) | ApiError::Commit(CommitError::Store(_)) => {
                "internal error; the event was not stored, retry".to_owned()
            }
            other => other.to_string(),
        }
    }

    pub fn errors(&self) -> &[String] {
        match self {
            ApiError::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut body = json!({ "status": "error", "message": self.public_message() });
        if !self.errors().is_empty() {
            body["errors"] = json!(self.errors());
        }
        let mut response = (status, Json(body)).into_response();
        let retry_after = match self {
            ApiError::TooManyRequests { retry_after_secs } => Some(retry_after_secs.max(1)),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_UNAVAILABLE_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
