//! [`InboundBook`] on SQLite: one writer, so the insert decides.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::SqliteStore;
use crate::store::inbound::{answer_text, parse_answer, Answer, InboundBook, Seen};
use crate::store::StoreError;

#[async_trait]
impl InboundBook for SqliteStore {
    async fn claim_inbound(
        &self,
        provider: &str,
        message_id: &str,
        at: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> Result<Seen, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let claimed = sqlx::query(
            "INSERT INTO inbound_seen (provider, message_id, first_answer, seen_at)
             VALUES (?1, ?2, NULL, ?3)
             ON CONFLICT (provider, message_id) DO UPDATE SET seen_at = excluded.seen_at
              WHERE inbound_seen.first_answer IS NULL AND inbound_seen.seen_at < ?4
             RETURNING seen_at",
        )
        .bind(provider)
        .bind(message_id)
        .bind(at.timestamp_millis())
        .bind(abandoned_before.timestamp_millis())
        .fetch_optional(&mut *tx)
        .await?;
        let seen = if claimed.is_some() {
            Seen::First
        } else {
            let row = sqlx::query(
                "SELECT first_answer FROM inbound_seen WHERE provider = ?1 AND message_id = ?2",
            )
            .bind(provider)
            .bind(message_id)
            .fetch_one(&mut *tx)
            .await?;
            match row.try_get::<Option<String>, _>("first_answer")? {
                Some(text) => Seen::Answered(parse_answer(&text)?),
                None => Seen::InProgress,
            }
        };
        tx.commit().await?;
        if seen == Seen::First {
            self.durable().await?;
        }
        Ok(seen)
    }

    async fn answer_inbound(
        &self,
        provider: &str,
        message_id: &str,
        answer: &Answer,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE inbound_seen SET first_answer = ?3 WHERE provider = ?1 AND message_id = ?2",
        )
        .bind(provider)
        .bind(message_id)
        .bind(answer_text(answer)?)
        .execute(&self.writer)
        .await?;
        self.durable().await
    }

    async fn forget_inbound(&self, provider: &str, message_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM inbound_seen
              WHERE provider = ?1 AND message_id = ?2 AND first_answer IS NULL",
        )
        .bind(provider)
        .bind(message_id)
        .execute(&self.writer)
        .await?;
        self.durable().await
    }

    async fn prune_inbound(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM inbound_seen WHERE seen_at < ?1")
            .bind(before.timestamp_millis())
            .execute(&self.writer)
            .await?;
        self.durable().await?;
        Ok(done.rows_affected())
    }
}
