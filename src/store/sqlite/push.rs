//! [`PushBook`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::SqliteStore;
use crate::store::push::{PushBook, PushPage};
use crate::store::StoreError;

const COLUMNS: &str = "SELECT n.id, n.alert_id, n.provider_id, n.recipient, r.secret_hash";
const PAGE: &str = "FROM notifications n LEFT JOIN push_receipts r ON r.notification_id = n.id";
/// Receipts have a row by construction (its secret was stored before the send).
const RECEIPT: &str = "FROM push_receipts r JOIN notifications n ON n.id = r.notification_id";

fn page(r: &SqliteRow) -> Result<PushPage, StoreError> {
    Ok(PushPage {
        notification_id: r.try_get("id")?,
        alert_id: r.try_get("alert_id")?,
        receipt: r.try_get("provider_id")?,
        recipient: serde_json::from_str(r.try_get("recipient")?)
            .map_err(|e| StoreError::Corrupt(format!("recipient: {e}")))?,
        secret_hash: r.try_get("secret_hash")?,
    })
}

#[async_trait]
impl PushBook for SqliteStore {
    async fn set_push_secret(
        &self,
        notification_id: i64,
        alert_id: i64,
        secret_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO push_receipts (notification_id, alert_id, secret_hash, created_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (notification_id) DO UPDATE SET secret_hash = excluded.secret_hash",
        )
        .bind(notification_id)
        .bind(alert_id)
        .bind(secret_hash)
        .bind(at.timestamp_millis())
        .execute(&self.writer)
        .await?;
        self.durable().await
    }

    async fn push_page(&self, notification_id: i64) -> Result<Option<PushPage>, StoreError> {
        let row = sqlx::query(&format!(
            "{COLUMNS} {PAGE} WHERE n.id = ?1 AND n.channel = 'pushover' AND n.follow_up = 0"
        ))
        .bind(notification_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(page).transpose()
    }

    async fn receipts_to_poll(
        &self,
        now: DateTime<Utc>,
        polled_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PushPage>, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(&format!(
            "{COLUMNS} {RECEIPT} JOIN alerts a ON a.id = n.alert_id
              WHERE r.acknowledged_at IS NULL AND r.expired_at IS NULL
                AND (r.polled_at IS NULL OR r.polled_at <= ?1)
                AND n.status = 'delivered' AND n.provider_id IS NOT NULL
                AND a.status = 'triggered'
              ORDER BY r.polled_at LIMIT ?2"
        ))
        .bind(polled_before.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let pages = rows.iter().map(page).collect::<Result<Vec<_>, _>>()?;
        for p in &pages {
            sqlx::query("UPDATE push_receipts SET polled_at = ?2 WHERE notification_id = ?1")
                .bind(p.notification_id)
                .bind(now.timestamp_millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if !pages.is_empty() {
            self.durable().await?;
        }
        Ok(pages)
    }

    async fn push_acknowledged(
        &self,
        notification_id: i64,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE push_receipts SET acknowledged_at = ?2
              WHERE notification_id = ?1 AND acknowledged_at IS NULL",
        )
        .bind(notification_id)
        .bind(at.timestamp_millis())
        .execute(&self.writer)
        .await?
        .rows_affected();
        self.durable().await?;
        Ok(done == 1)
    }

    async fn push_unacknowledged(&self, notification_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE push_receipts SET acknowledged_at = NULL WHERE notification_id = ?1")
            .bind(notification_id)
            .execute(&self.writer)
            .await?;
        self.durable().await
    }

    async fn push_expired(
        &self,
        notification_id: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE push_receipts SET expired_at = ?2 WHERE notification_id = ?1")
            .bind(notification_id)
            .bind(at.timestamp_millis())
            .execute(&self.writer)
            .await?;
        self.durable().await
    }
}
