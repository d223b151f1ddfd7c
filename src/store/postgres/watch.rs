//! [`WatchBook`] on PostgreSQL. Several replicas claim at once; `FOR UPDATE
//! SKIP LOCKED` gives each due watcher to exactly one of them, and the lease
//! hands a slot to another replica when its runner died mid-run.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{retrying, PostgresStore};
use crate::store::watch::{parse_state, state_text, WatchBook, WatcherClaim, WatcherRow};
use crate::store::{lease_ms, StoreError};

#[async_trait]
impl WatchBook for PostgresStore {
    async fn ensure_watchers(
        &self,
        watchers: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if watchers.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = watchers.iter().map(|(id, _)| id.as_str()).collect();
        let prints: Vec<&str> = watchers.iter().map(|(_, f)| f.as_str()).collect();
        let (ids, prints) = (&ids, &prints);
        retrying(|| async move {
            sqlx::query(
                "INSERT INTO watchers (id, fingerprint, next_due_at, updated_at)
                 SELECT id, fp, $3, $3 FROM unnest($1::text[], $2::text[]) AS w (id, fp)
                 ORDER BY id
                 ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint,
                        next_due_at = LEAST(watchers.next_due_at, excluded.next_due_at),
                        updated_at = excluded.updated_at
                  WHERE watchers.fingerprint <> excluded.fingerprint",
            )
            .bind(ids)
            .bind(prints)
            .bind(now)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
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
        let until = now + chrono::TimeDelta::milliseconds(lease_ms(lease));
        let rows: Vec<(String, DateTime<Utc>, i64, Option<String>)> = sqlx::query_as(
            "UPDATE watchers w SET lease_owner = $1, lease_until = $2, token = w.token + 1
               FROM (SELECT id FROM watchers
                      WHERE next_due_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
                        AND id = ANY($4)
                      ORDER BY next_due_at LIMIT $5
                      FOR UPDATE SKIP LOCKED) due
              WHERE w.id = due.id
             RETURNING w.id, w.next_due_at, w.token, w.state",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(ids)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut claims = rows
            .into_iter()
            .map(|(id, due_at, token, state)| {
                Ok(WatcherClaim {
                    id,
                    due_at,
                    token,
                    state: parse_state(state)?,
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
            "UPDATE watchers SET next_due_at = $1, state = $2, updated_at = $3,
                    lease_owner = NULL, lease_until = NULL
              WHERE id = $4 AND token = $5",
        )
        .bind(next_due_at)
        .bind(state_text(state))
        .bind(at)
        .bind(&claim.id)
        .bind(claim.token)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn watchers(&self) -> Result<Vec<WatcherRow>, StoreError> {
        let rows: Vec<(String, String, DateTime<Utc>, bool, Option<String>)> = sqlx::query_as(
            "SELECT id, fingerprint, next_due_at, lease_until IS NOT NULL, state
               FROM watchers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, fingerprint, next_due_at, leased, state)| {
                Ok(WatcherRow {
                    id,
                    fingerprint,
                    next_due_at,
                    leased,
                    state: parse_state(state)?,
                })
            })
            .collect()
    }
}
