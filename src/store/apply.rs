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
    /// Opens the alert for `dedup_key` or refreshes the open one; returns (id, event_count).
    async fn upsert_trigger(
        &mut self,
        item: &Ingest,
        dedup_key: &str,
        event: &Event,
    ) -> Result<(i64, i64), StoreError>;
    async fn set_status(
        &mut self,
        alert_id: i64,
        status: AlertStatus,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn insert_timeline(&mut self, entries: &[NewTimelineEntry]) -> Result<(), StoreError>;
}

pub(crate) async fn ingest<W: Writes>(
    w: &mut W,
    batch: &[Ingest],
) -> Result<Vec<IngestOutcome>, StoreError> {
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
        let (id, count) = w.upsert_trigger(item, &item.dedup_key, &item.event).await?;
        let decision = if count == 1 {
            Decision::Open
        } else {
            Decision::Refresh { id }
        };
        timeline.extend(timeline_for(item, decision, id));
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
        Decision::Open | Decision::Refresh { .. } => Some(
            w.upsert_trigger(item, &item.dedup_key, &item.event)
                .await?
                .0,
        ),
        Decision::FoldIntoStorm => {
            let storm = Ingest {
                event: storm_event(item),
                ..item.clone()
            };
            let (id, count) = w
                .upsert_trigger(&storm, STORM_DEDUP_KEY, &storm.event)
                .await?;
            if count == 1 {
                open_count += 1;
                timeline.extend(timeline_for(&storm, Decision::Open, id));
            }
            Some(id)
        }
        Decision::Acknowledge { id } => {
            w.set_status(id, AlertStatus::Acknowledged, &item.actor, item.received_at)
                .await?;
            Some(id)
        }
        Decision::Resolve { id } => {
            open_count = open_count.saturating_sub(1);
            w.set_status(id, AlertStatus::Resolved, &item.actor, item.received_at)
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
                .await?
        }
        Decision::Resolve { id } => {
            w.set_status(id, AlertStatus::Resolved, &act.actor, act.at)
                .await?
        }
        _ => {}
    }
    let entries: Vec<_> = act_timeline(act, decision).into_iter().collect();
    w.insert_timeline(&entries).await?;
    Ok(Some(decision))
}
