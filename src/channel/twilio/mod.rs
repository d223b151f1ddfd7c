//! Twilio SMS and voice channels: the third and fourth rungs of an
//! escalation (chat → SMS → voice).
//!
//! * [`client`]: the REST calls (create Message / Call) and error mapping.
//! * [`twiml`]: what a voice page says and how key presses are answered.
//! * [`signature`]: `X-Twilio-Signature` verification for every callback.
//! * [`callbacks`]: parsing status callbacks and inbound SMS replies.
//!
//! A successful send only means Twilio queued it: the final word (delivered,
//! undelivered, answered by a human, voicemail) arrives later by callback at
//! the routes listed on [`Routes`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::alert::AlertStatus;
use crate::channel::{Channel, ChannelKind, Notification, Outcome};

pub mod callbacks;
pub mod client;
pub mod signature;
pub mod twiml;

pub use client::{ApiError, Call, Message, TwilioClient, TwilioConfig, TwilioError};

/// Longest SMS body we send: two concatenated GSM-7 segments (153 chars each
/// after the concatenation header) is 306, so ~320 characters keeps a page to
/// two or three segments. Longer bodies cost more and arrive out of order on
/// some carriers.
pub const MAX_SMS_CHARS: usize = 320;
/// How long the phone rings before Twilio gives up (`no-answer`). Shorter
/// than most voicemail pickup delays (~25 s), so fewer calls reach voicemail.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(25);

/// URLs under the public base URL that Twilio calls back. The lead's HTTP
/// layer must serve exactly these paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    public_url: String,
}

impl Routes {
    pub fn new(public_url: &str) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    /// TwiML for a voice page: `POST {public}/twilio/voice/{alert_id}?n={token}`.
    pub fn voice_url(&self, alert_id: i64, token: &str) -> String {
        voice_url(&self.public_url, alert_id, token)
    }

    /// `<Gather action>`: `POST {public}/twilio/voice/{alert_id}/gather?n={token}`.
    pub fn gather_url(&self, alert_id: i64, token: &str) -> String {
        format!(
            "{}/twilio/voice/{alert_id}/gather?n={}",
            self.public_url,
            percent_encode(token)
        )
    }

    /// Call progress callbacks: `POST {public}/twilio/status`.
    pub fn call_status_url(&self) -> String {
        format!("{}/twilio/status", self.public_url)
    }

    /// Message status callbacks: `POST {public}/twilio/sms/status`.
    pub fn sms_status_url(&self) -> String {
        format!("{}/twilio/sms/status", self.public_url)
    }

    /// Inbound SMS webhook configured on the Twilio number: `POST {public}/twilio/sms`.
    pub fn inbound_sms_url(&self) -> String {
        format!("{}/twilio/sms", self.public_url)
    }
}

/// The TwiML URL for a voice page. `token` is opaque here (the caller signs
/// it, e.g. an HMAC of alert id + attempt + expiry) and is percent-encoded.
pub fn voice_url(public_url: &str, alert_id: i64, token: &str) -> String {
    format!(
        "{}/twilio/voice/{alert_id}?n={}",
        public_url.trim_end_matches('/'),
        percent_encode(token)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The page text, e.g. `[Rouse] #42 CRITICAL payments: disk full on db-1.
/// Reply 4a to ack, 4r to resolve, 4e to escalate. https://…/ack/…`, where 4
/// is this number's reply code for the alert (see [`crate::store::SmsBook`]).
///
/// At most [`MAX_SMS_CHARS`] characters: the summary is shortened first,
/// then the ack link dropped if even a short summary would not fit. The
/// truncation mark is `...`, not `…`: one character outside the GSM-7
/// alphabet switches the whole message to UCS-2 (70 instead of 160 chars per
/// segment), tripling the segments for a plain-ASCII page.
pub fn sms_body(n: &Notification) -> String {
    let summary = n.summary.split_whitespace().collect::<Vec<_>>().join(" ");
    let (head, tail) = match n.status {
        AlertStatus::Triggered => (
            format!(
                "[Rouse] #{} {} {}: ",
                n.alert_id,
                n.severity.as_str().to_uppercase(),
                n.service_id
            ),
            format!(" {}", reply_instructions(n.reply_code)),
        ),
        other => {
            let by = n.paged.join(", ");
            let by = if by.is_empty() {
                String::new()
            } else {
                format!(" by {by}")
            };
            (
                format!(
                    "[Rouse] #{} {}{by} {}: ",
                    n.alert_id,
                    other.as_str().to_uppercase(),
                    n.service_id
                ),
                String::new(),
            )
        }
    };
    let link = match (&n.status, &n.ack_url) {
        (AlertStatus::Triggered, Some(url)) => format!(" {url}"),
        _ => String::new(),
    };
    let fixed = head.chars().count() + tail.chars().count();
    let budget = MAX_SMS_CHARS.saturating_sub(fixed + link.chars().count());
    // Keep the link only if at least a readable summary fits next to it.
    let (budget, link) = if budget >= 40 || link.is_empty() {
        (budget, link)
    } else {
        (MAX_SMS_CHARS.saturating_sub(fixed), String::new())
    };
    let summary = shorten(&summary, budget);
    let sep = if summary.ends_with(['.', '!', '?']) {
        ""
    } else {
        "."
    };
    let mut body = format!("{head}{summary}{sep}{tail}{link}");
    if body.chars().count() > MAX_SMS_CHARS {
        // Only a service id or ack link of absurd length gets here.
        body = shorten(&body, MAX_SMS_CHARS);
    }
    body
}

/// `Reply 4a to ack, 4r to resolve, 4e to escalate.`; without a code the
/// bare words, which act on the newest alert paged to the number.
pub fn reply_instructions(code: Option<u32>) -> String {
    match code {
        Some(c) => format!("Reply {c}a to ack, {c}r to resolve, {c}e to escalate."),
        None => "Reply A to ack, R to resolve, E to escalate.".to_owned(),
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(3);
    let mut out: String = s.chars().take(keep).collect();
    out.truncate(out.trim_end().len());
    out.push_str("...");
    out
}

/// SMS pages through Twilio Messages.
pub struct TwilioSms {
    name: String,
    client: TwilioClient,
    routes: Routes,
}

impl TwilioSms {
    pub fn new(name: impl Into<String>, client: TwilioClient, public_url: &str) -> Self {
        Self {
            name: name.into(),
            client,
            routes: Routes::new(public_url),
        }
    }
}

#[async_trait]
impl Channel for TwilioSms {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, n: &Notification) -> Outcome {
        let to = n.recipient.address();
        if to.trim().is_empty() {
            return Outcome::Failed {
                reason: "recipient has no phone number".into(),
            };
        }
        self.deliver(to, &sms_body(n), n.alert_id).await
    }

    /// Several alerts for one number at once become one SMS listing them.
    async fn send_bundle(&self, ns: &[Notification]) -> Outcome {
        let Some(first) = ns.first() else {
            return Outcome::Delivered { provider_id: None };
        };
        let to = first.recipient.address();
        if to.trim().is_empty() {
            return Outcome::Failed {
                reason: "recipient has no phone number".into(),
            };
        }
        self.deliver(to, &bundle_body(ns), first.alert_id).await
    }
}

impl TwilioSms {
    async fn deliver(&self, to: &str, body: &str, alert_id: i64) -> Outcome {
        let callback = self.routes.sms_status_url();
        match self.client.send_sms(to, body, Some(&callback)).await {
            Ok(message) => Outcome::Delivered {
                provider_id: Some(message.sid),
            },
            Err(err) => {
                tracing::warn!(channel = %self.name, alert_id, error = %err, "twilio sms failed");
                err.outcome()
            }
        }
    }
}

/// `[Rouse] 3 alerts: 1) #12 CRITICAL payments: disk full; 2) #13 ….
/// Reply 1a to ack #12, or ACK ALL.` — each alert listed with its reply
/// code and its summary shortened so the whole message stays within
/// [`MAX_SMS_CHARS`].
pub fn bundle_body(ns: &[Notification]) -> String {
    let head = format!("[Rouse] {} alerts: ", ns.len());
    let tail = match ns
        .first()
        .and_then(|n| n.reply_code.map(|c| (c, n.alert_id)))
    {
        Some((c, id)) => format!(" Reply {c}a to ack #{id} (r resolve, e escalate), or ACK ALL."),
        None => " Reply ACK ALL to acknowledge them all.".to_owned(),
    };
    let items: Vec<String> = ns
        .iter()
        .map(|n| {
            let code = n.reply_code.map(|c| format!("{c}) ")).unwrap_or_default();
            format!(
                "{code}#{} {} {}: ",
                n.alert_id,
                n.severity.as_str().to_uppercase(),
                n.service_id
            )
        })
        .collect();
    let fixed: usize = head.chars().count()
        + tail.chars().count()
        + items.iter().map(|i| i.chars().count() + 2).sum::<usize>();
    let per_summary = MAX_SMS_CHARS.saturating_sub(fixed) / ns.len().max(1);
    let parts: Vec<String> = ns
        .iter()
        .zip(items)
        .map(|(n, item)| {
            let summary = n.summary.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("{item}{}", shorten(&summary, per_summary))
        })
        .collect();
    let body = format!("{head}{}.{tail}", parts.join("; "));
    // With very many alerts even the item heads overflow: keep the start.
    if body.chars().count() > MAX_SMS_CHARS {
        shorten(&body, MAX_SMS_CHARS)
    } else {
        body
    }
}

/// Signs the `n` token in voice URLs; owned by the caller (the engine), which
/// also verifies it when Twilio fetches the TwiML.
pub type VoiceTokenFn = Arc<dyn Fn(&Notification) -> String + Send + Sync>;

/// Voice pages through Twilio Calls.
pub struct TwilioVoice {
    name: String,
    client: TwilioClient,
    routes: Routes,
    ring_timeout: Duration,
    token: VoiceTokenFn,
}

impl TwilioVoice {
    pub fn new(
        name: impl Into<String>,
        client: TwilioClient,
        public_url: &str,
        token: VoiceTokenFn,
    ) -> Self {
        Self {
            name: name.into(),
            client,
            routes: Routes::new(public_url),
            ring_timeout: DEFAULT_RING_TIMEOUT,
            token,
        }
    }

    pub fn with_ring_timeout(mut self, ring_timeout: Duration) -> Self {
        self.ring_timeout = ring_timeout;
        self
    }
}

#[async_trait]
impl Channel for TwilioVoice {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Voice
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, n: &Notification) -> Outcome {
        if n.status != AlertStatus::Triggered {
            // Nobody should be rung to hear "resolved"; follow-ups are a no-op.
            return Outcome::Delivered { provider_id: None };
        }
        let to = n.recipient.address();
        if to.trim().is_empty() {
            return Outcome::Failed {
                reason: "recipient has no phone number".into(),
            };
        }
        let url = self.routes.voice_url(n.alert_id, &(self.token)(n));
        let callback = self.routes.call_status_url();
        match self
            .client
            .create_call(to, &url, &callback, self.ring_timeout)
            .await
        {
            Ok(call) => Outcome::Delivered {
                provider_id: Some(call.sid),
            },
            Err(err) => {
                tracing::warn!(channel = %self.name, alert_id = n.alert_id, service = %n.service_id, error = %err, "twilio call failed");
                err.outcome()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Severity, Urgency};
    use crate::channel::Recipient;

    fn n(summary: &str, ack_url: Option<&str>) -> Notification {
        Notification {
            idempotency_key: "k".into(),
            alert_id: 42,
            service_id: "payments".into(),
            summary: summary.into(),
            severity: Severity::Critical,
            urgency: Urgency::High,
            status: AlertStatus::Triggered,
            links: vec![],
            ack_url: ack_url.map(str::to_string),
            reply_code: None,
            action_url: None,
            paged: vec![],
            recipient: Recipient::Room {
                address: "+15550000000".into(),
            },
            attempt: 1,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn sms_body_shape_and_limits() {
        let mut coded = n("disk full on db-1", None);
        coded.reply_code = Some(4);
        assert_eq!(
            sms_body(&coded),
            "[Rouse] #42 CRITICAL payments: disk full on db-1. Reply 4a to ack, 4r to resolve, 4e to escalate."
        );
        let long = "x".repeat(1000);
        let body = sms_body(&n(&long, Some("https://p.example/ack/abc")));
        assert_eq!(body.chars().count(), MAX_SMS_CHARS);
        assert!(body.contains(
            "x... Reply A to ack, R to resolve, E to escalate. https://p.example/ack/abc"
        ));
        // An ack link too long to fit next to a readable summary is dropped.
        let huge_link = format!("https://p.example/{}", "a".repeat(300));
        let body = sms_body(&n("disk full", Some(&huge_link)));
        assert!(!body.contains("https://") && body.contains("disk full."));
        let mut resolved = n("disk\nfull", None);
        resolved.status = AlertStatus::Resolved;
        assert_eq!(
            sms_body(&resolved),
            "[Rouse] #42 RESOLVED payments: disk full."
        );
        resolved.status = AlertStatus::Acknowledged;
        resolved.paged = vec!["alice".into()];
        assert_eq!(
            sms_body(&resolved),
            "[Rouse] #42 ACKNOWLEDGED by alice payments: disk full."
        );
    }

    #[test]
    fn urls() {
        let r = Routes::new("https://p.example/");
        assert_eq!(
            r.voice_url(7, "a b/c"),
            "https://p.example/twilio/voice/7?n=a%20b%2Fc"
        );
        assert_eq!(
            r.gather_url(7, "t"),
            "https://p.example/twilio/voice/7/gather?n=t"
        );
        assert_eq!(r.call_status_url(), "https://p.example/twilio/status");
        assert_eq!(r.sms_status_url(), "https://p.example/twilio/sms/status");
        assert_eq!(r.inbound_sms_url(), "https://p.example/twilio/sms");
    }
}
