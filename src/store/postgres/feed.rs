//! [`FeedBook`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PostgresStore;
use crate::store::feed::{Feed, FeedBook, NewFeed};
use crate::store::StoreError;

const COLUMNS: &str = "id, kind, subject, label, created_at, revoked_at";

fn feed(row: &PgRow) -> Result<Feed, StoreError> {
    Ok(Feed {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        subject: row.try_get("subject")?,
        label: row.try_get("label")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[async_trait]
impl FeedBook for PostgresStore {
    async fn create_feed(&self, new: &NewFeed) -> Result<Feed, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO feeds (kind, subject, token_hash, label, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .bind(&new.kind)
        .bind(&new.subject)
        .bind(&new.token_hash)
        .bind(&new.label)
        .bind(new.created_at)
        .fetch_one(&self.pool)
        .await?;
        feed(&row)
    }

    async fn feeds(&self) -> Result<Vec<Feed>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM feeds ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(feed).collect()
    }

    async fn feed_by_token(&self, token_hash: &str) -> Result<Option<Feed>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM feeds WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(feed).transpose()
    }

    async fn revoke_feed(&self, id: i64, at: DateTime<Utc>) -> Result<Option<Feed>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE feeds SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 RETURNING {COLUMNS}"
        ))
        .bind(at)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(feed).transpose()
    }
}
