//! What Rouse remembers about push pages that can be acknowledged from the
//! provider's side: for each Pushover emergency page, the hash of the random
//! secret its callback URL carries, when its receipt was last polled, and
//! whether its acknowledgement has been acted on (so a callback and a poll,
//! or a callback repeated, act once).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::channel::Recipient;

/// A Pushover page as its callback and its receipt poll see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPage {
    pub notification_id: i64,
    pub alert_id: i64,
    /// Pushover's receipt (the page's provider id); `None` until it was sent.
    pub receipt: Option<String>,
    pub recipient: Recipient,
    /// SHA-256 (hex) of the callback secret; `None` if the page carried none.
    pub secret_hash: Option<String>,
}

#[async_trait]
pub trait PushBook: Send + Sync {
    /// Remembers the hash of the secret a page's callback URL carries; set
    /// before each attempt is sent, so the last attempt's secret counts.
    async fn set_push_secret(
        &self,
        notification_id: i64,
        alert_id: i64,
        secret_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The Pushover page with this notification id (never a follow-up).
    async fn push_page(&self, notification_id: i64) -> Result<Option<PushPage>, StoreError>;

    /// Delivered emergency pages of alerts still firing whose receipt was
    /// not polled since `polled_before` (oldest poll first), marked as
    /// polled at `now`.
    async fn receipts_to_poll(
        &self,
        now: DateTime<Utc>,
        polled_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PushPage>, StoreError>;

    /// Records that a page's acknowledgement reached Rouse; `false` if it
    /// already had (the caller then does nothing more). Atomic.
    async fn push_acknowledged(
        &self,
        notification_id: i64,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Undoes [`PushBook::push_acknowledged`] when acting on it failed, so
    /// the next poll tries again.
    async fn push_unacknowledged(&self, notification_id: i64) -> Result<(), StoreError>;

    /// Stops polling a receipt whose alarm expired unacknowledged.
    async fn push_expired(&self, notification_id: i64, at: DateTime<Utc>)
        -> Result<(), StoreError>;
}
