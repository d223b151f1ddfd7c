//! Durable state behind one trait, with two implementations: SQLite (the
//! embedded default, one process owns the file) and PostgreSQL (several
//! replicas share it).
//!
//! The rules of what happens to an alert live in [`crate::alert::lifecycle`];
//! a store only reads the state a decision needs and writes its result, in one
//! transaction per batch so that group commit (see [`group_commit`]) turns many
//! concurrent requests into one fsync.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alert::{
    Action, Alert, AlertStatus, Decision, DuplicateRun, Event, TimelineEntry, TimelineKind, Urgency,
};
use crate::channel::{ChannelKind, Recipient};
use crate::escalation::plan::Cursor;
use crate::escalation::test_page::{Method, TestPageResult};

mod apply;
pub mod feed;
pub mod group_commit;
pub mod inbound;
pub mod postgres;
pub mod push;
pub mod silence;
pub mod sms;
pub mod sqlite;
pub mod stats;
pub mod watch;

pub use feed::FeedBook;
pub use inbound::InboundBook;
pub use push::{PushBook, PushPage};
pub use silence::SilenceBook;
pub use sms::SmsBook;
pub use stats::StatsBook;
pub use watch::WatchBook;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From SQLite's direct writer (`sqlite/direct.rs`, rusqlite).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    /// Other writers kept opening alerts for the keys of a batch while it was
    /// being applied (PostgreSQL with several replicas); the batch was rolled back.
    #[error("concurrent writers kept conflicting with this batch")]
    Contended,
    /// A commit could not be made durable (the disk refused a sync).
    #[error("could not sync to disk: {0}")]
    Io(String),
}

thread_local! {
    static WRITER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as one that runs nothing but store writes (a group
/// commit writer's): a store may block it on the database. Until the guard
/// goes: the thread is tokio's blocking pool's, and runs other work after.
pub(crate) fn mark_writer_thread() -> WriterThread {
    WRITER_THREAD.with(|w| w.set(true));
    WriterThread(std::marker::PhantomData)
}

/// Clears [`mark_writer_thread`]'s mark when dropped; not `Send`, so it is
/// dropped on the thread it marked.
pub(crate) struct WriterThread(std::marker::PhantomData<*const ()>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        WRITER_THREAD.with(|w| w.set(false));
    }
}

/// Whether [`mark_writer_thread`] was called on this thread.
pub(crate) fn on_writer_thread() -> bool {
    WRITER_THREAD.with(|w| w.get())
}

impl StoreError {
    /// The database cannot be reached right now (down, restarting, refusing
    /// connections, every connection busy): nothing was stored, and the same
    /// request later may well succeed. Intake answers these 503 with
    /// `Retry-After`, not 500.
    pub fn is_unavailable(&self) -> bool {
        if let StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) = self {
            // Busy or locked past the busy timeout (the direct writer).
            return matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            );
        }
        let StoreError::Database(e) = self else {
            return matches!(self, StoreError::Closed);
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                matches!(
                    code.as_ref(),
                    // PostgreSQL: connection exceptions (08…), admin or crash
                    // shutdown, cannot connect now (57P0x), too many
                    // connections (53300), and a database not accepting
                    // connections (55000, `ALLOW_CONNECTIONS false`).
                    "08000" | "08001" | "08003" | "08004" | "08006" | "57P01" | "57P02"
                        | "57P03" | "53300" | "55000"
                        // SQLite: busy or locked past the busy timeout.
                        | "5" | "6" | "261" | "517"
                )
            }),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One accepted event, already routed to its service, ready to be applied.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub service_id: String,
    /// `alertmanager:prometheus`: the intake kind and the integration's name,
    /// recorded as the actor of the timeline entry.
    pub actor: String,
    pub policy_id: Option<String>,
    pub urgency: Urgency,
    /// The event's key, or one generated for a trigger that came without.
    pub dedup_key: String,
    pub event: Event,
    pub received_at: DateTime<Utc>,
    pub storm_threshold: u64,
    /// When the first escalation step is due if this event opens an alert;
    /// `None` opens it without escalating.
    pub first_step_due: Option<DateTime<Utc>>,
    /// The event's JSON columns encoded ahead, where the producer can afford
    /// it ([`EventJson::of`]); `None` has the store encode them as it writes.
    pub encoded: Option<EventJson>,
}

/// An event's labels, details and links as the JSON text both stores keep.
///
/// Intake encodes them on its HTTP worker before the event joins a group
/// commit: encoding on the writer's thread, the one serial stage, took ~7%
/// of its time with 100-alert webhooks (perf), while the workers idled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventJson {
    pub labels: String,
    pub details: String,
    pub links: String,
}

impl EventJson {
    pub fn of(event: &Event) -> Result<Self, StoreError> {
        Ok(Self {
            labels: to_json(&event.labels)?,
            details: to_json(&event.details)?,
            links: to_json(&event.links)?,
        })
    }

    /// `encoded` when there is one, else `event` encoded now (an event
    /// merged within a batch, or a producer that did not encode ahead).
    pub(crate) fn or_encode<'e>(
        encoded: Option<&'e EventJson>,
        event: &Event,
    ) -> Result<std::borrow::Cow<'e, EventJson>, StoreError> {
        match encoded {
            Some(json) => Ok(std::borrow::Cow::Borrowed(json)),
            None => Self::of(event).map(std::borrow::Cow::Owned),
        }
    }
}

/// A value as the JSON text of a column.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("json encode: {e}")))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// The alert the event landed on (the storm alert when folded); `None` when
    /// an acknowledge/resolve found nothing open.
    pub alert_id: Option<i64>,
    #[serde(skip)]
    pub decision: Decision,
}

/// A person or script acting on one alert by id.
#[derive(Debug, Clone)]
pub struct Act {
    pub alert_id: i64,
    pub action: Action,
    /// A person id when the actor is known to the configuration.
    pub actor: String,
    pub via: Via,
    pub at: DateTime<Utc>,
}

/// How someone acted on an alert; the timeline records it next to who.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Api,
    Link,
    Sms,
    Voice,
    Slack,
    /// Acknowledged in the Pushover app (its callback, or a receipt poll).
    Pushover,
    /// An ntfy notification's acknowledge button.
    Ntfy,
    /// A logged-in person's button in the web UI.
    Web,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Link => "link",
            Via::Sms => "sms",
            Via::Voice => "voice",
            Via::Slack => "slack",
            Via::Pushover => "pushover",
            Via::Ntfy => "ntfy",
            Via::Web => "web",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub service_id: Option<String>,
    pub statuses: Vec<AlertStatus>,
    /// Only alerts with an id below this one (keyset pagination, newest first).
    pub before_id: Option<i64>,
    pub limit: u32,
    /// Any of these severities; empty means all.
    pub severities: Vec<crate::alert::Severity>,
    /// Case-insensitive substring of the summary or the dedup key.
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heartbeat {
    pub service_id: String,
    pub name: String,
    pub last_ping_at: DateTime<Utc>,
    pub ping_count: i64,
}

/// An escalation claimed by one engine until `lease` runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationClaim {
    pub alert_id: i64,
    pub policy_id: String,
    pub cursor: Cursor,
    /// Steps fired before this one.
    pub fired: i64,
    /// When the step was due (lateness = claim time − this).
    pub due_at: DateTime<Utc>,
    /// Fencing token: a completion with a stale token is refused.
    pub token: i64,
}

/// What firing a step wrote: the notifications to send and the next step.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub at: DateTime<Utc>,
    pub deliveries: Vec<NewNotification>,
    pub notes: Vec<(TimelineKind, String)>,
    /// `None` ends the escalation.
    pub next: Option<(Cursor, DateTime<Utc>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub idempotency_key: String,
    pub channel: ChannelKind,
    pub target: String,
    pub recipient: Recipient,
    /// Due this long after the step fired (a personal rule's `after`).
    pub delay: chrono::TimeDelta,
}

/// What the idempotency key of a page from a personal rule contains: such
/// pages stop when the policy's next step fires.
pub const RULE_KEY_MARK: &str = "/rule-";

/// A notification claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationClaim {
    pub id: i64,
    pub alert_id: i64,
    /// The firing that created it, so a failure can pull the next step forward.
    pub fired: i64,
    pub idempotency_key: String,
    pub channel: ChannelKind,
    pub target: String,
    pub recipient: Recipient,
    pub attempt: u32,
    pub token: i64,
    /// `Some(previous provider id)` for a follow-up that updates an earlier
    /// message (the id may be unknown: `Some(None)`); `None` for a page.
    pub follow_up: Option<Option<String>>,
}

/// A sent page as a provider's callback finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPage {
    pub notification_id: i64,
    pub alert_id: i64,
    pub channel: ChannelKind,
    pub idempotency_key: String,
}

/// What a breakthrough call's idempotency key ends with: one per page.
pub const BREAKTHROUGH_SUFFIX: &str = "/breakthrough";

impl ProviderPage {
    /// Whether this page is itself a breakthrough call (which gets none).
    pub fn is_breakthrough(&self) -> bool {
        self.idempotency_key.ends_with(BREAKTHROUGH_SUFFIX)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Retry,
    Delivered,
    Failed,
    Unknown,
    Canceled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retry => "retry",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Unknown => "unknown",
            DeliveryStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Retry,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
            DeliveryStatus::Unknown,
            DeliveryStatus::Canceled,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// The outcome of one send, as recorded.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub at: DateTime<Utc>,
    pub status: DeliveryStatus,
    pub provider_id: Option<String>,
    pub error: Option<String>,
    /// For `Retry`: when to try again.
    pub retry_at: Option<DateTime<Utc>>,
    /// Fire the alert's next step now instead of waiting out its delay.
    pub fall_through: bool,
    /// Whether this was an attempt (false when a rate cap held the send back).
    pub count_attempt: bool,
    pub message: String,
}

/// A notification as stored, for the API and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationRow {
    pub id: i64,
    pub alert_id: i64,
    pub idempotency_key: String,
    pub channel: ChannelKind,
    pub target: String,
    pub recipient: Recipient,
    pub attempt: u32,
    pub status: DeliveryStatus,
    pub due_at: DateTime<Utc>,
    pub provider_id: Option<String>,
    pub last_error: Option<String>,
}

#[async_trait]
pub trait Store:
    SmsBook
    + PushBook
    + WatchBook
    + SilenceBook
    + InboundBook
    + StatsBook
    + FeedBook
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn close(&self);

    /// The store as one of group commit's threads uses it. Each runs a
    /// runtime of its own, and a socket opened there is bound to that
    /// runtime: it stalls while the thread is busy and fails for good once
    /// the thread ends. So whatever such a thread connects with must stay
    /// its own, never go back to a pool that serves everyone else: intake's
    /// writer ends first at shutdown, and the deliveries' writer, handed one
    /// of its pool connections mid-commit, lost the record of a page it had
    /// sent (`chaos::rolling` paged twice). PostgreSQL answers with a view
    /// that opens its own connection on first use; SQLite, whose connections
    /// are threads of their own, with itself.
    fn for_own_thread(self: Arc<Self>) -> Arc<dyn Store>;

    /// Closes what a view from [`Store::for_own_thread`] holds of its own,
    /// as its thread stops; the store itself stays open, and on anything
    /// that is not such a view this does nothing. Group commit's threads
    /// call it last: a PostgreSQL connection merely dropped is a session
    /// the server counts as abandoned, and logs as an unexpected EOF (with
    /// an open transaction, when intake's writer had begun the next one).
    async fn release(&self) {}

    /// Makes every commit that has returned so far durable. Only `ingest`
    /// and `record_deliveries` may leave that to this call (group commit
    /// calls it, so the next batch is written while this one syncs); every
    /// other write is durable when it returns.
    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Group commit's writer calls this when no batch has come for a while
    /// ([`group_commit::IDLE_AFTER`]): a store that keeps something open
    /// between batches for the next one (PostgreSQL's writer begins the next
    /// batch's transaction in the last one's commit) ends it here, so
    /// nothing stays open through a quiet spell.
    async fn idle(&self) {}

    /// Applies a batch in one transaction; outcomes are in the batch's order.
    /// Durable once [`Store::sync`] returns.
    async fn ingest(&self, batch: &[Ingest]) -> Result<Vec<IngestOutcome>, StoreError>;
    /// Acknowledges or resolves one alert; `None` if no alert has that id.
    async fn act(&self, act: &Act) -> Result<Option<Decision>, StoreError>;
    async fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError>;
    /// Several alerts in one read (the engine's round); ids with no alert are
    /// left out, the order is unspecified.
    async fn alerts_by_id(&self, ids: &[i64]) -> Result<Vec<Alert>, StoreError> {
        let mut alerts = Vec::with_capacity(ids.len());
        for id in ids {
            alerts.extend(self.alert(*id).await?);
        }
        Ok(alerts)
    }
    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError>;
    async fn timeline(&self, alert_id: i64) -> Result<Vec<TimelineEntry>, StoreError>;
    async fn record_heartbeat(
        &self,
        service_id: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<Heartbeat, StoreError>;
    async fn heartbeats(&self) -> Result<Vec<Heartbeat>, StoreError>;

    /// Leases up to `limit` escalations whose next step is due.
    async fn claim_escalations(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<EscalationClaim>, StoreError>;
    /// Records fired steps, all in one transaction; per step `false` if its
    /// claim was fenced out (lease lost, or the alert was acknowledged
    /// meanwhile) and nothing was written for it.
    async fn record_steps(
        &self,
        batch: &[(EscalationClaim, StepRecord)],
    ) -> Result<Vec<bool>, StoreError>;
    async fn record_step(
        &self,
        claim: &EscalationClaim,
        record: &StepRecord,
    ) -> Result<bool, StoreError> {
        let batch = [(claim.clone(), record.clone())];
        Ok(self
            .record_steps(&batch)
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }
    async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<NotificationClaim>, StoreError>;
    /// Records sends' outcomes in one transaction; per send `false` if fenced
    /// out or canceled meanwhile. Durable once [`Store::sync`] returns.
    async fn record_deliveries(
        &self,
        batch: &[(NotificationClaim, DeliveryRecord)],
    ) -> Result<Vec<bool>, StoreError>;
    async fn record_delivery(
        &self,
        claim: &NotificationClaim,
        record: &DeliveryRecord,
    ) -> Result<bool, StoreError> {
        let batch = [(claim.clone(), record.clone())];
        let recorded = self.record_deliveries(&batch).await?;
        self.sync().await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }
    /// The earliest instant any escalation step or notification is due.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    async fn notifications(&self, alert_id: i64) -> Result<Vec<NotificationRow>, StoreError>;
    /// A provider reported on a notification it accepted (Twilio call and
    /// message status): notes `message` in the alert's timeline and, with
    /// `fall_through`, fires the alert's next step now. Returns the alert, or
    /// `None` if no notification has that provider id.
    async fn provider_report(
        &self,
        provider_id: &str,
        at: DateTime<Utc>,
        message: &str,
        fall_through: bool,
    ) -> Result<Option<i64>, StoreError>;
    /// The page a provider's id belongs to (a call's `CallSid`).
    async fn page_by_provider_id(
        &self,
        provider_id: &str,
    ) -> Result<Option<ProviderPage>, StoreError>;
    /// Queues the breakthrough call for a voice page that went unanswered:
    /// the same page again (same number, same firing), due at `due_at`, with
    /// `message` in the timeline. `false` when the alert no longer fires or
    /// the page already had its breakthrough call.
    async fn queue_breakthrough(
        &self,
        notification_id: i64,
        due_at: DateTime<Utc>,
        at: DateTime<Utc>,
        message: &str,
    ) -> Result<bool, StoreError>;
    /// Records a test page (see [`crate::escalation::test_page`]): the alert
    /// already opened for it, and its pages, due at `at`. One transaction.
    async fn queue_test_page(
        &self,
        alert_id: i64,
        person_id: &str,
        method: Method,
        pages: &[NewNotification],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Test pages sent since `since` (all people, or one), newest first, with
    /// their alerts' acknowledgements.
    async fn test_pages(
        &self,
        person_id: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<TestPageResult>, StoreError>;
    /// Fires an alert's next step now (someone pressed "escalate").
    async fn escalate_now(&self, alert_id: i64, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// When pages on `channels` reached `address` since `since`, oldest first
    /// (delivered or unknown outcome): the basis of per-number rate caps.
    async fn sent_since(
        &self,
        address: &str,
        channels: &[ChannelKind],
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StoreError>;
    /// Alerts notified at `address` (a phone number), newest first, with their status.
    async fn alerts_paged_at(
        &self,
        address: &str,
        limit: u32,
    ) -> Result<Vec<(i64, AlertStatus)>, StoreError>;
}

/// Opens (and for SQLite creates) the database named by `url`.
pub async fn open(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::open(url, max_connections).await?,
        ))
    } else {
        Ok(Arc::new(
            postgres::PostgresStore::open(url, max_connections).await?,
        ))
    }
}

/// A timeline row waiting to be written at the end of a batch.
#[derive(Debug, Clone)]
pub(crate) struct NewTimelineEntry {
    pub alert_id: i64,
    pub at: DateTime<Utc>,
    pub kind: crate::alert::TimelineKind,
    pub actor: String,
    pub message: String,
    pub data: Option<serde_json::Value>,
}

/// Shared by both stores: what the timeline says for a decision.
pub(crate) fn timeline_for(
    item: &Ingest,
    decision: Decision,
    alert_id: i64,
) -> Option<NewTimelineEntry> {
    use crate::alert::TimelineKind as K;
    let (kind, message) = match decision {
        // Implied by the alert row (`opened_entry`).
        Decision::Open => return None,
        // Counted into the alert's run of duplicates instead (`run_timeline`).
        Decision::Refresh { .. } => return None,
        Decision::Acknowledge { .. } => (K::Acknowledged, "acknowledged".to_owned()),
        Decision::AlreadyAcknowledged { .. } => {
            (K::Acknowledged, "acknowledged again (no change)".to_owned())
        }
        // A watcher says why it resolved ("renewed until 2026-01-11").
        Decision::Resolve { .. }
            if item.event.kind == crate::alert::IntakeKind::Watch
                && !item.event.summary.is_empty() =>
        {
            (K::Resolved, format!("resolved: {}", item.event.summary))
        }
        Decision::Resolve { .. } => (K::Resolved, "resolved".to_owned()),
        Decision::FoldIntoStorm => (
            K::StormFolded,
            format!(
                "folded into the storm alert: {} ({})",
                item.event.summary, item.dedup_key
            ),
        ),
        Decision::NothingOpen => return None,
    };
    Some(NewTimelineEntry {
        alert_id,
        at: item.received_at,
        kind,
        actor: item.actor.clone(),
        message,
        data: Some(serde_json::json!({ "dedup_key": item.dedup_key })),
    })
}

/// The "opened" entry an alert row implies (`opened_by` set): first in its
/// timeline, with the summary it opened with.
pub(crate) fn opened_entry(
    alert_id: i64,
    at: DateTime<Utc>,
    actor: String,
    summary: &str,
    dedup_key: &str,
) -> TimelineEntry {
    TimelineEntry {
        id: 0,
        alert_id,
        at,
        kind: TimelineKind::Received,
        actor,
        message: format!("opened: {summary}"),
        data: Some(serde_json::json!({ "dedup_key": dedup_key })),
    }
}

/// The row a run of duplicates becomes when something ends it.
pub(crate) fn run_timeline(run: &DuplicateRun, dedup_key: &str) -> NewTimelineEntry {
    NewTimelineEntry {
        alert_id: 0,
        at: run.first_at,
        kind: TimelineKind::Deduplicated,
        actor: run.actor.clone(),
        message: run.message(),
        data: Some(run.data(dedup_key)),
    }
}

/// The entries of a timeline that have no row of their own (`id` 0): the
/// opening, implied by the alert row, and the run of duplicates it is
/// counting, which comes last.
#[derive(Debug, Default)]
pub(crate) struct Implied {
    pub opened: Option<TimelineEntry>,
    pub run: Option<(String, DuplicateRun)>,
}

impl Implied {
    /// A timeline as stored, with the implied entries in their places.
    pub fn around(self, alert_id: i64, rows: Vec<TimelineEntry>) -> Vec<TimelineEntry> {
        let mut entries = Vec::with_capacity(rows.len() + 2);
        entries.extend(self.opened);
        entries.extend(rows);
        entries.extend(self.run.map(|(key, run)| run.pending_entry(alert_id, &key)));
        entries
    }
}

/// What the timeline says when a person or script acts on an alert by id.
pub(crate) fn act_timeline(act: &Act, decision: Decision) -> Option<NewTimelineEntry> {
    use crate::alert::TimelineKind as K;
    let (kind, message) = match decision {
        Decision::Acknowledge { .. } => (K::Acknowledged, "acknowledged"),
        Decision::AlreadyAcknowledged { .. } => (K::Acknowledged, "acknowledged again (no change)"),
        Decision::Resolve { .. } => (K::Resolved, "resolved"),
        _ => return None,
    };
    let via = act.via.as_str();
    Some(NewTimelineEntry {
        alert_id: act.alert_id,
        at: act.at,
        kind,
        actor: act.actor.clone(),
        message: format!("{message} via {via}"),
        data: Some(serde_json::json!({ "via": via })),
    })
}

/// The storm alert's own summary and labels, shared by both stores.
pub(crate) fn storm_event(item: &Ingest) -> Event {
    let mut labels = BTreeMap::new();
    labels.insert("rouse_storm".to_owned(), "true".to_owned());
    Event {
        kind: item.event.kind,
        action: Action::Trigger,
        dedup_key: Some(crate::alert::lifecycle::STORM_DEDUP_KEY.to_owned()),
        summary: format!(
            "Alert storm on {}: over {} open alerts, new ones are counted here instead of paging one by one",
            item.service_id, item.storm_threshold
        ),
        severity: crate::alert::Severity::Critical,
        source: "rouse".to_owned(),
        labels,
        details: serde_json::json!({ "storm_threshold": item.storm_threshold }),
        links: Vec::new(),
        occurred_at: Some(item.received_at),
    }
}

/// The timeline entries of sends whose outcome was recorded.
pub(crate) fn delivery_timeline<'a>(
    won: impl Iterator<Item = &'a (NotificationClaim, DeliveryRecord)>,
) -> Vec<NewTimelineEntry> {
    won.flat_map(|(claim, record)| {
        notes_to_timeline(
            claim.alert_id,
            record.at,
            &[(TimelineKind::Notified, record.message.clone())],
        )
    })
    .collect()
}

/// Pages just recorded as delivered on a channel that gets follow-ups: their
/// notification ids and when. The store queues a follow-up for those whose
/// alert is no longer firing.
pub(crate) fn late_follow_up_candidates<'a>(
    won: impl Iterator<Item = &'a (NotificationClaim, DeliveryRecord)>,
) -> Vec<(i64, DateTime<Utc>)> {
    won.filter(|(claim, record)| {
        claim.follow_up.is_none()
            && record.status == DeliveryStatus::Delivered
            && match claim.channel {
                ChannelKind::Chat | ChannelKind::Email | ChannelKind::Sms => true,
                // Its follow-up cancels the emergency page's repeats: only
                // pages with a receipt have any.
                ChannelKind::Pushover => record.provider_id.is_some(),
                _ => false,
            }
    })
    .map(|(claim, record)| (claim.id, record.at))
    .collect()
}

pub(crate) fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

pub(crate) fn notes_to_timeline(
    alert_id: i64,
    at: DateTime<Utc>,
    notes: &[(TimelineKind, String)],
) -> Vec<NewTimelineEntry> {
    notes
        .iter()
        .map(|(kind, message)| NewTimelineEntry {
            alert_id,
            at,
            kind: *kind,
            actor: "rouse".to_owned(),
            message: message.clone(),
            data: None,
        })
        .collect()
}

/// Which items of a fenced batch write won, in the batch's order: `written`
/// holds the ids its `RETURNING` named. An id listed twice wins once.
pub(crate) fn fenced_results<T>(
    batch: &[T],
    mut written: HashSet<i64>,
    id: impl Fn(&T) -> i64,
) -> Vec<bool> {
    batch.iter().map(|item| written.remove(&id(item))).collect()
}

/// The items [`fenced_results`] marked as won.
pub(crate) fn winners<'a, T>(batch: &'a [T], results: &'a [bool]) -> impl Iterator<Item = &'a T> {
    batch
        .iter()
        .zip(results)
        .filter_map(|(item, won)| won.then_some(item))
}

/// The earliest failure per firing (alert, fired) among recorded sends that
/// fall through: each pulls that firing's next step forward to its instant.
pub(crate) fn fall_throughs<'a>(
    recorded: impl Iterator<Item = &'a (NotificationClaim, DeliveryRecord)>,
) -> Vec<((i64, i64), DateTime<Utc>)> {
    let mut earliest: BTreeMap<(i64, i64), DateTime<Utc>> = BTreeMap::new();
    for (claim, record) in recorded.filter(|(_, r)| r.fall_through) {
        earliest
            .entry((claim.alert_id, claim.fired))
            .and_modify(|at| *at = (*at).min(record.at))
            .or_insert(record.at);
    }
    earliest.into_iter().collect()
}

pub(crate) fn parse_channel(s: &str) -> Result<ChannelKind, StoreError> {
    ChannelKind::parse(s).ok_or_else(|| StoreError::Corrupt(format!("channel {s:?}")))
}

pub(crate) fn parse_method(s: &str) -> Result<Method, StoreError> {
    Method::parse(s).ok_or_else(|| StoreError::Corrupt(format!("test page method {s:?}")))
}

pub(crate) fn parse_delivery(s: &str) -> Result<DeliveryStatus, StoreError> {
    DeliveryStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("delivery status {s:?}")))
}
