//! Calendar feed tokens in the store, shared by every replica: a feed made on
//! one answers on all, and a revoked one stops on all at once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;

/// A feed as stored: never the token itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Feed {
    pub id: i64,
    /// `schedule` or `person` (see [`crate::feed::Subject`]).
    pub kind: String,
    pub subject: String,
    /// Who or what it is for, as the admin wrote it ("Carol's phone").
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewFeed {
    pub kind: String,
    pub subject: String,
    pub label: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait FeedBook: Send + Sync {
    async fn create_feed(&self, new: &NewFeed) -> Result<Feed, StoreError>;
    /// Every feed, revoked ones too, oldest first.
    async fn feeds(&self) -> Result<Vec<Feed>, StoreError>;
    /// The feed whose token hashes to `token_hash`, unless revoked.
    async fn feed_by_token(&self, token_hash: &str) -> Result<Option<Feed>, StoreError>;
    /// Revokes a feed at `at` (a revoked one keeps its first revocation);
    /// `None` if there is none with that id.
    async fn revoke_feed(&self, id: i64, at: DateTime<Utc>) -> Result<Option<Feed>, StoreError>;
}
