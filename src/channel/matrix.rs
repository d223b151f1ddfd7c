//! Matrix: the client-server API, as a bot account with an access token.
//!
//! `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}` with an
//! HTML `formatted_body` and a plain `body` fallback. The transaction id is
//! derived from the notification's idempotency key, so a retry of the same
//! notification (after a timeout, after a crash) is deduplicated by the
//! homeserver, which answers with the first event id instead of posting twice.
//! Room aliases (`#ops:example.org`) are resolved through the room directory
//! once and cached; ids and aliases are percent-encoded into paths (`!` and `:`
//! are not path-safe). Follow-ups edit the first message (`m.replace`).
//! Rate limits are 429 `M_LIMIT_EXCEEDED` with `retry_after_ms`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::channel::http::{classify_status, retry_after};
use crate::channel::{Channel, ChannelKind, Notification, Outcome};
use crate::config::Secret;

use super::render;
use super::{chat_target, check_url, execute, secret_serde, ConfigError};

/// Everything but RFC 3986 unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `channels.matrix`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// Client-server API base, e.g. `https://matrix.example.org`.
    pub homeserver_url: String,
    /// The bot user's access token (it must have joined the rooms).
    #[serde(deserialize_with = "secret_serde::required")]
    pub access_token: Secret,
    /// Room id (`!abc:example.org`) or alias (`#ops:example.org`) used when
    /// the recipient is a person.
    #[serde(default)]
    pub room: Option<String>,
}

pub struct Matrix {
    base: String,
    token: Secret,
    room: Option<String>,
    http: reqwest::Client,
    /// alias → room id; aliases rarely move and a lookup per page is waste.
    aliases: Mutex<HashMap<String, String>>,
}

/// Percent-encodes one path segment (`!abc:localhost` → `%21abc%3Alocalhost`).
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A transaction id from an idempotency key: deterministic and injective
/// (`~` escapes every byte outside `[A-Za-z0-9._-]`, itself included), so
/// different keys never share a txnId and the same key always does.
pub fn txn_id(idempotency_key: &str, purpose: &str) -> String {
    let mut out = String::from("rouse-");
    for b in idempotency_key
        .bytes()
        .chain(b"-".iter().copied())
        .chain(purpose.bytes())
    {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("~{b:02x}"));
        }
    }
    out
}

impl Matrix {
    pub fn new(config: &MatrixConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        check_url("matrix", "homeserver_url", &config.homeserver_url)?;
        if config.access_token.expose().trim().is_empty() {
            return Err(ConfigError::new("matrix", "access_token is empty"));
        }
        if let Some(room) = &config.room {
            if !(room.starts_with('!') || room.starts_with('#')) {
                return Err(ConfigError::new(
                    "matrix",
                    "room must be a room id (!…) or an alias (#…)",
                ));
            }
        }
        Ok(Self {
            base: config.homeserver_url.trim_end_matches('/').to_owned(),
            token: config.access_token.clone(),
            room: config.room.clone(),
            http,
            aliases: Mutex::new(HashMap::new()),
        })
    }

    /// The room id for a notification, resolving an alias if needed.
    async fn room_id(&self, n: &Notification) -> Result<String, Outcome> {
        let target = chat_target(&n.recipient, self.room.as_deref()).trim();
        if target.starts_with('!') {
            return Ok(target.to_owned());
        }
        if !target.starts_with('#') {
            return Err(Outcome::Failed {
                reason: format!("matrix: {target:?} is not a room id or alias"),
            });
        }
        if let Some(id) = self.cached(target) {
            return Ok(id);
        }
        let url = format!(
            "{}/_matrix/client/v3/directory/room/{}",
            self.base,
            encode_segment(target)
        );
        let reply = execute(self.http.get(url).bearer_auth(self.token.expose())).await?;
        if !reply.status.is_success() {
            return Err(classify(&reply));
        }
        #[derive(Deserialize)]
        struct Directory {
            room_id: String,
        }
        match serde_json::from_str::<Directory>(&reply.body) {
            Ok(d) => {
                if let Ok(mut map) = self.aliases.lock() {
                    map.insert(target.to_owned(), d.room_id.clone());
                }
                Ok(d.room_id)
            }
            Err(_) => Err(Outcome::Retry {
                after: None,
                reason: "matrix: unreadable room directory answer".into(),
            }),
        }
    }

    fn cached(&self, alias: &str) -> Option<String> {
        // A poisoned lock only loses the cache, never the page.
        self.aliases.lock().ok()?.get(alias).cloned()
    }

    async fn put_message(&self, room_id: &str, txn: &str, content: &Value) -> Outcome {
        let url = format!(
            "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            self.base,
            encode_segment(room_id),
            encode_segment(txn)
        );
        let request = self
            .http
            .put(url)
            .bearer_auth(self.token.expose())
            .json(content);
        match execute(request).await {
            Ok(reply) => classify(&reply),
            Err(outcome) => outcome,
        }
    }
}

/// The `m.room.message` content of a page or follow-up.
pub fn content(n: &Notification) -> Value {
    json!({
        "msgtype": "m.text",
        "body": render::plain_text(n),
        "format": "org.matrix.custom.html",
        "formatted_body": render::html(n),
    })
}

/// An edit of `event_id` to the follow-up's content; the outer `body` is the
/// fallback for clients without edit support (the spec's `* ` convention).
pub fn edit_content(n: &Notification, event_id: &str) -> Value {
    let new = content(n);
    json!({
        "msgtype": "m.text",
        "body": format!("* {}", render::plain_text(n)),
        "format": "org.matrix.custom.html",
        "formatted_body": format!("* {}", render::html(n)),
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    })
}

#[derive(Deserialize)]
struct MatrixError {
    #[serde(default)]
    errcode: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

fn classify(reply: &super::Reply) -> Outcome {
    if reply.status.is_success() {
        #[derive(Deserialize)]
        struct Sent {
            event_id: String,
        }
        return match serde_json::from_str::<Sent>(&reply.body) {
            Ok(sent) => Outcome::Delivered {
                provider_id: Some(sent.event_id),
            },
            // 200 without an event id: probably sent, but we cannot edit it.
            Err(_) => Outcome::Delivered { provider_id: None },
        };
    }
    let Ok(err) = serde_json::from_str::<MatrixError>(&reply.body) else {
        return classify_status(reply.status, &reply.headers, &reply.body, None);
    };
    let reason = format!(
        "matrix: HTTP {} {} {}",
        reply.status.as_u16(),
        err.errcode,
        err.error
    )
    .trim_end()
    .to_owned();
    if err.errcode == "M_LIMIT_EXCEEDED" || reply.status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let after = err
            .retry_after_ms
            .map(|ms| Duration::from_millis(ms.min(15 * 60 * 1000)))
            .or_else(|| retry_after(&reply.headers));
        return Outcome::Retry { after, reason };
    }
    match classify_status(reply.status, &reply.headers, "", None) {
        Outcome::Retry { after, .. } => Outcome::Retry { after, reason },
        _ => Outcome::Failed { reason },
    }
}

#[async_trait]
impl Channel for Matrix {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Chat
    }

    fn name(&self) -> &str {
        "matrix"
    }

    async fn send(&self, n: &Notification) -> Outcome {
        let room_id = match self.room_id(n).await {
            Ok(id) => id,
            Err(outcome) => return outcome,
        };
        self.put_message(&room_id, &txn_id(&n.idempotency_key, "page"), &content(n))
            .await
    }

    /// Edits the first message (`m.replace`) when its event id is known, so
    /// the room's timeline shows the current state where the page was; else a
    /// new message. Its txnId is derived from the key and the new status, so
    /// a retried follow-up is deduplicated like a retried page.
    async fn follow_up(&self, n: &Notification, previous_provider_id: Option<&str>) -> Outcome {
        let room_id = match self.room_id(n).await {
            Ok(id) => id,
            Err(outcome) => return outcome,
        };
        let purpose = n.status.as_str();
        match previous_provider_id.filter(|id| id.starts_with('$')) {
            Some(event_id) => {
                let txn = txn_id(&n.idempotency_key, &format!("edit-{purpose}"));
                self.put_message(&room_id, &txn, &edit_content(n, event_id))
                    .await
            }
            None => {
                let txn = txn_id(&n.idempotency_key, purpose);
                self.put_message(&room_id, &txn, &content(n)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_and_aliases_are_encoded() {
        assert_eq!(encode_segment("!abc:localhost"), "%21abc%3Alocalhost");
        assert_eq!(encode_segment("#ops:example.org"), "%23ops%3Aexample.org");
    }

    #[test]
    fn txn_ids_are_path_safe_and_injective() {
        assert_eq!(
            txn_id("42/1/alice/chat/1", "page"),
            "rouse-42~2f1~2falice~2fchat~2f1-page"
        );
        assert_ne!(txn_id("a/b", "page"), txn_id("a_b", "page"));
        assert_ne!(txn_id("a~2fb", "page"), txn_id("a/b", "page"));
    }
}
