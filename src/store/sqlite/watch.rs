//! [`WatchBook`] on SQLite: one writer, so a claim is a plain update.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{instant, SqliteStore};
use crate::store::watch::{parse_state, state_text, WatchBook, WatcherClaim, WatcherRow};
use crate::store::{lease_ms, StoreError};

#[async_trait]
impl WatchBook for SqliteStore {
    async fn ensure_watchers(
        &self,
        watchers: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if watchers.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in watchers.chunks(300) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO watchers (id, fingerprint, next_due_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, (id, fingerprint)| {
                b.push_bind(id.as_str())
                    .push_bind(fingerprint.as_str())
                    .push_bind(now.timestamp_millis())
                    .push_bind(now.timestamp_millis());
            });
            q.push(
                " ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint,
                      next_due_at = MIN(next_due_at, excluded.next_due_at),
                      updated_at = excluded.updated_at
                  WHERE fingerprint <> excluded.fingerprint",
            );
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.durable().await
    }

    async fn claim_watchers(
        &self,
        ids: &[String],
        now: DateTime<Utc>,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<WatcherClaim>, StoreError> {
        if ids.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let now_ms = now.timestamp_millis();
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE watchers SET lease_owner = ");
        q.push_bind(owner)
            .push(", lease_until = ")
            .push_bind(now_ms.saturating_add(lease_ms(lease)))
            .push(", token = token + 1 WHERE id IN (SELECT id FROM watchers WHERE next_due_at <= ")
            .push_bind(now_ms)
            .push(" AND (lease_until IS NULL OR lease_until <= ")
            .push_bind(now_ms)
            .push(") AND id IN (");
        let mut list = q.separated(", ");
        for id in ids.iter().take(5_000) {
            list.push_bind(id.as_str());
        }
        q.push(") ORDER BY next_due_at LIMIT ")
            .push_bind(i64::from(limit))
            .push(") RETURNING id, next_due_at, token, state");
        let rows = q.build().fetch_all(&self.writer).await?;
        // A round that claimed nothing wrote nothing: no log to sync.
        if !rows.is_empty() {
            self.durable().await?;
        }
        let mut claims = rows
            .into_iter()
            .map(|row| {
                Ok(WatcherClaim {
                    id: row.try_get("id")?,
                    due_at: instant(row.try_get("next_due_at")?)?,
                    token: row.try_get("token")?,
                    state: parse_state(row.try_get("state")?)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claims.sort_by_key(|c| c.due_at);
        Ok(claims)
    }

    async fn finish_watcher(
        &self,
        claim: &WatcherClaim,
        next_due_at: DateTime<Utc>,
        state: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE watchers SET next_due_at = ?1, state = ?2, updated_at = ?3,
                    lease_owner = NULL, lease_until = NULL
              WHERE id = ?4 AND token = ?5",
        )
        .bind(next_due_at.timestamp_millis())
        .bind(state_text(state))
        .bind(at.timestamp_millis())
        .bind(&claim.id)
        .bind(claim.token)
        .execute(&self.writer)
        .await?;
        self.durable().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn watchers(&self) -> Result<Vec<WatcherRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, fingerprint, next_due_at, lease_until IS NOT NULL AS leased, state
               FROM watchers ORDER BY id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(WatcherRow {
                    id: row.try_get("id")?,
                    fingerprint: row.try_get("fingerprint")?,
                    next_due_at: instant(row.try_get("next_due_at")?)?,
                    leased: row.try_get("leased")?,
                    state: parse_state(row.try_get("state")?)?,
                })
            })
            .collect()
    }
}
