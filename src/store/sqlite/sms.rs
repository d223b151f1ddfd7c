//! [`SmsBook`] on SQLite. The one writer connection serialises code
//! assignment; a round's codes are read and written in one transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{insert_timeline, instant, SqliteStore};
use crate::alert::TimelineKind;
use crate::store::sms::{assign_codes, note_entries, CodeRows, SmsBook};
use crate::store::StoreError;

#[async_trait]
impl SmsBook for SqliteStore {
    async fn sms_codes(
        &self,
        pairs: &[(String, i64)],
        at: DateTime<Utc>,
    ) -> Result<Vec<Option<u32>>, StoreError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let mut addresses: Vec<&str> = pairs.iter().map(|(a, _)| a.as_str()).collect();
        addresses.sort_unstable();
        addresses.dedup();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut existing: HashMap<String, CodeRows> = HashMap::new();
        for chunk in addresses.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT c.address, c.code, c.alert_id, a.status <> 'resolved' AS open
                   FROM sms_codes c JOIN alerts a ON a.id = c.alert_id WHERE c.address IN (",
            );
            let mut list = q.separated(", ");
            for a in chunk {
                list.push_bind(*a);
            }
            q.push(")");
            for row in q.build().fetch_all(&mut *tx).await? {
                existing.entry(row.try_get("address")?).or_default().push((
                    u32::try_from(row.try_get::<i64, _>("code")?).unwrap_or(0),
                    row.try_get("alert_id")?,
                    row.try_get("open")?,
                ));
            }
        }
        let (codes, upserts) = assign_codes(pairs, &existing);
        for chunk in upserts.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO sms_codes (address, code, alert_id, assigned_at) ",
            );
            q.push_values(chunk, |mut b, (address, code, alert)| {
                b.push_bind(address.as_str())
                    .push_bind(i64::from(*code))
                    .push_bind(*alert)
                    .push_bind(at.timestamp_millis());
            });
            q.push(
                " ON CONFLICT (address, code) DO UPDATE
                    SET alert_id = excluded.alert_id, assigned_at = excluded.assigned_at",
            );
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(codes)
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
        self.durable().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn sms_opted_out(
        &self,
        addresses: &[String],
    ) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let mut out = HashMap::new();
        for chunk in addresses.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT address, opted_out_at FROM sms_opt_outs WHERE address IN (",
            );
            let mut list = q.separated(", ");
            for a in chunk {
                list.push_bind(a.as_str());
            }
            q.push(")");
            for row in q.build().fetch_all(&self.reader).await? {
                out.insert(
                    row.try_get("address")?,
                    instant(row.try_get("opted_out_at")?)?,
                );
            }
        }
        Ok(out)
    }

    async fn take_status_text_slot(
        &self,
        address: &str,
        at: DateTime<Utc>,
        window: chrono::TimeDelta,
        max: u32,
    ) -> Result<bool, StoreError> {
        let since = (at - window).timestamp_millis();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
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
            self.durable().await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO sms_status_texts (address, at) VALUES (?1, ?2)")
            .bind(address)
            .bind(at.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.durable().await?;
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        insert_timeline(&mut tx, &note_entries(alert_ids, at, kind, actor, message)).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(())
    }
}
