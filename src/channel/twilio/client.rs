//! A small Twilio REST client (2010-04-01 API): create a Message, create a
//! Call, fetch a Call. Form-encoded requests, HTTP basic auth with the
//! account SID and auth token, Twilio's JSON error bodies parsed into
//! [`ApiError`].
//!
//! The base URL is configurable so tests (and the Prism contract proxy) can
//! stand in for `https://api.twilio.com`.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::channel::http::{classify_error, classify_status, retry_after, REQUEST_TIMEOUT};
use crate::channel::Outcome;
use crate::config::Secret;

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Everything needed to talk to one Twilio account. `Debug` is safe to log:
/// [`Secret`] prints as `Secret(***)`.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// `https://api.twilio.com` in production; no trailing slash needed.
    pub base_url: String,
    /// `AC…`; also the basic-auth user name.
    pub account_sid: String,
    pub auth_token: Secret,
    /// Sender: an E.164 number (`+15005550006`) or a Messaging Service SID
    /// (`MG…`, SMS only; sent as `MessagingServiceSid`).
    pub from: String,
    /// Per-request timeout; past it the outcome is `Unknown`.
    pub timeout: Duration,
}

impl TwilioConfig {
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: Secret,
        from: impl Into<String>,
    ) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            account_sid: account_sid.into(),
            auth_token,
            from: from.into(),
            timeout: REQUEST_TIMEOUT,
        }
    }

    fn sender_is_messaging_service(&self) -> bool {
        self.from.len() == 34 && self.from.starts_with("MG")
    }
}

/// The fields of a Message resource Rouse uses; Twilio sends many more.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    pub sid: String,
    pub status: Option<String>,
    pub to: Option<String>,
    pub error_code: Option<i64>,
}

/// The fields of a Call resource Rouse uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Call {
    pub sid: String,
    pub status: Option<String>,
    pub to: Option<String>,
    pub answered_by: Option<String>,
}

/// Twilio's error body `{code, message, more_info, status}` plus what the
/// HTTP layer told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// Twilio's error code (21211 invalid To, 20003 auth, 20429 rate limit…).
    pub code: Option<u32>,
    pub message: String,
    pub more_info: Option<String>,
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "Twilio error {code}: {}", self.message)?,
            None => write!(f, "Twilio error: {}", self.message)?,
        }
        if let Some(more) = &self.more_info {
            write!(f, " ({more})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    /// Twilio answered with a non-2xx status.
    #[error("HTTP {status}: {err}", status = .0.status, err = .0)]
    Api(ApiError),
    /// Nothing usable came back (connect, TLS, timeout, body cut off).
    #[error("transport error: {}", crate::channel::http::error_chain(.0))]
    Transport(#[from] reqwest::Error),
    /// 2xx, but the body was not the JSON resource expected. The request was
    /// accepted, so the page is out; only its SID is unknown.
    #[error("HTTP {status}: unexpected response body: {detail}")]
    Decode { status: u16, detail: String },
}

/// Twilio codes that mean "slow down" whatever the HTTP status.
const RATE_LIMIT_CODES: &[u32] = &[20429];

impl TwilioError {
    /// The Twilio error code, if Twilio sent one.
    pub fn code(&self) -> Option<u32> {
        match self {
            TwilioError::Api(e) => e.code,
            _ => None,
        }
    }

    /// Maps the error to what the escalation engine should do.
    pub fn outcome(&self) -> Outcome {
        match self {
            TwilioError::Transport(err) => classify_error(err),
            TwilioError::Decode { .. } => Outcome::Delivered { provider_id: None },
            TwilioError::Api(e) => {
                let status =
                    StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let hint = e.to_string();
                match classify_status(status, &HeaderMap::new(), &hint, None) {
                    // classify_status read no headers here; use the parsed value.
                    Outcome::Retry { reason, .. } => Outcome::Retry {
                        after: e.retry_after,
                        reason,
                    },
                    Outcome::Failed { reason }
                        if e.code.is_some_and(|c| RATE_LIMIT_CODES.contains(&c)) =>
                    {
                        Outcome::Retry {
                            after: e.retry_after,
                            reason,
                        }
                    }
                    // A 2xx never becomes an ApiError; anything else is final.
                    other => other,
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct TwilioClient {
    config: TwilioConfig,
    http: reqwest::Client,
}

impl TwilioClient {
    /// Uses Rouse's shared HTTP client settings (rustls, no redirects).
    pub fn new(config: TwilioConfig) -> Self {
        Self::with_http(config, crate::channel::http::client())
    }

    pub fn with_http(config: TwilioConfig, http: reqwest::Client) -> Self {
        Self { config, http }
    }

    pub fn config(&self) -> &TwilioConfig {
        &self.config
    }

    fn url(&self, resource: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/{resource}",
            self.config.base_url.trim_end_matches('/'),
            self.config.account_sid
        )
    }

    /// `POST /2010-04-01/Accounts/{sid}/Messages.json`.
    pub async fn send_sms(
        &self,
        to: &str,
        body: &str,
        status_callback: Option<&str>,
    ) -> Result<Message, TwilioError> {
        let from_key = if self.config.sender_is_messaging_service() {
            "MessagingServiceSid"
        } else {
            "From"
        };
        let mut form: Vec<(&str, &str)> = vec![
            ("To", to),
            (from_key, self.config.from.as_str()),
            ("Body", body),
        ];
        if let Some(cb) = status_callback {
            form.push(("StatusCallback", cb));
        }
        self.post(&self.url("Messages.json"), &form).await
    }

    /// `POST /2010-04-01/Accounts/{sid}/Calls.json`: Twilio fetches
    /// `twiml_url` by POST when the call is answered and reports progress to
    /// `status_callback`. `ring_timeout` is how long it rings (Twilio: 5–600 s).
    pub async fn create_call(
        &self,
        to: &str,
        twiml_url: &str,
        status_callback: &str,
        ring_timeout: Duration,
    ) -> Result<Call, TwilioError> {
        let timeout = ring_timeout.as_secs().clamp(5, 600).to_string();
        let form: Vec<(&str, &str)> = vec![
            ("To", to),
            ("From", self.config.from.as_str()),
            ("Url", twiml_url),
            ("Method", "POST"),
            ("StatusCallback", status_callback),
            ("StatusCallbackMethod", "POST"),
            // Twilio wants array parameters as repeated keys; a
            // comma-joined or `StatusCallbackEvent[]` form is ignored, and
            // then only `completed` would be reported.
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
            // Answering-machine detection: the TwiML fetch and callbacks carry
            // `AnsweredBy`, so a voicemail is never taken for a person.
            ("MachineDetection", "Enable"),
            ("Timeout", timeout.as_str()),
        ];
        self.post(&self.url("Calls.json"), &form).await
    }

    /// `GET /2010-04-01/Accounts/{sid}/Calls/{call_sid}.json`.
    pub async fn fetch_call(&self, call_sid: &str) -> Result<Call, TwilioError> {
        // Refuse anything that could change the path: SIDs are alphanumeric.
        if call_sid.is_empty() || !call_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(TwilioError::Api(ApiError {
                status: 400,
                code: None,
                message: "invalid call SID".into(),
                more_info: None,
                retry_after: None,
            }));
        }
        let request = self.http.get(self.url(&format!("Calls/{call_sid}.json")));
        self.execute(request).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<T, TwilioError> {
        self.execute(self.http.post(url).form(form)).await
    }

    async fn execute<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, TwilioError> {
        let response = request
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose()),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.config.timeout)
            .send()
            .await?;
        let status = response.status();
        let retry = retry_after(response.headers());
        let text = response.text().await?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| TwilioError::Decode {
                status: status.as_u16(),
                detail: e.to_string(),
            });
        }
        Err(TwilioError::Api(parse_error(status, &text, retry)))
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
}

/// Twilio's error JSON, or the status and a snippet of the body when a proxy
/// or load balancer answered instead.
fn parse_error(status: StatusCode, text: &str, retry_after: Option<Duration>) -> ApiError {
    let parsed: Option<ErrorBody> = serde_json::from_str(text).ok();
    let (code, message, more_info) = match parsed {
        Some(b) => (
            b.code.filter(|&c| c != 0),
            b.message.unwrap_or_else(|| status.to_string()),
            b.more_info,
        ),
        None => {
            let snippet: String = text.trim().chars().take(200).collect();
            let message = if snippet.is_empty() {
                status.to_string()
            } else {
                snippet
            };
            (None, message, None)
        }
    };
    ApiError {
        status: status.as_u16(),
        code,
        message,
        more_info,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: Option<u32>) -> TwilioError {
        TwilioError::Api(ApiError {
            status,
            code,
            message: "m".into(),
            more_info: None,
            retry_after: Some(Duration::from_secs(3)),
        })
    }

    #[test]
    fn errors_map_to_outcomes() {
        assert!(
            matches!(api(400, Some(21211)).outcome(), Outcome::Failed { reason } if reason.contains("21211"))
        );
        assert!(matches!(
            api(401, Some(20003)).outcome(),
            Outcome::Failed { .. }
        ));
        assert_eq!(
            api(429, Some(20429)).outcome(),
            Outcome::Retry {
                after: Some(Duration::from_secs(3)),
                reason: "HTTP 429 Too Many Requests: Twilio error 20429: m".into()
            }
        );
        assert!(matches!(
            api(400, Some(20429)).outcome(),
            Outcome::Retry { .. }
        ));
        assert!(matches!(api(503, None).outcome(), Outcome::Retry { .. }));
    }

    #[test]
    fn error_bodies_parse() {
        let e = parse_error(
            StatusCode::BAD_REQUEST,
            r#"{"code":21211,"message":"Invalid 'To' Phone Number","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#,
            None,
        );
        assert_eq!(e.code, Some(21211));
        assert_eq!(
            e.more_info.as_deref(),
            Some("https://www.twilio.com/docs/errors/21211")
        );
        let e = parse_error(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>", None);
        assert_eq!(
            (e.code, e.message.as_str()),
            (None, "<html>bad gateway</html>")
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = TwilioConfig::new("AC1", Secret::new("hunter2"), "+15005550006");
        assert!(!format!("{c:?}").contains("hunter2"));
        let client = TwilioClient::new(c);
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
