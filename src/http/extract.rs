//! Request extractors that answer in Rouse's JSON error shape instead of
//! axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};

/// The raw body, within the configured size limit.
pub struct Body(pub Bytes);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
                Err(ApiError::PayloadTooLarge(format!(
                    "request body is larger than the limit of {} bytes",
                    state.config.intake.max_body_bytes
                )))
            }
            Err(other) => Err(ApiError::BadRequest(format!(
                "cannot read the request body: {}",
                other.body_text()
            ))),
        }
    }
}

/// A credential from `Authorization: Bearer …` or, for tools that cannot set
/// that header, `X-Rouse-Key: …`.
pub struct Credential(pub String);

impl FromRequestParts<AppState> for Credential {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        let key = bearer.or_else(|| {
            parts
                .headers
                .get("x-rouse-key")
                .and_then(|v| v.to_str().ok())
        });
        match key.map(str::trim) {
            Some(k) if !k.is_empty() => Ok(Credential(k.to_owned())),
            _ => Err(ApiError::Unauthorized(
                "missing credentials: send Authorization: Bearer <key> or X-Rouse-Key: <key>"
                    .to_owned(),
            )),
        }
    }
}

/// A typed path segment. axum's own `Path` answers a bad segment (`abc` for
/// an alert id, a key that is not UTF-8) in plain text; this one answers
/// through [`ApiError`] like everything else.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// A typed query string, rejected in the JSON error shape: a missing
/// parameter or one given twice (`?name=a&name=b`) is a 400 with a reason.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}
