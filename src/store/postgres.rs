//! The shared store for several replicas: PostgreSQL.
//!
//! Same tables as SQLite with native types (TIMESTAMPTZ, JSONB) so admins can
//! query them directly. Concurrent writers are safe: the partial unique index
//! on open alerts makes the trigger upsert race-free across replicas.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};

use super::apply::{self, in_row_order, Upsert, Writes};
use super::{
    notes_to_timeline, parse_channel, parse_delivery, Act, AlertFilter, Backend, DeliveryRecord,
    DeliveryStatus, EscalationClaim, Heartbeat, Ingest, IngestOutcome, NewTimelineEntry,
    NotificationClaim, NotificationRow, StepRecord, Store, StoreError,
};
use crate::alert::TimelineKind;
use crate::alert::{Alert, AlertStatus, Decision, OpenAlert, TimelineEntry};
use crate::channel::ChannelKind;
use crate::escalation::plan::{Cursor, Phase};

mod sms;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("rouse");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx takes an advisory lock, so replicas starting together migrate once.
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn ingest(&self, batch: &[Ingest]) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let outcomes = apply::ingest(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn act(&self, act: &Act) -> Result<Option<Decision>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let decision = apply::act(&mut tx, act).await?;
        tx.commit().await?;
        Ok(decision)
    }

    async fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError> {
        let row = sqlx::query("SELECT * FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(alert_from_row).transpose()
    }

    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT * FROM alerts WHERE TRUE");
        if let Some(service) = &filter.service_id {
            q.push(" AND service_id = ").push_bind(service.clone());
        }
        if !filter.statuses.is_empty() {
            let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
            q.push(" AND status = ANY(").push_bind(statuses).push(")");
        }
        if let Some(before) = filter.before_id {
            q.push(" AND id < ").push_bind(before);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn timeline(&self, alert_id: i64) -> Result<Vec<TimelineEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM alert_timeline WHERE alert_id = $1 ORDER BY id")
            .bind(alert_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TimelineEntry {
                    id: row.try_get("id")?,
                    alert_id: row.try_get("alert_id")?,
                    at: row.try_get("at")?,
                    kind: row
                        .try_get::<&str, _>("kind")?
                        .parse()
                        .map_err(|e| StoreError::Corrupt(format!("timeline kind: {e}")))?,
                    actor: row.try_get("actor")?,
                    message: row.try_get("message")?,
                    data: row
                        .try_get::<Option<Json<serde_json::Value>>, _>("data")?
                        .map(|j| j.0),
                })
            })
            .collect()
    }

    async fn record_heartbeat(
        &self,
        service_id: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<Heartbeat, StoreError> {
        let row = sqlx::query(
            "INSERT INTO heartbeats (service_id, name, last_ping_at, ping_count) VALUES ($1, $2, $3, 1)
             ON CONFLICT (service_id, name) DO UPDATE
               SET last_ping_at = excluded.last_ping_at, ping_count = heartbeats.ping_count + 1
             RETURNING ping_count",
        )
        .bind(service_id)
        .bind(name)
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        Ok(Heartbeat {
            service_id: service_id.to_owned(),
            name: name.to_owned(),
            last_ping_at: at,
            ping_count: row.try_get("ping_count")?,
        })
    }

    async fn heartbeats(&self) -> Result<Vec<Heartbeat>, StoreError> {
        let rows = sqlx::query("SELECT * FROM heartbeats ORDER BY service_id, name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Heartbeat {
                    service_id: row.try_get("service_id")?,
                    name: row.try_get("name")?,
                    last_ping_at: row.try_get("last_ping_at")?,
                    ping_count: row.try_get("ping_count")?,
                })
            })
            .collect()
    }

    async fn claim_escalations(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<EscalationClaim>, StoreError> {
        // SKIP LOCKED: replicas claiming at the same moment take disjoint rows.
        let rows = sqlx::query(
            "UPDATE escalations
                SET lease_owner = $1, lease_until = $2, lease_token = lease_token + 1
              WHERE alert_id IN (
                    SELECT alert_id FROM escalations
                     WHERE state = 'active' AND due_at <= $3
                       AND (lease_until IS NULL OR lease_until < $3)
                     ORDER BY due_at LIMIT $4
                     FOR UPDATE SKIP LOCKED)
             RETURNING alert_id, policy_id, pass, step, phase, fired, due_at, lease_token",
        )
        .bind(owner)
        .bind(now + lease_delta(lease))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(escalation_claim).collect()
    }

    async fn record_steps(
        &self,
        batch: &[(EscalationClaim, StepRecord)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(batch.len());
        let mut timeline = Vec::new();
        for (claim, record) in batch {
            let (state, cursor, due) = match record.next {
                Some((cursor, due)) => ("active", cursor, due),
                None => ("done", claim.cursor, record.at),
            };
            let updated = sqlx::query(
                "UPDATE escalations
                    SET pass = $3, step = $4, phase = $5, due_at = $6, state = $7, fired = fired + 1,
                        lease_owner = NULL, lease_until = NULL
                  WHERE alert_id = $1 AND lease_token = $2 AND state = 'active'",
            )
            .bind(claim.alert_id)
            .bind(claim.token)
            .bind(i32::try_from(cursor.pass).unwrap_or(i32::MAX))
            .bind(i32::try_from(cursor.step).unwrap_or(i32::MAX))
            .bind(cursor.phase.as_str())
            .bind(due)
            .bind(state)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated != 1 {
                results.push(false);
                continue;
            }
            let fired = claim.fired + 1;
            for chunk in record.deliveries.chunks(1000) {
                let mut q = QueryBuilder::<Postgres>::new(
                    "INSERT INTO notifications (alert_id, fired, idempotency_key, channel, target,
                         recipient, address, status, due_at, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut b, d| {
                    b.push_bind(claim.alert_id)
                        .push_bind(fired)
                        .push_bind(d.idempotency_key.as_str())
                        .push_bind(d.channel.as_str())
                        .push_bind(d.target.as_str())
                        .push_bind(Json(&d.recipient))
                        .push_bind(d.recipient.address())
                        .push_bind("pending")
                        .push_bind(record.at)
                        .push_bind(record.at)
                        .push_bind(record.at);
                });
                q.push(" ON CONFLICT (idempotency_key) DO NOTHING");
                q.build().execute(&mut *tx).await?;
            }
            timeline.extend(notes_to_timeline(claim.alert_id, record.at, &record.notes));
            results.push(true);
        }
        tx.insert_timeline(&timeline).await?;
        tx.commit().await?;
        Ok(results)
    }

    async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<NotificationClaim>, StoreError> {
        let rows = sqlx::query(
            "UPDATE notifications
                SET lease_owner = $1, lease_until = $2, lease_token = lease_token + 1
              WHERE id IN (
                    SELECT id FROM notifications
                     WHERE status IN ('pending', 'retry') AND due_at <= $3
                       AND (lease_until IS NULL OR lease_until < $3)
                     ORDER BY due_at LIMIT $4
                     FOR UPDATE SKIP LOCKED)
             RETURNING id, alert_id, fired, idempotency_key, channel, target, recipient, attempt,
                       lease_token, follow_up, follows",
        )
        .bind(owner)
        .bind(now + lease_delta(lease))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NotificationClaim {
                    id: r.try_get("id")?,
                    alert_id: r.try_get("alert_id")?,
                    fired: r.try_get("fired")?,
                    idempotency_key: r.try_get("idempotency_key")?,
                    channel: parse_channel(r.try_get("channel")?)?,
                    target: r.try_get("target")?,
                    recipient: r.try_get::<Json<_>, _>("recipient")?.0,
                    attempt: u32::try_from(r.try_get::<i32, _>("attempt")?).unwrap_or(u32::MAX),
                    token: r.try_get("lease_token")?,
                    follow_up: r
                        .try_get::<bool, _>("follow_up")?
                        .then(|| r.try_get::<Option<String>, _>("follows"))
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn record_deliveries(
        &self,
        batch: &[(NotificationClaim, DeliveryRecord)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(batch.len());
        let mut timeline = Vec::new();
        for (claim, record) in batch {
            let retry = record.status == DeliveryStatus::Retry && record.count_attempt;
            let updated = sqlx::query(
                "UPDATE notifications
                    SET status = $3, attempt = attempt + $4, due_at = COALESCE($5, due_at),
                        provider_id = COALESCE($6, provider_id), last_error = $7, updated_at = $8,
                        lease_owner = NULL, lease_until = NULL
                  WHERE id = $1 AND lease_token = $2 AND status IN ('pending', 'retry')",
            )
            .bind(claim.id)
            .bind(claim.token)
            .bind(record.status.as_str())
            .bind(i32::from(retry))
            .bind(record.retry_at)
            .bind(record.provider_id.as_deref())
            .bind(record.error.as_deref())
            .bind(record.at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated != 1 {
                results.push(false);
                continue;
            }
            if record.fall_through {
                sqlx::query(
                    "UPDATE escalations SET due_at = $3
                      WHERE alert_id = $1 AND state = 'active' AND fired = $2 AND due_at > $3",
                )
                .bind(claim.alert_id)
                .bind(claim.fired)
                .bind(record.at)
                .execute(&mut *tx)
                .await?;
            }
            timeline.extend(notes_to_timeline(
                claim.alert_id,
                record.at,
                &[(TimelineKind::Notified, record.message.clone())],
            ));
            results.push(true);
        }
        tx.insert_timeline(&timeline).await?;
        tx.commit().await?;
        Ok(results)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let due: Option<DateTime<Utc>> = sqlx::query_scalar(
            // A claimed row is not due again until its lease runs out: without
            // this the engine would spin while a slow send is in flight.
            "SELECT LEAST(
                 (SELECT MIN(GREATEST(due_at, lease_until)) FROM escalations WHERE state = 'active'),
                 (SELECT MIN(GREATEST(due_at, lease_until)) FROM notifications
                   WHERE status IN ('pending', 'retry')))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(due)
    }

    async fn notifications(&self, alert_id: i64) -> Result<Vec<NotificationRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM notifications WHERE alert_id = $1 ORDER BY id")
            .bind(alert_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NotificationRow {
                    id: r.try_get("id")?,
                    alert_id: r.try_get("alert_id")?,
                    idempotency_key: r.try_get("idempotency_key")?,
                    channel: parse_channel(r.try_get("channel")?)?,
                    target: r.try_get("target")?,
                    recipient: r.try_get::<Json<_>, _>("recipient")?.0,
                    attempt: u32::try_from(r.try_get::<i32, _>("attempt")?).unwrap_or(u32::MAX),
                    status: parse_delivery(r.try_get("status")?)?,
                    due_at: r.try_get("due_at")?,
                    provider_id: r.try_get("provider_id")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect()
    }

    async fn provider_report(
        &self,
        provider_id: &str,
        at: DateTime<Utc>,
        message: &str,
        fall_through: bool,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT alert_id, fired FROM notifications WHERE provider_id = $1")
            .bind(provider_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let alert_id: i64 = row.try_get("alert_id")?;
        let fired: i64 = row.try_get("fired")?;
        if fall_through {
            sqlx::query(
                "UPDATE escalations SET due_at = $3
                  WHERE alert_id = $1 AND state = 'active' AND fired = $2 AND due_at > $3",
            )
            .bind(alert_id)
            .bind(fired)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        let entries = notes_to_timeline(
            alert_id,
            at,
            &[(TimelineKind::Notified, message.to_owned())],
        );
        tx.insert_timeline(&entries).await?;
        tx.commit().await?;
        Ok(Some(alert_id))
    }

    async fn escalate_now(&self, alert_id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE escalations SET due_at = $2 WHERE alert_id = $1 AND state = 'active' AND due_at > $2",
        )
        .bind(alert_id)
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn alerts_paged_at(
        &self,
        address: &str,
        limit: u32,
    ) -> Result<Vec<(i64, AlertStatus)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, a.status FROM alerts a
              WHERE a.id IN (SELECT n.alert_id FROM notifications n
                              WHERE n.address = $1)
              ORDER BY a.id DESC LIMIT $2",
        )
        .bind(address)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, parse_status(r.try_get("status")?)?)))
            .collect()
    }

    async fn sent_since(
        &self,
        address: &str,
        channels: &[ChannelKind],
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let channels: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
        let times: Vec<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT updated_at FROM notifications WHERE status IN ('delivered', 'unknown')
               AND NOT follow_up AND address = $1 AND updated_at >= $2
               AND channel = ANY($3) ORDER BY updated_at",
        )
        .bind(address)
        .bind(since)
        .bind(channels)
        .fetch_all(&self.pool)
        .await?;
        Ok(times)
    }
}

#[async_trait]
impl Writes for Transaction<'static, Postgres> {
    async fn count_open(&mut self, service_id: &str) -> Result<u64, StoreError> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT open_count FROM service_open_alerts WHERE service_id = $1")
                .bind(service_id)
                .fetch_optional(&mut **self)
                .await?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn find_open(
        &mut self,
        service_id: &str,
        dedup_key: &str,
    ) -> Result<Option<OpenAlert>, StoreError> {
        // FOR UPDATE: a concurrent acknowledge on another replica waits for us.
        let row = sqlx::query(
            "SELECT id, status FROM alerts
             WHERE service_id = $1 AND dedup_key = $2 AND status <> 'resolved' FOR UPDATE",
        )
        .bind(service_id)
        .bind(dedup_key)
        .fetch_optional(&mut **self)
        .await?;
        row.map(|row| {
            Ok(OpenAlert {
                id: row.try_get("id")?,
                status: parse_status(row.try_get("status")?)?,
            })
        })
        .transpose()
    }

    async fn status_of(&mut self, alert_id: i64) -> Result<Option<AlertStatus>, StoreError> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM alerts WHERE id = $1 FOR UPDATE")
                .bind(alert_id)
                .fetch_optional(&mut **self)
                .await?;
        status.as_deref().map(parse_status).transpose()
    }

    async fn upsert_triggers(
        &mut self,
        rows: &[Upsert<'_>],
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO alerts (service_id, dedup_key, status, summary, severity, source, urgency,
                                 policy_id, labels, details, links, event_count, created_at, last_seen_at) ",
        );
        q.push_values(rows, |mut b, row| {
            b.push_bind(row.item.service_id.as_str())
                .push_bind(row.dedup_key)
                .push_bind("triggered")
                .push_bind(row.event.summary.as_str())
                .push_bind(row.event.severity.as_str())
                .push_bind(row.event.source.as_str())
                .push_bind(row.item.urgency.as_str())
                .push_bind(row.item.policy_id.as_deref())
                .push_bind(Json(&row.event.labels))
                .push_bind(Json(&row.event.details))
                .push_bind(Json(&row.event.links))
                .push_bind(row.count)
                .push_bind(row.item.received_at)
                .push_bind(row.item.received_at);
        });
        q.push(
            " ON CONFLICT (service_id, dedup_key) WHERE status <> 'resolved' DO UPDATE SET
                 summary = excluded.summary, severity = excluded.severity, source = excluded.source,
                 labels = excluded.labels, details = excluded.details, links = excluded.links,
                 event_count = alerts.event_count + excluded.event_count,
                 last_seen_at = excluded.last_seen_at
             RETURNING service_id, dedup_key, id, event_count",
        );
        let returned = q.build().fetch_all(&mut **self).await?;
        in_row_order(
            rows,
            returned.iter().map(|r| {
                Ok((
                    r.try_get::<String, _>("service_id")?,
                    r.try_get::<String, _>("dedup_key")?,
                    r.try_get::<i64, _>("id")?,
                    r.try_get::<i64, _>("event_count")?,
                ))
            }),
        )
    }

    async fn set_status(
        &mut self,
        alert_id: i64,
        status: AlertStatus,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sql = match status {
            AlertStatus::Acknowledged => {
                "UPDATE alerts SET status = 'acknowledged', acknowledged_at = $2, acknowledged_by = $3
                 WHERE id = $1"
            }
            AlertStatus::Resolved => {
                "UPDATE alerts SET status = 'resolved', resolved_at = $2, resolved_by = $3 WHERE id = $1"
            }
            AlertStatus::Triggered => return Ok(()),
        };
        sqlx::query(sql)
            .bind(alert_id)
            .bind(at)
            .bind(actor)
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn insert_timeline(&mut self, entries: &[NewTimelineEntry]) -> Result<(), StoreError> {
        // 6 values a row; PostgreSQL allows 65535 bind parameters a statement.
        for chunk in entries.chunks(1000) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO alert_timeline (alert_id, at, kind, actor, message, data) ",
            );
            q.push_values(chunk, |mut row, e| {
                row.push_bind(e.alert_id)
                    .push_bind(e.at)
                    .push_bind(e.kind.as_str())
                    .push_bind(e.actor.clone())
                    .push_bind(e.message.clone())
                    .push_bind(e.data.clone().map(Json));
            });
            q.build().execute(&mut **self).await?;
        }
        Ok(())
    }

    async fn open_escalations(
        &mut self,
        rows: &[(i64, &str, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(1000) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO escalations (alert_id, policy_id, due_at) ",
            );
            q.push_values(chunk, |mut b, (alert_id, policy_id, due)| {
                b.push_bind(*alert_id).push_bind(*policy_id).push_bind(*due);
            });
            q.push(" ON CONFLICT (alert_id) DO NOTHING");
            q.build().execute(&mut **self).await?;
        }
        Ok(())
    }

    async fn close_escalation(
        &mut self,
        alert_id: i64,
        at: DateTime<Utc>,
        now: AlertStatus,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE escalations SET state = 'done', lease_owner = NULL, lease_until = NULL
              WHERE alert_id = $1",
        )
        .bind(alert_id)
        .execute(&mut **self)
        .await?;
        sqlx::query(
            "UPDATE notifications SET status = 'canceled', updated_at = $2
             WHERE alert_id = $1 AND status IN ('pending', 'retry') AND NOT follow_up",
        )
        .bind(alert_id)
        .bind(at)
        .execute(&mut **self)
        .await?;
        sqlx::query(
            "INSERT INTO notifications (alert_id, fired, idempotency_key, channel, target,
                 recipient, address, status, due_at, created_at, updated_at, follow_up, follows)
             SELECT alert_id, fired, idempotency_key || '/' || $3, channel, target, recipient, address,
                    'pending', $2, $2, $2, TRUE, provider_id
               FROM notifications
              WHERE alert_id = $1 AND NOT follow_up AND status = 'delivered'
                AND channel IN ('chat', 'email', 'sms')
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(alert_id)
        .bind(at)
        .bind(now.as_str())
        .execute(&mut **self)
        .await?;
        Ok(())
    }
}

fn alert_from_row(row: &PgRow) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: row.try_get("id")?,
        service_id: row.try_get("service_id")?,
        dedup_key: row.try_get("dedup_key")?,
        status: parse_status(row.try_get("status")?)?,
        summary: row.try_get("summary")?,
        severity: row
            .try_get::<&str, _>("severity")?
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("severity: {e}")))?,
        source: row.try_get("source")?,
        urgency: row
            .try_get::<&str, _>("urgency")?
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("urgency: {e}")))?,
        policy_id: row.try_get("policy_id")?,
        labels: row.try_get::<Json<_>, _>("labels")?.0,
        details: row.try_get::<Json<_>, _>("details")?.0,
        links: row.try_get::<Json<_>, _>("links")?.0,
        event_count: row.try_get("event_count")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        resolved_at: row.try_get("resolved_at")?,
        resolved_by: row.try_get("resolved_by")?,
    })
}

fn parse_status(s: &str) -> Result<AlertStatus, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("alert status: {e}")))
}

fn escalation_claim(r: &PgRow) -> Result<EscalationClaim, StoreError> {
    let phase: &str = r.try_get("phase")?;
    Ok(EscalationClaim {
        alert_id: r.try_get("alert_id")?,
        policy_id: r.try_get("policy_id")?,
        cursor: Cursor {
            pass: u32::try_from(r.try_get::<i32, _>("pass")?).unwrap_or(0),
            step: usize::try_from(r.try_get::<i32, _>("step")?).unwrap_or(0),
            phase: Phase::parse(phase)
                .ok_or_else(|| StoreError::Corrupt(format!("escalation phase {phase:?}")))?,
        },
        fired: r.try_get("fired")?,
        due_at: r.try_get("due_at")?,
        token: r.try_get("lease_token")?,
    })
}

fn lease_delta(lease: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::hours(1))
}
