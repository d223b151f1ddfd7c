//! The shared store for several replicas: PostgreSQL.
//!
//! Same tables as SQLite with native types (TIMESTAMPTZ, JSONB) so admins can
//! query them directly. Concurrent writers are safe: the partial unique index
//! on open alerts makes the trigger upsert race-free across replicas.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool, Postgres, QueryBuilder, Row};

use super::apply::{
    self, in_row_order, AlertChange, AlertRef, BatchWrites, Closing, FoundAlert, Known, NewAlert,
    NewEscalation, Raced, Writes,
};
use super::{
    delivery_timeline, fall_throughs, fenced_results, late_follow_up_candidates, notes_to_timeline,
    opened_entry, parse_channel, parse_delivery, parse_method, to_json, winners, Act, AlertFilter,
    Backend, DeliveryRecord, DeliveryStatus, EscalationClaim, EventJson, Heartbeat, Implied,
    Ingest, IngestOutcome, NewNotification, NewTimelineEntry, NotificationClaim, NotificationRow,
    ProviderPage, StepRecord, Store, StoreError,
};
use crate::alert::event::is_empty_json;
use crate::alert::TimelineKind;
use crate::alert::{Alert, AlertStatus, Decision, DuplicateRun, Event, TimelineEntry};
use crate::channel::ChannelKind;
use crate::escalation::plan::{Cursor, Phase};
use crate::escalation::test_page::{Method, TestPageResult};

mod feed;
mod inbound;
pub mod notify;
mod push;
mod silence;
mod sms;
mod stats;
mod watch;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Begins an ingest batch whose commit returns before the log is flushed;
/// [`Store::sync`] waits for the flush. Sent as one simple query: no extra
/// round trip.
const ASYNC_COMMIT: &str = "BEGIN; SET LOCAL synchronous_commit = off";
/// Commits an ingest batch on a view's own connection and begins the next
/// one, in one round trip instead of two (see [`Own::begun`]).
const COMMIT_AND_BEGIN: &str = "COMMIT; BEGIN; SET LOCAL synchronous_commit = off";

pub struct PostgresStore {
    pool: PgPool,
    /// For the connections that views ([`Store::for_own_thread`]) open.
    options: PgConnectOptions,
    /// A view's own connection: `Some` on a view, `None` on the store that
    /// everyone else shares, whose writes all go through the pool.
    own: Option<tokio::sync::Mutex<Option<Own>>>,
    flush: Arc<Flush>,
}

/// How far the ingest commits made without waiting for the log flush are
/// known to be durable; shared by the store and its views, since intake's
/// writer commits and its syncer flushes.
#[derive(Default)]
struct Flush {
    /// Ingest commits that returned without waiting for the log flush.
    committed: AtomicU64,
    /// Of those, how many a flush is known to cover.
    flushed: AtomicU64,
    /// One flush at a time; a caller that waited usually finds its commits
    /// covered by the flush it waited for (the SQLite log's `WalSync` works alike).
    flushing: tokio::sync::Mutex<()>,
}

/// A view's connection, and when it last answered.
struct Own {
    conn: PgConnection,
    used: std::time::Instant,
    /// An ingest transaction is open on it with nothing done yet: the last
    /// batch's commit began it ([`COMMIT_AND_BEGIN`]), so the next batch
    /// starts with its first statement. On intake's writer that is one
    /// round trip of four fewer on the serial chain that bounds PostgreSQL
    /// intake. Such a transaction holds no lock, no transaction id and no
    /// snapshot (READ COMMITTED takes one per statement), so it holds back
    /// neither vacuum nor anyone else; and no ingest statement reads the
    /// transaction's start time, the one thing beginning early changes.
    /// Group commit ends it after a quiet spell ([`Store::idle`]), so the
    /// connection does not sit "idle in transaction".
    begun: bool,
}

impl Own {
    /// Rolls back the ingest transaction begun ahead, if there is one.
    async fn end_begun(&mut self) -> Result<(), sqlx::Error> {
        if self.begun {
            self.begun = false;
            simple(&mut self.conn, "ROLLBACK").await?;
        }
        Ok(())
    }
}

/// An own connection idle longer than this is pinged before it is used, as
/// the pool pings every connection it hands out: after a quiet spell the
/// server may have restarted, and the batch would fail on the dead
/// connection. Under load a batch follows the last within milliseconds and
/// needs none.
const OWN_IDLE_PING: Duration = Duration::from_secs(1);

impl PostgresStore {
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("rouse");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            // What `Store::for_own_thread` is for, enforced: a pool
            // connection opened on a group commit thread would be bound to
            // that thread's runtime and die with it, in someone else's hands.
            .after_connect(|_, _| {
                Box::pin(async {
                    if super::on_writer_thread() {
                        return Err(sqlx::Error::Configuration(
                            "a group commit thread must use its own connection, not the pool's"
                                .into(),
                        ));
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        Ok(Self {
            pool,
            options,
            own: None,
            flush: Arc::default(),
        })
    }

    /// The connection a write runs on: this view's own (opened now if it
    /// has none, or pinged after a quiet spell), or the pool's for the
    /// shared store. Call [`Conn::keep`] when the write succeeded. An
    /// ingest transaction begun ahead ([`Own::begun`]) is ended first.
    async fn conn(&self) -> Result<Conn<'_>, StoreError> {
        let mut conn = self.ingest_conn().await?;
        if let Conn::Own { held, .. } = &mut conn {
            held.end_begun().await?;
        }
        Ok(conn)
    }

    /// [`PostgresStore::conn`], but an own connection keeps the ingest
    /// transaction its last batch began.
    async fn ingest_conn(&self) -> Result<Conn<'_>, StoreError> {
        let Some(own) = &self.own else {
            return Ok(Conn::Pool(self.pool.acquire().await?));
        };
        let mut slot = own.lock().await;
        let mut held = slot.take();
        if let Some(h) = held.as_mut() {
            if h.used.elapsed() > OWN_IDLE_PING && h.conn.ping().await.is_err() {
                held = None;
            }
        }
        let held = match held {
            Some(h) => h,
            None => Own {
                conn: PgConnection::connect_with(&self.options).await?,
                used: std::time::Instant::now(),
                begun: false,
            },
        };
        Ok(Conn::Own { slot, held })
    }
}

/// A connection from [`PostgresStore::conn`].
enum Conn<'a> {
    Pool(PoolConnection<Postgres>),
    Own {
        slot: tokio::sync::MutexGuard<'a, Option<Own>>,
        held: Own,
    },
}

impl Conn<'_> {
    fn get(&mut self) -> &mut PgConnection {
        match self {
            Conn::Pool(conn) => conn,
            Conn::Own { held, .. } => &mut held.conn,
        }
    }

    /// The connection, and on a view whether an ingest transaction is
    /// begun on it ([`Own::begun`]); a pool connection has no such state,
    /// since whoever takes it next must find no transaction open.
    fn for_ingest(&mut self) -> (&mut PgConnection, Option<&mut bool>) {
        match self {
            Conn::Pool(conn) => (conn, None),
            Conn::Own { held, .. } => (&mut held.conn, Some(&mut held.begun)),
        }
    }

    /// The write on it succeeded: a view keeps its connection for the next
    /// one. Dropped without this (after an error) a view's connection is
    /// closed, since whatever failed may have been it; the next write opens
    /// a fresh one.
    fn keep(self) {
        if let Conn::Own { mut slot, mut held } = self {
            held.used = std::time::Instant::now();
            *slot = Some(held);
        }
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

    fn for_own_thread(self: Arc<Self>) -> Arc<dyn Store> {
        Arc::new(PostgresStore {
            pool: self.pool.clone(),
            options: self.options.clone(),
            own: Some(tokio::sync::Mutex::new(None)),
            flush: self.flush.clone(),
        })
    }

    async fn close(&self) {
        if self.own.is_some() {
            // A view closes only what is its own; the pool is everyone's.
            self.release().await;
            return;
        }
        self.pool.close().await;
    }

    async fn release(&self) {
        if let Some(own) = &self.own {
            if let Some(own) = own.lock().await.take() {
                // Terminate, not a dropped socket; the server rolls back a
                // transaction begun for the next batch.
                let _ = own.conn.close().await;
            }
        }
    }

    async fn idle(&self) {
        let Some(own) = &self.own else {
            return;
        };
        let mut slot = own.lock().await;
        if let Some(held) = slot.as_mut() {
            if held.end_begun().await.is_err() {
                // Whatever failed may have been the connection: the next
                // batch opens a fresh one.
                *slot = None;
            }
        }
    }

    /// Ingest commits without waiting for the log flush (`ASYNC_COMMIT`). A
    /// commit that does wait flushes the log up to its own commit record,
    /// and so past every commit before it: one such commit makes every batch
    /// committed so far durable, and group commit writes the next batch
    /// meanwhile, as on SQLite.
    ///
    /// PostgreSQL waits for the flush only at the commit of a transaction
    /// that has an id *and* wrote to the log before its commit record
    /// (`RecordTransactionCommit`). Until 2026-12-03 this was `BEGIN;
    /// SELECT txid_current(); COMMIT`: an id, but nothing logged, so the
    /// commit did not wait and a 202 could precede the flush by up to the
    /// log writer's delay (`store::a_sync_flushes_the_log_past_every_ingest_commit`
    /// failed on it). A transactional logical message is both: it takes an
    /// id and writes one small record, needs no table and no privilege
    /// (`EXECUTE` is public), and at `wal_level = replica` nothing reads
    /// it; logical decoding sees prefix `rouse.sync` with no content. One
    /// statement, so one round trip, in a transaction of its own.
    async fn sync(&self) -> Result<(), StoreError> {
        let flush = &self.flush;
        let mine = flush.committed.load(Ordering::Acquire);
        if flush.flushed.load(Ordering::Acquire) >= mine {
            return Ok(());
        }
        let _turn = flush.flushing.lock().await;
        if flush.flushed.load(Ordering::Acquire) >= mine {
            return Ok(());
        }
        let upto = flush.committed.load(Ordering::Acquire);
        let mut conn = self.conn().await?;
        sqlx::query("SELECT pg_logical_emit_message(true, 'rouse.sync', '')")
            .execute(conn.get())
            .await?;
        conn.keep();
        flush.flushed.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    async fn ingest(&self, batch: &[Ingest]) -> Result<Vec<IngestOutcome>, StoreError> {
        // On a view (intake's writer) its own connection, not the pool's
        // next idle one: the pool hands connections out in turn, so every
        // batch woke a different backend process, with cold caches and
        // statements prepared once per connection (six backends at ~13% CPU
        // each during `wrk -c64`).
        retrying(|| async move {
            let mut conn = self.ingest_conn().await?;
            let (on, begun) = conn.for_ingest();
            let outcomes = ingest_on(on, begun, batch).await?;
            conn.keep();
            // Durable at the next `sync`, which group commit calls.
            self.flush.committed.fetch_add(1, Ordering::AcqRel);
            Ok(outcomes)
        })
        .await
    }

    async fn act(&self, act: &Act) -> Result<Option<Decision>, StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let decision = apply::act(&mut *tx, act).await?;
            tx.commit().await?;
            Ok(decision)
        })
        .await
    }

    async fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError> {
        let row = sqlx::query("SELECT * FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(alert_from_row).transpose()
    }

    async fn alerts_by_id(&self, ids: &[i64]) -> Result<Vec<Alert>, StoreError> {
        let rows = sqlx::query("SELECT * FROM alerts WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(alert_from_row).collect()
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
        if !filter.severities.is_empty() {
            let severities: Vec<&str> = filter.severities.iter().map(|s| s.as_str()).collect();
            q.push(" AND severity = ANY(")
                .push_bind(severities)
                .push(")");
        }
        if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
            // A plain substring (no LIKE), so `%` and `_` in what people type mean themselves.
            let needle = text.to_lowercase();
            q.push(" AND (strpos(lower(summary), ")
                .push_bind(needle.clone())
                .push(") > 0 OR strpos(lower(dedup_key), ")
                .push_bind(needle)
                .push(") > 0)");
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
        // One statement, one snapshot: see the SQLite store's.
        let rows = sqlx::query(
            "SELECT id, at, kind, actor, message, data, NULL::text AS dedup_key,
                    NULL::bigint AS dup_count, NULL::timestamptz AS dup_last_at
               FROM alert_timeline WHERE alert_id = $1
             UNION ALL
             SELECT NULL, created_at, 'opened', opened_by, COALESCE(opened_summary, summary), NULL,
                    dedup_key, NULL, NULL
               FROM alerts WHERE id = $1 AND opened_by IS NOT NULL
             UNION ALL
             SELECT NULL, dup_first_at, 'run', dup_actor, NULL, NULL, dedup_key, dup_count,
                    dup_last_at
               FROM alerts WHERE id = $1 AND dup_count > 0
             ORDER BY 1",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        let mut implied = Implied::default();
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(id) = row.try_get::<Option<i64>, _>("id")? else {
                let key: String = row.try_get("dedup_key")?;
                if row.try_get::<&str, _>("kind")? == "opened" {
                    implied.opened = Some(opened_entry(
                        alert_id,
                        row.try_get("at")?,
                        row.try_get("actor")?,
                        row.try_get("message")?,
                        &key,
                    ));
                } else {
                    implied.run = duplicate_run(
                        row.try_get::<Option<i64>, _>("dup_count")?.unwrap_or(0),
                        row.try_get("at")?,
                        row.try_get("dup_last_at")?,
                        row.try_get("actor")?,
                    )?
                    .map(|r| (key, r));
                }
                continue;
            };
            entries.push(TimelineEntry {
                id,
                alert_id,
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
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let mut ids = Vec::with_capacity(batch.len());
            let mut tokens = Vec::with_capacity(batch.len());
            let mut passes = Vec::with_capacity(batch.len());
            let mut steps = Vec::with_capacity(batch.len());
            let mut phases = Vec::with_capacity(batch.len());
            let mut dues = Vec::with_capacity(batch.len());
            let mut states = Vec::with_capacity(batch.len());
            for (claim, record) in batch {
                let (state, cursor, due) = match record.next {
                    Some((cursor, due)) => ("active", cursor, due),
                    None => ("done", claim.cursor, record.at),
                };
                ids.push(claim.alert_id);
                tokens.push(claim.token);
                passes.push(i32::try_from(cursor.pass).unwrap_or(i32::MAX));
                steps.push(i32::try_from(cursor.step).unwrap_or(i32::MAX));
                phases.push(cursor.phase.as_str());
                dues.push(due);
                states.push(state);
            }
            // Fenced on the token in one statement; RETURNING names the steps that won.
            let rows = sqlx::query(
                "UPDATE escalations e
                SET pass = v.pass, step = v.step, phase = v.phase, due_at = v.due_at,
                    state = v.state, fired = e.fired + 1, lease_owner = NULL, lease_until = NULL
               FROM UNNEST($1::bigint[], $2::bigint[], $3::int[], $4::int[], $5::text[],
                           $6::timestamptz[], $7::text[])
                    AS v(alert_id, token, pass, step, phase, due_at, state)
              WHERE e.alert_id = v.alert_id AND e.lease_token = v.token AND e.state = 'active'
             RETURNING e.alert_id",
            )
            .bind(ids)
            .bind(tokens)
            .bind(passes)
            .bind(steps)
            .bind(phases)
            .bind(dues)
            .bind(states)
            .fetch_all(&mut *tx)
            .await?;
            let mut written = HashSet::with_capacity(rows.len());
            for row in rows {
                written.insert(row.try_get::<i64, _>("alert_id")?);
            }
            let results = fenced_results(batch, written, |(claim, _)| claim.alert_id);
            let won: Vec<&(EscalationClaim, StepRecord)> = winners(batch, &results).collect();
            let deliveries: Vec<(i64, i64, DateTime<Utc>, &NewNotification)> = won
                .iter()
                .flat_map(|(claim, record)| {
                    record
                        .deliveries
                        .iter()
                        .map(move |d| (claim.alert_id, claim.fired + 1, record.at, d))
                })
                .collect();
            if !deliveries.is_empty() {
                let mut recipients = Vec::with_capacity(deliveries.len());
                for d in &deliveries {
                    recipients.push(to_json(&d.3.recipient)?);
                }
                sqlx::query(
                    "INSERT INTO notifications (alert_id, fired, idempotency_key, channel, target,
                     recipient, address, status, due_at, created_at, updated_at)
                 SELECT alert_id, fired, key, channel, target, recipient::jsonb, address, 'pending',
                        due, at, at
                   FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                               $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[])
                        AS v(alert_id, fired, key, channel, target, recipient, address, at, due)
                 ON CONFLICT (idempotency_key) DO NOTHING",
                )
                .bind(deliveries.iter().map(|d| d.0).collect::<Vec<_>>())
                .bind(deliveries.iter().map(|d| d.1).collect::<Vec<_>>())
                .bind(
                    deliveries
                        .iter()
                        .map(|d| d.3.idempotency_key.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    deliveries
                        .iter()
                        .map(|d| d.3.channel.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    deliveries
                        .iter()
                        .map(|d| d.3.target.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(recipients)
                .bind(
                    deliveries
                        .iter()
                        .map(|d| d.3.recipient.address())
                        .collect::<Vec<_>>(),
                )
                .bind(deliveries.iter().map(|d| d.2).collect::<Vec<_>>())
                .bind(
                    deliveries
                        .iter()
                        .map(|d| d.2 + d.3.delay)
                        .collect::<Vec<_>>(),
                )
                .execute(&mut *tx)
                .await?;
            }
            // A personal step's rules run until the policy's next step fires:
            // that is now, for the pages of earlier firings not yet sent. (A
            // first step has no earlier firing: new alerts, the hot path, skip this.)
            let later: Vec<_> = won.iter().filter(|(claim, _)| claim.fired > 0).collect();
            if !later.is_empty() {
                sqlx::query(
                    "UPDATE notifications n SET status = 'canceled', updated_at = v.at
                       FROM UNNEST($1::bigint[], $2::bigint[], $3::timestamptz[])
                            AS v(alert_id, fired, at)
                      WHERE n.alert_id = v.alert_id AND n.fired < v.fired
                        AND n.status IN ('pending', 'retry') AND NOT n.follow_up
                        AND (n.lease_until IS NULL OR n.lease_until <= v.at)
                        AND strpos(n.idempotency_key, $4) > 0",
                )
                .bind(later.iter().map(|(c, _)| c.alert_id).collect::<Vec<_>>())
                .bind(later.iter().map(|(c, _)| c.fired + 1).collect::<Vec<_>>())
                .bind(later.iter().map(|(_, r)| r.at).collect::<Vec<_>>())
                .bind(crate::store::RULE_KEY_MARK)
                .execute(&mut *tx)
                .await?;
            }
            let timeline: Vec<NewTimelineEntry> = won
                .iter()
                .flat_map(|(claim, record)| {
                    notes_to_timeline(claim.alert_id, record.at, &record.notes)
                })
                .collect();
            insert_timeline(&mut tx, &timeline).await?;
            tx.commit().await?;
            Ok(results)
        })
        .await
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
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // On a view (the deliveries' writer) its own connection: see
        // `Store::for_own_thread`.
        retrying(|| async move {
            let mut conn = self.conn().await?;
            let results = record_deliveries_on(conn.get(), batch).await?;
            conn.keep();
            Ok(results)
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        // A claimed row is not due again until its lease runs out: without
        // this the engine would spin while a slow send is in flight. Each
        // part is the first entry of a partial index on exactly what it
        // orders by (migrations `…000011_next_due_index` and
        // `…000012_next_due_leased_indexes`), so the plan sqlx cached while
        // the tables were empty stays one index probe as they grow; a
        // `MIN()` over a filter had been cached as a scan of every row.
        let due: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT LEAST(
                 (SELECT due_at FROM escalations WHERE state = 'active' AND lease_until IS NULL
                   ORDER BY due_at LIMIT 1),
                 (SELECT GREATEST(due_at, lease_until) FROM escalations
                   WHERE state = 'active' AND lease_until IS NOT NULL
                   ORDER BY GREATEST(due_at, lease_until) LIMIT 1),
                 (SELECT due_at FROM notifications
                   WHERE status IN ('pending', 'retry') AND lease_until IS NULL
                   ORDER BY due_at LIMIT 1),
                 (SELECT GREATEST(due_at, lease_until) FROM notifications
                   WHERE status IN ('pending', 'retry') AND lease_until IS NOT NULL
                   ORDER BY GREATEST(due_at, lease_until) LIMIT 1))",
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
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let row =
                sqlx::query("SELECT alert_id, fired FROM notifications WHERE provider_id = $1")
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
            insert_timeline(&mut tx, &entries).await?;
            tx.commit().await?;
            Ok(Some(alert_id))
        })
        .await
    }

    async fn page_by_provider_id(
        &self,
        provider_id: &str,
    ) -> Result<Option<ProviderPage>, StoreError> {
        let row = sqlx::query(
            "SELECT id, alert_id, channel, idempotency_key FROM notifications
              WHERE provider_id = $1 AND NOT follow_up",
        )
        .bind(provider_id)
        .fetch_optional(&self.pool)
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
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(
                "INSERT INTO notifications (alert_id, fired, idempotency_key, channel,
                     target, recipient, address, status, due_at, created_at, updated_at)
                 SELECT n.alert_id, n.fired, n.idempotency_key || $4, n.channel, n.target,
                        n.recipient, n.address, 'pending', $2, $3, $3
                   FROM notifications n JOIN alerts a ON a.id = n.alert_id
                  WHERE n.id = $1 AND a.status = 'triggered' AND NOT n.follow_up
                 ON CONFLICT (idempotency_key) DO NOTHING
                 RETURNING alert_id",
            )
            .bind(notification_id)
            .bind(due_at)
            .bind(at)
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
            Ok(true)
        })
        .await
    }

    async fn queue_test_page(
        &self,
        alert_id: i64,
        person_id: &str,
        method: Method,
        pages: &[NewNotification],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut recipients = Vec::with_capacity(pages.len());
        for page in pages {
            recipients.push(to_json(&page.recipient)?);
        }
        let recipients = &recipients;
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO test_pages (alert_id, person_id, method, sent_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(alert_id)
            .bind(person_id)
            .bind(method.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            for (page, recipient) in pages.iter().zip(recipients) {
                sqlx::query(
                    "INSERT INTO notifications (alert_id, fired, idempotency_key, channel,
                         target, recipient, address, status, due_at, created_at, updated_at)
                     VALUES ($1, 0, $2, $3, $4, $5::jsonb, $6, 'pending', $7, $8, $8)
                     ON CONFLICT (idempotency_key) DO NOTHING",
                )
                .bind(alert_id)
                .bind(page.idempotency_key.as_str())
                .bind(page.channel.as_str())
                .bind(page.target.as_str())
                .bind(recipient.as_str())
                .bind(page.recipient.address())
                .bind(at + page.delay)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
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
              WHERE ($1::text IS NULL OR t.person_id = $1) AND t.sent_at >= $2
              ORDER BY t.sent_at DESC, t.alert_id DESC",
        )
        .bind(person_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TestPageResult {
                    alert_id: r.try_get("alert_id")?,
                    person_id: r.try_get("person_id")?,
                    method: parse_method(r.try_get("method")?)?,
                    sent_at: r.try_get("sent_at")?,
                    acknowledged_at: r.try_get("acknowledged_at")?,
                    acknowledged_by: r.try_get("acknowledged_by")?,
                })
            })
            .collect()
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
            // The newest alerts paged to the number, found by walking
            // `notifications_address_alert` backwards.
            "SELECT a.id, a.status
               FROM (SELECT DISTINCT n.alert_id AS id FROM notifications n
                      WHERE n.address = $1 ORDER BY n.alert_id DESC LIMIT $2) AS p
               JOIN alerts a ON a.id = p.id
              ORDER BY a.id DESC",
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
impl Writes for PgConnection {
    async fn read(
        &mut self,
        services: &[&str],
        keys: &[(&str, &str)],
    ) -> Result<Known, StoreError> {
        read_known(self, services, keys).await
    }

    async fn alert_by_id(&mut self, alert_id: i64) -> Result<Option<FoundAlert>, StoreError> {
        // NO KEY: see `find_open`.
        let row = sqlx::query(
            "SELECT id, status, service_id, dedup_key, dup_count, dup_first_at, dup_last_at,
                    dup_actor
               FROM alerts WHERE id = $1 FOR NO KEY UPDATE",
        )
        .bind(alert_id)
        .fetch_optional(&mut *self)
        .await?;
        row.as_ref().map(found_alert).transpose()
    }

    async fn write(
        &mut self,
        writes: &BatchWrites<'_>,
    ) -> Result<Result<Vec<i64>, Raced>, StoreError> {
        // Changes first: they touch only alerts that were open before the
        // batch, and one resolved here frees its key for a new alert below
        // (resolve then trigger of one key in one batch).
        if !writes.changes.is_empty() {
            update_alerts(self, &writes.changes).await?;
        }
        let mut ids = Vec::with_capacity(writes.new_alerts.len());
        let last = writes.generations.len().checked_sub(1);
        for (g, generation) in writes.generations.iter().enumerate() {
            let rows = writes
                .new_alerts
                .get(generation.clone())
                .unwrap_or_default();
            // The escalations go with the last generation's insert, in the
            // same statement: one round trip fewer for every batch that
            // opens an alert. By then every alert they name has an id or
            // is one of this insert's rows.
            let timers = if Some(g) == last {
                timer_rows(&writes.escalations, &writes.new_alerts, generation, &ids)?
            } else {
                Vec::new()
            };
            for id in insert_alerts(self, rows, &timers).await? {
                match id {
                    Some(id) => ids.push(id),
                    // Skipped on conflict: another replica opened that key
                    // (and that row's timer was skipped with it).
                    None => return Ok(Err(Raced)),
                }
            }
        }
        if last.is_none() && !writes.escalations.is_empty() {
            let timers = timer_rows(&writes.escalations, &writes.new_alerts, &(0..0), &ids)?;
            open_escalations(self, &timers).await?;
        }
        close_escalations(self, &writes.closings).await?;
        let mut timeline = Vec::with_capacity(writes.timeline.len());
        for (alert, entry) in &writes.timeline {
            let mut entry = entry.clone();
            entry.alert_id = alert.resolve(&ids)?;
            timeline.push(entry);
        }
        insert_timeline(self, &timeline).await?;
        Ok(Ok(ids))
    }
}

/// The batch's services' open counts and the open alert of each of its
/// keys, in one statement: a round trip is the cost that matters on the
/// writer, which waits on each one (the counts were a statement of their own
/// until the intake benchmark showed the writer 97% idle on round trips).
async fn read_known(
    conn: &mut PgConnection,
    services: &[&str],
    keys: &[(&str, &str)],
) -> Result<Known, StoreError> {
    let key_services: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let dedup_keys: Vec<&str> = keys.iter().map(|k| k.1).collect();
    // The alerts: one index probe per key, whatever the statistics say. As a
    // plain join the planner, on a table that grew since its last ANALYZE,
    // hash-joined a scan of every open alert (6 ms a batch at 24,000 open;
    // auto_explain). A LATERAL subquery is evaluated per key.
    //
    // FOR NO KEY UPDATE: a concurrent acknowledge on another replica waits
    // for us. In id order (the lock is taken above the sort), so two
    // replicas locking overlapping alerts queue instead of deadlocking. Not
    // FOR UPDATE: that also blocks the key-share locks the engine's inserts
    // of pages and timeline entries take on their alert, and the engine,
    // holding the escalation row this batch closes next, deadlocked with an
    // acknowledgement.
    //
    // The counts are read unlocked, as they always were: storm control
    // reads them as a threshold, and each commit's own statement trigger
    // keeps the stored count exact.
    let rows = sqlx::query(
        "WITH found AS (
             SELECT a.id, a.status, a.service_id, a.dedup_key, a.dup_count, a.dup_first_at,
                    a.dup_last_at, a.dup_actor
               FROM UNNEST($1::text[], $2::text[]) AS k(service_id, dedup_key)
              CROSS JOIN LATERAL (
                    SELECT o.id FROM alerts o
                     WHERE o.service_id = k.service_id AND o.dedup_key = k.dedup_key
                       AND o.status <> 'resolved'
                     LIMIT 1) AS open
               JOIN alerts a ON a.id = open.id
              ORDER BY a.id
                FOR NO KEY UPDATE OF a)
         SELECT NULL::bigint AS open_count, f.* FROM found f
         UNION ALL
         SELECT c.open_count, NULL::bigint, NULL::text, c.service_id, NULL::text, NULL::bigint,
                NULL::timestamptz, NULL::timestamptz, NULL::text
           FROM service_open_alerts c WHERE c.service_id = ANY($3)",
    )
    .bind(key_services)
    .bind(dedup_keys)
    .bind(services)
    .fetch_all(&mut *conn)
    .await?;
    let mut known = Known::default();
    for row in &rows {
        match row.try_get::<Option<i64>, _>("open_count")? {
            Some(n) => {
                known
                    .counts
                    .insert(row.try_get("service_id")?, u64::try_from(n).unwrap_or(0));
            }
            None => known.found.push(found_alert(row)?),
        }
    }
    Ok(known)
}

fn found_alert(row: &PgRow) -> Result<FoundAlert, StoreError> {
    Ok(FoundAlert {
        id: row.try_get("id")?,
        status: parse_status(row.try_get("status")?)?,
        service_id: row.try_get("service_id")?,
        dedup_key: row.try_get("dedup_key")?,
        run: duplicate_run(
            row.try_get("dup_count")?,
            row.try_get("dup_first_at")?,
            row.try_get("dup_last_at")?,
            row.try_get("dup_actor")?,
        )?,
    })
}

fn duplicate_run(
    count: i64,
    first_at: Option<DateTime<Utc>>,
    last_at: Option<DateTime<Utc>>,
    actor: Option<String>,
) -> Result<Option<DuplicateRun>, StoreError> {
    match (count, first_at, last_at, actor) {
        (0, ..) => Ok(None),
        (count, Some(first_at), Some(last_at), Some(actor)) => Ok(Some(DuplicateRun {
            count,
            first_at,
            last_at,
            actor,
        })),
        _ => Err(StoreError::Corrupt(
            "a run of duplicates without its instants".to_owned(),
        )),
    }
}

/// A run of duplicates per row as the four `dup_` columns' arrays.
#[derive(Default)]
struct RunColumns<'a> {
    count: Vec<i64>,
    first_at: Vec<Option<DateTime<Utc>>>,
    last_at: Vec<Option<DateTime<Utc>>>,
    actor: Vec<Option<&'a str>>,
}

impl<'a> RunColumns<'a> {
    fn of(runs: impl Iterator<Item = Option<&'a DuplicateRun>>) -> Self {
        let mut c = RunColumns::default();
        for run in runs {
            c.count.push(run.map_or(0, |r| r.count));
            c.first_at.push(run.map(|r| r.first_at));
            c.last_at.push(run.map(|r| r.last_at));
            c.actor.push(run.map(|r| r.actor.as_str()));
        }
        c
    }
}

/// An acknowledgement's or resolution's (instant, actor) per row as the two
/// columns' arrays.
fn acted_columns<'a>(
    acts: impl Iterator<Item = Option<(DateTime<Utc>, &'a str)>>,
) -> (Vec<Option<DateTime<Utc>>>, Vec<Option<&'a str>>) {
    acts.map(|a| (a.map(|a| a.0), a.map(|a| a.1))).unzip()
}

/// An escalation timer to insert: for an alert with an id, or for the row
/// of the insert it goes with that has this (service, key).
struct TimerRow<'a> {
    alert_id: Option<i64>,
    key: Option<(&'a str, &'a str)>,
    escalation: &'a NewEscalation<'a>,
}

/// `escalations` as rows for [`insert_alerts`]: those of `generation`'s new
/// alerts by key, every other by id (stored, or a new alert of an earlier
/// generation, whose id is in `ids`).
fn timer_rows<'a>(
    escalations: &'a [NewEscalation<'a>],
    new_alerts: &'a [NewAlert<'a>],
    generation: &std::ops::Range<usize>,
    ids: &[i64],
) -> Result<Vec<TimerRow<'a>>, StoreError> {
    escalations
        .iter()
        .map(|e| match e.alert {
            AlertRef::New(i) if generation.contains(&i) => {
                let alert = new_alerts.get(i).ok_or_else(|| {
                    StoreError::Corrupt("an escalation for a new alert not in the batch".to_owned())
                })?;
                Ok(TimerRow {
                    alert_id: None,
                    key: Some((alert.service_id, alert.dedup_key)),
                    escalation: e,
                })
            }
            alert => Ok(TimerRow {
                alert_id: Some(alert.resolve(ids)?),
                key: None,
                escalation: e,
            }),
        })
        .collect()
}

/// The alert insert; `$1`–`$24` are its columns.
macro_rules! insert_alerts_sql {
    () => {
        "INSERT INTO alerts (service_id, dedup_key, status, summary, severity, source, urgency,
                             policy_id, labels, details, links, event_count, created_at,
                             last_seen_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by,
                             dup_count, dup_first_at, dup_last_at, dup_actor, opened_by,
                             opened_summary)
         SELECT s, k, st, su, sev, src, urg, pol, lab::jsonb, det::jsonb, lnk::jsonb, n, ca, ls,
                aa, ab, ra, rb, dc, df, dl, da, ob, os
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[],
                       $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::text[],
                       $17::timestamptz[], $18::text[], $19::bigint[], $20::timestamptz[],
                       $21::timestamptz[], $22::text[], $23::text[], $24::text[])
                AS v(s, k, st, su, sev, src, urg, pol, lab, det, lnk, n, ca, ls, aa, ab, ra, rb,
                     dc, df, dl, da, ob, os)
         ON CONFLICT (service_id, dedup_key) WHERE status <> 'resolved' DO NOTHING
         RETURNING service_id, dedup_key, id"
    };
}

/// Inserts new alerts and, in the same statement, `timers`: the escalation
/// rows' foreign-key checks run at the end of the statement and see the
/// alerts it inserted. A timer whose alert was skipped (another replica
/// opened the key) is skipped with it; the caller sees the skipped alert.
async fn insert_alerts(
    conn: &mut PgConnection,
    rows: &[NewAlert<'_>],
    timers: &[TimerRow<'_>],
) -> Result<Vec<Option<i64>>, StoreError> {
    let mut c = AlertColumns::with_capacity(rows.len());
    for row in rows {
        c.push(Some(&row.event), row.encoded, row.status, false)?;
    }
    let runs = RunColumns::of(rows.iter().map(|r| r.run.as_ref()));
    let acked = acted_columns(rows.iter().map(|r| r.acknowledged));
    let resolved = acted_columns(rows.iter().map(|r| r.resolved));
    let sql = if timers.is_empty() {
        insert_alerts_sql!()
    } else {
        concat!(
            "WITH ins AS (",
            insert_alerts_sql!(),
            "),
             timers AS (
                 INSERT INTO escalations (alert_id, policy_id, due_at, state)
                 SELECT COALESCE(t.alert_id, ins.id), t.policy_id, t.due_at, t.state
                   FROM UNNEST($25::bigint[], $26::text[], $27::text[], $28::text[],
                               $29::timestamptz[], $30::text[])
                        AS t(alert_id, s, k, policy_id, due_at, state)
                   LEFT JOIN ins ON t.alert_id IS NULL AND ins.service_id = t.s
                                AND ins.dedup_key = t.k
                  WHERE t.alert_id IS NOT NULL OR ins.id IS NOT NULL
                 ON CONFLICT (alert_id) DO NOTHING)
             SELECT service_id, dedup_key, id FROM ins"
        )
    };
    let mut query = sqlx::query(sql)
        .bind(rows.iter().map(|r| r.service_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.dedup_key).collect::<Vec<_>>())
        .bind(c.status)
        .bind(c.summary)
        .bind(c.severity)
        .bind(c.source)
        .bind(rows.iter().map(|r| r.urgency.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.policy_id).collect::<Vec<_>>())
        .bind(c.labels)
        .bind(c.details)
        .bind(c.links)
        .bind(rows.iter().map(|r| r.event_count).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.last_seen_at).collect::<Vec<_>>())
        .bind(acked.0)
        .bind(acked.1)
        .bind(resolved.0)
        .bind(resolved.1)
        .bind(runs.count)
        .bind(runs.first_at)
        .bind(runs.last_at)
        .bind(runs.actor)
        .bind(rows.iter().map(|r| r.opened_by).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.opened_summary.as_deref())
                .collect::<Vec<_>>(),
        );
    if !timers.is_empty() {
        query = query
            .bind(timers.iter().map(|t| t.alert_id).collect::<Vec<_>>())
            .bind(
                timers
                    .iter()
                    .map(|t| t.key.map(|k| k.0))
                    .collect::<Vec<_>>(),
            )
            .bind(
                timers
                    .iter()
                    .map(|t| t.key.map(|k| k.1))
                    .collect::<Vec<_>>(),
            )
            .bind(
                timers
                    .iter()
                    .map(|t| t.escalation.policy_id)
                    .collect::<Vec<_>>(),
            )
            .bind(
                timers
                    .iter()
                    .map(|t| t.escalation.due_at)
                    .collect::<Vec<_>>(),
            )
            .bind(
                timers
                    .iter()
                    .map(|t| if t.escalation.done { "done" } else { "active" })
                    .collect::<Vec<_>>(),
            );
    }
    let returned = query.fetch_all(&mut *conn).await?;
    in_row_order(
        rows,
        returned.iter().map(|r| {
            Ok((
                r.try_get::<String, _>("service_id")?,
                r.try_get::<String, _>("dedup_key")?,
                r.try_get::<i64, _>("id")?,
            ))
        }),
    )
}

async fn update_alerts(
    conn: &mut PgConnection,
    rows: &[AlertChange<'_>],
) -> Result<(), StoreError> {
    let mut c = AlertColumns::with_capacity(rows.len());
    for row in rows {
        let status = row.status();
        c.push(
            row.refreshed.as_ref().map(|(e, _)| e.as_ref()),
            row.refreshed_encoded,
            status.unwrap_or(AlertStatus::Triggered),
            true,
        )?;
        if status.is_none() {
            // Unchanged: COALESCE keeps the stored status.
            if let Some(last) = c.status.last_mut() {
                *last = None;
            }
        }
    }
    let runs = RunColumns::of(rows.iter().map(|r| r.run.as_ref()));
    let acked = acted_columns(rows.iter().map(|r| r.acknowledged));
    let resolved = acted_columns(rows.iter().map(|r| r.resolved));
    sqlx::query(
        "UPDATE alerts a SET
             event_count = a.event_count + v.n,
             summary = COALESCE(v.su, a.summary), severity = COALESCE(v.sev, a.severity),
             opened_summary = COALESCE(a.opened_summary,
                 CASE WHEN v.su <> a.summary THEN a.summary END),
             source = COALESCE(v.src, a.source), labels = COALESCE(v.lab::jsonb, a.labels),
             details = COALESCE(v.det::jsonb, a.details), links = COALESCE(v.lnk::jsonb, a.links),
             last_seen_at = COALESCE(v.ls, a.last_seen_at),
             status = COALESCE(v.st, a.status),
             acknowledged_at = COALESCE(v.aa, a.acknowledged_at),
             acknowledged_by = COALESCE(v.ab, a.acknowledged_by),
             resolved_at = COALESCE(v.ra, a.resolved_at),
             resolved_by = COALESCE(v.rb, a.resolved_by),
             dup_count = CASE WHEN v.rc THEN v.dc ELSE a.dup_count END,
             dup_first_at = CASE WHEN v.rc THEN v.df ELSE a.dup_first_at END,
             dup_last_at = CASE WHEN v.rc THEN v.dl ELSE a.dup_last_at END,
             dup_actor = CASE WHEN v.rc THEN v.da ELSE a.dup_actor END
           FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::timestamptz[], $10::text[], $11::timestamptz[],
                       $12::text[], $13::timestamptz[], $14::text[], $15::boolean[],
                       $16::bigint[], $17::timestamptz[], $18::timestamptz[], $19::text[])
                AS v(id, n, su, sev, src, lab, det, lnk, ls, st, aa, ab, ra, rb, rc, dc, df, dl, da)
          WHERE a.id = v.id",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.added_events).collect::<Vec<_>>())
    .bind(c.summary)
    .bind(c.severity)
    .bind(c.source)
    .bind(c.labels)
    .bind(c.details)
    .bind(c.links)
    .bind(
        rows.iter()
            .map(|r| r.refreshed.as_ref().map(|(_, at)| *at))
            .collect::<Vec<_>>(),
    )
    .bind(c.status)
    .bind(acked.0)
    .bind(acked.1)
    .bind(resolved.0)
    .bind(resolved.1)
    .bind(rows.iter().map(|r| r.run_changed).collect::<Vec<_>>())
    .bind(runs.count)
    .bind(runs.first_at)
    .bind(runs.last_at)
    .bind(runs.actor)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_timeline(
    conn: &mut PgConnection,
    entries: &[NewTimelineEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    // WITH ORDINALITY + ORDER BY: ids follow the batch's order, which is
    // the order the timeline is read back in.
    sqlx::query(
        "INSERT INTO alert_timeline (alert_id, at, kind, actor, message, data)
         SELECT alert_id, at, kind, actor, message, data::jsonb
           FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                       $6::text[]) WITH ORDINALITY
                AS v(alert_id, at, kind, actor, message, data, i)
          ORDER BY i",
    )
    .bind(entries.iter().map(|e| e.alert_id).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.at).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>())
    .bind(
        entries
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        entries
            .iter()
            .map(|e| e.data.as_ref().map(|d| d.to_string()))
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Timers for alerts that all have ids (a batch that opened none).
async fn open_escalations(
    conn: &mut PgConnection,
    rows: &[TimerRow<'_>],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO escalations (alert_id, policy_id, due_at, state)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::text[])
         ON CONFLICT (alert_id) DO NOTHING",
    )
    .bind(
        rows.iter()
            .map(|t| {
                t.alert_id.ok_or_else(|| {
                    StoreError::Corrupt("an escalation for a new alert without one".to_owned())
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    )
    .bind(
        rows.iter()
            .map(|t| t.escalation.policy_id)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|t| t.escalation.due_at).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|t| if t.escalation.done { "done" } else { "active" })
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn close_escalations(conn: &mut PgConnection, rows: &[Closing]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // The first closing of an alert cancels its pages; a second finds none left.
    let mut seen = HashSet::with_capacity(rows.len());
    let first: Vec<Closing> = rows
        .iter()
        .filter(|c| seen.insert(c.alert_id))
        .copied()
        .collect();
    let first_ids: Vec<i64> = first.iter().map(|c| c.alert_id).collect();
    sqlx::query(
        "UPDATE escalations SET state = 'done', lease_owner = NULL, lease_until = NULL
          WHERE alert_id = ANY($1)",
    )
    .bind(&first_ids)
    .execute(&mut *conn)
    .await?;
    // Sends in flight (leased) are left to finish: they are recorded as they
    // turn out, and a page delivered after the ack gets its own follow-up
    // (record_deliveries), so its room does not stay "firing".
    sqlx::query(
        "UPDATE notifications n SET status = 'canceled', updated_at = v.at
           FROM UNNEST($1::bigint[], $2::timestamptz[]) AS v(alert_id, at)
          WHERE n.alert_id = v.alert_id AND n.status IN ('pending', 'retry') AND NOT n.follow_up
            AND (n.lease_until IS NULL OR n.lease_until <= v.at)",
    )
    .bind(&first_ids)
    .bind(first.iter().map(|c| c.at).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO notifications (alert_id, fired, idempotency_key, channel, target,
             recipient, address, status, due_at, created_at, updated_at, follow_up, follows)
         SELECT n.alert_id, n.fired, n.idempotency_key || '/' || v.now, n.channel, n.target,
                n.recipient, n.address, 'pending', v.at, v.at, v.at, TRUE, n.provider_id
           FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[]) AS v(alert_id, at, now)
           JOIN notifications n ON n.alert_id = v.alert_id
          WHERE NOT n.follow_up AND n.status = 'delivered' AND (n.channel IN ('chat', 'email', 'sms')
                     OR (n.channel = 'pushover' AND n.provider_id IS NOT NULL))
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(rows.iter().map(|c| c.alert_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.at).collect::<Vec<_>>())
    .bind(rows.iter().map(|c| c.now.as_str()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An alert's event-derived columns as arrays, one element a row, for UNNEST.
struct AlertColumns {
    status: Vec<Option<&'static str>>,
    summary: Vec<Option<String>>,
    severity: Vec<Option<&'static str>>,
    source: Vec<Option<String>>,
    labels: Vec<Option<String>>,
    details: Vec<Option<String>>,
    links: Vec<Option<String>>,
}

impl AlertColumns {
    fn with_capacity(n: usize) -> Self {
        Self {
            status: Vec::with_capacity(n),
            summary: Vec::with_capacity(n),
            severity: Vec::with_capacity(n),
            source: Vec::with_capacity(n),
            labels: Vec::with_capacity(n),
            details: Vec::with_capacity(n),
            links: Vec::with_capacity(n),
        }
    }

    /// `keep_stored` (an update): an empty field is NULL, and the update's
    /// COALESCE keeps the stored value (see `Event::keeping_earlier`).
    fn push(
        &mut self,
        event: Option<&Event>,
        encoded: Option<&EventJson>,
        status: AlertStatus,
        keep_stored: bool,
    ) -> Result<(), StoreError> {
        self.status.push(Some(status.as_str()));
        let event = |keep: fn(&Event) -> bool| event.filter(|e| !keep_stored || keep(e));
        self.summary
            .push(event(|e| !e.summary.is_empty()).map(|e| e.summary.clone()));
        self.severity
            .push(event(|_| true).map(|e| e.severity.as_str()));
        self.source
            .push(event(|e| !e.source.is_empty()).map(|e| e.source.clone()));
        // Intake's own encoding where it made one (see `EventJson`).
        let json = event(|_| true)
            .map(|e| EventJson::or_encode(encoded, e))
            .transpose()?;
        let text = |keep: fn(&Event) -> bool, column: fn(&EventJson) -> &String| {
            json.as_ref()
                .filter(|_| event(keep).is_some())
                .map(|j| column(j).clone())
        };
        self.labels
            .push(text(|e| !e.labels.is_empty(), |j| &j.labels));
        self.details
            .push(text(|e| !is_empty_json(&e.details), |j| &j.details));
        self.links.push(text(|e| !e.links.is_empty(), |j| &j.links));
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

/// How many times a transaction is run in all when PostgreSQL keeps aborting
/// it to break deadlocks or serialization conflicts.
const CONFLICT_ATTEMPTS: u32 = 5;

/// Runs `transaction` (which begins and commits its own) again from the start
/// when PostgreSQL aborted it as the victim of a deadlock (SQLSTATE 40P01) or
/// a serialization failure (40001).
///
/// Either aborts the whole transaction, so running it again is safe; and with
/// several replicas they are a normal event, not a fault: an acknowledgement,
/// the engine and delivery reports lock the same alert, escalation and page
/// rows in orders that cannot all be made to agree. Without this, the loser
/// answered 500 to a person acknowledging, or dropped a round of delivery
/// outcomes until its lease ran out and the page went out twice.
async fn retrying<T, F, Fut>(mut transaction: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match transaction().await {
            Err(e) if attempt < CONFLICT_ATTEMPTS && is_conflict(&e) => {
                tracing::warn!(attempt, error = %e, "transaction lost a conflict; running it again");
                // 10, 20, 40, 80 ms: the winner usually needs only moments.
                tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// One batch of delivery outcomes in one transaction on `conn`, fenced on
/// each claim's lease token.
async fn record_deliveries_on(
    conn: &mut PgConnection,
    batch: &[(NotificationClaim, DeliveryRecord)],
) -> Result<Vec<bool>, StoreError> {
    let mut tx = conn.begin().await?;
    let rows = sqlx::query(
        "UPDATE notifications n
            SET status = v.status, attempt = n.attempt + v.added,
                due_at = COALESCE(v.retry_at, n.due_at),
                provider_id = COALESCE(v.provider_id, n.provider_id), last_error = v.error,
                updated_at = v.at, lease_owner = NULL, lease_until = NULL
           FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::int[], $5::timestamptz[],
                       $6::text[], $7::text[], $8::timestamptz[])
                AS v(id, token, status, added, retry_at, provider_id, error, at)
          WHERE n.id = v.id AND n.lease_token = v.token AND n.status IN ('pending', 'retry')
         RETURNING n.id",
    )
    .bind(batch.iter().map(|(c, _)| c.id).collect::<Vec<_>>())
    .bind(batch.iter().map(|(c, _)| c.token).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|(_, r)| r.status.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        batch
            .iter()
            .map(|(_, r)| i32::from(r.status == DeliveryStatus::Retry && r.count_attempt))
            .collect::<Vec<_>>(),
    )
    .bind(batch.iter().map(|(_, r)| r.retry_at).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|(_, r)| r.provider_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        batch
            .iter()
            .map(|(_, r)| r.error.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(batch.iter().map(|(_, r)| r.at).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut written = HashSet::with_capacity(rows.len());
    for row in rows {
        written.insert(row.try_get::<i64, _>("id")?);
    }
    let results = fenced_results(batch, written, |(claim, _)| claim.id);
    let won = || winners(batch, &results);
    // A failed send pulls its firing's next step forward to the earliest failure.
    let falls = fall_throughs(won());
    if !falls.is_empty() {
        sqlx::query(
            "UPDATE escalations e SET due_at = v.at
               FROM UNNEST($1::bigint[], $2::bigint[], $3::timestamptz[])
                    AS v(alert_id, fired, at)
              WHERE e.alert_id = v.alert_id AND e.state = 'active' AND e.fired = v.fired
                AND e.due_at > v.at",
        )
        .bind(falls.iter().map(|((a, _), _)| *a).collect::<Vec<_>>())
        .bind(falls.iter().map(|((_, f), _)| *f).collect::<Vec<_>>())
        .bind(falls.iter().map(|(_, at)| *at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    insert_timeline(&mut tx, &delivery_timeline(won())).await?;
    // A page delivered after its alert was acknowledged or resolved (the
    // ack raced the send) missed close_escalation's follow-ups: queue its
    // own, or that room keeps showing the alert as firing.
    let late = late_follow_up_candidates(won());
    if let Some(at) = late.iter().map(|(_, at)| *at).max() {
        sqlx::query(
            "INSERT INTO notifications (alert_id, fired, idempotency_key, channel, target,
                 recipient, address, status, due_at, created_at, updated_at, follow_up,
                 follows)
             SELECT n.alert_id, n.fired, n.idempotency_key || '/' || a.status, n.channel,
                    n.target, n.recipient, n.address, 'pending', $2, $2, $2, TRUE,
                    n.provider_id
               FROM notifications n JOIN alerts a ON a.id = n.alert_id
              WHERE a.status <> 'triggered' AND n.status = 'delivered' AND NOT n.follow_up
                AND n.id = ANY($1)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(late.iter().map(|(id, _)| *id).collect::<Vec<i64>>())
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(results)
}

/// One intake batch in one transaction on `conn`, applied again (up to
/// `RACE_ATTEMPTS`) when another replica opened one of its keys meanwhile.
///
/// `begun` is a view's [`Own::begun`]: there the commit begins the next
/// batch's transaction in the same round trip, and a batch finds its own
/// begun already. On a pool connection (`None`) the transaction is plain.
/// On an error the caller drops the connection, whatever state it is in.
async fn ingest_on(
    conn: &mut PgConnection,
    begun: Option<&mut bool>,
    batch: &[Ingest],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let Some(begun) = begun else {
        // sqlx's transaction, not statements of our own: dropped after an
        // error it rolls back before the connection returns to the pool.
        for _ in 0..apply::RACE_ATTEMPTS {
            let mut tx = conn.begin_with(ASYNC_COMMIT).await?;
            if let Ok(outcomes) = apply::ingest(&mut *tx, batch).await? {
                tx.commit().await?;
                return Ok(outcomes);
            }
            tx.rollback().await?;
        }
        return Err(StoreError::Contended);
    };
    for _ in 0..apply::RACE_ATTEMPTS {
        if !*begun {
            simple(&mut *conn, ASYNC_COMMIT).await?;
            *begun = true;
        }
        let applied = apply::ingest(&mut *conn, batch).await?;
        // Whatever comes next ends this transaction.
        *begun = false;
        if let Ok(outcomes) = applied {
            simple(&mut *conn, COMMIT_AND_BEGIN).await?;
            *begun = true;
            return Ok(outcomes);
        }
        simple(&mut *conn, "ROLLBACK").await?;
    }
    Err(StoreError::Contended)
}

/// Statements sent as one simple query (several in one round trip, no
/// parameters).
async fn simple(conn: &mut PgConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sql).await?;
    Ok(())
}

fn is_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(sqlx::Error::Database(db))
        if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

fn lease_delta(lease: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::hours(1))
}
