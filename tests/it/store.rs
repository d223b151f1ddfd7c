//! The store contract, run against SQLite and PostgreSQL alike.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rouse::alert::{
    Action, AlertStatus, Decision, Event, IntakeKind, Severity, TimelineKind, Urgency,
};
use rouse::store::{Act, AlertFilter, Ingest};

use crate::both_backends;
use crate::support::TestDb;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0).unwrap()
}

fn item(service: &str, key: &str, action: Action, summary: &str) -> Ingest {
    let mut labels = BTreeMap::new();
    labels.insert("instance".to_owned(), "db-1".to_owned());
    Ingest {
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
        })
        .await
        .unwrap();
    assert_eq!(open_payments.len(), 1);
    assert_eq!(open_payments[0].dedup_key, "b");
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
    assert_eq!(
        kinds,
        [
            TimelineKind::Received,
            TimelineKind::Deduplicated,
            TimelineKind::Deduplicated
        ]
    );
    store.close().await;
}
both_backends!(a_batch_of_triggers_with_repeated_keys);
