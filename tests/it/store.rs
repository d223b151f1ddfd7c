//! The store contract, run against SQLite and PostgreSQL alike.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rouse::alert::{
    Action, AlertStatus, Decision, Event, IntakeKind, Severity, TimelineKind, Urgency,
};
use rouse::store::{Act, AlertFilter, Ingest};

use crate::both_backends;
use crate::support::{eventually, TestDb};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0).unwrap()
}

fn item(service: &str, key: &str, action: Action, summary: &str) -> Ingest {
    let mut labels = BTreeMap::new();
    labels.insert("instance".to_owned(), "db-1".to_owned());
    Ingest {
        encoded: None,
        service_id: service.to_owned(),
        actor: "native:test".to_owned(),
        policy_id: Some("default".to_owned()),
        urgency: Urgency::High,
        dedup_key: key.to_owned(),
        event: Event {
            kind: IntakeKind::Native,
            action,
            dedup_key: Some(key.to_owned()),
            summary: summary.to_owned(),
            severity: Severity::Critical,
            source: "db-1".to_owned(),
            labels,
            details: serde_json::json!({"disk": "98%"}),
            links: vec![],
            occurred_at: None,
        },
        received_at: t0(),
        storm_threshold: 100,
        first_step_due: Some(t0()),
    }
}

async fn open_refresh_acknowledge_resolve_reopen(db: &TestDb) {
    let store = db.open().await;
    let opened = store
        .ingest(&[item("payments", "disk", Action::Trigger, "disk full")])
        .await
        .unwrap();
    assert_eq!(opened[0].decision, Decision::Open);
    let id = opened[0].alert_id.unwrap();

    let mut again = item("payments", "disk", Action::Trigger, "disk still full");
    again.received_at = t0() + Duration::minutes(1);
    let refreshed = store.ingest(&[again]).await.unwrap();
    assert_eq!(refreshed[0].decision, Decision::Refresh { id });

    let alert = store.alert(id).await.unwrap().unwrap();
    assert_eq!(alert.event_count, 2);
    assert_eq!(alert.summary, "disk still full");
    assert_eq!(alert.last_seen_at, t0() + Duration::minutes(1));
    assert_eq!(alert.created_at, t0());
    assert_eq!(
        alert.labels.get("instance").map(String::as_str),
        Some("db-1")
    );
    assert_eq!(alert.details["disk"], "98%");

    let acked = store
        .ingest(&[item("payments", "disk", Action::Acknowledge, "")])
        .await
        .unwrap();
    assert_eq!(acked[0].decision, Decision::Acknowledge { id });
    let alert = store.alert(id).await.unwrap().unwrap();
    assert_eq!(alert.status, AlertStatus::Acknowledged);
    assert_eq!(alert.acknowledged_by.as_deref(), Some("native:test"));

    let resolved = store
        .ingest(&[item("payments", "disk", Action::Resolve, "")])
        .await
        .unwrap();
    assert_eq!(resolved[0].decision, Decision::Resolve { id });

    // After resolve the same key opens a new alert.
    let reopened = store
        .ingest(&[item("payments", "disk", Action::Trigger, "disk full again")])
        .await
        .unwrap();
    assert_eq!(reopened[0].decision, Decision::Open);
    assert_ne!(reopened[0].alert_id, Some(id));

    let kinds: Vec<TimelineKind> = store
        .timeline(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            TimelineKind::Received,
            TimelineKind::Deduplicated,
            TimelineKind::Acknowledged,
            TimelineKind::Resolved
        ]
    );
    store.close().await;
}
both_backends!(open_refresh_acknowledge_resolve_reopen);

async fn keys_are_scoped_to_the_service(db: &TestDb) {
    let store = db.open().await;
    let out = store
        .ingest(&[
            item("payments", "k", Action::Trigger, "a"),
            item("search", "k", Action::Trigger, "b"),
            item("payments", "k", Action::Trigger, "a again"),
        ])
        .await
        .unwrap();
    assert_eq!(out[0].decision, Decision::Open);
    assert_eq!(out[1].decision, Decision::Open);
    assert_ne!(out[0].alert_id, out[1].alert_id);
    assert_eq!(
        out[2].decision,
        Decision::Refresh {
            id: out[0].alert_id.unwrap()
        }
    );
    store.close().await;
}
both_backends!(keys_are_scoped_to_the_service);

async fn resolve_without_an_open_alert_changes_nothing(db: &TestDb) {
    let store = db.open().await;
    let out = store
        .ingest(&[item("payments", "ghost", Action::Resolve, "")])
        .await
        .unwrap();
    assert_eq!(out[0].decision, Decision::NothingOpen);
    assert_eq!(out[0].alert_id, None);
    let all = store
        .alerts(&AlertFilter {
            limit: 10,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert!(all.is_empty());
    store.close().await;
}
both_backends!(resolve_without_an_open_alert_changes_nothing);

async fn a_storm_folds_new_alerts_into_one(db: &TestDb) {
    let store = db.open().await;
    let batch: Vec<Ingest> = (0..8)
        .map(|i| {
            let mut it = item(
                "payments",
                &format!("k{i}"),
                Action::Trigger,
                &format!("a{i}"),
            );
            it.storm_threshold = 3;
            it
        })
        .collect();
    let out = store.ingest(&batch).await.unwrap();
    let decisions: Vec<Decision> = out.iter().map(|o| o.decision).collect();
    assert_eq!(
        decisions[..3],
        [Decision::Open, Decision::Open, Decision::Open]
    );
    assert!(decisions[3..].iter().all(|d| *d == Decision::FoldIntoStorm));
    let storm_id = out[3].alert_id.unwrap();
    assert!(out[3..].iter().all(|o| o.alert_id == Some(storm_id)));
    let storm = store.alert(storm_id).await.unwrap().unwrap();
    assert_eq!(storm.dedup_key, "rouse:storm");
    assert_eq!(storm.event_count, 5);
    // A duplicate of an alert that is already open still refreshes it.
    let mut dup = item("payments", "k0", Action::Trigger, "a0");
    dup.storm_threshold = 3;
    let out = store.ingest(&[dup]).await.unwrap();
    assert_eq!(
        out[0].decision,
        Decision::Refresh {
            id: decisions_id(&batch_ids(&store, "k0").await)
        }
    );
    let folded = store
        .timeline(storm_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == TimelineKind::StormFolded)
        .count();
    assert_eq!(folded, 5);
    store.close().await;
}
both_backends!(a_storm_folds_new_alerts_into_one);

async fn batch_ids(store: &std::sync::Arc<dyn rouse::store::Store>, key: &str) -> Vec<i64> {
    store
        .alerts(&AlertFilter {
            limit: 100,
            ..AlertFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.dedup_key == key)
        .map(|a| a.id)
        .collect()
}

fn decisions_id(ids: &[i64]) -> i64 {
    assert_eq!(ids.len(), 1, "exactly one alert for the key");
    ids[0]
}

async fn acting_by_id_and_filtering(db: &TestDb) {
    let store = db.open().await;
    let out = store
        .ingest(&[
            item("payments", "a", Action::Trigger, "a"),
            item("payments", "b", Action::Trigger, "b"),
            item("search", "c", Action::Trigger, "c"),
        ])
        .await
        .unwrap();
    let a = out[0].alert_id.unwrap();
    let act = |action| Act {
        alert_id: a,
        action,
        actor: "alice".to_owned(),
        via: rouse::store::Via::Api,
        at: t0() + Duration::minutes(3),
    };
    assert_eq!(
        store.act(&act(Action::Acknowledge)).await.unwrap(),
        Some(Decision::Acknowledge { id: a })
    );
    assert_eq!(
        store.act(&act(Action::Acknowledge)).await.unwrap(),
        Some(Decision::AlreadyAcknowledged { id: a })
    );
    assert_eq!(
        store.act(&act(Action::Resolve)).await.unwrap(),
        Some(Decision::Resolve { id: a })
    );
    assert_eq!(
        store.act(&act(Action::Resolve)).await.unwrap(),
        Some(Decision::NothingOpen)
    );
    assert_eq!(
        store
            .act(&Act {
                alert_id: 999_999,
                ..act(Action::Resolve)
            })
            .await
            .unwrap(),
        None
    );
    let resolved = store.alert(a).await.unwrap().unwrap();
    assert_eq!(resolved.resolved_by.as_deref(), Some("alice"));
    assert_eq!(resolved.resolved_at, Some(t0() + Duration::minutes(3)));

    let open_payments = store
        .alerts(&AlertFilter {
            service_id: Some("payments".to_owned()),
            statuses: vec![AlertStatus::Triggered, AlertStatus::Acknowledged],
            before_id: None,
            limit: 10,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(open_payments.len(), 1);
    assert_eq!(open_payments[0].dedup_key, "b");
    // The web UI's text filter: a case-insensitive substring of the key or
    // summary, with `%` meaning itself rather than a LIKE wildcard.
    let by_text = |text: &str| AlertFilter {
        text: Some(text.to_owned()),
        limit: 10,
        ..AlertFilter::default()
    };
    let found = store.alerts(&by_text("C")).await.unwrap();
    assert_eq!(
        found
            .iter()
            .map(|a| a.dedup_key.as_str())
            .collect::<Vec<_>>(),
        ["c"]
    );
    assert!(store.alerts(&by_text("%")).await.unwrap().is_empty());
    let page = store
        .alerts(&AlertFilter {
            limit: 2,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert!(page[0].id > page[1].id, "newest first");
    let next = store
        .alerts(&AlertFilter {
            limit: 2,
            before_id: Some(page[1].id),
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    store.close().await;
}
both_backends!(acting_by_id_and_filtering);

async fn heartbeats_are_recorded(db: &TestDb) {
    let store = db.open().await;
    store
        .record_heartbeat("payments", "nightly-backup", t0())
        .await
        .unwrap();
    let hb = store
        .record_heartbeat("payments", "nightly-backup", t0() + Duration::hours(24))
        .await
        .unwrap();
    assert_eq!(hb.ping_count, 2);
    let all = store.heartbeats().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].last_ping_at, t0() + Duration::hours(24));
    store.close().await;
}
both_backends!(heartbeats_are_recorded);

async fn migrations_are_idempotent(db: &TestDb) {
    let store = db.open().await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    store.close().await;
}
both_backends!(migrations_are_idempotent);

async fn a_batch_of_triggers_with_repeated_keys(db: &TestDb) {
    let store = db.open().await;
    let first = store
        .ingest(&[item("payments", "old", Action::Trigger, "open before")])
        .await
        .unwrap();
    let old = first[0].alert_id.unwrap();
    // One batch, as group commit builds it under load: repeated keys, one
    // already open, two services.
    let out = store
        .ingest(&[
            item("payments", "k1", Action::Trigger, "k1 first"),
            item("payments", "k1", Action::Trigger, "k1 second"),
            item("payments", "old", Action::Trigger, "old again"),
            item("search", "k1", Action::Trigger, "other service"),
            item("payments", "k1", Action::Trigger, "k1 third"),
        ])
        .await
        .unwrap();
    let k1 = out[0].alert_id.unwrap();
    let decisions: Vec<Decision> = out.iter().map(|o| o.decision).collect();
    assert_eq!(
        decisions,
        [
            Decision::Open,
            Decision::Refresh { id: k1 },
            Decision::Refresh { id: old },
            Decision::Open,
            Decision::Refresh { id: k1 },
        ]
    );
    let alert = store.alert(k1).await.unwrap().unwrap();
    assert_eq!(alert.event_count, 3);
    assert_eq!(alert.summary, "k1 third", "the latest event's details win");
    assert_eq!(store.alert(old).await.unwrap().unwrap().event_count, 2);
    let kinds: Vec<TimelineKind> = store
        .timeline(k1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    // Two duplicates in one minute are one entry (coalesced, see
    // store_duplicates.rs).
    assert_eq!(kinds, [TimelineKind::Received, TimelineKind::Deduplicated]);
    store.close().await;
}
both_backends!(a_batch_of_triggers_with_repeated_keys);

/// The decisions of a batch, with ids, in order.
fn decisions(out: &[rouse::store::IngestOutcome]) -> Vec<Decision> {
    out.iter().map(|o| o.decision).collect()
}

async fn kinds_of(store: &std::sync::Arc<dyn rouse::store::Store>, id: i64) -> Vec<TimelineKind> {
    store
        .timeline(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn trigger_resolve_trigger_in_one_batch(db: &TestDb) {
    let store = db.open().await;
    let mut resolve = item("payments", "disk", Action::Resolve, "");
    resolve.actor = "native:resolver".to_owned();
    resolve.received_at = t0() + Duration::seconds(1);
    let mut again = item("payments", "disk", Action::Trigger, "disk full again");
    again.received_at = t0() + Duration::seconds(2);
    let out = store
        .ingest(&[
            item("payments", "disk", Action::Trigger, "disk full"),
            resolve,
            again,
            item("payments", "disk", Action::Resolve, ""),
            item("payments", "disk", Action::Resolve, ""),
        ])
        .await
        .unwrap();
    let first = out[0].alert_id.unwrap();
    let second = out[2].alert_id.unwrap();
    assert_ne!(first, second, "a trigger after a resolve opens a new alert");
    assert_eq!(
        decisions(&out),
        [
            Decision::Open,
            Decision::Resolve { id: first },
            Decision::Open,
            Decision::Resolve { id: second },
            Decision::NothingOpen,
        ]
    );
    assert_eq!(out[4].alert_id, None);
    let a = store.alert(first).await.unwrap().unwrap();
    assert_eq!(a.status, AlertStatus::Resolved);
    assert_eq!(a.resolved_by.as_deref(), Some("native:resolver"));
    assert_eq!(a.resolved_at, Some(t0() + Duration::seconds(1)));
    assert_eq!(a.summary, "disk full");
    let b = store.alert(second).await.unwrap().unwrap();
    assert_eq!(b.status, AlertStatus::Resolved);
    assert_eq!(b.summary, "disk full again");
    assert_eq!(b.created_at, t0() + Duration::seconds(2));
    assert_eq!(
        kinds_of(&store, first).await,
        [TimelineKind::Received, TimelineKind::Resolved]
    );
    assert_eq!(
        kinds_of(&store, second).await,
        [TimelineKind::Received, TimelineKind::Resolved]
    );
    // Neither escalates: both were closed in the batch that opened them.
    assert_eq!(store.next_due().await.unwrap(), None);
    // And nothing is left open for the key.
    let out = store
        .ingest(&[item("payments", "disk", Action::Trigger, "third time")])
        .await
        .unwrap();
    assert_eq!(out[0].decision, Decision::Open);
    store.close().await;
}
both_backends!(trigger_resolve_trigger_in_one_batch);

async fn acknowledge_then_trigger_then_resolve_in_one_batch(db: &TestDb) {
    let store = db.open().await;
    let before = store
        .ingest(&[item("payments", "old", Action::Trigger, "open before")])
        .await
        .unwrap();
    let old = before[0].alert_id.unwrap();
    let mut ack = item("payments", "old", Action::Acknowledge, "");
    ack.actor = "native:acker".to_owned();
    ack.received_at = t0() + Duration::seconds(5);
    let mut dup = item("payments", "old", Action::Trigger, "old, worse");
    dup.received_at = t0() + Duration::seconds(6);
    let out = store
        .ingest(&[
            item("payments", "new", Action::Trigger, "new"),
            ack.clone(),
            item("payments", "new", Action::Acknowledge, ""),
            ack,
            dup,
            item("payments", "new", Action::Trigger, "new again"),
            item("payments", "new", Action::Resolve, ""),
        ])
        .await
        .unwrap();
    let new = out[0].alert_id.unwrap();
    assert_eq!(
        decisions(&out),
        [
            Decision::Open,
            Decision::Acknowledge { id: old },
            Decision::Acknowledge { id: new },
            Decision::AlreadyAcknowledged { id: old },
            Decision::Refresh { id: old },
            Decision::Refresh { id: new },
            Decision::Resolve { id: new },
        ]
    );
    let o = store.alert(old).await.unwrap().unwrap();
    assert_eq!(
        o.status,
        AlertStatus::Acknowledged,
        "a trigger does not un-acknowledge"
    );
    assert_eq!(o.acknowledged_by.as_deref(), Some("native:acker"));
    assert_eq!(o.acknowledged_at, Some(t0() + Duration::seconds(5)));
    assert_eq!(o.event_count, 2);
    assert_eq!(o.summary, "old, worse");
    assert_eq!(o.last_seen_at, t0() + Duration::seconds(6));
    let n = store.alert(new).await.unwrap().unwrap();
    assert_eq!(n.status, AlertStatus::Resolved);
    assert_eq!(n.event_count, 2);
    assert_eq!(n.summary, "new again");
    assert!(n.acknowledged_at.is_some() && n.resolved_at.is_some());
    assert_eq!(
        kinds_of(&store, old).await,
        [
            TimelineKind::Received,
            TimelineKind::Acknowledged,
            TimelineKind::Acknowledged,
            TimelineKind::Deduplicated,
        ]
    );
    assert_eq!(
        kinds_of(&store, new).await,
        [
            TimelineKind::Received,
            TimelineKind::Acknowledged,
            TimelineKind::Deduplicated,
            TimelineKind::Resolved,
        ]
    );
    // Acknowledged and resolved alerts stop escalating.
    assert_eq!(store.next_due().await.unwrap(), None);
    store.close().await;
}
both_backends!(acknowledge_then_trigger_then_resolve_in_one_batch);

async fn the_storm_threshold_is_reached_mid_batch(db: &TestDb) {
    let store = db.open().await;
    let with_threshold = |key: &str, action| {
        let mut it = item("payments", key, action, key);
        it.storm_threshold = 4;
        it
    };
    let before = store
        .ingest(&[
            with_threshold("a", Action::Trigger),
            with_threshold("b", Action::Trigger),
        ])
        .await
        .unwrap();
    let a = before[0].alert_id.unwrap();
    // Two open; the threshold is four: the batch's own openings count.
    let out = store
        .ingest(&[
            with_threshold("k1", Action::Trigger), // 3 open
            with_threshold("k2", Action::Trigger), // 4 open
            with_threshold("k3", Action::Trigger), // folded; the storm alert makes 5
            with_threshold("k1", Action::Trigger), // a duplicate is never folded
            with_threshold("a", Action::Resolve),  // 4
            with_threshold("k2", Action::Resolve), // 3
            with_threshold("k4", Action::Trigger), // below again: opens, 4
            with_threshold("k5", Action::Trigger), // folded into the same storm alert
            with_threshold("other", Action::Acknowledge),
        ])
        .await
        .unwrap();
    let k1 = out[0].alert_id.unwrap();
    let k2 = out[1].alert_id.unwrap();
    let storm = out[2].alert_id.unwrap();
    assert_eq!(
        decisions(&out),
        [
            Decision::Open,
            Decision::Open,
            Decision::FoldIntoStorm,
            Decision::Refresh { id: k1 },
            Decision::Resolve { id: a },
            Decision::Resolve { id: k2 },
            Decision::Open,
            Decision::FoldIntoStorm,
            Decision::NothingOpen,
        ]
    );
    assert_eq!(out[7].alert_id, Some(storm));
    let s = store.alert(storm).await.unwrap().unwrap();
    assert_eq!(s.dedup_key, "rouse:storm");
    assert_eq!(s.event_count, 2);
    assert_eq!(
        kinds_of(&store, storm).await,
        [
            TimelineKind::Received,
            TimelineKind::StormFolded,
            TimelineKind::StormFolded
        ]
    );
    // The count the next batch starts from is the one this batch ended with:
    // b, k1, storm, k4 are open, so a new key folds.
    let out = store
        .ingest(&[with_threshold("k6", Action::Trigger)])
        .await
        .unwrap();
    assert_eq!(out[0].decision, Decision::FoldIntoStorm);
    assert_eq!(out[0].alert_id, Some(storm));
    store.close().await;
}
both_backends!(the_storm_threshold_is_reached_mid_batch);

async fn a_large_batch_is_chunked(db: &TestDb) {
    let store = db.open().await;
    // More rows than one statement carries, with every key twice.
    let batch: Vec<Ingest> = (0..2_600)
        .map(|i| {
            let mut it = item("payments", &format!("k{}", i % 1_300), Action::Trigger, "x");
            it.storm_threshold = 1_000_000;
            it
        })
        .collect();
    let out = store.ingest(&batch).await.unwrap();
    for (i, o) in out.iter().enumerate() {
        if i < 1_300 {
            assert_eq!(o.decision, Decision::Open, "event {i}");
        } else {
            assert_eq!(
                o.decision,
                Decision::Refresh {
                    id: out[i - 1_300].alert_id.unwrap()
                },
                "event {i}"
            );
        }
    }
    let alert = store
        .alert(out[5].alert_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alert.event_count, 2);
    store.close().await;
}
both_backends!(a_large_batch_is_chunked);

/// Polls `fut` up to `polls` times, with a pause between polls so the
/// driver's worker runs what was sent, then drops it: a request whose client
/// went away at that point. True if it finished first.
async fn poll_then_drop<F: std::future::Future>(fut: F, polls: usize) -> bool {
    let mut fut = std::pin::pin!(fut);
    for _ in 0..polls {
        let ready =
            std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_ready()))
                .await;
        if ready {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    false
}

async fn a_cancelled_write_leaves_nothing_half_done(db: &TestDb) {
    let store = db.open().await;
    let opened = store
        .ingest(&[item("payments", "acked-later", Action::Trigger, "x")])
        .await
        .unwrap();
    let id = opened[0].alert_id.unwrap();
    // Dropped after each number of polls in turn, so some drop lands between
    // a transaction's first statement and its commit.
    for polls in 1..=12 {
        let batch = [
            item("payments", &format!("cut-{polls}-a"), Action::Trigger, "a"),
            item("payments", &format!("cut-{polls}-b"), Action::Trigger, "b"),
        ];
        poll_then_drop(store.ingest(&batch), polls).await;
        let act = Act {
            alert_id: id,
            action: Action::Acknowledge,
            actor: "web:alice".to_owned(),
            via: rouse::store::Via::Api,
            at: t0(),
        };
        poll_then_drop(store.act(&act), polls).await;
        // The writer is still usable...
        let after = store
            .ingest(&[item(
                "payments",
                &format!("after-{polls}"),
                Action::Trigger,
                "c",
            )])
            .await
            .unwrap();
        assert_eq!(after[0].decision, Decision::Open, "after {polls} polls");
    }
    // ...and each cut batch is all there or not at all, with its timeline.
    let alerts = store
        .alerts(&AlertFilter {
            limit: 1000,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    for polls in 1..=12 {
        let parts: Vec<_> = alerts
            .iter()
            .filter(|a| a.dedup_key.starts_with(&format!("cut-{polls}-")))
            .collect();
        assert!(
            parts.is_empty() || parts.len() == 2,
            "batch cut after {polls} polls is half there"
        );
        for a in parts {
            assert_eq!(kinds_of(&store, a.id).await, vec![TimelineKind::Received]);
        }
    }
    let acked = store.alert(id).await.unwrap().unwrap();
    assert!(matches!(
        acked.status,
        AlertStatus::Triggered | AlertStatus::Acknowledged
    ));
    let acks = kinds_of(&store, id)
        .await
        .into_iter()
        .filter(|k| *k == TimelineKind::Acknowledged)
        .count();
    assert_eq!(
        acks > 0,
        acked.status == AlertStatus::Acknowledged,
        "the status and the timeline disagree"
    );
}
both_backends!(a_cancelled_write_leaves_nothing_half_done);

async fn alerts_paged_at_a_number_newest_first(db: &TestDb) {
    use rouse::channel::{ChannelKind, Recipient};
    use rouse::store::{NewNotification, StepRecord};

    let store = db.open().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let out = store
            .ingest(&[item(
                "payments",
                &format!("paged-{i}"),
                Action::Trigger,
                "x",
            )])
            .await
            .unwrap();
        ids.push(out[0].alert_id.unwrap());
    }
    let claims = store
        .claim_escalations(t0(), "test", std::time::Duration::from_secs(60), 100)
        .await
        .unwrap();
    assert_eq!(claims.len(), 5);
    // Alerts 0, 1, 3 and 4 are paged to one number (twice each: SMS and
    // voice), alert 2 to another.
    let page = |alert: i64, channel: ChannelKind, number: &str| NewNotification {
        idempotency_key: format!("{alert}/{}/{number}", channel.as_str()),
        channel,
        target: "twilio".to_owned(),
        recipient: Recipient::Person {
            id: "alice".to_owned(),
            name: "Alice".to_owned(),
            address: number.to_owned(),
        },
        delay: chrono::TimeDelta::zero(),
    };
    let records: Vec<_> = claims
        .into_iter()
        .map(|claim| {
            let number = if claim.alert_id == ids[2] {
                "+15550000002"
            } else {
                "+15550000001"
            };
            let record = StepRecord {
                at: t0(),
                deliveries: vec![
                    page(claim.alert_id, ChannelKind::Sms, number),
                    page(claim.alert_id, ChannelKind::Voice, number),
                ],
                notes: vec![],
                next: None,
            };
            (claim, record)
        })
        .collect();
    assert!(store
        .record_steps(&records)
        .await
        .unwrap()
        .iter()
        .all(|w| *w));

    let paged = store.alerts_paged_at("+15550000001", 3).await.unwrap();
    let got: Vec<i64> = paged.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        got,
        vec![ids[4], ids[3], ids[1]],
        "distinct, newest first, limited"
    );
    assert!(paged.iter().all(|(_, s)| *s == AlertStatus::Triggered));
    let other = store.alerts_paged_at("+15550000002", 10).await.unwrap();
    assert_eq!(other, vec![(ids[2], AlertStatus::Triggered)]);
    assert!(store
        .alerts_paged_at("+15550000009", 10)
        .await
        .unwrap()
        .is_empty());
}
both_backends!(alerts_paged_at_a_number_newest_first);

/// Returns once a session of the test's database waits for a lock.
async fn someone_waits_for_a_lock(watch: &sqlx::PgPool, what: &str) {
    eventually(what, || {
        let watch = watch.clone();
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&watch)
            .await
            .unwrap();
            waiting > 0
        }
    })
    .await;
}

/// PostgreSQL breaks a deadlock by aborting one side; an acknowledgement that
/// loses one runs again instead of answering 500. Another session holds the
/// alert's escalation row, the acknowledgement locks the alert and waits for
/// that row, then the other session asks for the alert: a cycle. The other
/// session waits with a long `deadlock_timeout`, so the acknowledgement (the
/// server's default, 1 s) is the one PostgreSQL aborts.
#[tokio::test]
async fn an_acknowledgement_that_loses_a_deadlock_runs_again() {
    use sqlx::Connection;
    let Some(db) =
        TestDb::postgres("store::an_acknowledgement_that_loses_a_deadlock_runs_again").await
    else {
        return;
    };
    let store = db.open().await;
    let id = store
        .ingest(&[item("payments", "dl", Action::Trigger, "deadlock")])
        .await
        .unwrap()[0]
        .alert_id
        .unwrap();
    let mut other = sqlx::PgConnection::connect(db.url()).await.unwrap();
    for sql in ["SET deadlock_timeout = '60s'", "BEGIN"] {
        sqlx::query(sql).execute(&mut other).await.unwrap();
    }
    sqlx::query("UPDATE escalations SET due_at = due_at WHERE alert_id = $1")
        .bind(id)
        .execute(&mut other)
        .await
        .unwrap();
    let ack = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .act(&Act {
                    alert_id: id,
                    action: Action::Acknowledge,
                    actor: "alice".to_owned(),
                    via: rouse::store::Via::Sms,
                    at: t0() + Duration::minutes(1),
                })
                .await
        })
    };
    let watch = sqlx::PgPool::connect(db.url()).await.unwrap();
    someone_waits_for_a_lock(&watch, "the acknowledgement to wait for the escalation row").await;
    // Closes the cycle; returns once PostgreSQL has aborted the acknowledgement.
    sqlx::query("SELECT id FROM alerts WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_one(&mut other)
        .await
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    let decision = ack
        .await
        .unwrap()
        .expect("the acknowledgement runs again after losing a deadlock");
    assert_eq!(decision, Some(Decision::Acknowledge { id }));
    assert_eq!(
        kinds_of(&store, id)
            .await
            .iter()
            .filter(|k| **k == TimelineKind::Acknowledged)
            .count(),
        1
    );
    drop(other);
    watch.close().await;
    db.drop_db().await;
}

/// Two replicas open the same key at once: the one whose insert finds the
/// other's row already there skips it, rolls its whole batch back (the other
/// new alert and the escalation timers inserted in the same statement with
/// it) and applies the batch again on what is now stored. Another session
/// plays the first replica: its alert is inserted but not yet committed when
/// the store's batch reads, so the store's insert waits on it and then finds
/// the key taken.
#[tokio::test]
async fn a_key_opened_by_another_replica_mid_batch_is_applied_again() {
    let Some(db) =
        TestDb::postgres("store::a_key_opened_by_another_replica_mid_batch_is_applied_again").await
    else {
        return;
    };
    let store = db.open().await;
    applied_again(&db, store).await;
    db.drop_db().await;
}

/// The same on intake's writer, a view with its own connection, whose
/// commits begin the next batch's transaction: the rollback of the raced
/// attempt and the attempt after it run on that connection.
#[tokio::test]
async fn a_key_raced_on_the_writers_own_connection_is_applied_again() {
    let Some(db) =
        TestDb::postgres("store::a_key_raced_on_the_writers_own_connection_is_applied_again").await
    else {
        return;
    };
    let writer = db.open().await.for_own_thread();
    // A batch first, so the raced one starts on a transaction already begun.
    writer
        .ingest(&[item("payments", "before", Action::Trigger, "first")])
        .await
        .unwrap();
    applied_again(&db, writer).await;
    db.drop_db().await;
}

async fn applied_again(db: &TestDb, store: std::sync::Arc<dyn rouse::store::Store>) {
    use sqlx::Connection;
    let mut other = sqlx::PgConnection::connect(db.url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    let theirs: i64 = sqlx::query_scalar(
        "INSERT INTO alerts (service_id, dedup_key, status, summary, severity, created_at,
                             last_seen_at, opened_by)
         VALUES ('payments', 'raced', 'triggered', 'from the other replica', 'critical',
                 $1, $1, 'native:other')
         RETURNING id",
    )
    .bind(t0())
    .fetch_one(&mut other)
    .await
    .unwrap();
    let batch = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .ingest(&[
                    item("payments", "fresh", Action::Trigger, "only ours"),
                    item("payments", "raced", Action::Trigger, "ours too"),
                ])
                .await
        })
    };
    let watch = sqlx::PgPool::connect(db.url()).await.unwrap();
    someone_waits_for_a_lock(
        &watch,
        "the batch's insert to wait for the other replica's row",
    )
    .await;
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let outcomes = batch.await.unwrap().expect("the batch is applied again");
    assert_eq!(
        outcomes[1].alert_id,
        Some(theirs),
        "the second attempt refreshes the other replica's alert"
    );
    assert_eq!(outcomes[1].decision, Decision::Refresh { id: theirs });
    let fresh = outcomes[0].alert_id.unwrap();
    assert_eq!(outcomes[0].decision, Decision::Open);
    let open: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, dedup_key, event_count FROM alerts
          WHERE status <> 'resolved' AND dedup_key <> 'before' ORDER BY id",
    )
    .fetch_all(&watch)
    .await
    .unwrap();
    assert_eq!(
        open,
        vec![
            (theirs, "raced".to_owned(), 2),
            (fresh, "fresh".to_owned(), 1)
        ],
        "one alert per key; the first attempt's rows are gone"
    );
    // Our timer for the fresh alert, none left over from the first attempt,
    // and none for the other replica's alert (its own replica writes that).
    let timers: Vec<i64> = sqlx::query_scalar(
        "SELECT e.alert_id FROM escalations e JOIN alerts a ON a.id = e.alert_id
          WHERE a.dedup_key <> 'before' ORDER BY e.alert_id",
    )
    .fetch_all(&watch)
    .await
    .unwrap();
    assert_eq!(timers, vec![fresh]);
    let (counted, stored): (i64, i64) = sqlx::query_as(
        "SELECT open_count, (SELECT count(*) FROM alerts WHERE status <> 'resolved')
           FROM service_open_alerts WHERE service_id = 'payments'",
    )
    .fetch_one(&watch)
    .await
    .unwrap();
    assert_eq!(counted, stored, "the open count agrees with the alerts");
    drop(other);
    watch.close().await;
    store.close().await;
}

/// Intake's group commit ends first when a server stops; the deliveries'
/// writer may be in the middle of a commit then, and must finish it: that
/// commit is the record of a page the provider already has, and without it
/// the page is sent again once its lease runs out (`chaos::rolling` paged
/// twice so). Each group commit thread runs a runtime of its own; a pool
/// connection one of them opened was bound to it and died with it, in
/// whichever hands it was. Here another session holds the page's row, so
/// the deliveries' commit waits mid-transaction while intake's threads end.
#[tokio::test]
async fn a_delivery_commit_survives_intake_stopping_under_it() {
    use rouse::store::group_commit::{DeliveryCommit, GroupCommit};
    use rouse::store::{DeliveryRecord, DeliveryStatus, NewNotification, StepRecord};
    use sqlx::Connection;
    let Some(db) =
        TestDb::postgres("store::a_delivery_commit_survives_intake_stopping_under_it").await
    else {
        return;
    };
    let store = db.open().await;
    let (intake, intake_threads) = GroupCommit::start(store.clone());
    let opened = intake
        .submit(vec![item("payments", "page", Action::Trigger, "paged")])
        .await
        .expect("ingest through group commit");
    let id = opened[0].alert_id.expect("opened");
    let later = t0() + Duration::hours(1);
    let lease = std::time::Duration::from_secs(60);
    let step = store
        .claim_escalations(later, "test", lease, 10)
        .await
        .unwrap();
    assert_eq!(step.len(), 1);
    let record = StepRecord {
        at: later,
        deliveries: vec![NewNotification {
            idempotency_key: format!("{id}/page"),
            channel: rouse::channel::ChannelKind::Sms,
            target: "person:p1".to_owned(),
            recipient: rouse::channel::Recipient::Person {
                id: "p1".to_owned(),
                name: "P1".to_owned(),
                address: "+15550001001".to_owned(),
            },
            delay: Duration::zero(),
        }],
        notes: Vec::new(),
        next: None,
    };
    assert_eq!(
        store
            .record_steps(&[(step[0].clone(), record)])
            .await
            .unwrap(),
        vec![true]
    );
    let claims = store
        .claim_notifications(later, "test", lease, 10)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let (deliveries, _deliveries_threads) = DeliveryCommit::start(store.clone());

    let mut other = sqlx::PgConnection::connect(db.url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT id FROM notifications WHERE id = $1 FOR UPDATE")
        .bind(claims[0].id)
        .fetch_one(&mut other)
        .await
        .unwrap();
    let delivered = DeliveryRecord {
        at: later,
        status: DeliveryStatus::Delivered,
        provider_id: Some("SM1".to_owned()),
        error: None,
        retry_at: None,
        fall_through: false,
        count_attempt: true,
        message: "sms to P1: delivered".to_owned(),
    };
    let recorded = {
        let claim = claims[0].clone();
        tokio::spawn(async move { deliveries.submit(vec![(claim, delivered)]).await })
    };
    let watch = sqlx::PgPool::connect(db.url()).await.unwrap();
    someone_waits_for_a_lock(&watch, "the deliveries' commit to wait for the page's row").await;
    // Intake stops: its writer and syncer finish and their runtimes go.
    drop(intake);
    intake_threads.await.expect("intake's writer ends");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let recorded = recorded.await.unwrap();
    assert_eq!(
        recorded.expect("the delivery is recorded"),
        vec![true],
        "the page is recorded as sent, so it is never sent again"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM notifications WHERE id = $1")
        .bind(claims[0].id)
        .fetch_one(&watch)
        .await
        .unwrap();
    assert_eq!(status, "delivered");
    drop(other);
    watch.close().await;
    store.close().await;
    db.drop_db().await;
}

/// A watcher whose finding changes level resolves the old alert and opens a
/// new one under the same key in one batch: the resolve must free the key
/// before the new alert is inserted.
async fn resolve_then_trigger_of_one_key_in_one_batch_opens_a_new_alert(db: &TestDb) {
    let store = db.open().await;
    let first = store
        .ingest(&[item("payments", "k", Action::Trigger, "warning")])
        .await
        .unwrap()[0]
        .alert_id
        .unwrap();
    let out = store
        .ingest(&[
            item("payments", "k", Action::Resolve, ""),
            item("payments", "k", Action::Trigger, "now critical"),
        ])
        .await
        .unwrap();
    assert_eq!(out[0].alert_id, Some(first));
    let second = out[1].alert_id.unwrap();
    assert_ne!(second, first);
    let old = store.alert(first).await.unwrap().unwrap();
    let new = store.alert(second).await.unwrap().unwrap();
    assert_eq!(old.status, AlertStatus::Resolved);
    assert_eq!(new.status, AlertStatus::Triggered);
    assert_eq!(new.summary, "now critical");
}
both_backends!(resolve_then_trigger_of_one_key_in_one_batch_opens_a_new_alert);

/// Provider webhooks seen: insert-first, answered once, a dead claim taken
/// over, old ids pruned.
async fn inbound_ids_are_claimed_once(db: &TestDb) {
    use rouse::store::inbound::{Answer, Seen};
    let store = db.open().await;
    let long_ago = t0() - Duration::hours(1);
    let claim = |id: &'static str, at: DateTime<Utc>| {
        let store = store.clone();
        async move {
            store
                .claim_inbound("twilio-sms", id, at, at - Duration::minutes(2))
                .await
                .unwrap()
        }
    };
    assert_eq!(claim("SM1", t0()).await, Seen::First);
    assert_eq!(claim("SM1", t0()).await, Seen::InProgress);
    let answer = Answer {
        status: 200,
        content_type: Some("text/xml; charset=utf-8".to_owned()),
        body: "<Response><Message>#1 acknowledged.</Message></Response>".to_owned(),
    };
    store
        .answer_inbound("twilio-sms", "SM1", &answer)
        .await
        .unwrap();
    assert_eq!(claim("SM1", t0()).await, Seen::Answered(answer.clone()));
    // The same id from another provider is another message.
    assert_eq!(
        store
            .claim_inbound("slack", "SM1", t0(), long_ago)
            .await
            .unwrap(),
        Seen::First
    );
    // A claim never answered (its process died) is taken over later on…
    assert_eq!(claim("SM2", long_ago).await, Seen::First);
    assert_eq!(claim("SM2", t0()).await, Seen::First);
    // …and one whose request failed is forgotten at once.
    store.forget_inbound("twilio-sms", "SM2").await.unwrap();
    assert_eq!(claim("SM2", t0()).await, Seen::First);
    // An answered id is never taken over, however old.
    assert_eq!(
        claim("SM1", t0() + Duration::hours(2)).await,
        Seen::Answered(answer)
    );
    assert_eq!(
        store
            .prune_inbound(t0() + Duration::seconds(1))
            .await
            .unwrap(),
        3
    );
    assert_eq!(claim("SM1", t0()).await, Seen::First);
    store.close().await;
}
both_backends!(inbound_ids_are_claimed_once);

/// On SQLite, intake and acknowledgements write through a connection of
/// their own beside sqlx's writer (the engine's claims, heartbeats): the two
/// share one write lock. Hammered from both sides at once on a
/// multi-threaded runtime, as in `rouse serve`, every write must land — no
/// "database is locked", no transaction that fails halfway — and the open
/// counts the intake writer keeps must match the alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_intake_and_engine_writers_share_the_lock() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let intake = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for batch in 0..100 {
                let items: Vec<Ingest> = (0..10)
                    .map(|i| Ingest {
                        storm_threshold: 10_000,
                        ..item("payments", &format!("k{batch}-{i}"), Action::Trigger, "x")
                    })
                    .collect();
                for outcome in store.ingest(&items).await.expect("ingest") {
                    ids.push(outcome.alert_id.expect("opened"));
                }
                tokio::task::yield_now().await;
            }
            ids
        })
    };
    let engine = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut claimed = 0;
            for round in 0..100 {
                let lease = std::time::Duration::from_secs(60);
                claimed += store
                    .claim_escalations(t0(), &format!("engine-{round}"), lease, 5)
                    .await
                    .expect("claim")
                    .len();
                store
                    .record_heartbeat("payments", "backup", t0())
                    .await
                    .expect("heartbeat");
            }
            claimed
        })
    };
    let ids = intake.await.unwrap();
    let claimed = engine.await.unwrap();
    assert_eq!(ids.len(), 1000);
    assert!(
        claimed <= 1000,
        "each escalation claimed at most once per lease"
    );
    // Acknowledge a third and resolve a third, beside more engine writes.
    let acts = {
        let store = store.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            for (n, id) in ids.iter().enumerate().filter(|(n, _)| n % 3 != 2) {
                let action = if n % 3 == 0 {
                    Action::Acknowledge
                } else {
                    Action::Resolve
                };
                let act = Act {
                    alert_id: *id,
                    action,
                    actor: "alice".to_owned(),
                    via: rouse::store::Via::Api,
                    at: t0() + Duration::minutes(1),
                };
                assert!(store.act(&act).await.expect("act").is_some());
            }
        })
    };
    for _ in 0..50 {
        store
            .record_heartbeat("payments", "backup", t0())
            .await
            .expect("heartbeat");
    }
    acts.await.unwrap();
    let open = store
        .alerts(&AlertFilter {
            limit: 2000,
            ..AlertFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.status != AlertStatus::Resolved)
        .count();
    assert_eq!(open, 1000 - 333);
    // Storm control reads the kept count (667 open): a threshold of 668
    // opens one more, and then 668 are open and the next folds.
    for (key, decision) in [
        ("one-more", Decision::Open),
        ("two-more", Decision::FoldIntoStorm),
    ] {
        let next = store
            .ingest(&[Ingest {
                storm_threshold: 668,
                ..item("payments", key, Action::Trigger, "x")
            }])
            .await
            .unwrap();
        assert_eq!(next[0].decision, decision, "{key}");
    }
    store.close().await;
    db.drop_db().await;
}

/// Intake encodes an event's JSON columns ahead (`Ingest::encoded`); what
/// the store keeps must be what it would have encoded itself, for new
/// alerts, refreshes, and events merged within one batch.
async fn json_encoded_ahead_is_stored_as_the_store_would_encode_it(db: &TestDb) {
    use rouse::alert::event::Link;
    use rouse::store::EventJson;
    let store = db.open().await;
    let rich = |key: &str, ahead: bool, disk: &str| {
        let mut i = item("payments", key, Action::Trigger, "disk full");
        i.event.details =
            serde_json::json!({"disk": disk, "mounts": ["/", "/var"], "quote": "a \"b\" \\ c"});
        i.event.links = vec![Link::new("https://grafana.example/d/1", "dashboard")];
        i.event
            .labels
            .insert("zone".to_owned(), "eu-1 ünïcode".to_owned());
        if ahead {
            i.encoded = Some(EventJson::of(&i.event).unwrap());
        }
        i
    };
    let columns = |a: &rouse::alert::Alert| (a.labels.clone(), a.details.clone(), a.links.clone());
    let mut ids = Vec::new();
    for (key, ahead) in [("by-store", false), ("ahead", true)] {
        // Opened, then in the same batch a second trigger with no labels:
        // merged in memory, so no item's encoding applies to the row.
        let mut merged = rich(key, ahead, "99%");
        merged.event.labels.clear();
        if ahead {
            merged.encoded = Some(EventJson::of(&merged.event).unwrap());
        }
        let out = store
            .ingest(&[rich(key, ahead, "98%"), merged])
            .await
            .unwrap();
        ids.push(out[0].alert_id.unwrap());
    }
    let (a, b) = (
        store.alert(ids[0]).await.unwrap().unwrap(),
        store.alert(ids[1]).await.unwrap().unwrap(),
    );
    assert_eq!(columns(&a), columns(&b));
    assert_eq!(b.details["disk"], "99%", "the later event's details");
    assert_eq!(
        b.labels.get("zone").map(String::as_str),
        Some("eu-1 ünïcode")
    );
    assert_eq!(b.links.len(), 1);

    // Refreshed from a later batch: once with the item's own encoding, once
    // with an empty field that keeps the stored value.
    for (key, ahead) in [("by-store", false), ("ahead", true)] {
        let mut later = rich(key, ahead, "97%");
        later.received_at = t0() + Duration::minutes(2);
        store.ingest(&[later]).await.unwrap();
        let mut bare = rich(key, ahead, "96%");
        bare.event.links.clear();
        bare.event.labels.clear();
        bare.received_at = t0() + Duration::minutes(3);
        if ahead {
            bare.encoded = Some(EventJson::of(&bare.event).unwrap());
        }
        store.ingest(&[bare]).await.unwrap();
    }
    let (a, b) = (
        store.alert(ids[0]).await.unwrap().unwrap(),
        store.alert(ids[1]).await.unwrap().unwrap(),
    );
    assert_eq!(columns(&a), columns(&b));
    assert_eq!(b.details["disk"], "96%");
    assert_eq!(
        b.links.len(),
        1,
        "an event without links keeps the stored ones"
    );
    assert_eq!(
        b.labels.get("zone").map(String::as_str),
        Some("eu-1 ünïcode")
    );
}
both_backends!(json_encoded_ahead_is_stored_as_the_store_would_encode_it);

/// An alert deleted by hand (Rouse never deletes one) takes its escalation
/// with it and no other: SQLite by its foreign key's cascade, PostgreSQL by
/// a statement trigger since intake's inserts stopped paying for that key's
/// row-by-row check (migration `…20261203000010`).
async fn an_alert_deleted_by_hand_takes_its_escalation_with_it(db: &TestDb) {
    let store = db.open().await;
    let [gone, kept] = opened(&store, ["gone", "kept"]).await;
    store.close().await;
    by_hand(db, "DELETE FROM alerts WHERE id = $1", Some(gone)).await;
    let remaining = by_hand(
        db,
        "SELECT alert_id FROM escalations ORDER BY alert_id",
        None,
    )
    .await;
    assert_eq!(
        remaining,
        vec![kept],
        "only the deleted alert's escalation went"
    );
}
both_backends!(an_alert_deleted_by_hand_takes_its_escalation_with_it);

/// Opens one alert of `payments` per key, in one batch; their ids.
async fn opened<const N: usize>(
    store: &std::sync::Arc<dyn rouse::store::Store>,
    keys: [&str; N],
) -> [i64; N] {
    let batch: Vec<Ingest> = keys
        .iter()
        .map(|k| item("payments", k, Action::Trigger, k))
        .collect();
    let out = store.ingest(&batch).await.unwrap();
    std::array::from_fn(|i| out[i].alert_id.expect("opened"))
}

/// Runs `sql` (with `$1` bound to `id`, if given) as an admin would by
/// hand, on a pool of its own of `db`'s kind; the ids it returns. SQLite
/// takes `$1` too, and sqlx turns its foreign keys on by default.
async fn by_hand(db: &TestDb, sql: &str, id: Option<i64>) -> Vec<i64> {
    macro_rules! run {
        ($pool:expr) => {{
            let pool = $pool.await.unwrap();
            let mut query = sqlx::query_scalar(sql);
            if let Some(id) = id {
                query = query.bind(id);
            }
            let ids = query.fetch_all(&pool).await.unwrap();
            pool.close().await;
            ids
        }};
    }
    if db.url().starts_with("sqlite:") {
        run!(sqlx::SqlitePool::connect(db.url()))
    } else {
        run!(sqlx::PgPool::connect(db.url()))
    }
}

/// Intake's commits on PostgreSQL do not wait for the log flush; `sync`
/// must flush the log past every one of them before group commit answers
/// 202. The log writer flushes on its own only every 200 ms
/// (`wal_writer_delay`), so a sync whose commit does not wait for the
/// flush leaves the flush position behind the batch's commit in nearly
/// every round here. Such was `BEGIN; SELECT txid_current(); COMMIT`, the
/// sync until 2026-12-03: an id, but nothing written to the log, and
/// PostgreSQL waits only for a commit that wrote some (this test failed on
/// it in every run).
#[tokio::test]
async fn a_sync_flushes_the_log_past_every_ingest_commit() {
    let Some(db) = TestDb::postgres("store::a_sync_flushes_the_log_past_every_ingest_commit").await
    else {
        return;
    };
    let store = db.open().await;
    synced_past_every_commit(&db, &store, &store).await;
    store.close().await;
    db.drop_db().await;
}

/// The same through group commit's two views, as intake runs: the writer
/// commits on its own connection (beginning the next batch's transaction
/// in the same round trip) and the syncer flushes on another.
#[tokio::test]
async fn a_sync_on_its_own_connection_flushes_the_writers_commits() {
    let Some(db) =
        TestDb::postgres("store::a_sync_on_its_own_connection_flushes_the_writers_commits").await
    else {
        return;
    };
    let store = db.open().await;
    let writer = store.clone().for_own_thread();
    let syncer = store.clone().for_own_thread();
    synced_past_every_commit(&db, &writer, &syncer).await;
    writer.close().await;
    syncer.close().await;
    store.close().await;
    db.drop_db().await;
}

/// Five rounds of a batch ingested by `writer` and a sync by `syncer`; after
/// each sync the server's flush position must be past the batch's commit.
async fn synced_past_every_commit(
    db: &TestDb,
    writer: &std::sync::Arc<dyn rouse::store::Store>,
    syncer: &std::sync::Arc<dyn rouse::store::Store>,
) {
    use sqlx::Connection;
    let mut watch = sqlx::PgConnection::connect(db.url()).await.unwrap();
    for round in 0..5 {
        writer
            .ingest(&[item("payments", &format!("k{round}"), Action::Trigger, "x")])
            .await
            .unwrap();
        let (committed,): (String,) = sqlx::query_as("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(&mut watch)
            .await
            .unwrap();
        syncer.sync().await.unwrap();
        let (flushed_past,): (bool,) =
            sqlx::query_as("SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn")
                .bind(&committed)
                .fetch_one(&mut watch)
                .await
                .unwrap();
        assert!(
            flushed_past,
            "round {round}: the log is not flushed past {committed} after sync"
        );
    }
}

/// What intake's writer connection looks like to the server between
/// batches. Its last commit began the next batch's transaction, which must
/// hold nothing (no transaction id, no snapshot: vacuum and everyone else
/// go on as if it were not there), and once group commit reports a quiet
/// spell it is ended, so the connection is not left "idle in transaction".
#[tokio::test]
async fn the_writers_next_transaction_holds_nothing_and_ends_when_idle() {
    use rouse::store::group_commit::GroupCommit;
    let Some(db) =
        TestDb::postgres("store::the_writers_next_transaction_holds_nothing_and_ends_when_idle")
            .await
    else {
        return;
    };
    let store = db.open().await;
    let watch = sqlx::PgPool::connect(db.url()).await.unwrap();
    // (state, has an xid, has an xmin) of the store's connections that are
    // not the pool's idle ones: the writer's.
    let writers = || {
        let watch = watch.clone();
        async move {
            let rows: Vec<(String, bool, bool)> = sqlx::query_as(
                "SELECT state, backend_xid IS NOT NULL, backend_xmin IS NOT NULL
                   FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'rouse'
                    AND state = 'idle in transaction'",
            )
            .fetch_all(&watch)
            .await
            .unwrap();
            rows
        }
    };
    let writer = store.clone().for_own_thread();
    writer
        .ingest(&[item("payments", "a", Action::Trigger, "x")])
        .await
        .unwrap();
    assert_eq!(
        writers().await,
        vec![("idle in transaction".to_owned(), false, false)],
        "the writer's next transaction is begun and holds nothing"
    );
    writer.idle().await;
    assert_eq!(writers().await, vec![], "idle ends it");
    // The batch after a quiet spell begins its own, and a duplicate finds
    // the alert the first batch opened.
    let outcomes = writer
        .ingest(&[item("payments", "a", Action::Trigger, "x")])
        .await
        .unwrap();
    assert!(matches!(outcomes[0].decision, Decision::Refresh { .. }));
    writer.idle().await;
    writer.close().await;
    // Group commit says when it is idle.
    let (commit, done) = GroupCommit::start(store.clone());
    commit
        .submit(vec![item("payments", "b", Action::Trigger, "y")])
        .await
        .unwrap();
    eventually(
        "group commit to end the writer's transaction when idle",
        || async move { writers().await.is_empty() },
    )
    .await;
    drop(commit);
    done.await.unwrap();
    watch.close().await;
    store.close().await;
    db.drop_db().await;
}

/// Group commit's threads close their own PostgreSQL connections as they
/// stop instead of dropping them: a dropped socket is a session the server
/// counts as abandoned (`pg_stat_database.sessions_abandoned`) and logs as
/// an unexpected EOF, with an open transaction when intake's writer had
/// begun the next batch's.
#[tokio::test]
async fn group_commit_closes_its_own_connections_when_it_stops() {
    use rouse::store::group_commit::GroupCommit;
    let Some(db) =
        TestDb::postgres("store::group_commit_closes_its_own_connections_when_it_stops").await
    else {
        return;
    };
    let store = db.open().await;
    let watch = sqlx::PgPool::connect(db.url()).await.unwrap();
    let abandoned = || {
        let watch = watch.clone();
        async move {
            let mut conn = watch.acquire().await.unwrap();
            sqlx::query("SELECT pg_stat_clear_snapshot()")
                .execute(&mut *conn)
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar(
                "SELECT sessions_abandoned FROM pg_stat_database WHERE datname = current_database()",
            )
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            n
        }
    };
    let rouse_connections = || {
        let watch = watch.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'rouse'",
            )
            .fetch_one(&watch)
            .await
            .unwrap();
            n
        }
    };
    let pool_only = rouse_connections().await;
    let before = abandoned().await;
    let (commit, done) = GroupCommit::start(store.clone());
    commit
        .submit(vec![item("payments", "a", Action::Trigger, "x")])
        .await
        .unwrap();
    assert!(
        rouse_connections().await > pool_only,
        "the writer and the syncer have connections of their own"
    );
    drop(commit);
    done.await.unwrap();
    eventually(
        "the group commit threads' connections to end",
        || async move { rouse_connections().await <= pool_only },
    )
    .await;
    // A backend reports its session's end as it exits; give the report a
    // moment to arrive before reading the counter.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        abandoned().await,
        before,
        "no session was left to the server to find abandoned"
    );
    watch.close().await;
    store.close().await;
    db.drop_db().await;
}

/// Which keys are open follows every write and comes back when the store
/// opens again. On SQLite the writer holds them in memory since no index
/// answers it any more (`src/store/sqlite/open_keys.rs`); PostgreSQL asks
/// its index. A key resolved in a batch, by an act or in the batch that
/// opened it gives its alert up; one left open keeps it across a reopen.
async fn open_keys_follow_every_write_and_survive_a_reopen(db: &TestDb) {
    let store = db.open().await;
    let out = store
        .ingest(&[
            item("payments", "kept", Action::Trigger, "x"),
            item("payments", "acted", Action::Trigger, "x"),
            item("payments", "brief", Action::Trigger, "x"),
            item("payments", "brief", Action::Resolve, ""),
            item("search", "kept", Action::Trigger, "x"),
        ])
        .await
        .unwrap();
    let (kept, acted, brief, other) = (
        out[0].alert_id.unwrap(),
        out[1].alert_id.unwrap(),
        out[2].alert_id.unwrap(),
        out[4].alert_id.unwrap(),
    );
    assert_eq!(out[3].decision, Decision::Resolve { id: brief });
    let resolve = Act {
        alert_id: acted,
        action: Action::Resolve,
        actor: "alice".to_owned(),
        via: rouse::store::Via::Api,
        at: t0() + Duration::minutes(1),
    };
    assert_eq!(
        store.act(&resolve).await.unwrap(),
        Some(Decision::Resolve { id: acted })
    );
    // Resolved and opened again in one batch: the new alert takes the key.
    let out = store
        .ingest(&[
            item("search", "kept", Action::Resolve, ""),
            item("search", "kept", Action::Trigger, "again"),
        ])
        .await
        .unwrap();
    assert_eq!(out[0].decision, Decision::Resolve { id: other });
    let other_again = out[1].alert_id.unwrap();
    assert_eq!(out[1].decision, Decision::Open);
    store.close().await;

    let store = db.open().await;
    let out = store
        .ingest(&[
            item("payments", "kept", Action::Trigger, "x"),
            item("payments", "acted", Action::Trigger, "x"),
            item("payments", "brief", Action::Trigger, "x"),
            item("search", "kept", Action::Trigger, "x"),
        ])
        .await
        .unwrap();
    assert_eq!(out[0].decision, Decision::Refresh { id: kept });
    assert_eq!(out[3].decision, Decision::Refresh { id: other_again });
    for (outcome, old) in [(&out[1], acted), (&out[2], brief)] {
        assert_eq!(
            outcome.decision,
            Decision::Open,
            "a resolved key opens anew"
        );
        assert_ne!(outcome.alert_id, Some(old));
    }
    let open = store
        .alerts(&AlertFilter {
            statuses: vec![AlertStatus::Triggered],
            limit: 100,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 4, "one open alert per key: {open:?}");
    store.close().await;
}
both_backends!(open_keys_follow_every_write_and_survive_a_reopen);

/// An open alert resolved or deleted by hand behind a running store (not
/// what Rouse does, but what an admin might) is not refreshed by its key
/// afterwards: its key opens a new alert. On SQLite the writer holds the
/// key in memory and reads the row it names by id (`open_keys.rs`).
async fn an_alert_closed_by_hand_is_not_refreshed_by_its_key(db: &TestDb) {
    let store = db.open().await;
    let [resolved, deleted] = opened(&store, ["resolved", "deleted"]).await;
    by_hand(
        db,
        "UPDATE alerts SET status = 'resolved' WHERE id = $1",
        Some(resolved),
    )
    .await;
    by_hand(db, "DELETE FROM alerts WHERE id = $1", Some(deleted)).await;
    let out = store
        .ingest(&[
            item("payments", "resolved", Action::Trigger, "x"),
            item("payments", "deleted", Action::Trigger, "y"),
        ])
        .await
        .unwrap();
    for (outcome, old) in [(&out[0], resolved), (&out[1], deleted)] {
        assert_eq!(outcome.decision, Decision::Open);
        assert_ne!(outcome.alert_id, Some(old));
    }
    let before = store.alert(resolved).await.unwrap().unwrap();
    assert_eq!(
        (before.status, before.event_count),
        (AlertStatus::Resolved, 1),
        "the alert resolved by hand was left alone"
    );
    store.close().await;
}
both_backends!(an_alert_closed_by_hand_is_not_refreshed_by_its_key);

/// SQLite's direct writer skips CHECK constraints (every value it writes
/// into a checked column is a Rust enum's or a literal; the checks cost it
/// a temporary b-tree a statement, `src/store/sqlite/direct.rs`). What it
/// writes through every path must still satisfy them: `integrity_check`
/// checks each row against each CHECK, and is shown to catch one that
/// does not.
#[tokio::test]
async fn what_the_sqlite_writer_writes_satisfies_every_check() {
    use sqlx::Connection;
    let db = TestDb::sqlite();
    let store = db.open().await;
    let out = store
        .ingest(&[
            item("payments", "acked", Action::Trigger, "x"),
            item("payments", "acked", Action::Trigger, "x again"),
            item("payments", "brief", Action::Trigger, "x"),
            item("payments", "brief", Action::Resolve, ""),
            item("payments", "resolved", Action::Trigger, "x"),
            item("payments", "open", Action::Trigger, "x"),
        ])
        .await
        .unwrap();
    let act = Act {
        alert_id: out[0].alert_id.unwrap(),
        action: Action::Acknowledge,
        actor: "alice".to_owned(),
        via: rouse::store::Via::Api,
        at: t0() + Duration::minutes(1),
    };
    store.act(&act).await.unwrap();
    store
        .ingest(&[item("payments", "resolved", Action::Resolve, "")])
        .await
        .unwrap();
    store.close().await;

    let mut conn = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT dedup_key, status FROM alerts ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(
        statuses.iter().any(|(_, s)| s == "acknowledged")
            && statuses.iter().any(|(_, s)| s == "resolved")
            && statuses.iter().any(|(_, s)| s == "triggered"),
        "every status was written: {statuses:?}"
    );
    let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(report, ["ok"]);

    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE escalations SET state = 'bogus'")
        .execute(&mut conn)
        .await
        .unwrap();
    // integrity_check skips the checks on a connection that ignores them.
    sqlx::query("PRAGMA ignore_check_constraints = OFF")
        .execute(&mut conn)
        .await
        .unwrap();
    let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(
        report.iter().any(|line| line.contains("CHECK")),
        "integrity_check sees a failed CHECK: {report:?}"
    );
    conn.close().await.unwrap();
    db.drop_db().await;
}
