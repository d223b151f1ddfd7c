//! Provider webhooks already acted on, kept by the provider's own message id,
//! so a webhook the provider re-sends (Twilio does after a timeout) gets the
//! first answer and changes nothing. See `http::replay` for how it is used.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The first answer to a webhook, as stored and replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

/// What [`InboundBook::claim_inbound`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Never seen (or a claim abandoned before it was answered): this request acts.
    First,
    /// Acted on already; this is what was answered.
    Answered(Answer),
    /// Another request with the same id is being handled right now.
    InProgress,
}

#[async_trait]
pub trait InboundBook: Send + Sync {
    /// Records `(provider, message_id)` as being handled, unless it was seen
    /// already. A claim not answered since `abandoned_before` (its process
    /// died mid-request) is taken over. Insert-first with the pair as the
    /// key, so of two identical requests at once exactly one gets `First`.
    async fn claim_inbound(
        &self,
        provider: &str,
        message_id: &str,
        at: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> Result<Seen, StoreError>;
    /// Stores the answer of a claim that acted; durable when it returns.
    async fn answer_inbound(
        &self,
        provider: &str,
        message_id: &str,
        answer: &Answer,
    ) -> Result<(), StoreError>;
    /// Drops a claim whose request failed, so the provider's retry acts.
    async fn forget_inbound(&self, provider: &str, message_id: &str) -> Result<(), StoreError>;
    /// Drops what was first seen before `before`; returns how many rows.
    async fn prune_inbound(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

pub(crate) fn answer_text(answer: &Answer) -> Result<String, StoreError> {
    serde_json::to_string(answer).map_err(|e| StoreError::Corrupt(format!("answer: {e}")))
}

pub(crate) fn parse_answer(text: &str) -> Result<Answer, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("inbound answer: {e}")))
}
