//! Shared by every HTTP-based channel: one client configuration and one
//! mapping from "what the provider answered" to an [`Outcome`].

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use super::Outcome;

/// Longest we wait for a provider; beyond it the result is `Unknown`, since
/// the request may have been processed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `Retry-After` honoured; a provider asking for more is treated as down.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// A client with rustls, bounded timeouts and no redirects (a redirect from a
/// webhook endpoint is a misconfiguration, not something to follow blindly).
pub fn client() -> reqwest::Client {
    build(reqwest::Client::builder())
}

/// The same client trusting an extra root (tests with a local CA).
pub fn client_with_root(root: reqwest::Certificate) -> reqwest::Client {
    build(reqwest::Client::builder().add_root_certificate(root))
}

fn build(builder: reqwest::ClientBuilder) -> reqwest::Client {
    builder
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("rouse/", env!("CARGO_PKG_VERSION")))
        .build()
        // Building fails only if the TLS backend cannot initialise, which is a
        // broken build, not a runtime condition; fall back to the default client.
        .unwrap_or_default()
}

/// Maps a status to an outcome; `provider_id` is kept on success.
pub fn classify_status(
    status: StatusCode,
    headers: &HeaderMap,
    body_hint: &str,
    provider_id: Option<String>,
) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered { provider_id };
    }
    let reason = format!("HTTP {status}{}", summarize(body_hint));
    if status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Outcome::Retry {
            after: retry_after(headers),
            reason,
        }
    } else {
        Outcome::Failed { reason }
    }
}

/// Maps a transport error. Nothing here may panic: this is where TLS failures,
/// refused connections and timeouts from a dead endpoint arrive.
pub fn classify_error(err: &reqwest::Error) -> Outcome {
    let reason = error_chain(err);
    if err.is_timeout() && !err.is_connect() {
        // The request may have been received and acted on.
        Outcome::Unknown { reason }
    } else if err.is_builder() {
        Outcome::Failed { reason }
    } else {
        // Connect, TLS, DNS, reset: nothing was delivered; try again later.
        Outcome::Retry {
            after: None,
            reason,
        }
    }
}

/// `Retry-After` in seconds (HTTP dates are rare from APIs and ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER))
}

/// The error and its causes on one line: reqwest hides the useful part
/// ("invalid peer certificate: NotValidForName") in the source chain.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn summarize(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let short: String = body.chars().take(200).collect();
    format!(": {short}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses_map_to_outcomes() {
        let none = HeaderMap::new();
        assert_eq!(
            classify_status(StatusCode::OK, &none, "", Some("x".into())),
            Outcome::Delivered {
                provider_id: Some("x".into())
            }
        );
        assert!(matches!(
            classify_status(StatusCode::BAD_GATEWAY, &none, "", None),
            Outcome::Retry { after: None, .. }
        ));
        assert!(matches!(
            classify_status(StatusCode::NOT_FOUND, &none, "no such hook", None),
            Outcome::Failed { reason } if reason == "HTTP 404 Not Found: no such hook"
        ));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS, &h, "", None),
            Outcome::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "HTTP 429 Too Many Requests".into()
            }
        );
    }

    #[test]
    fn absurd_retry_after_is_capped() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h), None);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }
}
