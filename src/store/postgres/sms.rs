//! [`SmsBook`] on PostgreSQL. Replicas may assign codes for the same number
//! at once, so assignment holds a transaction-scoped advisory lock.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{insert_timeline, retrying, PostgresStore};
use crate::alert::TimelineKind;
use crate::store::sms::{assign_codes, note_entries, CodeRows, SmsBook};
use crate::store::StoreError;

#[async_trait]
impl SmsBook for PostgresStore {
    async fn sms_codes(
        &self,
        pairs: &[(String, i64)],
        at: DateTime<Utc>,
    ) -> Result<Vec<Option<u32>>, StoreError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let mut addresses: Vec<String> = pairs.iter().map(|(a, _)| a.clone()).collect();
        addresses.sort_unstable();
        addresses.dedup();
        let addresses = &addresses;
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            // One lock for all assignment: a round's transaction is short, and
            // one key cannot deadlock against another replica's round.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('rouse:sms_codes', 0))")
                .execute(&mut *tx)
                .await?;
            let rows: Vec<(String, i32, i64, bool)> = sqlx::query_as(
                "SELECT c.address, c.code, c.alert_id, a.status <> 'resolved'
               FROM sms_codes c JOIN alerts a ON a.id = c.alert_id
              WHERE c.address = ANY($1)",
            )
            .bind(addresses)
            .fetch_all(&mut *tx)
            .await?;
            let mut existing: HashMap<String, CodeRows> = HashMap::new();
            for (address, code, alert, open) in rows {
                existing.entry(address).or_default().push((
                    u32::try_from(code).unwrap_or(0),
                    alert,
                    open,
                ));
            }
            let (codes, upserts) = assign_codes(pairs, &existing);
            if !upserts.is_empty() {
                sqlx::query(
                    "INSERT INTO sms_codes (address, code, alert_id, assigned_at)
                 SELECT address, code, alert_id, $4
                   FROM UNNEST($1::text[], $2::int[], $3::bigint[]) AS v(address, code, alert_id)
                 ON CONFLICT (address, code) DO UPDATE
                    SET alert_id = excluded.alert_id, assigned_at = excluded.assigned_at",
                )
                .bind(
                    upserts
                        .iter()
                        .map(|(a, _, _)| a.clone())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    upserts
                        .iter()
                        .map(|(_, c, _)| i32::try_from(*c).unwrap_or(i32::MAX))
                        .collect::<Vec<_>>(),
                )
                .bind(upserts.iter().map(|(_, _, id)| *id).collect::<Vec<_>>())
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(codes)
        })
        .await
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

    async fn sms_opted_out(
        &self,
        addresses: &[String],
    ) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        if addresses.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT address, opted_out_at FROM sms_opt_outs WHERE address = ANY($1)",
        )
        .bind(addresses)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn take_status_text_slot(
        &self,
        address: &str,
        at: DateTime<Utc>,
        window: chrono::TimeDelta,
        max: u32,
    ) -> Result<bool, StoreError> {
        retrying(|| async move {
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
        })
        .await
    }

    async fn note(
        &self,
        alert_ids: &[i64],
        at: DateTime<Utc>,
        kind: TimelineKind,
        actor: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_timeline(
            &mut conn,
            &note_entries(alert_ids, at, kind, actor, message),
        )
        .await?;
        Ok(())
    }
}
