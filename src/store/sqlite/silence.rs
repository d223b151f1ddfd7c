//! [`SilenceBook`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{instant, SqliteStore};
use crate::alert::silence::Silence;
use crate::store::silence::{matchers_text, parse_matchers, NewSilence, SilenceBook};
use crate::store::StoreError;

const COLUMNS: &str = "id, matchers, starts_at, ends_at, comment, created_by, created_at";

fn silence(row: &SqliteRow) -> Result<Silence, StoreError> {
    Ok(Silence {
        id: row.try_get("id")?,
        matchers: parse_matchers(&row.try_get::<String, _>("matchers")?)?,
        starts_at: instant(row.try_get("starts_at")?)?,
        ends_at: instant(row.try_get("ends_at")?)?,
        comment: row.try_get("comment")?,
        created_by: row.try_get("created_by")?,
        created_at: instant(row.try_get("created_at")?)?,
    })
}

#[async_trait]
impl SilenceBook for SqliteStore {
    async fn create_silence(&self, new: &NewSilence) -> Result<Silence, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO silences (matchers, starts_at, ends_at, comment, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {COLUMNS}"
        ))
        .bind(matchers_text(&new.matchers)?)
        .bind(new.starts_at.timestamp_millis())
        .bind(new.ends_at.timestamp_millis())
        .bind(&new.comment)
        .bind(&new.created_by)
        .bind(new.created_at.timestamp_millis())
        .fetch_one(&self.writer)
        .await?;
        self.durable().await?;
        silence(&row)
    }

    async fn silences(&self, after: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM silences WHERE ends_at > ?1 ORDER BY starts_at, id"
        ))
        .bind(after.timestamp_millis())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(silence).collect()
    }

    async fn expire_silence(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<Silence>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE silences SET ends_at = MIN(ends_at, ?1), starts_at = MIN(starts_at, ?1)
              WHERE id = ?2 RETURNING {COLUMNS}"
        ))
        .bind(at.timestamp_millis())
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        self.durable().await?;
        row.as_ref().map(silence).transpose()
    }
}
