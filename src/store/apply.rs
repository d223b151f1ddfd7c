//! The one place that turns a batch of events into writes, shared by both
//! stores: each backend supplies only its SQL through [`Writes`].

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    act_timeline, storm_event, timeline_for, Act, Ingest, IngestOutcome, NewTimelineEntry,
    StoreError,
};
use crate::alert::lifecycle::STORM_DEDUP_KEY;
use crate::alert::{decide, Action, AlertStatus, Decision, Event, OpenAlert};

/// The statements a backend runs inside one open transaction.
#[async_trait]
pub(crate) trait Writes: Send {
    async fn count_open(&mut self, service_id: &str) -> Result<u64, StoreError>;
    async fn find_open(
        &mut self,
        service_id: &str,
        dedup_key: &str,
    ) -> Result<Option<OpenAlert>, StoreError>;
    async fn status_of(&mut self, alert_id: i64) -> Result<Option<AlertStatus>, StoreError>;
    /// Opens each row's alert or refreshes the open one, in one statement;
    /// returns (id, event_count) per row, in the order of `rows`. No two rows
    /// may share a (service, key).
    async fn upsert_triggers(&mut self, rows: &[Upsert<'_>])
        -> Result<Vec<(i64, i64)>, StoreError>;
    async fn set_status(
        &mut self,
        alert_id: i64,
        status: AlertStatus,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn insert_timeline(&mut self, entries: &[NewTimelineEntry]) -> Result<(), StoreError>;
    /// Starts escalations for newly opened alerts: (alert, policy, first step due).
    async fn open_escalations(
        &mut self,
        rows: &[(i64, &str, DateTime<Utc>)],
    ) -> Result<(), StoreError>;
    /// Stops an alert's escalation, cancels its unsent pages and queues a
    /// follow-up for every chat message and mail already delivered about it,
    /// so no room keeps showing it as firing.
    async fn close_escalation(
        &mut self,
        alert_id: i64,
        at: DateTime<Utc>,
        now: AlertStatus,
    ) -> Result<(), StoreError>;
}

/// The escalation to start for an opened alert, if its event asks for one.
fn escalation_of(item: &Ingest, alert_id: i64) -> Option<(i64, &str, DateTime<Utc>)> {
    Some((alert_id, item.policy_id.as_deref()?, item.first_step_due?))
}

/// One alert to open or refresh: `count` events with the same key, `event` the latest.
pub(crate) struct Upsert<'a> {
    pub item: &'a Ingest,
    pub dedup_key: &'a str,
    pub event: &'a Event,
    pub count: i64,
}

/// Rows per statement: 11 bound values each, well within both databases' limits.
pub(crate) const UPSERT_CHUNK: usize = 1000;

pub(crate) async fn ingest<W: Writes>(
    w: &mut W,
    batch: &[Ingest],
) -> Result<Vec<IngestOutcome>, StoreError> {
    if let Some(outcomes) = ingest_triggers_in_bulk(w, batch).await? {
        return Ok(outcomes);
    }
    let mut open_counts: HashMap<&str, u64> = HashMap::new();
    let mut timeline = Vec::with_capacity(batch.len());
    let mut outcomes = Vec::with_capacity(batch.len());
    for item in batch {
        let open_count = match open_counts.get(item.service_id.as_str()) {
            Some(n) => *n,
            None => w.count_open(&item.service_id).await?,
        };
        let (outcome, open_count) = apply_one(w, item, open_count, &mut timeline).await?;
        open_counts.insert(&item.service_id, open_count);
        outcomes.push(outcome);
    }
    w.insert_timeline(&timeline).await?;
    Ok(outcomes)
}

/// The hot path under load: a batch of only triggers, all below the storm
/// threshold even if every new key opens an alert. Events with the same key
/// are merged into one row and the whole batch is a single upsert statement,
/// instead of one statement per event. Returns `None` when the batch needs the
/// event-by-event rules (an acknowledge/resolve whose order matters, or a
/// possible storm).
async fn ingest_triggers_in_bulk<W: Writes>(
    w: &mut W,
    batch: &[Ingest],
) -> Result<Option<Vec<IngestOutcome>>, StoreError> {
    if batch.iter().any(|i| i.event.action != Action::Trigger) {
        return Ok(None);
    }
    // Group by (service, key), keeping first-seen order; the latest event wins.
    let mut group_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(batch.len());
    let mut rows: Vec<Upsert<'_>> = Vec::with_capacity(batch.len());
    let mut item_group = Vec::with_capacity(batch.len());
    for item in batch {
        let key = (item.service_id.as_str(), item.dedup_key.as_str());
        let g = *group_of.entry(key).or_insert_with(|| {
            rows.push(Upsert {
                item,
                dedup_key: &item.dedup_key,
                event: &item.event,
                count: 0,
            });
            rows.len() - 1
        });
        if let Some(row) = rows.get_mut(g) {
            row.item = item;
            row.event = &item.event;
            row.count += 1;
        }
        item_group.push(g);
    }
    let mut new_keys: HashMap<&str, u64> = HashMap::new();
    for row in &rows {
        *new_keys.entry(row.item.service_id.as_str()).or_default() += 1;
    }
    for (service, keys) in &new_keys {
        let threshold = batch
            .iter()
            .filter(|i| i.service_id == *service)
            .map(|i| i.storm_threshold)
            .min()
            .unwrap_or(u64::MAX);
        if w.count_open(service).await?.saturating_add(*keys) >= threshold {
            return Ok(None);
        }
    }
    let mut results = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(UPSERT_CHUNK) {
        results.extend(w.upsert_triggers(chunk).await?);
    }
    // Inserted iff the stored count equals this batch's count for the key.
    let mut seen = vec![false; rows.len()];
    let mut escalations = Vec::new();
    let mut timeline = Vec::with_capacity(batch.len());
    let mut outcomes = Vec::with_capacity(batch.len());
    for (item, g) in batch.iter().zip(item_group) {
        let (Some(row), Some(&(id, count))) = (rows.get(g), results.get(g)) else {
            return Err(StoreError::Corrupt(
                "upsert returned fewer rows than sent".to_owned(),
            ));
        };
        let first = !std::mem::replace(&mut seen[g], true);
        let decision = if first && count == row.count {
            Decision::Open
        } else {
            Decision::Refresh { id }
        };
        timeline.extend(timeline_for(item, decision, id));
        if decision == Decision::Open {
            escalations.extend(escalation_of(item, id));
        }
        outcomes.push(IngestOutcome {
            alert_id: Some(id),
            decision,
        });
    }
    w.open_escalations(&escalations).await?;
    w.insert_timeline(&timeline).await?;
    Ok(Some(outcomes))
}

/// RETURNING gives no order guarantee: match the returned rows back to the
/// rows sent by (service, key), which an upsert batch never repeats.
pub(crate) fn in_row_order(
    rows: &[Upsert<'_>],
    returned: impl Iterator<Item = Result<(String, String, i64, i64), sqlx::Error>>,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut by_key = HashMap::with_capacity(rows.len());
    for r in returned {
        let (service, key, id, count) = r?;
        by_key.insert((service, key), (id, count));
    }
    rows.iter()
        .map(|row| {
            by_key
                .get(&(row.item.service_id.clone(), row.dedup_key.to_owned()))
                .copied()
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("upsert returned no row for {}", row.dedup_key))
                })
        })
        .collect()
}

/// Opens or refreshes one alert; returns (id, event_count).
async fn upsert_one<W: Writes>(
    w: &mut W,
    item: &Ingest,
    dedup_key: &str,
    event: &Event,
) -> Result<(i64, i64), StoreError> {
    let row = Upsert {
        item,
        dedup_key,
        event,
        count: 1,
    };
    w.upsert_triggers(std::slice::from_ref(&row))
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("upsert returned no row".to_owned()))
}

/// Applies one event; returns its outcome and the service's new open-alert count.
async fn apply_one<W: Writes>(
    w: &mut W,
    item: &Ingest,
    open_count: u64,
    timeline: &mut Vec<NewTimelineEntry>,
) -> Result<(IngestOutcome, u64), StoreError> {
    // Below the storm threshold a trigger is one upsert: an insert means it was
    // new (Open), an update means it was open already (Refresh) — exactly what
    // `decide` would say, in one statement instead of a lookup and a write.
    if item.event.action == Action::Trigger && open_count < item.storm_threshold {
        let (id, count) = upsert_one(w, item, &item.dedup_key, &item.event).await?;
        let decision = if count == 1 {
            Decision::Open
        } else {
            Decision::Refresh { id }
        };
        timeline.extend(timeline_for(item, decision, id));
        if decision == Decision::Open {
            if let Some(row) = escalation_of(item, id) {
                w.open_escalations(&[row]).await?;
            }
        }
        let open_count = open_count + u64::from(decision == Decision::Open);
        let outcome = IngestOutcome {
            alert_id: Some(id),
            decision,
        };
        return Ok((outcome, open_count));
    }
    let open = w.find_open(&item.service_id, &item.dedup_key).await?;
    let decision = decide(item.event.action, open, open_count, item.storm_threshold);
    let mut open_count = open_count;
    let alert_id = match decision {
        Decision::Open | Decision::Refresh { .. } => {
            let (id, count) = upsert_one(w, item, &item.dedup_key, &item.event).await?;
            if count == 1 {
                if let Some(row) = escalation_of(item, id) {
                    w.open_escalations(&[row]).await?;
                }
            }
            Some(id)
        }
        Decision::FoldIntoStorm => {
            let storm = Ingest {
                event: storm_event(item),
                ..item.clone()
            };
            let (id, count) = upsert_one(w, &storm, STORM_DEDUP_KEY, &storm.event).await?;
            if count == 1 {
                open_count += 1;
                timeline.extend(timeline_for(&storm, Decision::Open, id));
                if let Some(row) = escalation_of(&storm, id) {
                    w.open_escalations(&[row]).await?;
                }
            }
            Some(id)
        }
        Decision::Acknowledge { id } => {
            w.set_status(id, AlertStatus::Acknowledged, &item.actor, item.received_at)
                .await?;
            w.close_escalation(id, item.received_at, AlertStatus::Acknowledged)
                .await?;
            Some(id)
        }
        Decision::Resolve { id } => {
            open_count = open_count.saturating_sub(1);
            w.set_status(id, AlertStatus::Resolved, &item.actor, item.received_at)
                .await?;
            w.close_escalation(id, item.received_at, AlertStatus::Resolved)
                .await?;
            Some(id)
        }
        Decision::AlreadyAcknowledged { id } => Some(id),
        Decision::NothingOpen => None,
    };
    if let Some(id) = alert_id {
        timeline.extend(timeline_for(item, decision, id));
    }
    Ok((IngestOutcome { alert_id, decision }, open_count))
}

pub(crate) async fn act<W: Writes>(w: &mut W, act: &Act) -> Result<Option<Decision>, StoreError> {
    let Some(status) = w.status_of(act.alert_id).await? else {
        return Ok(None);
    };
    let open = status.is_open().then_some(OpenAlert {
        id: act.alert_id,
        status,
    });
    let decision = decide(act.action, open, 0, u64::MAX);
    match decision {
        Decision::Acknowledge { id } => {
            w.set_status(id, AlertStatus::Acknowledged, &act.actor, act.at)
                .await?;
            w.close_escalation(id, act.at, AlertStatus::Acknowledged)
                .await?;
        }
        Decision::Resolve { id } => {
            w.set_status(id, AlertStatus::Resolved, &act.actor, act.at)
                .await?;
            w.close_escalation(id, act.at, AlertStatus::Resolved)
                .await?;
        }
        _ => {}
    }
    let entries: Vec<_> = act_timeline(act, decision).into_iter().collect();
    w.insert_timeline(&entries).await?;
    Ok(Some(decision))
}
