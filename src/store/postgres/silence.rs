//! [`SilenceBook`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PostgresStore;
use crate::alert::silence::Silence;
use crate::store::silence::{matchers_text, parse_matchers, NewSilence, SilenceBook};
use crate::store::StoreError;

const COLUMNS: &str = "id, matchers, starts_at, ends_at, comment, created_by, created_at";

fn silence(row: &PgRow) -> Result<Silence, StoreError> {
    Ok(Silence {
        id: row.try_get("id")?,
        matchers: parse_matchers(&row.try_get::<String, _>("matchers")?)?,
        starts_at: row.try_get("starts_at")?,
        ends_at: row.try_get("ends_at")?,
        comment: row.try_get("comment")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl SilenceBook for PostgresStore {
    async fn create_silence(&self, new: &NewSilence) -> Result<Silence, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO silences (matchers, starts_at, ends_at, comment, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(matchers_text(&new.matchers)?)
        .bind(new.starts_at)
        .bind(new.ends_at)
        .bind(&new.comment)
        .bind(&new.created_by)
        .bind(new.created_at)
        .fetch_one(&self.pool)
        .await?;
        silence(&row)
    }

    async fn silences(&self, after: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM silences WHERE ends_at > $1 ORDER BY starts_at, id"
        ))
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(silence).collect()
    }

    async fn expire_silence(
        &self,
        id: i64,
        at: DateTime<Utc>,
    ) -> Result<Option<Silence>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE silences SET ends_at = LEAST(ends_at, $1), starts_at = LEAST(starts_at, $1)
              WHERE id = $2 RETURNING {COLUMNS}"
        ))
        .bind(at)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(silence).transpose()
    }
}
