//! Silences in the store, shared by every replica.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::alert::silence::{MatcherSpec, Silence};

/// A silence to create (already validated).
#[derive(Debug, Clone)]
pub struct NewSilence {
    pub matchers: Vec<MatcherSpec>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait SilenceBook: Send + Sync {
    async fn create_silence(&self, new: &NewSilence) -> Result<Silence, StoreError>;
    /// Silences that end after `after` (in force, to come, or ended since),
    /// soonest start first.
    async fn silences(&self, after: DateTime<Utc>) -> Result<Vec<Silence>, StoreError>;
    /// Ends a silence at `at` (if it ends later); `None` if there is none with that id.
    async fn expire_silence(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<Silence>, StoreError>;
}

pub(crate) fn matchers_text(matchers: &[MatcherSpec]) -> Result<String, StoreError> {
    serde_json::to_string(matchers).map_err(|e| StoreError::Corrupt(format!("matchers: {e}")))
}

pub(crate) fn parse_matchers(text: &str) -> Result<Vec<MatcherSpec>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("silence matchers: {e}")))
}
