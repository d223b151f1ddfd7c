//! [`SmsBook`] on SQLite. One writer connection serialises code assignment.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{instant, SqliteStore};
use crate::alert::TimelineKind;
use crate::store::sms::{lowest_free, SmsBook};
use crate::store::StoreError;

#[async_trait]
impl SmsBook for SqliteStore {
    async fn sms_code(
        &self,
        address: &str,
        alert_id: i64,
        at: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let mut tx = self.writer.begin().await?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT code FROM sms_codes WHERE address = ?1 AND alert_id = ?2")
                .bind(address)
                .bind(alert_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(code) = existing {
            tx.commit().await?;
            return Ok(u32::try_from(code).unwrap_or(0));
        }
        let taken: Vec<i64> = sqlx::query_scalar(
            "SELECT c.code FROM sms_codes c JOIN alerts a ON a.id = c.alert_id
              WHERE c.address = ?1 AND a.status <> 'resolved'",
        )
        .bind(address)
        .fetch_all(&mut *tx)
        .await?;
        let taken: Vec<u32> = taken
            .into_iter()
            .filter_map(|c| u32::try_from(c).ok())
            .collect();
        let code = lowest_free(&taken);
        sqlx::query(
            "INSERT INTO sms_codes (address, code, alert_id, assigned_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (address, code) DO UPDATE
                SET alert_id = excluded.alert_id, assigned_at = excluded.assigned_at",
        )
        .bind(address)
        .bind(i64::from(code))
        .bind(alert_id)
        .bind(at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(code)
    }

    async fn sms_code_alert(&self, address: &str, code: u32) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT alert_id FROM sms_codes WHERE address = ?1 AND code = ?2")
                .bind(address)
                .bind(i64::from(code))
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn set_sms_opt_out(
        &self,
        address: &str,
        opted_out: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = if opted_out {
            sqlx::query(
                "INSERT INTO sms_opt_outs (address, opted_out_at) VALUES (?1, ?2)
                 ON CONFLICT (address) DO NOTHING",
            )
            .bind(address)
            .bind(at.timestamp_millis())
            .execute(&self.writer)
            .await?
        } else {
            sqlx::query("DELETE FROM sms_opt_outs WHERE address = ?1")
                .bind(address)
                .execute(&self.writer)
                .await?
        };
        Ok(done.rows_affected() > 0)
    }

    async fn sms_opted_out(&self, address: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query("SELECT opted_out_at FROM sms_opt_outs WHERE address = ?1")
            .bind(address)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| instant(r.try_get("opted_out_at")?)).transpose()
    }

    async fn take_status_text_slot(
        &self,
        address: &str,
        at: DateTime<Utc>,
        window: chrono::TimeDelta,
        max: u32,
    ) -> Result<bool, StoreError> {
        let since = (at - window).timestamp_millis();
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM sms_status_texts WHERE address = ?1 AND at < ?2")
            .bind(address)
            .bind(since)
            .execute(&mut *tx)
            .await?;
        let used: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sms_status_texts WHERE address = ?1")
                .bind(address)
                .fetch_one(&mut *tx)
                .await?;
        if used >= i64::from(max) {
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO sms_status_texts (address, at) VALUES (?1, ?2)")
            .bind(address)
            .bind(at.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn note(
        &self,
        alert_ids: &[i64],
        at: DateTime<Utc>,
        kind: TimelineKind,
        actor: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for id in alert_ids {
            sqlx::query(
                "INSERT INTO alert_timeline (alert_id, at, kind, actor, message) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(id)
            .bind(at.timestamp_millis())
            .bind(kind.as_str())
            .bind(actor)
            .bind(message)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
