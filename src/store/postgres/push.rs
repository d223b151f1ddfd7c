//! [`PushBook`] on PostgreSQL. Replicas may poll at once: claiming receipts
//! skips rows another replica holds, and acting on an acknowledgement is
//! fenced by one conditional update.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{retrying, PostgresStore};
use crate::store::push::{PushBook, PushPage};
use crate::store::StoreError;

const COLUMNS: &str = "SELECT n.id, n.alert_id, n.provider_id, n.recipient, r.secret_hash";
const PAGE: &str = "FROM notifications n LEFT JOIN push_receipts r ON r.notification_id = n.id";
/// Receipts have a row by construction (its secret was stored before the send).
const RECEIPT: &str = "FROM push_receipts r JOIN notifications n ON n.id = r.notification_id";

fn page(r: &PgRow) -> Result<PushPage, StoreError> {
    Ok(PushPage {
        notification_id: r.try_get("id")?,
        alert_id: r.try_get("alert_id")?,
        receipt: r.try_get("provider_id")?,
        recipient: serde_json::from_value(r.try_get("recipient")?)
            .map_err(|e| StoreError::Corrupt(format!("recipient: {e}")))?,
        secret_hash: r.try_get("secret_hash")?,
    })
}

#[async_trait]
impl PushBook for PostgresStore {
    async fn set_push_secret(
        &self,
        notification_id: i64,
        alert_id: i64,
        secret_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO push_receipts (notification_id, alert_id, secret_hash, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (notification_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash",
        )
        .bind(notification_id)
        .bind(alert_id)
        .bind(secret_hash)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn push_page(&self, notification_id: i64) -> Result<Option<PushPage>, StoreError> {
        let row = sqlx::query(&format!(
            "{COLUMNS} {PAGE} WHERE n.id = $1 AND n.channel = 'pushover' AND NOT n.follow_up"
        ))
        .bind(notification_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(page).transpose()
    }

    async fn receipts_to_poll(
        &self,
        now: DateTime<Utc>,
        polled_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PushPage>, StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let rows = sqlx::query(&format!(
                "{COLUMNS} {RECEIPT} JOIN alerts a ON a.id = n.alert_id
                  WHERE r.acknowledged_at IS NULL AND r.expired_at IS NULL
                    AND (r.polled_at IS NULL OR r.polled_at <= $1)
                    AND n.status = 'delivered' AND n.provider_id IS NOT NULL
                    AND a.status = 'triggered'
                  ORDER BY r.polled_at NULLS FIRST LIMIT $2
                  FOR UPDATE OF r SKIP LOCKED"
            ))
            .bind(polled_before)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            let pages = rows.iter().map(page).collect::<Result<Vec<_>, _>>()?;
            let ids: Vec<i64> = pages.iter().map(|p| p.notification_id).collect();
            sqlx::query("UPDATE push_receipts SET polled_at = $2 WHERE notification_id = ANY($1)")
                .bind(&ids)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(pages)
        })
        .await
    }

    async fn push_acknowledged(
        &self,
        notification_id: i64,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE push_receipts SET acknowledged_at = $2
              WHERE notification_id = $1 AND acknowledged_at IS NULL",
        )
        .bind(notification_id)
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn push_unacknowledged(&self, notification_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE push_receipts SET acknowledged_at = NULL WHERE notification_id = $1")
            .bind(notification_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn push_expired(
        &self,
        notification_id: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE push_receipts SET expired_at = $2 WHERE notification_id = $1")
            .bind(notification_id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
