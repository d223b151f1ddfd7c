//! A generic chat webhook: the alert as JSON, signed so the receiver can
//! verify it came from this Rouse and is fresh.
//!
//! Signature (the scheme Slack and Stripe use): `X-Rouse-Timestamp: <unix
//! seconds>` and `X-Rouse-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! The timestamp inside the MAC lets receivers reject replays.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::http::{classify_error, classify_status};
use super::{Channel, ChannelKind, Notification, Outcome};
use crate::config::Secret;

pub struct Webhook {
    name: String,
    url: String,
    secret: Secret,
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(
        name: impl Into<String>,
        url: impl Into<String>,
        secret: Secret,
        http: reqwest::Client,
    ) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            secret,
            http,
        }
    }
}

/// `v1=<hex>` over `"<timestamp>.<body>"`.
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + digest.len() * 2);
    out.push_str("v1=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

pub fn payload(n: &Notification) -> serde_json::Value {
    json!({
        "type": format!("alert.{}", n.status.as_str()),
        "alert_id": n.alert_id,
        "service": n.service_id,
        "summary": n.summary,
        "severity": n.severity,
        "urgency": n.urgency,
        "status": n.status,
        "links": n.links,
        "ack_url": n.ack_url,
        "paged": n.paged,
        "to": n.recipient.address(),
        "attempt": n.attempt,
        "idempotency_key": n.idempotency_key,
        "created_at": n.created_at,
    })
}

#[async_trait]
impl Channel for Webhook {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Chat
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, n: &Notification) -> Outcome {
        let body = payload(n).to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(&self.secret, timestamp, body.as_bytes());
        let result = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Rouse-Timestamp", timestamp.to_string())
            .header("X-Rouse-Signature", signature)
            .header("Idempotency-Key", &n.idempotency_key)
            .body(body)
            .send()
            .await;
        match result {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let text = response.text().await.unwrap_or_default();
                classify_status(status, &headers, &text, None)
            }
            Err(err) => classify_error(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        let sig = sign(&Secret::new("s3cret"), 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            sig,
            "v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }
}
