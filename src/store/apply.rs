//! The one place that turns a batch of events into writes, shared by both
//! stores: each backend supplies only its SQL. PostgreSQL's is async, through
//! [`Writes`] and [`ingest`]; SQLite's direct writer (`sqlite/direct.rs`) is
//! synchronous and calls [`Lookup::of`], [`replay`] and
//! [`Replayed::outcomes`] itself.
//!
//! A batch is applied in a fixed handful of statements whatever its size:
//! read what the batch needs (open-alert counts, the open alert of every key),
//! replay the events in order in memory with [`decide`], then write the end
//! state — new alerts, changed alerts, escalations, timeline — as multi-row
//! statements. The replay is what keeps per-event semantics: within one
//! batch a second trigger of a key refreshes the alert the first opened, a
//! trigger after a resolve opens a new alert, and storm control counts the
//! alerts opened earlier in the same batch. Per-statement round trips, not
//! SQL, were the cost of the event-by-event version (sqlx-sqlite hops to a
//! worker thread for each).

use std::borrow::Cow;
use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::NewTimelineEntry;
use super::{
    act_timeline, run_timeline, storm_event, timeline_for, Act, EventJson, Ingest, IngestOutcome,
    StoreError,
};
use crate::alert::lifecycle::STORM_DEDUP_KEY;
use crate::alert::{decide, AlertStatus, Decision, DuplicateRun, Event, OpenAlert, Urgency};

/// What an async backend (PostgreSQL) does inside one open transaction.
#[async_trait]
pub(crate) trait Writes: Send {
    /// Open alerts per service (services without a row are absent), and the
    /// open alert of each (service, key) that has one. PostgreSQL locks those
    /// alerts until the transaction ends, so a concurrent acknowledge waits.
    async fn read(&mut self, services: &[&str], keys: &[(&str, &str)])
        -> Result<Known, StoreError>;
    /// One alert by id, open or not, locked like [`Writes::read`]'s.
    async fn alert_by_id(&mut self, alert_id: i64) -> Result<Option<FoundAlert>, StoreError>;
    /// Writes a batch's end state; returns the ids of `writes.new_alerts` in
    /// their order, or [`Raced`] when an open alert with the key of a new one
    /// appeared since [`Writes::read`] (another replica's commit).
    async fn write(
        &mut self,
        writes: &BatchWrites<'_>,
    ) -> Result<Result<Vec<i64>, Raced>, StoreError>;
}

/// What [`Writes::read`] found.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// Open alerts per service; services without any are absent.
    pub counts: HashMap<String, u64>,
    pub found: Vec<FoundAlert>,
}

/// An alert a write refers to: stored already, or the batch's `n`th new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlertRef {
    Id(i64),
    New(usize),
}

impl AlertRef {
    pub fn resolve(self, new_ids: &[i64]) -> Result<i64, StoreError> {
        match self {
            AlertRef::Id(id) => Ok(id),
            AlertRef::New(i) => new_ids
                .get(i)
                .copied()
                .ok_or_else(|| StoreError::Corrupt("a new alert got no id".to_owned())),
        }
    }
}

/// Everything one batch writes.
#[derive(Debug, Default)]
pub(crate) struct BatchWrites<'a> {
    /// In insertion order, one generation after another; within a
    /// generation no two share a (service, key), so the ids a multi-row
    /// insert returns can be matched back by key.
    pub new_alerts: Vec<NewAlert<'a>>,
    /// `new_alerts[generations[g]]` is generation `g`.
    pub generations: Vec<std::ops::Range<usize>>,
    pub changes: Vec<AlertChange<'a>>,
    pub escalations: Vec<NewEscalation<'a>>,
    pub closings: Vec<Closing>,
    pub timeline: Vec<(AlertRef, NewTimelineEntry)>,
}

/// An open alert as [`Writes::read`] found it.
#[derive(Debug, Clone)]
pub(crate) struct FoundAlert {
    pub id: i64,
    pub status: AlertStatus,
    pub service_id: String,
    pub dedup_key: String,
    pub run: Option<DuplicateRun>,
}

/// An alert to insert, in the state the whole batch left it in.
#[derive(Debug, Clone)]
pub(crate) struct NewAlert<'a> {
    pub service_id: &'a str,
    pub dedup_key: &'a str,
    pub urgency: Urgency,
    pub policy_id: Option<&'a str>,
    /// The latest trigger: its summary, labels and details are the alert's.
    pub event: Cow<'a, Event>,
    /// `event`'s JSON, when it is an item's own and intake encoded it.
    pub encoded: Option<&'a EventJson>,
    pub event_count: i64,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub status: AlertStatus,
    pub acknowledged: Option<(DateTime<Utc>, &'a str)>,
    pub resolved: Option<(DateTime<Utc>, &'a str)>,
    /// Duplicates not yet in the timeline (see [`DuplicateRun`]).
    pub run: Option<DuplicateRun>,
    /// Who opened it: its "opened" timeline entry is implied by the row.
    pub opened_by: &'a str,
    /// The first summary, once a later event in the batch changed it.
    pub opened_summary: Option<String>,
}

/// What a batch changes on an alert that was already open.
#[derive(Debug, Clone)]
pub(crate) struct AlertChange<'a> {
    pub id: i64,
    pub added_events: i64,
    /// The latest trigger and when it came, if any trigger refreshed the alert.
    pub refreshed: Option<(Cow<'a, Event>, DateTime<Utc>)>,
    /// The refreshing event's JSON, when it is an item's own and encoded.
    pub refreshed_encoded: Option<&'a EventJson>,
    pub acknowledged: Option<(DateTime<Utc>, &'a str)>,
    pub resolved: Option<(DateTime<Utc>, &'a str)>,
    /// The alert's run of duplicates as the batch leaves it, written as is
    /// (the row is locked since it was read) when `run_changed`.
    pub run: Option<DuplicateRun>,
    pub run_changed: bool,
}

impl AlertChange<'_> {
    fn unchanged(id: i64, run: Option<DuplicateRun>) -> Self {
        AlertChange {
            id,
            added_events: 0,
            refreshed: None,
            refreshed_encoded: None,
            acknowledged: None,
            resolved: None,
            run,
            run_changed: false,
        }
    }

    /// Whether the batch writes anything to the alert row.
    fn is_change(&self) -> bool {
        self.added_events > 0
            || self.acknowledged.is_some()
            || self.resolved.is_some()
            || self.run_changed
    }

    /// The status to write, if the batch changed it.
    pub fn status(&self) -> Option<AlertStatus> {
        if self.resolved.is_some() {
            Some(AlertStatus::Resolved)
        } else if self.acknowledged.is_some() {
            Some(AlertStatus::Acknowledged)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct NewEscalation<'a> {
    pub alert: AlertRef,
    pub policy_id: &'a str,
    pub due_at: DateTime<Utc>,
    /// Acknowledged or resolved in the batch that opened it: stored as done.
    pub done: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Closing {
    pub alert_id: i64,
    pub at: DateTime<Utc>,
    /// Acknowledged or resolved: names the follow-ups.
    pub now: AlertStatus,
}

/// Rows per multi-row statement: at most 16 bound values each, well within
/// SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
pub(crate) const CHUNK: usize = 1000;

/// How often a batch is applied again after [`Raced`] before giving up.
pub(crate) const RACE_ATTEMPTS: usize = 3;

/// Another writer opened an alert for a key this batch meant to open; the
/// transaction must be rolled back and the batch applied again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raced;

/// Which alert an event landed on while the batch is replayed in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Index into the alerts that were open before the batch.
    Existing(usize),
    /// Index into the alerts the batch opens.
    New(usize),
}

struct Existing<'a> {
    status: AlertStatus,
    change: AlertChange<'a>,
}

struct Opened<'a> {
    alert: NewAlert<'a>,
    escalation: Option<(&'a str, DateTime<Utc>)>,
}

/// The decision with the alert id still to be filled in.
#[derive(Clone, Copy)]
enum Kind {
    Open,
    Refresh,
    Acknowledge,
    AlreadyAcknowledged,
    Resolve,
    NothingOpen,
    FoldIntoStorm,
}

pub(crate) async fn ingest<W: Writes>(
    w: &mut W,
    batch: &[Ingest],
) -> Result<Result<Vec<IngestOutcome>, Raced>, StoreError> {
    let lookup = Lookup::of(batch);
    let known = w.read(&lookup.services, &lookup.keys).await?;
    let replayed = replay(batch, &lookup, known)?;
    match w.write(&replayed.writes).await? {
        Ok(ids) => replayed.outcomes(&ids).map(Ok),
        Err(Raced) => Ok(Err(Raced)),
    }
}

/// What a batch must read before it is replayed: its services, and every
/// (service, key) it names plus each service's storm key, sorted.
pub(crate) struct Lookup<'a> {
    pub services: Vec<&'a str>,
    pub keys: Vec<(&'a str, &'a str)>,
}

impl<'a> Lookup<'a> {
    pub fn of(batch: &'a [Ingest]) -> Self {
        let mut services: Vec<&str> = batch.iter().map(|i| i.service_id.as_str()).collect();
        services.sort_unstable();
        services.dedup();
        let mut keys: Vec<(&str, &str)> = batch
            .iter()
            .map(|i| (i.service_id.as_str(), i.dedup_key.as_str()))
            .chain(services.iter().map(|s| (*s, STORM_DEDUP_KEY)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Self { services, keys }
    }
}

/// A batch replayed in memory: what to write, and how to answer each event
/// once the new alerts have their ids.
pub(crate) struct Replayed<'a> {
    pub writes: BatchWrites<'a>,
    kinds: Vec<(Kind, Option<AlertRef>)>,
}

impl Replayed<'_> {
    /// Each event's outcome, given the ids of `writes.new_alerts` in order.
    pub fn outcomes(self, new_ids: &[i64]) -> Result<Vec<IngestOutcome>, StoreError> {
        self.kinds
            .into_iter()
            .map(|(kind, alert)| {
                let alert_id = alert.map(|a| a.resolve(new_ids)).transpose()?;
                let id = alert_id.unwrap_or(0);
                let decision = match kind {
                    Kind::Open => Decision::Open,
                    Kind::Refresh => Decision::Refresh { id },
                    Kind::Acknowledge => Decision::Acknowledge { id },
                    Kind::AlreadyAcknowledged => Decision::AlreadyAcknowledged { id },
                    Kind::Resolve => Decision::Resolve { id },
                    Kind::NothingOpen => Decision::NothingOpen,
                    Kind::FoldIntoStorm => Decision::FoldIntoStorm,
                };
                Ok(IngestOutcome { alert_id, decision })
            })
            .collect()
    }
}

/// Replays `batch` in order against what [`Writes::read`] found for `lookup`.
pub(crate) fn replay<'a>(
    batch: &'a [Ingest],
    lookup: &Lookup<'a>,
    known: Known,
) -> Result<Replayed<'a>, StoreError> {
    let Lookup { services, keys } = lookup;
    let Known { counts, found } = known;

    // Replay in order.
    let mut open_count: HashMap<&str, u64> = services
        .iter()
        .map(|s| (*s, counts.get(*s).copied().unwrap_or(0)))
        .collect();
    let mut existing: Vec<Existing<'_>> = Vec::with_capacity(found.len());
    let mut current: HashMap<(&str, &str), Slot> = HashMap::with_capacity(keys.len());
    for alert in &found {
        let key = keys
            .binary_search(&(alert.service_id.as_str(), alert.dedup_key.as_str()))
            .ok()
            .and_then(|i| keys.get(i).copied());
        let Some(key) = key else {
            return Err(StoreError::Corrupt(format!(
                "lookup returned an alert for a key not asked: {}",
                alert.dedup_key
            )));
        };
        current.insert(key, Slot::Existing(existing.len()));
        existing.push(Existing {
            status: alert.status,
            change: AlertChange::unchanged(alert.id, alert.run.clone()),
        });
    }
    let mut opened: Vec<Opened<'_>> = Vec::new();
    let mut closings: Vec<(usize, DateTime<Utc>, AlertStatus)> = Vec::new();
    let mut timeline: Vec<(Slot, NewTimelineEntry)> = Vec::with_capacity(batch.len());
    let mut kinds: Vec<(Kind, Option<Slot>)> = Vec::with_capacity(batch.len());

    for item in batch {
        let service = item.service_id.as_str();
        let key = (service, item.dedup_key.as_str());
        let slot = current.get(&key).copied();
        let open = slot.map(|s| OpenAlert {
            // Ids are filled in after the inserts; `decide` only passes them through.
            id: 0,
            status: match s {
                Slot::Existing(i) => existing[i].status,
                Slot::New(i) => opened[i].alert.status,
            },
        });
        let count = open_count.entry(service).or_insert(0);
        let decision = decide(item.event.action, open, *count, item.storm_threshold);
        let (kind, landed) = match (decision, slot) {
            (Decision::Open, _) => {
                let s = Slot::New(opened.len());
                opened.push(Opened {
                    alert: new_alert(item, &item.dedup_key, Cow::Borrowed(&item.event)),
                    escalation: item.policy_id.as_deref().zip(item.first_step_due),
                });
                current.insert(key, s);
                *count += 1;
                (Kind::Open, Some(s))
            }
            (Decision::Refresh { .. }, Some(s)) => {
                refresh(
                    &mut existing,
                    &mut opened,
                    s,
                    item,
                    Cow::Borrowed(&item.event),
                );
                // No row of its own: counted into the alert's run, and a run
                // this one closes (an earlier minute's) becomes its row.
                let run = run_of(&mut existing, &mut opened, s);
                if let Some(closed) = DuplicateRun::record(run, item.received_at, &item.actor) {
                    timeline.push((s, run_timeline(&closed, &item.dedup_key)));
                }
                (Kind::Refresh, Some(s))
            }
            (Decision::FoldIntoStorm, _) => {
                let storm_key = (service, STORM_DEDUP_KEY);
                let storm = Ingest {
                    event: storm_event(item),
                    encoded: None,
                    ..item.clone()
                };
                let s = match current.get(&storm_key).copied() {
                    Some(s) => {
                        refresh(&mut existing, &mut opened, s, item, Cow::Owned(storm.event));
                        s
                    }
                    None => {
                        let s = Slot::New(opened.len());
                        opened.push(Opened {
                            alert: new_alert(item, STORM_DEDUP_KEY, Cow::Owned(storm.event)),
                            escalation: item.policy_id.as_deref().zip(item.first_step_due),
                        });
                        current.insert(storm_key, s);
                        *count += 1;
                        s
                    }
                };
                (Kind::FoldIntoStorm, Some(s))
            }
            (Decision::Acknowledge { .. }, Some(s)) => {
                let by = (item.received_at, item.actor.as_str());
                match s {
                    Slot::Existing(i) => {
                        existing[i].status = AlertStatus::Acknowledged;
                        existing[i].change.acknowledged = Some(by);
                        closings.push((i, item.received_at, AlertStatus::Acknowledged));
                    }
                    Slot::New(i) => {
                        opened[i].alert.status = AlertStatus::Acknowledged;
                        opened[i].alert.acknowledged = Some(by);
                    }
                }
                (Kind::Acknowledge, Some(s))
            }
            (Decision::AlreadyAcknowledged { .. }, Some(s)) => (Kind::AlreadyAcknowledged, Some(s)),
            (Decision::Resolve { .. }, Some(s)) => {
                let by = (item.received_at, item.actor.as_str());
                match s {
                    Slot::Existing(i) => {
                        existing[i].status = AlertStatus::Resolved;
                        existing[i].change.resolved = Some(by);
                        closings.push((i, item.received_at, AlertStatus::Resolved));
                    }
                    Slot::New(i) => {
                        opened[i].alert.status = AlertStatus::Resolved;
                        opened[i].alert.resolved = Some(by);
                    }
                }
                current.remove(&key);
                *count = count.saturating_sub(1);
                (Kind::Resolve, Some(s))
            }
            (Decision::NothingOpen, _) => (Kind::NothingOpen, None),
            // `decide` only names an alert it was given.
            (
                Decision::Refresh { .. }
                | Decision::Acknowledge { .. }
                | Decision::AlreadyAcknowledged { .. }
                | Decision::Resolve { .. },
                None,
            ) => {
                return Err(StoreError::Corrupt(
                    "a decision named an alert that is not open".to_owned(),
                ))
            }
        };
        if let Some(s) = landed {
            if let Some(entry) = timeline_for(item, placeholder(kind), 0) {
                // The duplicates before this entry come before it (their run
                // ends here), and later ones start a run after it.
                if !matches!(kind, Kind::Open | Kind::FoldIntoStorm) {
                    if let Some(ended) = take_run(&mut existing, &mut opened, s) {
                        timeline.push((s, run_timeline(&ended, &item.dedup_key)));
                    }
                }
                timeline.push((s, entry));
            }
        }
        kinds.push((kind, landed));
    }

    // Write the end state: new alerts in generations (see `BatchWrites`).
    let mut generation_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut generations: Vec<Vec<usize>> = Vec::new();
    for (i, o) in opened.iter().enumerate() {
        let g = generation_of
            .entry((o.alert.service_id, o.alert.dedup_key))
            .or_insert(0);
        if generations.len() <= *g {
            generations.push(Vec::new());
        }
        if let Some(members) = generations.get_mut(*g) {
            members.push(i);
        }
        *g += 1;
    }
    // position[i]: where opened[i] is inserted.
    let mut position = vec![0usize; opened.len()];
    let mut order = Vec::with_capacity(opened.len());
    let mut ranges = Vec::with_capacity(generations.len());
    for members in &generations {
        let start = order.len();
        for &i in members {
            position[i] = order.len();
            order.push(i);
        }
        ranges.push(start..order.len());
    }
    let new_ref = |s: Slot| match s {
        Slot::Existing(i) => AlertRef::Id(existing[i].change.id),
        Slot::New(i) => AlertRef::New(position[i]),
    };
    let writes = BatchWrites {
        escalations: order
            .iter()
            .filter_map(|&i| {
                let o = &opened[i];
                let (policy_id, due_at) = o.escalation?;
                Some(NewEscalation {
                    alert: AlertRef::New(position[i]),
                    policy_id,
                    due_at,
                    done: o.alert.status != AlertStatus::Triggered,
                })
            })
            .collect(),
        new_alerts: order.iter().map(|&i| opened[i].alert.clone()).collect(),
        generations: ranges,
        changes: existing
            .iter()
            .filter(|e| e.change.is_change())
            .map(|e| e.change.clone())
            .collect(),
        closings: closings
            .into_iter()
            .map(|(i, at, now)| Closing {
                alert_id: existing[i].change.id,
                at,
                now,
            })
            .collect(),
        timeline: timeline.into_iter().map(|(s, e)| (new_ref(s), e)).collect(),
    };
    let kinds = kinds
        .into_iter()
        .map(|(kind, slot)| (kind, slot.map(new_ref)))
        .collect();
    Ok(Replayed { writes, kinds })
}

/// A new alert opened by `item`: its own, or the storm alert it folds into.
fn new_alert<'a>(item: &'a Ingest, dedup_key: &'a str, event: Cow<'a, Event>) -> NewAlert<'a> {
    NewAlert {
        service_id: &item.service_id,
        dedup_key,
        urgency: item.urgency,
        policy_id: item.policy_id.as_deref(),
        encoded: encoded(&event, item),
        event,
        event_count: 1,
        created_at: item.received_at,
        last_seen_at: item.received_at,
        status: AlertStatus::Triggered,
        acknowledged: None,
        resolved: None,
        run: None,
        opened_by: &item.actor,
        opened_summary: None,
    }
}

/// The run of duplicates of the alert in `slot`; an existing alert's is
/// marked as changed, since the caller is about to change it.
fn run_of<'s>(
    existing: &'s mut [Existing<'_>],
    opened: &'s mut [Opened<'_>],
    slot: Slot,
) -> &'s mut Option<DuplicateRun> {
    match slot {
        Slot::Existing(i) => {
            let change = &mut existing[i].change;
            change.run_changed = true;
            &mut change.run
        }
        Slot::New(i) => &mut opened[i].alert.run,
    }
}

/// Ends the run of duplicates of the alert in `slot`, if it has one.
fn take_run(
    existing: &mut [Existing<'_>],
    opened: &mut [Opened<'_>],
    slot: Slot,
) -> Option<DuplicateRun> {
    let has_run = match slot {
        Slot::Existing(i) => existing[i].change.run.is_some(),
        Slot::New(i) => opened[i].alert.run.is_some(),
    };
    has_run
        .then(|| run_of(existing, opened, slot).take())
        .flatten()
}

/// One more event on an open alert: counted, and its content is the alert's
/// now, except for the fields it leaves empty ([`Event::keeping_earlier`]).
/// Within the batch the earlier content is in memory; against the stored
/// row each backend's update keeps a column its empty field leaves NULL.
fn refresh<'a>(
    existing: &mut [Existing<'a>],
    opened: &mut [Opened<'a>],
    slot: Slot,
    item: &'a Ingest,
    event: Cow<'a, Event>,
) {
    match slot {
        Slot::Existing(i) => {
            if let Some(e) = existing.get_mut(i) {
                e.change.added_events += 1;
                let (event, json) = match e.change.refreshed.take() {
                    Some((earlier, _)) => (
                        Cow::Owned(event.into_owned().keeping_earlier(&earlier)),
                        None,
                    ),
                    None => {
                        let json = encoded(&event, item);
                        (event, json)
                    }
                };
                e.change.refreshed = Some((event, item.received_at));
                e.change.refreshed_encoded = json;
            }
        }
        Slot::New(i) => {
            if let Some(o) = opened.get_mut(i) {
                o.alert.event_count += 1;
                let event = event.into_owned().keeping_earlier(&o.alert.event);
                if o.alert.opened_summary.is_none() && event.summary != o.alert.event.summary {
                    o.alert.opened_summary = Some(o.alert.event.summary.clone());
                }
                o.alert.event = Cow::Owned(event);
                // Merged in memory: no item's encoding is this event's.
                o.alert.encoded = None;
                o.alert.last_seen_at = item.received_at;
            }
        }
    }
}

/// The item's encoded JSON, if `event` is the item's own event unchanged.
fn encoded<'a>(event: &Cow<'a, Event>, item: &'a Ingest) -> Option<&'a EventJson> {
    match event {
        Cow::Borrowed(_) => item.encoded.as_ref(),
        Cow::Owned(_) => None,
    }
}

/// A decision of `kind` for the timeline's wording (which ignores the id).
fn placeholder(kind: Kind) -> Decision {
    match kind {
        Kind::Open => Decision::Open,
        Kind::Refresh => Decision::Refresh { id: 0 },
        Kind::Acknowledge => Decision::Acknowledge { id: 0 },
        Kind::AlreadyAcknowledged => Decision::AlreadyAcknowledged { id: 0 },
        Kind::Resolve => Decision::Resolve { id: 0 },
        Kind::NothingOpen => Decision::NothingOpen,
        Kind::FoldIntoStorm => Decision::FoldIntoStorm,
    }
}

/// Matches ids returned by a multi-row insert (RETURNING has no order
/// guarantee) back to the rows sent, by (service, key), unique per statement.
pub(crate) fn in_row_order(
    rows: &[NewAlert<'_>],
    returned: impl Iterator<Item = Result<(String, String, i64), sqlx::Error>>,
) -> Result<Vec<Option<i64>>, StoreError> {
    let mut by_key = HashMap::with_capacity(rows.len());
    for r in returned {
        let (service, key, id) = r?;
        by_key.insert((service, key), id);
    }
    Ok(rows
        .iter()
        .map(|row| {
            by_key
                .get(&(row.service_id.to_owned(), row.dedup_key.to_owned()))
                .copied()
        })
        .collect())
}

pub(crate) async fn act<W: Writes>(w: &mut W, act: &Act) -> Result<Option<Decision>, StoreError> {
    let found = w.alert_by_id(act.alert_id).await?;
    let Some((decision, writes)) = act_writes(act, found) else {
        return Ok(None);
    };
    if w.write(&writes).await?.is_err() {
        // Nothing new is inserted, so nothing can race.
        return Err(StoreError::Corrupt("acting on an alert raced".to_owned()));
    }
    Ok(Some(decision))
}

/// What acting on the alert [`Writes::alert_by_id`] found decides and
/// writes; `None` when there is no such alert.
pub(crate) fn act_writes(
    act: &Act,
    found: Option<FoundAlert>,
) -> Option<(Decision, BatchWrites<'_>)> {
    let FoundAlert {
        status,
        dedup_key,
        run,
        ..
    } = found?;
    let open = status.is_open().then_some(OpenAlert {
        id: act.alert_id,
        status,
    });
    let decision = decide(act.action, open, 0, u64::MAX);
    let by = Some((act.at, act.actor.as_str()));
    let mut change = AlertChange::unchanged(act.alert_id, None);
    let now = match decision {
        Decision::Acknowledge { .. } => {
            change.acknowledged = by;
            Some(AlertStatus::Acknowledged)
        }
        Decision::Resolve { .. } => {
            change.resolved = by;
            Some(AlertStatus::Resolved)
        }
        _ => None,
    };
    let mut writes = BatchWrites::default();
    let entry = act_timeline(act, decision);
    // The duplicates before this entry become their row first (see `ingest`).
    if let (Some(run), Some(_)) = (&run, &entry) {
        writes
            .timeline
            .push((AlertRef::Id(act.alert_id), run_timeline(run, &dedup_key)));
        change.run_changed = true;
    }
    if now.is_some() || change.run_changed {
        writes.changes.push(change);
    }
    if let Some(now) = now {
        writes.closings.push(Closing {
            alert_id: act.alert_id,
            at: act.at,
            now,
        });
    }
    writes
        .timeline
        .extend(entry.map(|e| (AlertRef::Id(act.alert_id), e)));
    Some((decision, writes))
}
