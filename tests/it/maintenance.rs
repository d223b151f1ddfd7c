//! Maintenance windows on a virtual clock, on both stores: an alert that
//! arrives during a window is stored and nobody is paged; when the window
//! ends it escalates from its first step, and the timeline says both.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::alert::{Action, Event, IntakeKind, Severity, Urgency};
use rouse::clock::Clock;
use rouse::escalation::engine::{Channels, Engine};
use rouse::store::Ingest;

use crate::both_backends;
use crate::support::TestDb;
use crate::watch_runner::{Rig, PEOPLE};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

const WINDOW: &str = r#"
maintenance:
  - service: payments
    from: 2026-03-02T10:10
    until: 2026-03-02T10:40
    timezone: Europe/Berlin
    reason: "db-1 failover drill"
"#;

async fn open(rig: &Rig, key: &str) -> i64 {
    let now = rig.clock.now();
    rig.store
        .ingest(&[Ingest {
            encoded: None,
            service_id: "payments".into(),
            actor: "test".into(),
            policy_id: Some("default".into()),
            urgency: Urgency::High,
            dedup_key: key.into(),
            event: Event {
                kind: IntakeKind::Native,
                action: Action::Trigger,
                dedup_key: Some(key.into()),
                summary: format!("{key} is down"),
                severity: Severity::Critical,
                source: "db-1".into(),
                labels: Default::default(),
                details: serde_json::json!({}),
                links: vec![],
                occurred_at: None,
            },
            received_at: now,
            storm_threshold: 1000,
            first_step_due: Some(now),
        }])
        .await
        .unwrap()[0]
        .alert_id
        .unwrap()
}

async fn run(engine: &Engine) {
    for _ in 0..10 {
        let (fired, sent) = engine.tick().await.unwrap();
        engine.idle().await;
        if fired == 0 && sent == 0 {
            break;
        }
    }
}

async fn nobody_is_paged_in_a_window_and_escalation_starts_when_it_ends(db: &TestDb) {
    let rig = Rig::with_catalog(db, &format!("{PEOPLE}{WINDOW}"), t0()).await;
    let engine = Engine::new(
        rig.store.clone(),
        rig.catalog.clone(),
        Arc::new(Channels::console_only()),
        Arc::new(rig.clock.clone()),
    );
    let at = |m: i64| t0() + TimeDelta::minutes(m);
    // 09:15 UTC is 10:15 in Berlin: inside the window.
    rig.clock.set(at(15));
    let alert = open(&rig, "db-down").await;
    run(&engine).await;
    assert!(rig.store.notifications(alert).await.unwrap().is_empty());
    let timeline = rig.store.timeline(alert).await.unwrap();
    let note = timeline
        .iter()
        .find(|e| e.message.starts_with("in maintenance: db-1 failover drill"))
        .unwrap_or_else(|| panic!("{timeline:?}"));
    assert!(
        note.message.contains("until 2026-03-02T09:40:00Z"),
        "{}",
        note.message
    );

    rig.clock.set(at(40) - TimeDelta::seconds(1));
    run(&engine).await;
    assert!(rig.store.notifications(alert).await.unwrap().is_empty());

    rig.clock.set(at(40));
    run(&engine).await;
    let pages = rig.store.notifications(alert).await.unwrap();
    assert_eq!(pages.len(), 1, "the first step fires when the window ends");
    assert_eq!(pages[0].due_at, at(40));
    let timeline = rig.store.timeline(alert).await.unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e.message == "maintenance over: escalating from the first step"),
        "{timeline:?}"
    );

    // After the window, a new alert pages at once.
    rig.clock.set(at(50));
    let later = open(&rig, "api-down").await;
    run(&engine).await;
    assert_eq!(rig.store.notifications(later).await.unwrap().len(), 1);
}
both_backends!(nobody_is_paged_in_a_window_and_escalation_starts_when_it_ends);

#[test]
fn windows_are_validated_where_they_are_written() {
    let bad = r#"
maintenance:
  - service: nowhere
    reason: x
    from: 2026-03-02T10:10
    until: 2026-03-02T10:40
  - service: payments
    reason: weekly
    cron: "0 2 * * sun"
    duration: 2h
  - service: payments
    reason: backwards
    from: 2026-03-02T10:10
    until: 2026-03-02T09:00
"#;
    let files = vec![(std::path::PathBuf::from("m.yaml"), format!("{PEOPLE}{bad}"))];
    let err = rouse::catalog::load_files(&files, &|_| None)
        .unwrap_err()
        .to_string();
    let offset = PEOPLE.lines().count();
    for (line, col, text) in [
        (3, 14, "unknown service `nowhere`"),
        (9, 11, "`cron` needs `timezone`"),
        (14, 12, "`until` must be after `from`"),
    ] {
        let want = format!("m.yaml:{}:{col}: {text}", line + offset);
        assert!(err.contains(&want), "missing {want:?} in\n{err}");
    }
}
