//! Email over SMTP (lettre, rustls): a multipart plain-text + HTML message
//! with the acknowledge link.
//!
//! Threading without state: the first page about alert 42 carries
//! `Message-ID: <alert-42@rouse.example.com>`; every later mail (re-pages,
//! acknowledged, resolved) gets its own deterministic id derived from the
//! idempotency key and points `In-Reply-To`/`References` at the first, with a
//! `Re: ` subject, so mail clients group one alert's mails together. Because
//! ids are deterministic, a mail resent after an ambiguous failure carries the
//! same Message-ID and clients show it once.
//!
//! Failures: a 5xx reply (535 authentication failed, 550 no such mailbox) is
//! `Failed`; a 4xx reply, a refused connection or a TLS failure is `Retry`; a
//! timeout is `Unknown` (the server may have taken the message).

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use crate::alert::AlertStatus;
use crate::channel::http::error_chain;
use crate::channel::{Channel, ChannelKind, Notification, Outcome, Recipient};
use crate::config::Secret;

use super::render;
use super::{secret_serde, ConfigError};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Implicit,
    /// No TLS at all: only for a relay on localhost or a trusted network (port 25).
    None,
}

/// `channels.email`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP relay host name (also the name its TLS certificate must carry).
    pub host: String,
    /// Defaults to 587 / 465 / 25 by `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// AUTH user; AUTH is used only when set (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "secret_serde::optional")]
    pub password: Option<Secret>,
    /// `Rouse <pager@example.com>`.
    pub from: String,
    /// Right-hand side of Message-IDs; defaults to `rouse.<domain of from>`,
    /// stable across hosts so threads survive a failover.
    #[serde(default)]
    pub message_id_domain: Option<String>,
    /// Whole-conversation timeout in seconds (default 10).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl Email {
    pub fn new(config: &EmailConfig) -> Result<Self, ConfigError> {
        let bad = |reason: String| ConfigError::new("email", reason);
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| bad(format!("from {:?} is not a mailbox: {e}", config.from)))?;
        let host = config.host.trim();
        if host.is_empty() {
            return Err(bad("host is empty".into()));
        }
        let mut builder = match config.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| bad(format!("TLS setup: {e}")))?,
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| bad(format!("TLS setup: {e}")))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        if let Some(port) = config.port {
            builder = builder.port(port);
        }
        match (&config.username, &config.password) {
            (Some(user), Some(password)) => {
                builder = builder
                    .credentials(Credentials::new(user.clone(), password.expose().to_owned()));
            }
            (None, None) => {}
            _ => return Err(bad("username and password go together".into())),
        }
        let timeout = conversation_timeout(config.timeout_secs);
        builder = builder.timeout(Some(timeout));
        let domain = match &config.message_id_domain {
            Some(d) if !d.trim().is_empty() => d.trim().to_owned(),
            _ => format!("rouse.{}", from.email.domain()),
        };
        Ok(Self {
            transport: builder.build(),
            from,
            domain,
        })
    }

    /// The Message-ID of the first mail about an alert: what later ones reply to.
    pub fn root_message_id(&self, alert_id: i64) -> String {
        format!("<alert-{alert_id}@{}>", self.domain)
    }

    /// First page for the alert (triggered, first attempt) gets the root id.
    fn is_first(n: &Notification) -> bool {
        n.status == AlertStatus::Triggered && n.attempt <= 1
    }

    /// This mail's Message-ID: the root for the first, else one derived from
    /// the idempotency key and status (unique per mail, stable across resends).
    pub fn message_id(&self, n: &Notification) -> String {
        if Self::is_first(n) {
            return self.root_message_id(n.alert_id);
        }
        let mut tag = String::new();
        for b in n
            .idempotency_key
            .bytes()
            .chain(b"-".iter().copied())
            .chain(n.status.as_str().bytes())
        {
            // dot-atom-text without dots at odd places: only [A-Za-z0-9_-] as is.
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') {
                tag.push(char::from(b));
            } else {
                tag.push_str(&format!("={b:02X}"));
            }
        }
        format!("<alert-{}-{tag}@{}>", n.alert_id, self.domain)
    }

    /// `[Rouse] CRITICAL #42 payments: disk full`, with `Re: ` after the first
    /// so clients that thread by subject agree with the headers.
    pub fn subject(n: &Notification) -> String {
        let subject = format!("[Rouse] {}", render::truncate(&render::title(n), 200));
        if Self::is_first(n) {
            subject
        } else {
            format!("Re: {subject}")
        }
    }

    pub fn build(&self, n: &Notification) -> Result<Message, Outcome> {
        let address = n.recipient.address().trim();
        let to: Mailbox = match &n.recipient {
            Recipient::Person { name, .. } => format!("{} <{address}>", render::one_line(name))
                .parse()
                .or_else(|_| address.parse()),
            Recipient::Room { .. } => address.parse(),
        }
        .map_err(|e| Outcome::Failed {
            reason: format!("email: {address:?} is not an email address: {e}"),
        })?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(Self::subject(n))
            .message_id(Some(self.message_id(n)))
            .date_now();
        if !Self::is_first(n) {
            let root = self.root_message_id(n.alert_id);
            builder = builder.in_reply_to(root.clone()).references(root);
        }
        let html = format!(
            "<!DOCTYPE html>\n<html><body>\n{}</body></html>\n",
            render::html(n)
        );
        let body = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(render::plain_text(n)),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html),
            );
        builder.multipart(body).map_err(|e| Outcome::Failed {
            reason: format!("email: cannot build the message: {e}"),
        })
    }
}

/// Maps an SMTP failure; nothing here panics on what a server says.
pub fn classify_smtp(err: &lettre::transport::smtp::Error) -> Outcome {
    let detail = error_chain(err);
    let code = err.status().map(|c| c.to_string());
    if err.is_permanent() {
        let reason = match code.as_deref() {
            Some("535") => {
                format!("SMTP authentication failed (535): check username/password: {detail}")
            }
            Some("530") => format!(
                "SMTP server requires authentication (530): set username/password: {detail}"
            ),
            _ => format!("SMTP rejected the message: {detail}"),
        };
        Outcome::Failed { reason }
    } else if err.is_transient() {
        Outcome::Retry {
            after: None,
            reason: format!("SMTP temporary failure: {detail}"),
        }
    } else if err.is_timeout() {
        Outcome::Unknown {
            reason: format!("SMTP timed out: {detail}"),
        }
    } else {
        // Connection refused or reset, DNS, TLS handshake, unexpected close:
        // nothing was accepted; try again later.
        Outcome::Retry {
            after: None,
            reason: format!("SMTP connection failed: {detail}"),
        }
    }
}

#[async_trait]
impl Channel for Email {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn name(&self) -> &str {
        "email"
    }

    async fn send(&self, n: &Notification) -> Outcome {
        let message = match self.build(n) {
            Ok(m) => m,
            Err(outcome) => return outcome,
        };
        let id = self.message_id(n);
        match self.transport.send(message).await {
            Ok(_) => Outcome::Delivered {
                provider_id: Some(id),
            },
            Err(err) => classify_smtp(&err),
        }
    }

    /// A reply in the alert's thread (`Re:`, `In-Reply-To` the first mail).
    async fn follow_up(&self, n: &Notification, _previous_provider_id: Option<&str>) -> Outcome {
        self.send(n).await
    }
}

/// `timeout_secs` as used: 10 s by default, within 1..=120 s.
pub(crate) fn conversation_timeout(timeout_secs: Option<u64>) -> Duration {
    Duration::from_secs(timeout_secs.unwrap_or(10).clamp(1, 120))
}
