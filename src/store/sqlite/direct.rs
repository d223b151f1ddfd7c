//! Intake batches and acknowledgements on a writer connection of their own,
//! outside sqlx.
//!
//! sqlx-sqlite runs each connection on a worker thread and hands every query
//! and its rows over a channel. The group-commit writer has a thread of its
//! own, so for its batches those hand-offs were pure cost. Here the batch
//! runs on the calling thread through `rusqlite`, on a connection that keeps
//! its prepared statements from batch to batch: SQLite parsed a multi-row
//! statement for about as long as it ran it, so preparing per batch cost as
//! much as the writes.
//!
//! Multi-row statements, because SQLite pays per statement for the CHECK on
//! `alerts.status` (its IN list becomes a temporary table), the AUTOINCREMENT
//! counter and the statement journal; row counts are split into powers of two
//! so that a few cached statements serve every batch size.
//!
//! This connection and sqlx's writer connection share SQLite's one write lock.
//! Both take it at `BEGIN IMMEDIATE` (sqlx's through `begin_with`), so a
//! transaction never fails halfway on a lock the other took after it read;
//! whichever comes second waits in SQLite's busy handler (5 s at most).
//!
//! It also keeps every open alert's key in memory, instead of the partial
//! unique index SQLite searched and updated for each event (`open_keys.rs`).
//!
//! The work is synchronous. The group-commit writer's own thread runs it in
//! place; a multi-threaded runtime runs it under
//! [`tokio::task::block_in_place`], so an occasional checkpoint inside a
//! commit does not stall that worker's other tasks; a shared current-thread
//! runtime (tests') hands it to a blocking thread (see `SqliteStore::direct`).

use std::collections::HashSet;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use sqlx::sqlite::SqliteConnectOptions;

use super::super::apply::{
    self, AlertChange, BatchWrites, Closing, FoundAlert, Known, Lookup, NewAlert,
};
use super::super::{Act, EventJson, Ingest, IngestOutcome, StoreError};
use super::open_keys::OpenKeys;
use super::{duplicate_run, is_empty_json, parse_status};
use crate::alert::{Decision, DuplicateRun};

/// Largest rows per multi-row statement; batches are split into powers of two.
const MAX_ROWS: usize = 512;

/// The direct writer's connection, and what it knows of the open keys.
pub(super) struct Writer {
    db: Connection,
    /// `None` until a batch loads it, and again after a batch that failed.
    open: Option<OpenKeys>,
}

/// Opens the direct writer on the database `options` names, with the same
/// settings as sqlx's writer (see `SqliteStore::open`).
pub(super) fn open(options: &SqliteConnectOptions) -> Result<Writer, StoreError> {
    let name = options.get_filename().to_string_lossy().into_owned();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // sqlx names an in-memory database `file:sqlx-in-memory-N`, shared by
    // its connections through the shared cache; join it the same way.
    let db = if name.starts_with("file:sqlx-in-memory-") {
        Connection::open_with_flags(
            format!("{name}?mode=memory&cache=shared"),
            flags | OpenFlags::SQLITE_OPEN_SHARED_CACHE,
        )?
    } else {
        Connection::open_with_flags(&name, flags)?
    };
    db.busy_timeout(Duration::from_secs(5))?;
    // Foreign keys off on this connection only: it writes escalations and
    // timeline rows for alerts of its own transaction or ones it has just
    // read, and never deletes, so the checks found nothing and cost 2,900
    // instructions of a new alert's 52,200 (`benches/store_writes.sh`).
    // Every other connection keeps them on, with their cascades.
    // CHECK constraints too: every value this connection writes into a
    // checked column is an enum's `as_str` or a literal in its SQL, and a
    // three-value `IN` check cost each statement a temporary b-tree (an
    // alert in batches of one: 123,300 -> 101,900 instructions; of 100:
    // 39,100 -> 33,400). `store::what_the_sqlite_writer_writes_satisfies_every_check`
    // holds its rows to the checks with `integrity_check`.
    db.execute_batch(
        "PRAGMA foreign_keys = OFF;
         PRAGMA ignore_check_constraints = ON;
         PRAGMA synchronous = NORMAL;
         PRAGMA mmap_size = 268435456;
         PRAGMA cache_size = -16384;
         PRAGMA temp_store = memory;",
    )?;
    // Every power of two up to MAX_ROWS for each multi-row statement, and
    // the single-row ones.
    db.set_prepared_statement_cache_capacity(64);
    Ok(Writer { db, open: None })
}

/// One transaction at a time on the direct writer. Dropped while one is
/// open (a failed statement, a panic), it rolls back.
pub(super) struct Direct<'c> {
    db: &'c mut Connection,
    open: &'c mut Option<OpenKeys>,
}

impl<'c> Direct<'c> {
    pub fn on(writer: &'c mut Writer) -> Self {
        Self {
            db: &mut writer.db,
            open: &mut writer.open,
        }
    }

    /// The open keys, out of their place until the caller's batch has
    /// committed: a batch that fails drops them (see `open_keys.rs`).
    fn take_open_keys(&mut self) -> Result<OpenKeys, StoreError> {
        match self.open.take() {
            Some(open) => Ok(open),
            None => OpenKeys::load(self.db),
        }
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if !self.db.is_autocommit() {
            // Only a rollback that failed leaves one open; do not write into it.
            tracing::warn!("the writer connection was left in a transaction; rolling it back");
            self.db.execute_batch("ROLLBACK")?;
        }
        // IMMEDIATE: the write lock is taken with the read, so nothing commits
        // between what a batch read and what it writes (see `write`).
        // Cached like every other statement: parsing BEGIN and COMMIT anew
        // cost ~11,000 instructions a commit (callgrind, batches of one).
        self.db.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.db.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }

    /// Applies an intake batch and commits it (durable at the next sync).
    pub fn ingest(&mut self, batch: &[Ingest]) -> Result<Vec<IngestOutcome>, StoreError> {
        let lookup = Lookup::of(batch);
        self.begin()?;
        let mut open = self.take_open_keys()?;
        let known = self.read(&open, &lookup)?;
        let replayed = apply::replay(batch, &lookup, known)?;
        let ids = self.write(&replayed.writes)?;
        self.commit()?;
        settle(&mut open, &lookup, &replayed.writes, &ids);
        *self.open = Some(open);
        replayed.outcomes(&ids)
    }

    /// Acknowledges or resolves one alert and commits; `Ok(None)` when there
    /// is no such alert, with nothing committed.
    pub fn act(&mut self, act: &Act) -> Result<Option<Decision>, StoreError> {
        self.begin()?;
        // Not loaded for an act: none held means the next batch loads them
        // from the table, this act's write included.
        let mut open = self.open.take();
        let found = self.alert_by_id(act.alert_id)?;
        let key = found
            .as_ref()
            .filter(|_| open.is_some())
            .map(|f| (f.service_id.clone(), f.dedup_key.clone()));
        let Some((decision, writes)) = apply::act_writes(act, found) else {
            // Nothing written: the keys are as they were.
            *self.open = open;
            return Ok(None);
        };
        self.write(&writes)?;
        self.commit()?;
        if let (Some(open), Some((service, key))) = (open.as_mut(), key) {
            if writes.changes.iter().any(|c| c.resolved.is_some()) {
                open.close(&service, &key, act.alert_id);
            }
        }
        *self.open = open;
        Ok(Some(decision))
    }

    fn read(&mut self, open: &OpenKeys, lookup: &Lookup<'_>) -> Result<Known, StoreError> {
        let mut known = Known::default();
        {
            // By id: a key `open` does not name has no open alert. A row
            // that is gone or resolved (by hand, behind the writer) is none
            // either; alert ids are never reused (AUTOINCREMENT).
            let mut by_id = self.db.prepare_cached(&format!(
                "SELECT {FOUND_COLUMNS} FROM alerts WHERE id = ?1 AND status <> 'resolved'"
            ))?;
            for (service, key) in &lookup.keys {
                let Some(id) = open.get(service, key) else {
                    continue;
                };
                if let Some(row) = by_id.query_row([id], found_row).optional()? {
                    // The key is the one asked: not read back from the row.
                    let (service, key) = ((*service).to_owned(), (*key).to_owned());
                    known.found.push(found_alert(row, service, key)?);
                }
            }
        }
        let mut count = self
            .db
            .prepare_cached("SELECT open_count FROM service_open_alerts WHERE service_id = ?1")?;
        for service in &lookup.services {
            if let Some(n) = count
                .query_row([service], |r| r.get::<_, i64>(0))
                .optional()?
            {
                known
                    .counts
                    .insert((*service).to_owned(), u64::try_from(n).unwrap_or(0));
            }
        }
        Ok(known)
    }

    fn alert_by_id(&mut self, alert_id: i64) -> Result<Option<FoundAlert>, StoreError> {
        self.db
            .prepare_cached(&format!(
                "SELECT {FOUND_COLUMNS}, service_id, dedup_key FROM alerts WHERE id = ?1"
            ))?
            .query_row([alert_id], |r| Ok((found_row(r)?, r.get(6)?, r.get(7)?)))
            .optional()?
            .map(|(row, service_id, dedup_key)| found_alert(row, service_id, dedup_key))
            .transpose()
    }

    /// Writes a batch's end state inside the open transaction; returns the
    /// ids of `writes.new_alerts` in their order. The write lock has been
    /// held since the read, so a new alert's key cannot have been opened by
    /// anyone else meanwhile.
    fn write(&mut self, writes: &BatchWrites<'_>) -> Result<Vec<i64>, StoreError> {
        // Changes first: they touch only alerts that were open before the
        // batch, and one resolved here frees its key for a new alert below
        // (resolve then trigger of one key in one batch).
        self.update_alerts(&writes.changes)?;
        // In one pass over `new_alerts`: its generations (see `BatchWrites`)
        // are in order, and a key's earlier alert in them is already closed.
        insert_rows(
            self.db,
            "INSERT INTO alerts (service_id, dedup_key, status, summary, severity, source,
                 urgency, policy_id, labels, details, links, event_count, created_at,
                 last_seen_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by,
                 dup_count, dup_first_at, dup_last_at, dup_actor, opened_by, opened_summary)",
            24,
            &writes.new_alerts,
            bind_alert,
        )?;
        // One writer, holding the write lock since the read: the new rows got
        // consecutive ids in order, ending at the last insert's.
        let n = i64::try_from(writes.new_alerts.len()).unwrap_or(i64::MAX);
        let last = self.db.last_insert_rowid();
        let ids: Vec<i64> = if n == 0 {
            Vec::new()
        } else {
            ((last - n + 1)..=last).collect()
        };
        self.count_opened(&writes.new_alerts)?;
        insert_rows(
            self.db,
            "INSERT OR IGNORE INTO escalations (alert_id, policy_id, due_at, state)",
            4,
            &writes.escalations,
            |b, e| {
                b.bind(e.alert.resolve(&ids)?)?;
                b.bind(e.policy_id)?;
                b.bind(e.due_at.timestamp_millis())?;
                b.bind(if e.done { "done" } else { "active" })
            },
        )?;
        self.close_escalations(&writes.closings)?;
        insert_rows(
            self.db,
            "INSERT INTO alert_timeline (alert_id, at, kind, actor, message, data)",
            6,
            &writes.timeline,
            |b, (alert, e)| {
                b.bind(alert.resolve(&ids)?)?;
                b.bind(e.at.timestamp_millis())?;
                b.bind(e.kind.as_str())?;
                b.bind(e.actor.as_str())?;
                b.bind(e.message.as_str())?;
                b.bind(e.data.as_ref().map(|d| d.to_string()))
            },
        )?;
        Ok(ids)
    }

    /// Adds the batch's new open alerts to their services' open counts
    /// (what the `alerts_count_insert` trigger did per row until
    /// migration 20261202000010).
    fn count_opened(&mut self, rows: &[NewAlert<'_>]) -> Result<(), StoreError> {
        let mut opened: Vec<(&str, i64)> = Vec::new();
        for row in rows.iter().filter(|r| r.status.is_open()) {
            match opened.iter_mut().find(|(s, _)| *s == row.service_id) {
                Some((_, n)) => *n += 1,
                None => opened.push((row.service_id, 1)),
            }
        }
        let mut add = self.db.prepare_cached(
            "INSERT INTO service_open_alerts (service_id, open_count) VALUES (?1, ?2)
             ON CONFLICT (service_id) DO UPDATE SET open_count = open_count + excluded.open_count",
        )?;
        for (service, n) in opened {
            add.execute(params![service, n])?;
        }
        Ok(())
    }

    /// Two statements, so a refresh leaves the status columns alone: SQLite
    /// rewrites the entries of every index over a column named in `SET`, even
    /// when its value does not change, and a duplicate would otherwise dirty a
    /// random page of both status indexes on top of its own row.
    fn update_alerts(&mut self, rows: &[AlertChange<'_>]) -> Result<(), StoreError> {
        let mut refresh = self.db.prepare_cached(
            "UPDATE alerts SET
                 event_count = event_count + ?2,
                 summary = COALESCE(?3, summary), severity = COALESCE(?4, severity),
                 opened_summary = COALESCE(opened_summary, CASE WHEN ?3 <> summary THEN summary END),
                 source = COALESCE(?5, source), labels = COALESCE(?6, labels),
                 details = COALESCE(?7, details), links = COALESCE(?8, links),
                 last_seen_at = COALESCE(?9, last_seen_at),
                 dup_count = ?10, dup_first_at = ?11, dup_last_at = ?12, dup_actor = ?13
             WHERE id = ?1",
        )?;
        for row in rows.iter().filter(|r| r.added_events > 0 || r.run_changed) {
            let event = row.refreshed.as_ref().map(|(e, _)| e);
            // An empty field binds NULL, and COALESCE keeps the stored value.
            let json = event
                .map(|e| EventJson::or_encode(row.refreshed_encoded, e).map(|j| (e, j)))
                .transpose()?;
            let (labels, details, links) = match &json {
                Some((e, j)) => (
                    (!e.labels.is_empty()).then_some(j.labels.as_str()),
                    (!is_empty_json(&e.details)).then_some(j.details.as_str()),
                    (!e.links.is_empty()).then_some(j.links.as_str()),
                ),
                None => (None, None, None),
            };
            let (count, first, last, actor) = run_columns(row.run.as_ref());
            refresh.execute(params![
                row.id,
                row.added_events,
                event.map(|e| e.summary.as_str()).filter(|s| !s.is_empty()),
                event.map(|e| e.severity.as_str()),
                event.map(|e| e.source.as_str()).filter(|s| !s.is_empty()),
                labels,
                details,
                links,
                row.refreshed.as_ref().map(|(_, at)| at.timestamp_millis()),
                count,
                first,
                last,
                actor,
            ])?;
        }
        let mut close = self.db.prepare_cached(
            "UPDATE alerts SET status = ?2,
                 acknowledged_at = COALESCE(?3, acknowledged_at),
                 acknowledged_by = COALESCE(?4, acknowledged_by),
                 resolved_at = COALESCE(?5, resolved_at),
                 resolved_by = COALESCE(?6, resolved_by)
             WHERE id = ?1",
        )?;
        for row in rows {
            let Some(status) = row.status() else {
                continue;
            };
            close.execute(params![
                row.id,
                status.as_str(),
                row.acknowledged.map(|(at, _)| at.timestamp_millis()),
                row.acknowledged.map(|(_, by)| by),
                row.resolved.map(|(at, _)| at.timestamp_millis()),
                row.resolved.map(|(_, by)| by),
            ])?;
        }
        Ok(())
    }

    /// Stops each alert's escalation, cancels its unsent pages and queues a
    /// follow-up for every chat message and mail already delivered about it, so
    /// no room keeps showing it as firing. An alert may close twice in a batch
    /// (acknowledged, then resolved): each closing queues its own follow-ups,
    /// and the first has already canceled every page.
    fn close_escalations(&mut self, rows: &[Closing]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut stop = self.db.prepare_cached(
            "UPDATE escalations SET state = 'done', lease_owner = NULL, lease_until = NULL
              WHERE alert_id = ?1",
        )?;
        // Sends in flight (leased) are left to finish: they are recorded as
        // they turn out, and a page delivered after the ack gets its own
        // follow-up (record_deliveries), so its room does not stay "firing".
        let mut cancel = self.db.prepare_cached(
            "UPDATE notifications SET status = 'canceled', updated_at = ?2
              WHERE alert_id = ?1 AND status IN ('pending', 'retry') AND follow_up = 0
                AND (lease_until IS NULL OR lease_until <= ?2)",
        )?;
        let mut seen = HashSet::with_capacity(rows.len());
        for c in rows.iter().filter(|c| seen.insert(c.alert_id)) {
            stop.execute([c.alert_id])?;
            cancel.execute(params![c.alert_id, c.at.timestamp_millis()])?;
        }
        let mut follow_up = self.db.prepare_cached(
            "INSERT OR IGNORE INTO notifications (alert_id, fired, idempotency_key, channel, target,
                 recipient, address, status, due_at, created_at, updated_at, follow_up, follows)
             SELECT n.alert_id, n.fired, n.idempotency_key || '/' || ?3, n.channel, n.target,
                    n.recipient, n.address, 'pending', ?2, ?2, ?2, 1, n.provider_id
               FROM notifications n
              WHERE n.alert_id = ?1 AND n.follow_up = 0 AND n.status = 'delivered'
                AND (n.channel IN ('chat', 'email', 'sms')
                     OR (n.channel = 'pushover' AND n.provider_id IS NOT NULL))",
        )?;
        for c in rows {
            follow_up.execute(params![c.alert_id, c.at.timestamp_millis(), c.now.as_str()])?;
        }
        Ok(())
    }
}

impl Drop for Direct<'_> {
    fn drop(&mut self) {
        if !self.db.is_autocommit() {
            // A failed rollback leaves the transaction open; the next
            // `begin` finds it and tries again.
            if let Err(err) = self.db.execute_batch("ROLLBACK") {
                tracing::warn!(error = %err, "rollback of a write batch failed");
            }
        }
    }
}

/// What a committed batch did to the open keys: the alerts it resolved give
/// theirs up, then its new alerts that are still open take theirs.
fn settle(open: &mut OpenKeys, lookup: &Lookup<'_>, writes: &BatchWrites<'_>, ids: &[i64]) {
    let resolved: HashSet<i64> = writes
        .changes
        .iter()
        .filter(|c| c.resolved.is_some())
        .map(|c| c.id)
        .collect();
    if !resolved.is_empty() {
        // Every changed alert was found by one of the batch's keys.
        for (service, key) in &lookup.keys {
            if let Some(id) = open.get(service, key).filter(|id| resolved.contains(id)) {
                open.close(service, key, id);
            }
        }
    }
    for (row, id) in writes.new_alerts.iter().zip(ids) {
        if row.status.is_open() {
            open.open(row.service_id, row.dedup_key, *id);
        }
    }
}

fn bind_alert(b: &mut Binder<'_, '_>, row: &NewAlert<'_>) -> Result<(), StoreError> {
    let (count, first, last, actor) = run_columns(row.run.as_ref());
    b.bind(row.service_id)?;
    b.bind(row.dedup_key)?;
    b.bind(row.status.as_str())?;
    b.bind(row.event.summary.as_str())?;
    b.bind(row.event.severity.as_str())?;
    b.bind(row.event.source.as_str())?;
    b.bind(row.urgency.as_str())?;
    b.bind(row.policy_id)?;
    // Intake's own encoding where it made one (see `EventJson`).
    let json = EventJson::or_encode(row.encoded, &row.event)?;
    b.bind(json.labels.as_str())?;
    b.bind(json.details.as_str())?;
    b.bind(json.links.as_str())?;
    b.bind(row.event_count)?;
    b.bind(row.created_at.timestamp_millis())?;
    b.bind(row.last_seen_at.timestamp_millis())?;
    b.bind(row.acknowledged.map(|(at, _)| at.timestamp_millis()))?;
    b.bind(row.acknowledged.map(|(_, by)| by))?;
    b.bind(row.resolved.map(|(at, _)| at.timestamp_millis()))?;
    b.bind(row.resolved.map(|(_, by)| by))?;
    b.bind(count)?;
    b.bind(first)?;
    b.bind(last)?;
    b.bind(actor)?;
    b.bind(row.opened_by)?;
    b.bind(row.opened_summary.as_deref())
}

/// `rows` split into runs whose lengths are powers of two, largest first,
/// none over [`MAX_ROWS`]: each length is one cached statement.
fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let len = rows.len().min(MAX_ROWS);
        if len == 0 {
            return None;
        }
        let n = 1 << (usize::BITS - 1 - len.leading_zeros());
        let (chunk, rest) = rows.split_at(n);
        rows = rest;
        Some(chunk)
    })
}

/// Inserts `rows` with `head VALUES (…), …`, `columns` values a row bound
/// by `bind`, one cached statement per run of [`chunks`].
fn insert_rows<T>(
    db: &Connection,
    head: &str,
    columns: usize,
    rows: &[T],
    mut bind: impl FnMut(&mut Binder<'_, '_>, &T) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let row = format!("({}?)", "?, ".repeat(columns.saturating_sub(1)));
    for chunk in chunks(rows) {
        let mut sql = String::with_capacity(head.len() + chunk.len() * (row.len() + 2) + 8);
        sql.push_str(head);
        sql.push_str(" VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&row);
        }
        let mut insert = db.prepare_cached(&sql)?;
        let mut b = Binder::new(&mut insert);
        for r in chunk {
            bind(&mut b, r)?;
        }
        insert.raw_execute()?;
    }
    Ok(())
}

/// What [`found_row`] reads of an alert a write refers to (its key aside).
const FOUND_COLUMNS: &str = "id, status, dup_count, dup_first_at, dup_last_at, dup_actor";

type FoundRow = (i64, String, i64, Option<i64>, Option<i64>, Option<String>);

fn found_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FoundRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn found_alert(
    (id, status, count, first, last, actor): FoundRow,
    service_id: String,
    dedup_key: String,
) -> Result<FoundAlert, StoreError> {
    Ok(FoundAlert {
        id,
        status: parse_status(&status)?,
        service_id,
        dedup_key,
        run: duplicate_run(count, first, last, actor)?,
    })
}

/// Binds a multi-row statement's anonymous parameters in order.
struct Binder<'s, 'c> {
    statement: &'s mut rusqlite::Statement<'c>,
    next: usize,
}

impl<'s, 'c> Binder<'s, 'c> {
    fn new(statement: &'s mut rusqlite::Statement<'c>) -> Self {
        Self { statement, next: 1 }
    }

    fn bind<T: rusqlite::ToSql>(&mut self, value: T) -> Result<(), StoreError> {
        self.statement.raw_bind_parameter(self.next, value)?;
        self.next += 1;
        Ok(())
    }
}

/// A run of duplicates as the four `dup_` columns (count 0: none).
fn run_columns(run: Option<&DuplicateRun>) -> (i64, Option<i64>, Option<i64>, Option<&str>) {
    (
        run.map_or(0, |r| r.count),
        run.map(|r| r.first_at.timestamp_millis()),
        run.map(|r| r.last_at.timestamp_millis()),
        run.map(|r| r.actor.as_str()),
    )
}
