//! Pushover: push notifications that can ring through Do Not Disturb.
//!
//! High-urgency pages go out at emergency priority (`priority=2`): Pushover
//! repeats the alarm every `retry` seconds for `expire` seconds until someone
//! acknowledges it in the app, and the app can be set to sound it even when
//! the phone is silenced (the "critical alerts" permission on iOS). Pushover
//! insists on `retry` ≥ 30 s and `expire` ≤ 10800 s at that priority and
//! answers 400 without them. Low-urgency pages go out at normal priority.
//!
//! An emergency page returns a `receipt`; it becomes the notification's
//! provider id. Through it Rouse learns of the acknowledgement (Pushover POSTs
//! the `callback` URL, or the receipt is polled) and, once the alert is
//! acknowledged or resolved anywhere, cancels the remaining retries (the
//! follow-up of the page). The application token travels in form bodies and
//! in the receipt poll's query string, so transport errors are reported
//! without their URL and provider answers only by their `errors` list.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::alert::{AlertStatus, Urgency};
use crate::channel::http::classify_status;
use crate::channel::{Channel, ChannelKind, Notification, Outcome};
use crate::config::Secret;

use super::render::{self, truncate};
use super::{check_url, execute, secret_serde, ConfigError};

pub const DEFAULT_BASE_URL: &str = "https://api.pushover.net";
/// Pushover's own bounds for emergency priority.
pub const MIN_RETRY_SECS: u32 = 30;
pub const MAX_EXPIRE_SECS: u32 = 10_800;
/// Pushover asks for receipts to be polled no faster than this.
pub const MIN_POLL_SECS: u32 = 5;

/// `channels.pushover`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushoverSettings {
    /// The application's API token; prefer `ROUSE_PUSHOVER_TOKEN`.
    #[serde(default, deserialize_with = "secret_serde::optional")]
    pub token: Option<Secret>,
    /// Only changed for tests or a proxy.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Seconds between the alarm's repeats at emergency priority (≥ 30).
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Seconds the alarm repeats for unless acknowledged (≤ 10800).
    #[serde(default = "default_expire")]
    pub expire: u32,
    /// A Pushover sound name; unset uses the person's default.
    #[serde(default)]
    pub sound: Option<String>,
    /// Seconds between polls of an open receipt (≥ 5): the fallback for a
    /// callback that never arrives (a `public_url` Pushover cannot reach).
    #[serde(default = "default_poll_every")]
    pub poll_every: u32,
}

fn default_retry() -> u32 {
    60
}

fn default_expire() -> u32 {
    3600
}

fn default_poll_every() -> u32 {
    10
}

impl PushoverSettings {
    /// The settings checked against Pushover's limits, with the token.
    pub fn validated(&self) -> Result<(Secret, String), ConfigError> {
        let token = self.token.clone().ok_or_else(|| {
            ConfigError::new(
                "pushover",
                "token is required (or set ROUSE_PUSHOVER_TOKEN)",
            )
        })?;
        if self.retry < MIN_RETRY_SECS {
            return Err(ConfigError::new(
                "pushover",
                format!("retry must be at least {MIN_RETRY_SECS} seconds (a Pushover rule)"),
            ));
        }
        if self.expire == 0 || self.expire > MAX_EXPIRE_SECS {
            return Err(ConfigError::new(
                "pushover",
                format!("expire must be 1 to {MAX_EXPIRE_SECS} seconds (a Pushover rule)"),
            ));
        }
        if self.poll_every < MIN_POLL_SECS {
            return Err(ConfigError::new(
                "pushover",
                format!("poll_every must be at least {MIN_POLL_SECS} seconds (a Pushover rule)"),
            ));
        }
        let base = self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        check_url("pushover", "base_url", base)?;
        Ok((token, base.trim_end_matches('/').to_owned()))
    }
}

/// Talks to Pushover's REST API; shared by the channel and the receipt poller.
#[derive(Clone)]
pub struct PushoverClient {
    token: Secret,
    base_url: String,
    http: reqwest::Client,
}

/// What a receipt poll says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptStatus {
    pub acknowledged: bool,
    /// The user key that acknowledged first.
    pub acknowledged_by: Option<String>,
    /// The alarm stopped repeating without an acknowledgement.
    pub expired: bool,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    status: i64,
    #[serde(default)]
    receipt: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    acknowledged: i64,
    #[serde(default)]
    acknowledged_by: Option<String>,
    #[serde(default)]
    expired: i64,
}

/// A receipt goes into a URL path: only Pushover's own alphabet is accepted.
fn is_receipt(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// What Pushover said went wrong, without anything it echoed back.
fn errors_of(body: &str) -> String {
    serde_json::from_str::<Answer>(body)
        .map(|a| a.errors.join("; "))
        .unwrap_or_default()
}

impl PushoverClient {
    pub fn new(token: Secret, base_url: &str, http: reqwest::Client) -> Self {
        Self {
            token,
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
        }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<(Answer, String), Outcome> {
        let mut fields: Vec<(&str, &str)> = vec![("token", self.token.expose())];
        fields.extend_from_slice(form);
        let request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .form(&fields);
        answer(execute(request).await?)
    }

    /// Sends one message; the receipt (emergency priority only) on success.
    async fn message(&self, form: &[(&str, &str)]) -> Outcome {
        match self.post("/1/messages.json", form).await {
            Ok((a, _)) => Outcome::Delivered {
                provider_id: a.receipt.filter(|r| is_receipt(r)),
            },
            Err(outcome) => outcome,
        }
    }

    /// Stops an emergency page's repeats.
    pub async fn cancel(&self, receipt: &str) -> Outcome {
        if !is_receipt(receipt) {
            return Outcome::Failed {
                reason: "not a Pushover receipt".to_owned(),
            };
        }
        match self
            .post(&format!("/1/receipts/{receipt}/cancel.json"), &[])
            .await
        {
            Ok(_) => Outcome::Delivered {
                provider_id: Some(receipt.to_owned()),
            },
            Err(outcome) => outcome,
        }
    }

    /// Asks whether an emergency page was acknowledged.
    pub async fn receipt(&self, receipt: &str) -> Result<ReceiptStatus, String> {
        if !is_receipt(receipt) {
            return Err("not a Pushover receipt".to_owned());
        }
        let request = self
            .http
            .get(format!("{}/1/receipts/{receipt}.json", self.base_url))
            .query(&[("token", self.token.expose())]);
        let reply = execute(request).await.map_err(|o| describe(&o))?;
        let (a, _) = answer(reply).map_err(|o| describe(&o))?;
        Ok(ReceiptStatus {
            acknowledged: a.acknowledged == 1,
            acknowledged_by: a.acknowledged_by.filter(|k| !k.is_empty()),
            expired: a.expired == 1,
        })
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Delivered { .. } => "delivered".to_owned(),
        Outcome::Retry { reason, .. }
        | Outcome::Failed { reason }
        | Outcome::Unknown { reason } => reason.clone(),
    }
}

/// Pushover answers `{"status":1,…}` on success and `{"status":0,"errors":[…]}`
/// (with a 4xx) otherwise.
fn answer(reply: super::Reply) -> Result<(Answer, String), Outcome> {
    let parsed = serde_json::from_str::<Answer>(&reply.body);
    match parsed {
        Ok(a) if reply.status.is_success() && a.status == 1 => Ok((a, reply.body)),
        Ok(_) if reply.status.is_success() => Err(Outcome::Failed {
            reason: format!("Pushover refused: {}", errors_of(&reply.body)),
        }),
        Err(_) if reply.status.is_success() => Err(Outcome::Unknown {
            reason: "Pushover answered with something that is not its JSON".to_owned(),
        }),
        _ => Err(classify_status(
            reply.status,
            &reply.headers,
            &errors_of(&reply.body),
            None,
        )),
    }
}

pub struct Pushover {
    name: String,
    client: PushoverClient,
    retry: Duration,
    expire: Duration,
    sound: Option<String>,
}

impl Pushover {
    pub fn new(settings: &PushoverSettings, http: reqwest::Client) -> Result<Self, ConfigError> {
        let (token, base) = settings.validated()?;
        Ok(Self {
            name: "pushover".to_owned(),
            client: PushoverClient::new(token, &base, http),
            retry: Duration::from_secs(u64::from(settings.retry)),
            expire: Duration::from_secs(u64::from(settings.expire)),
            sound: settings.sound.clone(),
        })
    }

    pub fn client(&self) -> PushoverClient {
        self.client.clone()
    }
}

/// The form fields of a page, without the token. Pushover limits: title 250,
/// message 1024, url 512, url_title 100 characters.
pub fn page_form(
    n: &Notification,
    retry: Duration,
    expire: Duration,
    sound: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut message = render::one_line(&n.summary);
    if !n.paged.is_empty() {
        message.push_str(&format!(" ({})", render::status_line(n)));
    }
    let mut form = vec![
        ("user", n.recipient.address().to_owned()),
        ("title", truncate(&render::title(n), 250)),
        ("message", truncate(&message, 1024)),
    ];
    if n.urgency == Urgency::High {
        form.push(("priority", "2".to_owned()));
        form.push(("retry", retry.as_secs().to_string()));
        form.push(("expire", expire.as_secs().to_string()));
        if let Some(callback) = &n.action_url {
            form.push(("callback", callback.expose().to_owned()));
        }
    } else {
        form.push(("priority", "0".to_owned()));
    }
    if let Some(url) = render::ack_url(n).filter(|u| u.len() <= 512) {
        form.push(("url", url.to_owned()));
        form.push(("url_title", "Acknowledge in Rouse".to_owned()));
    }
    if let Some(sound) = sound {
        form.push(("sound", sound.to_owned()));
    }
    form
}

#[async_trait]
impl Channel for Pushover {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Pushover
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, n: &Notification) -> Outcome {
        let form = page_form(n, self.retry, self.expire, self.sound.as_deref());
        let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.client.message(&fields).await
    }

    /// An acknowledged or resolved alert stops its emergency page ringing.
    /// Only pages with a receipt get follow-ups (the stores queue them so).
    async fn follow_up(&self, n: &Notification, previous: Option<&str>) -> Outcome {
        match (n.status, previous) {
            (AlertStatus::Triggered, _) => self.send(n).await,
            (_, Some(receipt)) => self.client.cancel(receipt).await,
            (_, None) => Outcome::Failed {
                reason: "no receipt to cancel".to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;
    use crate::channel::Recipient;
    use chrono::Utc;

    fn n(urgency: Urgency) -> Notification {
        Notification {
            idempotency_key: "k".into(),
            alert_id: 42,
            service_id: "payments".into(),
            summary: "disk full".into(),
            severity: Severity::Critical,
            urgency,
            status: AlertStatus::Triggered,
            links: vec![],
            ack_url: Some("https://rouse.example/ack/42?t=x".into()),
            reply_code: None,
            action_url: Some(Secret::new("https://rouse.example/pushover/callback/1/s")),
            paged: vec!["alice".into()],
            recipient: Recipient::Person {
                id: "alice".into(),
                name: "Alice".into(),
                address: "u".repeat(30),
            },
            attempt: 1,
            created_at: Utc::now(),
        }
    }

    fn get<'a>(form: &'a [(&str, String)], key: &str) -> Option<&'a str> {
        form.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn high_urgency_is_an_emergency_with_retry_expire_and_callback() {
        let form = page_form(
            &n(Urgency::High),
            Duration::from_secs(60),
            Duration::from_secs(3600),
            Some("siren"),
        );
        assert_eq!(get(&form, "priority"), Some("2"));
        assert_eq!(get(&form, "retry"), Some("60"));
        assert_eq!(get(&form, "expire"), Some("3600"));
        assert_eq!(
            get(&form, "callback"),
            Some("https://rouse.example/pushover/callback/1/s")
        );
        assert_eq!(get(&form, "sound"), Some("siren"));
        assert_eq!(get(&form, "user"), Some("u".repeat(30).as_str()));
    }

    #[test]
    fn low_urgency_is_normal_priority_without_retries() {
        let form = page_form(
            &n(Urgency::Low),
            Duration::from_secs(60),
            Duration::from_secs(3600),
            None,
        );
        assert_eq!(get(&form, "priority"), Some("0"));
        assert_eq!(get(&form, "retry"), None);
        assert_eq!(get(&form, "callback"), None);
    }

    #[test]
    fn settings_outside_pushovers_limits_are_refused() {
        let base = PushoverSettings {
            token: Some(Secret::new("a".repeat(30))),
            base_url: None,
            retry: 60,
            expire: 3600,
            sound: None,
            poll_every: 10,
        };
        assert!(base.validated().is_ok());
        for bad in [
            PushoverSettings {
                retry: 29,
                ..base.clone()
            },
            PushoverSettings {
                expire: 10_801,
                ..base.clone()
            },
            PushoverSettings {
                poll_every: 4,
                ..base.clone()
            },
            PushoverSettings {
                token: None,
                ..base.clone()
            },
        ] {
            assert!(bad.validated().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn receipts_are_checked_before_they_reach_a_path() {
        assert!(is_receipt("KAWXTswy4cekx6vZbHBKbCKk1c1fdf"));
        assert!(!is_receipt("../messages"));
        assert!(!is_receipt(""));
    }
}
