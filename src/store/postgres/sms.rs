//! [`SmsBook`] on PostgreSQL. Replicas may assign codes for the same number
//! at once, so assignment holds a transaction-scoped advisory lock on it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::alert::TimelineKind;
use crate::store::sms::{lowest_free, SmsBook};
use crate::store::StoreError;

#[async_trait]
impl SmsBook for PostgresStore {
    async fn sms_code(
        &self,
        address: &str,
        alert_id: i64,
        at: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('sms_code:' || $1, 0))")
            .bind(address)
            .execute(&mut *tx)
            .await?;
        let existing: Option<i32> =
            sqlx::query_scalar("SELECT code FROM sms_codes WHERE address = $1 AND alert_id = $2")
                .bind(address)
                .bind(alert_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(code) = existing {
            tx.commit().await?;
            return Ok(u32::try_from(code).unwrap_or(0));
        }
        let taken: Vec<i32> = sqlx::query_scalar(
            "SELECT c.code FROM sms_codes c JOIN alerts a ON a.id = c.alert_id
              WHERE c.address = $1 AND a.status <> 'resolved'",
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
            "INSERT INTO sms_codes (address, code, alert_id, assigned_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (address, code) DO UPDATE
                SET alert_id = excluded.alert_id, assigned_at = excluded.assigned_at",
        )
        .bind(address)
        .bind(i32::try_from(code).unwrap_or(i32::MAX))
        .bind(alert_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(code)
    }

    async fn sms_code_alert(&self, address: &str, code: u32) -> Result<Option<i64>, StoreError> {
        let Ok(code) = i32::try_from(code) else {
            return Ok(None);
        };
        Ok(
            sqlx::query_scalar("SELECT alert_id FROM sms_codes WHERE address = $1 AND code = $2")
                .bind(address)
                .bind(code)
                .fetch_optional(&self.pool)
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
                "INSERT INTO sms_opt_outs (address, opted_out_at) VALUES ($1, $2)
                 ON CONFLICT (address) DO NOTHING",
            )
            .bind(address)
            .bind(at)
            .execute(&self.pool)
            .await?
        } else {
            sqlx::query("DELETE FROM sms_opt_outs WHERE address = $1")
                .bind(address)
                .execute(&self.pool)
                .await?
        };
        Ok(done.rows_affected() > 0)
    }

    async fn sms_opted_out(&self, address: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT opted_out_at FROM sms_opt_outs WHERE address = $1")
                .bind(address)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn take_status_text_slot(
        &self,
        address: &str,
        at: DateTime<Utc>,
        window: chrono::TimeDelta,
        max: u32,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('sms_status:' || $1, 0))")
            .bind(address)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sms_status_texts WHERE address = $1 AND at < $2")
            .bind(address)
            .bind(at - window)
            .execute(&mut *tx)
            .await?;
        let used: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sms_status_texts WHERE address = $1")
                .bind(address)
                .fetch_one(&mut *tx)
                .await?;
        if used >= i64::from(max) {
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO sms_status_texts (address, at) VALUES ($1, $2)")
            .bind(address)
            .bind(at)
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
        if alert_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO alert_timeline (alert_id, at, kind, actor, message)
             SELECT id, $2, $3, $4, $5 FROM UNNEST($1::BIGINT[]) AS t(id)",
        )
        .bind(alert_ids)
        .bind(at)
        .bind(kind.as_str())
        .bind(actor)
        .bind(message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
