//! The timeline entries an alert row implies, on both stores. "Opened" is
//! the row's own columns (with the summary it opened with). Duplicates are
//! coalesced, one entry per alert per minute, counted on the alert row by the
//! commit that takes the duplicate and written as a row only by the commit
//! that ends its run (a later minute, an acknowledgement, a resolve).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rouse::alert::{Action, Event, IntakeKind, Severity, TimelineEntry, TimelineKind, Urgency};
use rouse::store::{Act, Ingest, Store, Via};

use crate::both_backends;
use crate::support::TestDb;

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn event(key: &str, action: Action, at: DateTime<Utc>, summary: &str) -> Ingest {
    Ingest {
        encoded: None,
        service_id: "payments".to_owned(),
        actor: "alertmanager:prometheus".to_owned(),
        policy_id: None,
        urgency: Urgency::High,
        dedup_key: key.to_owned(),
        event: Event {
            kind: IntakeKind::Alertmanager,
            action,
            dedup_key: Some(key.to_owned()),
            summary: summary.to_owned(),
            severity: Severity::Critical,
            source: String::new(),
            labels: BTreeMap::new(),
            details: serde_json::Value::Null,
            links: vec![],
            occurred_at: None,
        },
        received_at: at,
        storm_threshold: 100,
        first_step_due: None,
    }
}

fn secs(s: i64) -> DateTime<Utc> {
    noon() + Duration::seconds(s)
}

fn shown(timeline: &[TimelineEntry]) -> Vec<(TimelineKind, String)> {
    timeline
        .iter()
        .map(|e| (e.kind, e.message.clone()))
        .collect()
}

async fn duplicates_are_one_entry_per_minute(db: &TestDb) {
    let store = db.open().await;
    let opened = store
        .ingest(&[event("disk", Action::Trigger, secs(0), "disk full")])
        .await
        .unwrap();
    let id = opened[0].alert_id.unwrap();
    // 12:00:05–12:00:59: in batches of several and alone, all one run.
    store
        .ingest(&[
            event("disk", Action::Trigger, secs(5), "disk full"),
            event("disk", Action::Trigger, secs(6), "disk full"),
        ])
        .await
        .unwrap();
    for s in [20, 40, 59] {
        store
            .ingest(&[event("disk", Action::Trigger, secs(s), "disk fuller")])
            .await
            .unwrap();
    }
    let timeline = store.timeline(id).await.unwrap();
    assert_eq!(
        shown(&timeline),
        [
            (TimelineKind::Received, "opened: disk full".to_owned()),
            (
                TimelineKind::Deduplicated,
                "deduplicated ×5 (12:00:05–12:00:59)".to_owned()
            ),
        ]
    );
    // Neither has a row: the alert row implies both.
    assert_eq!((timeline[0].id, timeline[1].id), (0, 0), "{timeline:#?}");
    assert_eq!(timeline[0].at, secs(0));
    assert_eq!(timeline[0].actor, "alertmanager:prometheus");
    assert_eq!(timeline[1].actor, "alertmanager:prometheus");
    assert_eq!(timeline[1].data.as_ref().unwrap()["count"], 5);
    let alert = store.alert(id).await.unwrap().unwrap();
    assert_eq!(alert.event_count, 6);
    assert_eq!(alert.last_seen_at, secs(59));
    assert_eq!(alert.summary, "disk fuller");

    // The next minute ends the run (into a row) and starts another.
    store
        .ingest(&[
            event("disk", Action::Trigger, secs(62), "disk full"),
            event("disk", Action::Trigger, secs(75), "disk full"),
        ])
        .await
        .unwrap();
    let timeline = store.timeline(id).await.unwrap();
    assert_eq!(
        shown(&timeline)[1..],
        [
            (
                TimelineKind::Deduplicated,
                "deduplicated ×5 (12:00:05–12:00:59)".to_owned()
            ),
            (
                TimelineKind::Deduplicated,
                "deduplicated ×2 (12:01:02–12:01:15)".to_owned()
            ),
        ]
    );
    assert_ne!(timeline[1].id, 0, "the ended run is a row now");
    assert_eq!(timeline[2].id, 0);
    assert_eq!(timeline[1].at, secs(5));

    // An acknowledgement ends the run too: its duplicates come before it.
    store
        .act(&Act {
            alert_id: id,
            action: Action::Acknowledge,
            actor: "alice".to_owned(),
            via: Via::Api,
            at: secs(80),
        })
        .await
        .unwrap();
    store
        .ingest(&[event("disk", Action::Trigger, secs(85), "")])
        .await
        .unwrap();
    let timeline = store.timeline(id).await.unwrap();
    assert_eq!(
        shown(&timeline)[2..],
        [
            (
                TimelineKind::Deduplicated,
                "deduplicated ×2 (12:01:02–12:01:15)".to_owned()
            ),
            (
                TimelineKind::Acknowledged,
                "acknowledged via api".to_owned()
            ),
            (
                TimelineKind::Deduplicated,
                "deduplicated ×1 (12:01:25)".to_owned()
            ),
        ]
    );
    assert!(timeline[1..4].iter().all(|e| e.id != 0), "{timeline:#?}");
    assert_eq!(
        timeline[0].message, "opened: disk full",
        "the opening keeps its summary"
    );
    let alert = store.alert(id).await.unwrap().unwrap();
    assert_eq!(alert.event_count, 9);
    assert_eq!(
        alert.summary, "disk full",
        "an empty summary keeps the last one"
    );
    store.close().await;
}
both_backends!(duplicates_are_one_entry_per_minute);

/// Within one batch: open, duplicates, resolve, and the key opened again —
/// each alert keeps its own run, in order with its other entries.
async fn a_batch_ends_runs_in_order(db: &TestDb) {
    let store = db.open().await;
    let out = store
        .ingest(&[
            event("k", Action::Trigger, secs(1), "first"),
            event("k", Action::Trigger, secs(2), "first"),
            event("k", Action::Trigger, secs(3), "first"),
            event("k", Action::Resolve, secs(4), ""),
            event("k", Action::Trigger, secs(5), "second"),
            event("k", Action::Trigger, secs(6), "second"),
        ])
        .await
        .unwrap();
    let (first, second) = (out[0].alert_id.unwrap(), out[4].alert_id.unwrap());
    assert_ne!(first, second);
    assert_eq!(
        shown(&store.timeline(first).await.unwrap()),
        [
            (TimelineKind::Received, "opened: first".to_owned()),
            (
                TimelineKind::Deduplicated,
                "deduplicated ×2 (12:00:02–12:00:03)".to_owned()
            ),
            (TimelineKind::Resolved, "resolved".to_owned()),
        ]
    );
    assert_eq!(
        shown(&store.timeline(second).await.unwrap()),
        [
            (TimelineKind::Received, "opened: second".to_owned()),
            (
                TimelineKind::Deduplicated,
                "deduplicated ×1 (12:00:06)".to_owned()
            ),
        ]
    );
    store.close().await;
}
both_backends!(a_batch_ends_runs_in_order);

/// The point of coalescing: a duplicate adds no timeline row, only its
/// minute's first duplicate after another minute's run adds one.
async fn duplicates_write_no_timeline_rows(db: &TestDb) {
    let store = db.open().await;
    let id = store
        .ingest(&[event("busy", Action::Trigger, secs(0), "busy")])
        .await
        .unwrap()[0]
        .alert_id
        .unwrap();
    let batch: Vec<Ingest> = (0..200)
        .map(|i| {
            event(
                "busy",
                Action::Trigger,
                secs(1) + Duration::milliseconds(i * 100),
                "busy",
            )
        })
        .collect();
    for chunk in batch.chunks(50) {
        store.ingest(chunk).await.unwrap();
    }
    let rows = stored_rows(&*store, id).await;
    assert_eq!(
        rows, 0,
        "the opening and the run are implied by the alert row"
    );
    assert_eq!(
        shown(&store.timeline(id).await.unwrap())[1].1,
        "deduplicated ×200 (12:00:01–12:00:20)"
    );
    store.close().await;
}
both_backends!(duplicates_write_no_timeline_rows);

/// Timeline entries that are rows (a pending run is shown with id 0).
async fn stored_rows(store: &dyn Store, id: i64) -> usize {
    store
        .timeline(id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.id != 0)
        .count()
}
