//! The watcher runner on a virtual clock, on both stores: heartbeats that go
//! quiet page at exactly `interval + grace` and resolve on the next ping,
//! restarts change nothing, a hanging check costs one failed run of one
//! watcher, and each slot runs once however many runners share the store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::alert::{AlertStatus, Severity, TimelineKind, Urgency};
use rouse::catalog::live::LiveCatalog;
use rouse::clock::{Clock, ManualClock};
use rouse::store::{AlertFilter, Store};
use rouse::watch::runner::{Prober, Probes, Runner};
use rouse::watch::spec::WatcherSpec;
use rouse::watch::CheckResult;
use tokio::sync::Notify;

use crate::both_backends;
use crate::support::TestDb;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

pub const PEOPLE: &str = r#"
people:
  - id: alice
    name: Alice
    timezone: Europe/Berlin
    contact: { sms: "+4915100000001" }
rotations:
  - id: weekly
    timezone: Europe/Berlin
    participants: [alice]
    shift: 1w
    handoff: "09:00"
    start: 2026-01-05
schedules:
  - id: primary
    timezone: Europe/Berlin
    layers: [{ rotation: weekly }]
policies:
  - id: default
    steps:
      - delay: 0m
        targets: [{ schedule: primary }]
        channels: [sms]
services:
  - id: payments
    policy: default
    integrations:
      - name: prometheus
        key: payments-test-key-0123456789
"#;

pub struct Rig {
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    pub catalog: Arc<LiveCatalog>,
    _rotations: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Rig {
    /// The small test organisation plus `watchers`.
    pub async fn new(db: &TestDb, watchers: &str, start: DateTime<Utc>) -> Rig {
        Self::with_catalog(db, &format!("{PEOPLE}\n{watchers}"), start).await
    }

    /// A whole on-call configuration of the test's own.
    pub async fn with_catalog(db: &TestDb, yaml: &str, start: DateTime<Utc>) -> Rig {
        let store = db.open().await;
        let rotations = tempfile::tempdir().unwrap();
        std::fs::write(rotations.path().join("oncall.yaml"), yaml).unwrap();
        let catalog = Arc::new(LiveCatalog::new(rotations.path(), Box::new(|_: &str| None)));
        let loaded = catalog.reload(start, true);
        assert!(
            catalog.current().is_some(),
            "the test catalog must load: {loaded:?}"
        );
        Rig {
            store,
            clock: ManualClock::new(start),
            catalog,
            _rotations: rotations,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// A runner, as a fresh process would build one.
    pub fn runner(&self) -> Runner {
        self.runner_with(Arc::new(self.probes()))
    }

    pub fn probes(&self) -> Probes {
        let mut config = rouse::config::Config::default().watch;
        config.bootstrap_cache = self.cache.path().join("bootstrap.json");
        config.rdap_bootstrap_url = "http://127.0.0.1:9/dns.json".into();
        Probes::from_config(&config).unwrap()
    }

    /// A runner whose checks go through `prober`.
    pub fn runner_with(&self, prober: Arc<dyn Prober>) -> Runner {
        Runner::new(
            self.store.clone(),
            self.catalog.clone(),
            Arc::new(self.clock.clone()),
            prober,
            8,
            10_000,
            Arc::new(Notify::new()),
        )
    }

    pub async fn alerts(&self) -> Vec<rouse::alert::Alert> {
        self.store
            .alerts(&AlertFilter {
                limit: 100,
                ..AlertFilter::default()
            })
            .await
            .unwrap()
    }

    pub async fn ping(&self, name: &str) {
        self.store
            .record_heartbeat("payments", name, self.clock.now())
            .await
            .unwrap();
    }
}

const HEARTBEAT: &str = r#"
watchers:
  - id: backup
    kind: heartbeat
    service: payments
    name: nightly-backup
    interval: 5m
    grace: 1m
"#;

async fn silence_pages_at_exactly_interval_plus_grace(db: &TestDb) {
    let rig = Rig::new(db, HEARTBEAT, t0()).await;
    let runner = rig.runner();
    assert_eq!(runner.tick().await.unwrap(), 1);
    assert!(rig.alerts().await.is_empty(), "waiting for the first ping");

    rig.clock.set(t0() + TimeDelta::minutes(1));
    rig.ping("nightly-backup").await;
    let deadline = t0() + TimeDelta::minutes(7);
    rig.clock.set(deadline - TimeDelta::seconds(1));
    runner.tick().await.unwrap();
    assert!(rig.alerts().await.is_empty(), "one second early");

    // A restart: a new runner (another owner) with the same store.
    drop(runner);
    let runner = rig.runner();
    rig.clock.set(deadline);
    assert_eq!(runner.tick().await.unwrap(), 1, "due at the exact deadline");
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert.dedup_key, "watch:backup:silent");
    assert_eq!(alert.created_at, deadline);
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(alert.urgency, Urgency::High);
    assert!(
        alert
            .summary
            .contains("nightly-backup: no ping since 2026-03-02 09:01:00 UTC"),
        "{}",
        alert.summary
    );

    // Restarted again while silent: the same alert is refreshed, not re-opened.
    let runner = rig.runner();
    rig.clock.set(deadline + TimeDelta::seconds(30));
    runner.tick().await.unwrap();
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].status, AlertStatus::Triggered);

    rig.clock.set(deadline + TimeDelta::minutes(2));
    rig.ping("nightly-backup").await;
    rig.clock
        .set(deadline + TimeDelta::minutes(2) + TimeDelta::seconds(30));
    runner.tick().await.unwrap();
    let alerts = rig.alerts().await;
    assert_eq!(
        alerts[0].status,
        AlertStatus::Resolved,
        "the next ping resolves it"
    );
    let timeline = rig.store.timeline(alerts[0].id).await.unwrap();
    let resolved = timeline
        .iter()
        .find(|e| e.kind == TimelineKind::Resolved)
        .unwrap();
    assert!(
        resolved.message.contains("last ping"),
        "{}",
        resolved.message
    );
}
both_backends!(silence_pages_at_exactly_interval_plus_grace);

async fn a_heartbeat_never_seen_pages_only_after_its_first_deadline(db: &TestDb) {
    let rig = Rig::new(db, HEARTBEAT, t0()).await;
    let runner = rig.runner();
    runner.tick().await.unwrap();
    rig.clock
        .set(t0() + TimeDelta::minutes(6) - TimeDelta::seconds(1));
    runner.tick().await.unwrap();
    assert!(rig.alerts().await.is_empty());
    let rows = rig.store.watchers().await.unwrap();
    let state = rows[0].state.as_ref().unwrap();
    assert!(
        state["last_status"]
            .as_str()
            .unwrap()
            .starts_with("waiting for first ping"),
        "{state}"
    );
    rig.clock.set(t0() + TimeDelta::minutes(6));
    runner.tick().await.unwrap();
    let alerts = rig.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0].summary.contains("never pinged"),
        "{}",
        alerts[0].summary
    );
}
both_backends!(a_heartbeat_never_seen_pages_only_after_its_first_deadline);

/// A TCP peer that accepts and never says anything, counting connections.
async fn silent_peer() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (port, seen)
}

async fn a_hanging_check_fails_alone_and_each_slot_runs_once(db: &TestDb) {
    let (port, connections) = silent_peer().await;
    let watchers = format!(
        r#"
watchers:
  - id: hangs
    kind: tls
    service: payments
    host: localhost
    port: {port}
    timeout: 1s
    failures_before_alert: 2
  - id: backup
    kind: heartbeat
    service: payments
    interval: 5m
    grace: 1m
"#
    );
    let rig = Rig::new(db, &watchers, t0()).await;
    // Two runners share the store, like two replicas: each slot runs once.
    let (a, b) = (rig.runner(), rig.runner());
    let (ran_a, ran_b) = tokio::join!(a.tick(), b.tick());
    assert_eq!(
        ran_a.unwrap() + ran_b.unwrap(),
        2,
        "two watchers, each run once"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    let rows = rig.store.watchers().await.unwrap();
    let hangs = rows.iter().find(|r| r.id == "hangs").unwrap();
    let state = hangs.state.as_ref().unwrap();
    assert_eq!(state["last_result"], "finding", "{state}");
    assert_eq!(state["findings"]["unreachable"]["seen"], 1, "{state}");
    assert!(state["findings"]["unreachable"]["open"].is_null());
    let backup = rows.iter().find(|r| r.id == "backup").unwrap();
    assert_eq!(
        backup.state.as_ref().unwrap()["last_result"],
        "ok",
        "the heartbeat ran beside the hanging check"
    );
    assert!(
        rig.alerts().await.is_empty(),
        "one timeout is not an outage"
    );

    // An hour later the second timeout in a row pages (failures_before_alert: 2).
    rig.clock.set(t0() + TimeDelta::hours(1));
    a.tick().await.unwrap();
    let alerts = rig.alerts().await;
    let unreachable: Vec<_> = alerts
        .iter()
        .filter(|a| a.dedup_key == "watch:hangs:unreachable")
        .collect();
    assert_eq!(unreachable.len(), 1, "{alerts:?}");
}
both_backends!(a_hanging_check_fails_alone_and_each_slot_runs_once);

async fn a_slot_leased_by_a_dead_runner_runs_when_its_lease_ends(db: &TestDb) {
    let rig = Rig::new(db, HEARTBEAT, t0()).await;
    let runner = rig.runner();
    runner.tick().await.unwrap();
    // A replica claims the next slot and dies before finishing it.
    let next = t0() + TimeDelta::seconds(30);
    rig.clock.set(next);
    let ids = vec!["backup".to_owned()];
    let dead = rig
        .store
        .claim_watchers(
            &ids,
            next,
            "dead-replica",
            std::time::Duration::from_secs(60),
            10,
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(runner.tick().await.unwrap(), 0, "leased elsewhere");
    rig.clock.set(next + TimeDelta::seconds(61));
    assert_eq!(runner.tick().await.unwrap(), 1, "the slot is not skipped");
    // The dead replica's late write is fenced out.
    let late = rig
        .store
        .finish_watcher(&dead[0], next, &serde_json::json!({}), rig.clock.now())
        .await
        .unwrap();
    assert!(!late);
}
both_backends!(a_slot_leased_by_a_dead_runner_runs_when_its_lease_ends);

/// Panics inside the check of the watcher `boom`; runs the others for real.
struct PanicsForBoom(Probes);

#[async_trait::async_trait]
impl Prober for PanicsForBoom {
    async fn check(
        &self,
        spec: &WatcherSpec,
        now: DateTime<Utc>,
        last_ping: Option<DateTime<Utc>>,
        configured_at: DateTime<Utc>,
    ) -> CheckResult {
        if spec.id == "boom" {
            panic!("a parser bug met a body it did not expect");
        }
        self.0.check(spec, now, last_ping, configured_at).await
    }
}

async fn a_panicking_check_is_one_failed_run_and_the_others_go_on(db: &TestDb) {
    let watchers = r#"
watchers:
  - { id: boom, kind: heartbeat, service: payments, interval: 5m }
  - { id: backup, kind: heartbeat, service: payments, interval: 5m }
"#;
    let rig = Rig::new(db, watchers, t0()).await;
    let runner = rig.runner_with(Arc::new(PanicsForBoom(rig.probes())));
    assert_eq!(runner.tick().await.unwrap(), 2);
    let rows = rig.store.watchers().await.unwrap();
    let state = |id: &str| {
        rows.iter()
            .find(|r| r.id == id)
            .unwrap()
            .state
            .clone()
            .unwrap()
    };
    assert_eq!(state("boom")["last_result"], "failed", "{}", state("boom"));
    assert!(state("boom")["last_status"]
        .as_str()
        .unwrap()
        .contains("failed unexpectedly"));
    assert_eq!(state("backup")["last_result"], "ok");
    // The runner keeps going: the next round runs both again.
    rig.clock.set(t0() + TimeDelta::seconds(30));
    assert_eq!(runner.tick().await.unwrap(), 2);
}
both_backends!(a_panicking_check_is_one_failed_run_and_the_others_go_on);
