//! The embedded store: one SQLite file in WAL mode.
//!
//! SQLite allows one writer at a time, so writes go through a pool of exactly
//! one connection (no lock contention, no `SQLITE_BUSY` between our own tasks)
//! while reads use a separate pool that WAL lets run beside the writer.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::{apply, on_writer_thread, to_json};
use super::{
    delivery_timeline, fall_throughs, fenced_results, late_follow_up_candidates, lease_ms,
    notes_to_timeline, opened_entry, parse_channel, parse_delivery, parse_method, winners, Act,
    AlertFilter, Backend, DeliveryRecord, DeliveryStatus, EscalationClaim, Heartbeat, Implied,
    Ingest, IngestOutcome, NewNotification, NewTimelineEntry, NotificationClaim, NotificationRow,
    ProviderPage, StepRecord, Store, StoreError,
};
use crate::alert::event::is_empty_json;
use crate::alert::TimelineKind;
use crate::alert::{Alert, AlertStatus, Decision, DuplicateRun, TimelineEntry, Urgency};
use crate::channel::ChannelKind;
use crate::escalation::plan::{Cursor, Phase};
use crate::escalation::test_page::{Method, TestPageResult};

mod direct;
mod feed;
mod inbound;
mod lock;
mod open_keys;
mod push;
mod silence;
mod sms;
mod stats;
mod wal;
mod watch;

pub use lock::{LockError, ServeLock};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The intake and acknowledgement writer: a connection of our own,
    /// outside sqlx (see `direct.rs`); `None` once closed.
    direct: Arc<std::sync::Mutex<Option<direct::Writer>>>,
    wal: wal::WalSync,
}

impl SqliteStore {
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A 202 promises the event survives power loss, which is what
            // FULL does by syncing the log inside every commit. NORMAL plus
            // an explicit sync of the log after the commit (wal.rs) keeps the
            // promise and lets group commit overlap that sync with the next
            // batch.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Reads through a memory map instead of a read() per page, and a
            // 16 MiB page cache per connection: measured with
            // benches/escalation.rs, page reads were a large share of the
            // engine's time.
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-16384")
            // Statement journals (a multi-row statement's undo log) in memory:
            // as temporary files each large batch created and deleted one.
            // They only undo a failed statement; durability is the WAL's.
            .pragma("temp_store", "memory");
        // An in-memory database has no log: its sync finds no file.
        let mut wal = options.get_filename().as_os_str().to_owned();
        wal.push("-wal");
        // Pools check a connection with a ping before handing it out; for an
        // in-process SQLite connection that only costs a round trip to its
        // worker thread on every statement or transaction.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            // Never recycled: closing the last connection checkpoints the
            // log away, which is safe but costs a stall under load.
            .max_lifetime(None)
            .idle_timeout(None)
            // Group commit sends batches of every size up to MAX_BATCH; cache
            // each size's prepared statements instead of re-parsing them.
            .connect_with(
                options
                    .clone()
                    .statement_cache_capacity(2 * super::group_commit::MAX_BATCH),
            )
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .test_before_acquire(false)
            .connect_with(options.clone().read_only(true))
            .await?;
        // Opened after the writer pool, which created the file in WAL mode.
        let direct = direct::open(&options)?;
        Ok(Self {
            writer,
            reader,
            direct: Arc::new(std::sync::Mutex::new(Some(direct))),
            wal: wal::WalSync::new(wal.into()),
        })
    }

    /// Runs `work` on the direct writer connection with `input`. Directly
    /// on a group-commit writer's thread; under `block_in_place` on a
    /// multi-threaded runtime (its other tasks move to another worker);
    /// otherwise, on a current-thread runtime that other tasks share, on a
    /// blocking thread with an owned copy of `input`: blocking that runtime
    /// could stall a task that holds sqlx's writer in a transaction, and the
    /// direct writer would then wait out the busy timeout for its lock.
    async fn write_direct<B, T>(
        &self,
        input: &B,
        work: fn(&mut direct::Direct<'_>, &B) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>
    where
        B: ToOwned + Sync + ?Sized + 'static,
        B::Owned: Send + 'static,
        T: Send + 'static,
    {
        let multi_thread = matches!(
            tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()),
            Ok(tokio::runtime::RuntimeFlavor::MultiThread)
        );
        let here = || with_direct(&self.direct, |d| work(d, input));
        if on_writer_thread() {
            here()
        } else if multi_thread {
            tokio::task::block_in_place(here)
        } else {
            let owned = input.to_owned();
            let conn = self.direct.clone();
            tokio::task::spawn_blocking(move || {
                with_direct(&conn, |d| work(d, std::borrow::Borrow::borrow(&owned)))
            })
            .await
            .map_err(|e| StoreError::Corrupt(format!("the direct writer failed: {e}")))?
        }
    }

    /// After a write that must be on disk when it returns.
    async fn durable(&self) -> Result<(), StoreError> {
        self.wal.committed();
        self.wal.sync().await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn for_own_thread(self: Arc<Self>) -> Arc<dyn Store> {
        self
    }

    async fn sync(&self) -> Result<(), StoreError> {
        self.wal.sync().await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn close(&self) {
        self.direct
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn ingest(&self, batch: &[Ingest]) -> Result<Vec<IngestOutcome>, StoreError> {
        let outcomes = self.write_direct(batch, |d, batch| d.ingest(batch)).await?;
        // Durable at the next `sync`, which group commit calls.
        self.wal.committed();
        Ok(outcomes)
    }

    async fn act(&self, act: &Act) -> Result<Option<Decision>, StoreError> {
        let decision = self.write_direct(act, |d, act| d.act(act)).await?;
        // An unknown alert is read and nothing written: no commit to sync.
        if decision.is_some() {
            self.durable().await?;
        }
        Ok(decision)
    }

    async fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError> {
        let row = sqlx::query("SELECT * FROM alerts WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(alert_from_row).transpose()
    }

    async fn alerts_by_id(&self, ids: &[i64]) -> Result<Vec<Alert>, StoreError> {
        let mut alerts = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(apply::CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM alerts WHERE id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            for row in q.build().fetch_all(&self.reader).await? {
                alerts.push(alert_from_row(&row)?);
            }
        }
        Ok(alerts)
    }

    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM alerts WHERE 1 = 1");
        if let Some(service) = &filter.service_id {
            q.push(" AND service_id = ").push_bind(service.clone());
        }
        if !filter.statuses.is_empty() {
            q.push(" AND status IN (");
            let mut list = q.separated(", ");
            for status in &filter.statuses {
                list.push_bind(status.as_str());
            }
            q.push(")");
        }
        if !filter.severities.is_empty() {
            q.push(" AND severity IN (");
            let mut list = q.separated(", ");
            for severity in &filter.severities {
                list.push_bind(severity.as_str());
            }
            q.push(")");
        }
        if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
            // A plain substring (no LIKE), so `%` and `_` in what people type mean themselves.
            let needle = text.to_lowercase();
            q.push(" AND (instr(lower(summary), ")
                .push_bind(needle.clone())
                .push(") > 0 OR instr(lower(dedup_key), ")
                .push_bind(needle)
                .push(") > 0)");
        }
        if let Some(before) = filter.before_id {
            q.push(" AND id < ").push_bind(before);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn timeline(&self, alert_id: i64) -> Result<Vec<TimelineEntry>, StoreError> {
        // One statement, so the rows and what the alert row implies come
        // from one snapshot: a commit between two reads could end the run
        // into a row and show it twice or not at all.
        let rows = sqlx::query(
            "SELECT id, at, kind, actor, message, data,
                    NULL AS dedup_key, NULL AS dup_count, NULL AS dup_last_at
               FROM alert_timeline WHERE alert_id = ?1
             UNION ALL
             SELECT NULL, created_at, 'opened', opened_by, COALESCE(opened_summary, summary), NULL,
                    dedup_key, NULL, NULL
               FROM alerts WHERE id = ?1 AND opened_by IS NOT NULL
             UNION ALL
             SELECT NULL, dup_first_at, 'run', dup_actor, NULL, NULL, dedup_key, dup_count,
                    dup_last_at
               FROM alerts WHERE id = ?1 AND dup_count > 0
             ORDER BY 1",
        )
        .bind(alert_id)
        .fetch_all(&self.reader)
        .await?;
        let mut implied = Implied::default();
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(id) = row.try_get::<Option<i64>, _>("id")? else {
                let key: String = row.try_get("dedup_key")?;
                if row.try_get::<&str, _>("kind")? == "opened" {
                    implied.opened = Some(opened_entry(
                        alert_id,
                        instant(row.try_get("at")?)?,
                        row.try_get("actor")?,
                        row.try_get("message")?,
                        &key,
                    ));
                } else {
                    implied.run = duplicate_run(
                        row.try_get("dup_count")?,
                        row.try_get("at")?,
                        row.try_get("dup_last_at")?,
                        row.try_get("actor")?,
                    )?
                    .map(|r| (key, r));
                }
                continue;
            };
            let data: Option<String> = row.try_get("data")?;
            entries.push(TimelineEntry {
                id,
                alert_id,
                at: instant(row.try_get("at")?)?,
                kind: row
                    .try_get::<&str, _>("kind")?
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("timeline kind: {e}")))?,
                actor: row.try_get("actor")?,
                message: row.try_get("message")?,
                data: data.map(|d| json(&d)).transpose()?,
            });
        }
        Ok(implied.around(alert_id, entries))
    }

    async fn record_heartbeat(
        &self,
        service_id: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<Heartbeat, StoreError> {
        let row = sqlx::query(
            "INSERT INTO heartbeats (service_id, name, last_ping_at, ping_count) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (service_id, name) DO UPDATE
               SET last_ping_at = excluded.last_ping_at, ping_count = ping_count + 1
             RETURNING ping_count",
        )
        .bind(service_id)
        .bind(name)
        .bind(at.timestamp_millis())
        .fetch_one(&self.writer)
        .await?;
        self.durable().await?;
        Ok(Heartbeat {
            service_id: service_id.to_owned(),
            name: name.to_owned(),
            last_ping_at: at,
            ping_count: row.try_get("ping_count")?,
        })
    }

    async fn heartbeats(&self) -> Result<Vec<Heartbeat>, StoreError> {
        let rows = sqlx::query("SELECT * FROM heartbeats ORDER BY service_id, name")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Heartbeat {
                    service_id: row.try_get("service_id")?,
                    name: row.try_get("name")?,
                    last_ping_at: instant(row.try_get("last_ping_at")?)?,
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
        let now_ms = now.timestamp_millis();
        let rows = sqlx::query(
            "UPDATE escalations
                SET lease_owner = ?1, lease_until = ?2, lease_token = lease_token + 1
              WHERE alert_id IN (
                    SELECT alert_id FROM escalations
                     WHERE state = 'active' AND due_at <= ?3
                       AND (lease_until IS NULL OR lease_until < ?3)
                     ORDER BY due_at LIMIT ?4)
             RETURNING alert_id, policy_id, pass, step, phase, fired, due_at, lease_token",
        )
        .bind(owner)
        .bind(now_ms + lease_ms(lease))
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await?;
        // An empty claim (most engine polls) wrote nothing to sync.
        if !rows.is_empty() {
            self.durable().await?;
        }
        rows.iter().map(escalation_claim).collect()
    }

    async fn record_steps(
        &self,
        batch: &[(EscalationClaim, StepRecord)],
    ) -> Result<Vec<bool>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        // Fenced on the token in one statement; RETURNING names the steps that won.
        let mut written = HashSet::with_capacity(batch.len());
        for chunk in batch.chunks(apply::CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE escalations
                    SET pass = v.column3, step = v.column4, phase = v.column5, due_at = v.column6,
                        state = v.column7, fired = fired + 1, lease_owner = NULL, lease_until = NULL
                   FROM (",
            );
            q.push_values(chunk, |mut b, (claim, record)| {
                let (state, cursor, due) = match record.next {
                    Some((cursor, due)) => ("active", cursor, due),
                    None => ("done", claim.cursor, record.at),
                };
                b.push_bind(claim.alert_id)
                    .push_bind(claim.token)
                    .push_bind(i64::from(cursor.pass))
                    .push_bind(i64::try_from(cursor.step).unwrap_or(i64::MAX))
                    .push_bind(cursor.phase.as_str())
                    .push_bind(due.timestamp_millis())
                    .push_bind(state);
            });
            q.push(
                ") AS v WHERE escalations.alert_id = v.column1 AND escalations.lease_token = v.column2
                     AND escalations.state = 'active'
                 RETURNING escalations.alert_id",
            );
            for row in q.build().fetch_all(&mut *tx).await? {
                written.insert(row.try_get::<i64, _>("alert_id")?);
            }
        }
        let results = fenced_results(batch, written, |(claim, _)| claim.alert_id);
        let won: Vec<&(EscalationClaim, StepRecord)> = winners(batch, &results).collect();
        let mut deliveries = Vec::new();
        for (claim, record) in &won {
            for d in &record.deliveries {
                deliveries.push((
                    claim.alert_id,
                    claim.fired + 1,
                    record.at,
                    d,
                    to_json(&d.recipient)?,
                ));
            }
        }
        // 11 values a row.
        for chunk in deliveries.chunks(apply::CHUNK / 2) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO notifications (alert_id, fired, idempotency_key, channel, target,
                     recipient, address, status, due_at, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, (alert_id, fired, at, d, recipient)| {
                let due = (*at + d.delay).timestamp_millis();
                let at = at.timestamp_millis();
                b.push_bind(*alert_id)
                    .push_bind(*fired)
                    .push_bind(d.idempotency_key.as_str())
                    .push_bind(d.channel.as_str())
                    .push_bind(d.target.as_str())
                    .push_bind(recipient.as_str())
                    .push_bind(d.recipient.address())
                    .push_bind("pending")
                    .push_bind(due)
                    .push_bind(at)
                    .push_bind(at);
            });
            q.build().execute(&mut *tx).await?;
        }
        // A personal step's rules run until the policy's next step fires:
        // that is now, for the pages of earlier firings not yet sent. (A first
        // step has no earlier firing: new alerts, the hot path, skip this.)
        let later: Vec<_> = won.iter().filter(|(claim, _)| claim.fired > 0).collect();
        for chunk in later.chunks(apply::CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE notifications SET status = 'canceled', updated_at = v.column3 FROM (",
            );
            q.push_values(chunk, |mut b, (claim, record)| {
                b.push_bind(claim.alert_id)
                    .push_bind(claim.fired + 1)
                    .push_bind(record.at.timestamp_millis());
            });
            q.push(") AS v WHERE notifications.alert_id = v.column1 AND notifications.fired < v.column2
                   AND notifications.status IN ('pending', 'retry') AND notifications.follow_up = 0
                   AND (notifications.lease_until IS NULL OR notifications.lease_until <= v.column3)
                   AND instr(notifications.idempotency_key, ");
            q.push_bind(crate::store::RULE_KEY_MARK);
            q.push(") > 0");
            q.build().execute(&mut *tx).await?;
        }
        let timeline: Vec<NewTimelineEntry> = won
            .iter()
            .flat_map(|(claim, record)| notes_to_timeline(claim.alert_id, record.at, &record.notes))
            .collect();
        insert_timeline(&mut tx, &timeline).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(results)
    }

    async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<NotificationClaim>, StoreError> {
        let now_ms = now.timestamp_millis();
        let rows = sqlx::query(
            "UPDATE notifications
                SET lease_owner = ?1, lease_until = ?2, lease_token = lease_token + 1
              WHERE id IN (
                    SELECT id FROM notifications
                     WHERE status IN ('pending', 'retry') AND due_at <= ?3
                       AND (lease_until IS NULL OR lease_until < ?3)
                     ORDER BY due_at LIMIT ?4)
             RETURNING id, alert_id, fired, idempotency_key, channel, target, recipient, attempt,
                       lease_token, follow_up, follows",
        )
        .bind(owner)
        .bind(now_ms + lease_ms(lease))
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await?;
        // An empty claim (most engine polls) wrote nothing to sync.
        if !rows.is_empty() {
            self.durable().await?;
        }
        rows.iter()
            .map(|r| {
                Ok(NotificationClaim {
                    id: r.try_get("id")?,
                    alert_id: r.try_get("alert_id")?,
                    fired: r.try_get("fired")?,
                    idempotency_key: r.try_get("idempotency_key")?,
                    channel: parse_channel(r.try_get("channel")?)?,
                    target: r.try_get("target")?,
                    recipient: serde_json::from_str(r.try_get("recipient")?)
                        .map_err(|e| StoreError::Corrupt(format!("recipient: {e}")))?,
                    attempt: u32::try_from(r.try_get::<i64, _>("attempt")?).unwrap_or(u32::MAX),
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
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut written = HashSet::with_capacity(batch.len());
        // 8 values a row.
        for chunk in batch.chunks(apply::CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE notifications
                    SET status = v.column3, attempt = attempt + v.column4,
                        due_at = COALESCE(v.column5, due_at),
                        provider_id = COALESCE(v.column6, provider_id), last_error = v.column7,
                        updated_at = v.column8, lease_owner = NULL, lease_until = NULL
                   FROM (",
            );
            q.push_values(chunk, |mut b, (claim, record)| {
                let retry = record.status == DeliveryStatus::Retry && record.count_attempt;
                b.push_bind(claim.id)
                    .push_bind(claim.token)
                    .push_bind(record.status.as_str())
                    .push_bind(i64::from(retry))
                    .push_bind(record.retry_at.map(|t| t.timestamp_millis()))
                    .push_bind(record.provider_id.as_deref())
                    .push_bind(record.error.as_deref())
                    .push_bind(record.at.timestamp_millis());
            });
            q.push(
                ") AS v WHERE notifications.id = v.column1 AND notifications.lease_token = v.column2
                     AND notifications.status IN ('pending', 'retry')
                 RETURNING notifications.id",
            );
            for row in q.build().fetch_all(&mut *tx).await? {
                written.insert(row.try_get::<i64, _>("id")?);
            }
        }
        let results = fenced_results(batch, written, |(claim, _)| claim.id);
        let won = || winners(batch, &results);
        // A failed send pulls its firing's next step forward to the earliest failure.
        let falls = fall_throughs(won());
        for chunk in falls.chunks(apply::CHUNK) {
            let mut q =
                QueryBuilder::<Sqlite>::new("UPDATE escalations SET due_at = v.column3 FROM (");
            q.push_values(chunk, |mut b, ((alert_id, fired), at)| {
                b.push_bind(*alert_id)
                    .push_bind(*fired)
                    .push_bind(at.timestamp_millis());
            });
            q.push(
                ") AS v WHERE escalations.alert_id = v.column1 AND escalations.state = 'active'
                     AND escalations.fired = v.column2 AND escalations.due_at > v.column3",
            );
            q.build().execute(&mut *tx).await?;
        }
        insert_timeline(&mut tx, &delivery_timeline(won())).await?;
        // A page delivered after its alert was acknowledged or resolved (the
        // ack raced the send) missed close_escalation's follow-ups: queue its
        // own, or that room keeps showing the alert as firing.
        let late = late_follow_up_candidates(won());
        if let Some(at) = late.iter().map(|(_, at)| *at).max() {
            for chunk in late.chunks(apply::CHUNK) {
                let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
                late_follow_ups(at, &ids).build().execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        // Durable at the next `sync`, which group commit calls.
        self.wal.committed();
        Ok(results)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        // A claimed row is not due again until its lease runs out: without
        // this the engine would spin while a slow send is in flight. Unleased
        // and leased rows are asked apart so that each part walks an index
        // (the due index from its start; the partial index of leased rows)
        // instead of scanning every open alert's escalation. (`+state` keeps
        // SQLite from choosing the due index, which holds every active row.)
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM (
                 SELECT * FROM (SELECT due_at AS t FROM escalations
                                 WHERE state = 'active' AND lease_until IS NULL
                                 ORDER BY due_at LIMIT 1)
                 UNION ALL
                 SELECT MIN(MAX(due_at, lease_until)) FROM escalations
                  WHERE lease_until IS NOT NULL AND +state = 'active'
                 UNION ALL
                 SELECT MIN(due_at) FROM notifications
                  WHERE status IN ('pending', 'retry') AND lease_until IS NULL
                 UNION ALL
                 SELECT MIN(MAX(due_at, lease_until)) FROM notifications
                  WHERE lease_until IS NOT NULL AND +status IN ('pending', 'retry'))",
        )
        .fetch_one(&self.reader)
        .await?;
        ms.map(instant).transpose()
    }

    async fn notifications(&self, alert_id: i64) -> Result<Vec<NotificationRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM notifications WHERE alert_id = ?1 ORDER BY id")
            .bind(alert_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NotificationRow {
                    id: r.try_get("id")?,
                    alert_id: r.try_get("alert_id")?,
                    idempotency_key: r.try_get("idempotency_key")?,
                    channel: parse_channel(r.try_get("channel")?)?,
                    target: r.try_get("target")?,
                    recipient: serde_json::from_str(r.try_get("recipient")?)
                        .map_err(|e| StoreError::Corrupt(format!("recipient: {e}")))?,
                    attempt: u32::try_from(r.try_get::<i64, _>("attempt")?).unwrap_or(u32::MAX),
                    status: parse_delivery(r.try_get("status")?)?,
                    due_at: instant(r.try_get("due_at")?)?,
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(BY_PROVIDER_ID)
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
                "UPDATE escalations SET due_at = ?3
                  WHERE alert_id = ?1 AND state = 'active' AND fired = ?2 AND due_at > ?3",
            )
            .bind(alert_id)
            .bind(fired)
            .bind(at.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        }
        let entries = notes_to_timeline(
            alert_id,
            at,
            &[(TimelineKind::Notified, message.to_owned())],
        );
        insert_timeline(&mut tx, &entries).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(Some(alert_id))
    }

    async fn page_by_provider_id(
        &self,
        provider_id: &str,
    ) -> Result<Option<ProviderPage>, StoreError> {
        let row = sqlx::query(
            "SELECT id, alert_id, channel, idempotency_key FROM notifications
              WHERE provider_id = ?1 AND follow_up = 0",
        )
        .bind(provider_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(ProviderPage {
                notification_id: r.try_get("id")?,
                alert_id: r.try_get("alert_id")?,
                channel: parse_channel(r.try_get("channel")?)?,
                idempotency_key: r.try_get("idempotency_key")?,
            })
        })
        .transpose()
    }

    async fn queue_breakthrough(
        &self,
        notification_id: i64,
        due_at: DateTime<Utc>,
        at: DateTime<Utc>,
        message: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "INSERT OR IGNORE INTO notifications (alert_id, fired, idempotency_key, channel,
                 target, recipient, address, status, due_at, created_at, updated_at)
             SELECT n.alert_id, n.fired, n.idempotency_key || ?4, n.channel, n.target,
                    n.recipient, n.address, 'pending', ?2, ?3, ?3
               FROM notifications n JOIN alerts a ON a.id = n.alert_id
              WHERE n.id = ?1 AND a.status = 'triggered' AND n.follow_up = 0
             RETURNING alert_id",
        )
        .bind(notification_id)
        .bind(due_at.timestamp_millis())
        .bind(at.timestamp_millis())
        .bind(crate::store::BREAKTHROUGH_SUFFIX)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        let alert_id: i64 = row.try_get("alert_id")?;
        let entries = notes_to_timeline(
            alert_id,
            at,
            &[(TimelineKind::Notified, message.to_owned())],
        );
        insert_timeline(&mut tx, &entries).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(true)
    }

    async fn queue_test_page(
        &self,
        alert_id: i64,
        person_id: &str,
        method: Method,
        pages: &[NewNotification],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO test_pages (alert_id, person_id, method, sent_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(alert_id)
        .bind(person_id)
        .bind(method.as_str())
        .bind(at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        for page in pages {
            sqlx::query(
                "INSERT OR IGNORE INTO notifications (alert_id, fired, idempotency_key, channel,
                     target, recipient, address, status, due_at, created_at, updated_at)
                 VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7, ?7)",
            )
            .bind(alert_id)
            .bind(page.idempotency_key.as_str())
            .bind(page.channel.as_str())
            .bind(page.target.as_str())
            .bind(to_json(&page.recipient)?)
            .bind(page.recipient.address())
            .bind((at + page.delay).timestamp_millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.durable().await
    }

    async fn test_pages(
        &self,
        person_id: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<TestPageResult>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.alert_id, t.person_id, t.method, t.sent_at, a.acknowledged_at,
                    a.acknowledged_by
               FROM test_pages t JOIN alerts a ON a.id = t.alert_id
              WHERE (?1 IS NULL OR t.person_id = ?1) AND t.sent_at >= ?2
              ORDER BY t.sent_at DESC, t.alert_id DESC",
        )
        .bind(person_id)
        .bind(since.timestamp_millis())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TestPageResult {
                    alert_id: r.try_get("alert_id")?,
                    person_id: r.try_get("person_id")?,
                    method: parse_method(r.try_get("method")?)?,
                    sent_at: instant(r.try_get("sent_at")?)?,
                    acknowledged_at: r
                        .try_get::<Option<i64>, _>("acknowledged_at")?
                        .map(instant)
                        .transpose()?,
                    acknowledged_by: r.try_get("acknowledged_by")?,
                })
            })
            .collect()
    }

    async fn escalate_now(&self, alert_id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE escalations SET due_at = ?2 WHERE alert_id = ?1 AND state = 'active' AND due_at > ?2",
        )
        .bind(alert_id)
        .bind(at.timestamp_millis())
        .execute(&self.writer)
        .await?
        .rows_affected();
        if done > 0 {
            self.durable().await?;
        }
        Ok(done == 1)
    }

    async fn alerts_paged_at(
        &self,
        address: &str,
        limit: u32,
    ) -> Result<Vec<(i64, AlertStatus)>, StoreError> {
        let rows = sqlx::query(PAGED_AT)
            .bind(address)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
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
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT updated_at FROM notifications WHERE status IN ('delivered', 'unknown')
               AND NOT follow_up AND address = ",
        );
        q.push_bind(address.to_owned())
            .push(" AND updated_at >= ")
            .push_bind(since.timestamp_millis())
            .push(" AND channel IN (");
        let mut list = q.separated(", ");
        for c in channels {
            list.push_bind(c.as_str());
        }
        q.push(") ORDER BY updated_at");
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| instant(r.try_get("updated_at")?))
            .collect()
    }
}

fn with_direct<T>(
    conn: &std::sync::Mutex<Option<direct::Writer>>,
    work: impl FnOnce(&mut direct::Direct<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // A panic while the lock was held rolled its transaction back
    // (`Direct`'s drop), so the connection is fine to use again.
    let mut guard = conn
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let writer = guard.as_mut().ok_or(StoreError::Closed)?;
    let mut direct = direct::Direct::on(writer);
    let done = work(&mut direct);
    // Rolls back what `work` left open, before the lock is released.
    drop(direct);
    done
}

async fn insert_timeline(
    conn: &mut SqliteConnection,
    entries: &[NewTimelineEntry],
) -> Result<(), StoreError> {
    // 6 values a row; stay far below SQLite's bound-parameter limit.
    for chunk in entries.chunks(apply::CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO alert_timeline (alert_id, at, kind, actor, message, data) ",
        );
        q.push_values(chunk, |mut row, e| {
            row.push_bind(e.alert_id)
                .push_bind(e.at.timestamp_millis())
                .push_bind(e.kind.as_str())
                .push_bind(e.actor.as_str())
                .push_bind(e.message.as_str())
                .push_bind(e.data.as_ref().map(|d| d.to_string()));
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The newest alerts paged to a number (`notifications_address_alert`, walked
/// backwards until enough distinct alerts are found).
const PAGED_AT: &str = "SELECT a.id, a.status
       FROM (SELECT DISTINCT n.alert_id AS id FROM notifications n
              WHERE n.address = ?1 ORDER BY n.alert_id DESC LIMIT ?2) AS p
       JOIN alerts a ON a.id = p.id
      ORDER BY a.id DESC";

/// The page a provider's callback is about (`notifications_provider`).
const BY_PROVIDER_ID: &str = "SELECT alert_id, fired FROM notifications WHERE provider_id = ?1";

/// Queues the follow-ups of pages delivered after their alert closed, for
/// the notifications `ids` that turn out to be such pages.
///
/// The notifications are found by id: `+n.status` keeps SQLite from walking
/// the status index instead, which holds every page ever delivered, so that
/// each round of outcomes got slower as the history grew.
fn late_follow_ups(at: DateTime<Utc>, ids: &[i64]) -> QueryBuilder<'static, Sqlite> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT OR IGNORE INTO notifications (alert_id, fired, idempotency_key, channel,
             target, recipient, address, status, due_at, created_at, updated_at,
             follow_up, follows)
         SELECT n.alert_id, n.fired, n.idempotency_key || '/' || a.status, n.channel,
                n.target, n.recipient, n.address, 'pending', ",
    );
    q.push_bind(at.timestamp_millis())
        .push(", ")
        .push_bind(at.timestamp_millis())
        .push(", ")
        .push_bind(at.timestamp_millis())
        .push(
            ", 1, n.provider_id
           FROM notifications n JOIN alerts a ON a.id = n.alert_id
          WHERE n.id IN (",
        );
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    q.push(") AND +n.status = 'delivered' AND n.follow_up = 0 AND a.status <> 'triggered'");
    q
}

fn duplicate_run(
    count: i64,
    first: Option<i64>,
    last: Option<i64>,
    actor: Option<String>,
) -> Result<Option<DuplicateRun>, StoreError> {
    match (count, first, last, actor) {
        (0, ..) => Ok(None),
        (count, Some(first), Some(last), Some(actor)) => Ok(Some(DuplicateRun {
            count,
            first_at: instant(first)?,
            last_at: instant(last)?,
            actor,
        })),
        _ => Err(StoreError::Corrupt(
            "a run of duplicates without its instants".to_owned(),
        )),
    }
}

fn alert_from_row(row: &SqliteRow) -> Result<Alert, StoreError> {
    let opt_instant = |name: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        row.try_get::<Option<i64>, _>(name)?
            .map(instant)
            .transpose()
    };
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
            .parse::<Urgency>()
            .map_err(|e| StoreError::Corrupt(format!("urgency: {e}")))?,
        policy_id: row.try_get("policy_id")?,
        labels: serde_json::from_value(json(row.try_get("labels")?)?)
            .map_err(|e| StoreError::Corrupt(format!("labels: {e}")))?,
        details: json(row.try_get("details")?)?,
        links: serde_json::from_value(json(row.try_get("links")?)?)
            .map_err(|e| StoreError::Corrupt(format!("links: {e}")))?,
        event_count: row.try_get("event_count")?,
        created_at: instant(row.try_get("created_at")?)?,
        last_seen_at: instant(row.try_get("last_seen_at")?)?,
        acknowledged_at: opt_instant("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        resolved_at: opt_instant("resolved_at")?,
        resolved_by: row.try_get("resolved_by")?,
    })
}

fn parse_status(s: &str) -> Result<AlertStatus, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("alert status: {e}")))
}

fn instant(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("instant out of range: {ms}")))
}

fn json(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("json column: {e}")))
}

fn escalation_claim(r: &SqliteRow) -> Result<EscalationClaim, StoreError> {
    let phase: &str = r.try_get("phase")?;
    Ok(EscalationClaim {
        alert_id: r.try_get("alert_id")?,
        policy_id: r.try_get("policy_id")?,
        cursor: Cursor {
            pass: u32::try_from(r.try_get::<i64, _>("pass")?).unwrap_or(0),
            step: usize::try_from(r.try_get::<i64, _>("step")?).unwrap_or(0),
            phase: Phase::parse(phase)
                .ok_or_else(|| StoreError::Corrupt(format!("escalation phase {phase:?}")))?,
        },
        fired: r.try_get("fired")?,
        due_at: instant(r.try_get("due_at")?)?,
        token: r.try_get("lease_token")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh in-memory store with the schema, for planning queries.
    async fn migrated() -> SqliteStore {
        let store = SqliteStore::open("sqlite::memory:", 1).await.expect("open");
        store.migrate().await.expect("migrate");
        store
    }

    /// What SQLite plans for `q`, one step per line.
    async fn plan(store: &SqliteStore, q: &QueryBuilder<'_, Sqlite>) -> Vec<String> {
        let sql = format!("EXPLAIN QUERY PLAN {}", q.sql());
        sqlx::query(&sql)
            .fetch_all(&store.writer)
            .await
            .expect("plan")
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect()
    }

    #[tokio::test]
    async fn late_follow_ups_look_pages_up_by_id() {
        let store = migrated().await;
        // A round's worth: with a short list SQLite picks the key either way.
        let ids: Vec<i64> = (1..=64).collect();
        let steps = plan(&store, &late_follow_ups(Utc::now(), &ids)).await;
        assert!(
            steps
                .iter()
                .any(|s| s.contains("SEARCH n USING INTEGER PRIMARY KEY")),
            "{steps:?}"
        );
        assert!(
            !steps.iter().any(|s| s.contains("notifications_due")),
            "walks every delivered page: {steps:?}"
        );
    }

    #[tokio::test]
    async fn sms_replies_walk_the_numbers_index_backwards() {
        let store = migrated().await;
        let steps = plan(&store, &QueryBuilder::new(PAGED_AT)).await;
        assert!(
            steps
                .iter()
                .any(|s| s.contains("COVERING INDEX notifications_address_alert")),
            "{steps:?}"
        );
        // Not a list of every page ever sent to the number, nor a sort of
        // one: the distinct alerts come in index order and the limit stops it.
        assert!(
            !steps
                .iter()
                .any(|s| s.contains("LIST SUBQUERY") || s.contains("FOR DISTINCT")),
            "{steps:?}"
        );
    }

    #[tokio::test]
    async fn provider_callbacks_find_their_page_by_index() {
        let store = migrated().await;
        let steps = plan(&store, &QueryBuilder::new(BY_PROVIDER_ID)).await;
        assert!(
            steps
                .iter()
                .any(|s| s.contains("USING INDEX notifications_provider")),
            "{steps:?}"
        );
    }
}
