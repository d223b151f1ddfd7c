//! What the store keeps for watchers: one row each with its next slot, the
//! lease on the run in progress and the state the last run left (see
//! [`crate::watch::decide::WatchState`], kept as JSON so the decision
//! module owns its shape).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// A watcher's run, leased to one runner until `lease_until`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatcherClaim {
    pub id: String,
    /// The slot being run (lateness = claim time − this).
    pub due_at: DateTime<Utc>,
    /// Fencing token: [`WatchBook::finish_watcher`] with a stale one is refused.
    pub token: i64,
    pub state: Option<serde_json::Value>,
}

/// A watcher's row, for status pages, metrics and `rouse check`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatcherRow {
    pub id: String,
    pub fingerprint: String,
    pub next_due_at: DateTime<Utc>,
    pub leased: bool,
    pub state: Option<serde_json::Value>,
}

#[async_trait]
pub trait WatchBook: Send + Sync {
    /// Gives every `(id, fingerprint)` a row. A new watcher, or one whose
    /// fingerprint changed (its configuration was edited), is due at `now`;
    /// its state is kept.
    async fn ensure_watchers(
        &self,
        watchers: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Leases up to `limit` of `ids` that are due at `now` and not leased
    /// (or whose lease ran out: a replica died mid-run), earliest first.
    async fn claim_watchers(
        &self,
        ids: &[String],
        now: DateTime<Utc>,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<WatcherClaim>, StoreError>;

    /// Records a run: its state and the next slot, and frees the lease.
    /// `false` if the claim was fenced out (its lease ran out and another
    /// runner took the slot); nothing is written then.
    async fn finish_watcher(
        &self,
        claim: &WatcherClaim,
        next_due_at: DateTime<Utc>,
        state: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    async fn watchers(&self) -> Result<Vec<WatcherRow>, StoreError>;
}

pub(crate) fn state_text(state: &serde_json::Value) -> String {
    state.to_string()
}

pub(crate) fn parse_state(text: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("watcher state: {e}")))
    })
    .transpose()
}
