//! Escalation latency: how soon a page leaves after an alert arrives, and how
//! late escalation timers fire when many are waiting. Real clock, real SQLite
//! (WAL, synced as in production) in a temporary folder, release build.
//!
//! Run: `cargo bench --bench escalation` (options, after `--`:
//! `--seconds 10 --rate 1000 --connections 8` for dispatch,
//! `--alerts 100000 --spread 30` for lateness, `--only dispatch|lateness`).
//!
//! Two scenarios, each printing one JSON object on stdout:
//! - `escalation_dispatch_latency`: the whole server (`rouse::run`) with the
//!   console sink; a policy whose first step is `delay: 0m`, SMS to one person.
//!   New alerts are POSTed to `/v1/events` at a paced `--rate` per second for
//!   `--seconds` from a few keep-alive connections. Measured per alert: from
//!   the instant its `202` was read by the client to the instant the console
//!   channel's `send` was called for it (seen by a tracing layer on the
//!   `rouse::page` target). Target: p99 under 50 ms.
//! - `escalation_step_lateness`: a store holding `--alerts` open alerts, each
//!   with its first step due at an instant spread evenly over `--spread`
//!   seconds starting a few seconds after they were all inserted; then the
//!   engine (`Engine::run`, real clock) is started with a recording SMS
//!   channel. *Lateness* of a step is the instant its notification was handed
//!   to the channel (`Channel::send` called) minus the instant it was due.
//!   Target: p99 under 100 ms. Alerts not paged before the time limit count
//!   with their lateness at the limit (a lower bound) and are reported as
//!   `missing`.
//!
//! Logging is off except warnings and errors (on stderr).

// The same allocator as the `rouse` binary, so the figures match production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rouse::alert::{Action, Event, IntakeKind, Severity, Urgency};
use rouse::catalog::live::{LiveCatalog, Reload};
use rouse::channel::{Channel, ChannelKind, Notification, Outcome};
use rouse::clock::SystemClock;
use rouse::escalation::engine::{Channels, Engine};
use rouse::store::Ingest;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

mod common;

use common::{event, wait_ready, Connection};
/// Alerts per `Store::ingest` call when filling the store.
const INSERT_BATCH: usize = 500;
/// Between the end of the inserts and the first due instant.
const LEAD: Duration = Duration::from_secs(3);
/// How long to wait for the last pages after the load or the last due instant.
const DRAIN: Duration = Duration::from_secs(30);
/// How long the engine may take to stop once asked.
const STOP_WAIT: Duration = Duration::from_secs(5);

struct Options {
    seconds: u64,
    rate: u64,
    connections: usize,
    alerts: usize,
    spread: u64,
    dispatch: bool,
    lateness: bool,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 10,
        rate: 1000,
        connections: 8,
        alerts: 100_000,
        spread: 30,
        dispatch: true,
        lateness: true,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let text = args.get(i + 1).map(String::as_str);
        let value = text.and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value, text) {
            ("--seconds", Some(v), _) => o.seconds = v.max(1),
            ("--rate", Some(v), _) => o.rate = v.max(1),
            ("--connections", Some(v), _) => o.connections = (v as usize).max(1),
            ("--alerts", Some(v), _) => o.alerts = (v as usize).max(1),
            ("--spread", Some(v), _) => o.spread = v.max(1),
            ("--only", _, Some("dispatch")) => o.lateness = false,
            ("--only", _, Some("lateness")) => o.dispatch = false,
            _ => {}
        }
        i += 1;
    }
    o
}

fn main() {
    let o = options();
    let pages = PageLog::default();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        )
        .with(
            pages
                .clone()
                .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                    m.target() == "rouse::page"
                })),
        )
        .init();

    // The server (or the engine alone) gets its own runtime with both cores'
    // worth of workers; the load generator runs on one thread, like `wrk -t1`.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");

    if o.dispatch {
        dispatch_latency(&o, &server_rt, &client_rt, &pages);
    }
    if o.lateness {
        step_lateness(&o, &server_rt);
    }
}

// ---------------------------------------------------------------------------
// Scenario 1: intake 202 → console channel's send, through the whole server.

/// Records, for each alert, when the console channel first logged a page for
/// it (the `alert` field of a `rouse::page` event).
#[derive(Clone, Default)]
struct PageLog {
    first: Arc<Mutex<HashMap<i64, Instant>>>,
}

impl<S: tracing::Subscriber> Layer<S> for PageLog {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let at = Instant::now();
        let mut visitor = AlertField(None);
        event.record(&mut visitor);
        if let Some(id) = visitor.0 {
            if let Ok(mut first) = self.first.lock() {
                first.entry(id).or_insert(at);
            }
        }
    }
}

struct AlertField(Option<i64>);

impl tracing::field::Visit for AlertField {
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if field.name() == "alert" {
            self.0 = Some(value);
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "alert" {
            self.0 = i64::try_from(value).ok();
        }
    }

    fn record_debug(&mut self, _field: &tracing::field::Field, _value: &dyn std::fmt::Debug) {}
}

fn dispatch_latency(
    o: &Options,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    pages: &PageLog,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rotations = dir.path().join("rotations");
    std::fs::create_dir(&rotations).expect("rotations dir");
    std::fs::write(rotations.join("bench.yaml"), CATALOG).expect("catalog");
    let mut config = rouse::config::Config::default();
    config.database_url = rouse::config::Secret::new(format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ));
    config.rotations_dir = rotations;
    config.intake.rate_per_key = 10_000_000;
    config.intake.burst_per_key = 10_000_000;
    config.intake.storm_threshold = 100_000_000;
    // Every alert pages the same number here; the per-number cap would hold
    // all but the first 20 pages of the hour back.
    config.pages_per_number_per_hour = u32::MAX;
    let stop = CancellationToken::new();
    let (addr, server) = server_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(rouse::run(config, listener, stop.clone().cancelled_owned()));
        (addr, server)
    });
    client_rt.block_on(wait_ready(addr));

    let load = client_rt.block_on(paced_load(
        addr,
        o.connections,
        o.rate,
        Duration::from_secs(o.seconds),
    ));

    // Wait for the pages of every accepted alert (or give up after DRAIN).
    let deadline = Instant::now() + DRAIN;
    let missing = loop {
        let missing = {
            let first = pages.first.lock().expect("page log");
            load.accepted
                .iter()
                .filter(|(id, _)| !first.contains_key(id))
                .count()
        };
        if missing == 0 || Instant::now() >= deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    let mut latencies_ms: Vec<f64> = {
        let first = pages.first.lock().expect("page log");
        load.accepted
            .iter()
            .filter_map(|(id, accepted)| {
                let paged = first.get(id)?;
                // Signed: a page logged before the client read its 202 is negative.
                Some(if *paged >= *accepted {
                    paged.duration_since(*accepted).as_secs_f64() * 1e3
                } else {
                    -(accepted.duration_since(*paged).as_secs_f64() * 1e3)
                })
            })
            .collect()
    };
    latencies_ms.sort_by(f64::total_cmp);
    let mut intake_ms = load.intake_ms.clone();
    intake_ms.sort_by(f64::total_cmp);

    stop.cancel();
    let _ = server_rt.block_on(async { tokio::time::timeout(DRAIN, server).await });

    println!(
        "{}",
        serde_json::json!({
            "bench": "escalation_dispatch_latency",
            "store": "sqlite",
            "channel": "console-sms",
            "connections": o.connections,
            "target_rate_per_second": o.rate,
            "achieved_rate_per_second": (load.accepted.len() as f64 / load.elapsed.as_secs_f64()).round(),
            "seconds": round2(load.elapsed.as_secs_f64()),
            "sent": load.sent,
            "accepted": load.accepted.len(),
            "errors": load.errors,
            "paged": latencies_ms.len(),
            "missing": missing,
            "p50_ms": round2(pct(&latencies_ms, 0.50)),
            "p99_ms": round2(pct(&latencies_ms, 0.99)),
            "max_ms": round2(latencies_ms.last().copied().unwrap_or(0.0)),
            "intake_p50_ms": round2(pct(&intake_ms, 0.50)),
            "intake_p99_ms": round2(pct(&intake_ms, 0.99)),
            "target_p99_ms": 50,
        })
    );
}

struct Load {
    sent: u64,
    errors: u64,
    elapsed: Duration,
    /// (alert id, instant its 202 was read) for every new alert accepted.
    accepted: Vec<(i64, Instant)>,
    /// Request written → 202 read.
    intake_ms: Vec<f64>,
}

/// `rate` new alerts per second for `duration`, open loop: request `k` is due
/// at `start + k / rate` and goes out on connection `k % connections` (at once
/// if that connection is behind).
async fn paced_load(addr: SocketAddr, connections: usize, rate: u64, duration: Duration) -> Load {
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for c in 0..connections as u64 {
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(addr).await.expect("connect");
            let (mut sent, mut errors) = (0u64, 0u64);
            let mut accepted = Vec::with_capacity((total / connections as u64 + 1) as usize);
            let mut intake_ms = Vec::with_capacity(accepted.capacity());
            let mut k = c;
            while k < total {
                tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate as f64))
                    .await;
                let body = event(&format!("dispatch-{k}"));
                let t = Instant::now();
                sent += 1;
                match conn.request("POST", "/v1/events", &body).await {
                    Ok((202, answer)) => {
                        let at = Instant::now();
                        intake_ms.push(at.duration_since(t).as_secs_f64() * 1e3);
                        let id = serde_json::from_slice::<serde_json::Value>(&answer)
                            .ok()
                            .and_then(|v| v.get("alert_id").and_then(serde_json::Value::as_i64));
                        match id {
                            Some(id) => accepted.push((id, at)),
                            None => errors += 1,
                        }
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = Connection::open(addr).await.expect("reconnect");
                    }
                }
                k += connections as u64;
            }
            (sent, errors, accepted, intake_ms)
        }));
    }
    let mut load = Load {
        sent: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        accepted: Vec::new(),
        intake_ms: Vec::new(),
    };
    for task in tasks {
        let (sent, errors, accepted, intake_ms) = task.await.expect("load task");
        load.sent += sent;
        load.errors += errors;
        load.accepted.extend(accepted);
        load.intake_ms.extend(intake_ms);
    }
    load.elapsed = start.elapsed();
    load
}

// ---------------------------------------------------------------------------
// Scenario 2: many open alerts, each waiting on its first step's timer.

/// An SMS channel that notes when each alert was first handed to it.
struct Recorder {
    sent: Mutex<HashMap<i64, DateTime<Utc>>>,
    count: AtomicUsize,
}

#[async_trait]
impl Channel for Recorder {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn name(&self) -> &str {
        "bench-recorder"
    }

    async fn send(&self, n: &Notification) -> Outcome {
        let at = Utc::now();
        if let Ok(mut sent) = self.sent.lock() {
            if sent.insert(n.alert_id, at).is_none() {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
        Outcome::Delivered { provider_id: None }
    }
}

fn step_lateness(o: &Options, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rotations = dir.path().join("rotations");
    std::fs::create_dir(&rotations).expect("rotations dir");
    std::fs::write(rotations.join("bench.yaml"), CATALOG).expect("catalog");
    let url = format!("sqlite://{}", dir.path().join("lateness.db").display());

    rt.block_on(async {
        let store = rouse::store::open(&url, 8).await.expect("open store");
        store.migrate().await.expect("migrate");
        let catalog = Arc::new(LiveCatalog::new(rotations, Box::new(|_: &str| None)));
        assert_eq!(catalog.reload(Utc::now(), true), Reload::Applied);

        // The due instants must all lie after the inserts: time a few batches
        // on a scratch database first, and start the spread LEAD after the
        // projected end of the real inserts (with a margin).
        let scratch_url = format!("sqlite://{}", dir.path().join("scratch.db").display());
        let scratch = rouse::store::open(&scratch_url, 1)
            .await
            .expect("open scratch");
        scratch.migrate().await.expect("migrate scratch");
        let calibrating = Instant::now();
        let far = Utc::now() + TimeDelta::hours(1);
        let sample = o.alerts.min(4 * INSERT_BATCH);
        for chunk in (0..sample).collect::<Vec<_>>().chunks(INSERT_BATCH) {
            let items: Vec<Ingest> = chunk.iter().map(|&i| ingest(i, far)).collect();
            scratch.ingest(&items).await.expect("ingest scratch");
        }
        let per_alert = calibrating.elapsed().as_secs_f64() / sample as f64;
        scratch.close().await;
        let projected = Duration::from_secs_f64(per_alert * o.alerts as f64 * 1.5) + LEAD;

        let inserting = Instant::now();
        let first_due = ms(Utc::now() + TimeDelta::from_std(projected).unwrap_or_default());
        let spread_ms = i64::try_from(o.spread * 1000).unwrap_or(i64::MAX);
        let alerts = i64::try_from(o.alerts).unwrap_or(i64::MAX);
        let mut due_of: HashMap<i64, DateTime<Utc>> = HashMap::with_capacity(o.alerts);
        for chunk in (0..o.alerts).collect::<Vec<_>>().chunks(INSERT_BATCH) {
            // Evenly spaced over the spread, in insertion order.
            let items: Vec<Ingest> = chunk
                .iter()
                .map(|&i| {
                    let offset = spread_ms * i64::try_from(i).unwrap_or(0) / alerts;
                    ingest(i, first_due + TimeDelta::milliseconds(offset))
                })
                .collect();
            let outcomes = store.ingest(&items).await.expect("ingest");
            for (item, outcome) in items.iter().zip(outcomes) {
                let id = outcome.alert_id.expect("alert opened");
                due_of.insert(id, item.first_step_due.expect("due"));
            }
        }
        let inserted_in = inserting.elapsed();
        // Positive when every timer was still in the future as the engine started.
        let lead_left_ms = (first_due - Utc::now()).num_milliseconds();

        let recorder = Arc::new(Recorder {
            sent: Mutex::new(HashMap::with_capacity(o.alerts)),
            count: AtomicUsize::new(0),
        });
        let channels = Channels::console_only().with(recorder.clone());
        let engine = Arc::new(
            Engine::new(
                store.clone(),
                catalog,
                Arc::new(channels),
                Arc::new(SystemClock),
            )
            .with_number_cap(u32::MAX),
        );
        let stop = CancellationToken::new();
        let mut engine_task = tokio::spawn(engine.clone().run(stop.clone()));

        let last_due = due_of.values().max().copied().unwrap_or(first_due);
        let limit = last_due + TimeDelta::from_std(DRAIN).unwrap_or_default();
        let expected = due_of.len();
        loop {
            let seen = due_of
                .keys()
                .filter(|id| {
                    recorder
                        .sent
                        .lock()
                        .map(|s| s.contains_key(id))
                        .unwrap_or(false)
                })
                .count();
            if seen >= expected || Utc::now() >= limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let ended = Utc::now();
        stop.cancel();
        // The engine should stop promptly; how long it took is reported. If it
        // does not, abort it (and its sends, by dropping the engine) before the
        // store closes under it.
        let stopping = Instant::now();
        let stopped = tokio::time::timeout(STOP_WAIT, &mut engine_task)
            .await
            .is_ok();
        let stop_ms = stopping.elapsed().as_millis();
        if !stopped {
            engine_task.abort();
            let _ = engine_task.await;
        }
        drop(engine);

        let sent = recorder.sent.lock().expect("recorder").clone();
        let mut late_ms = Vec::with_capacity(expected);
        let mut missing = 0usize;
        let mut last_sent = first_due;
        for (id, due) in &due_of {
            let at = match sent.get(id) {
                Some(at) => {
                    last_sent = last_sent.max(*at);
                    *at
                }
                None => {
                    missing += 1;
                    ended
                }
            };
            late_ms.push((at - *due).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e3);
        }
        late_ms.sort_by(f64::total_cmp);
        let paged = expected - missing;
        let firing_s = (last_sent - first_due).num_milliseconds().max(1) as f64 / 1e3;
        store.close().await;

        println!(
            "{}",
            serde_json::json!({
                "bench": "escalation_step_lateness",
                "store": "sqlite",
                "open_alerts": o.alerts,
                "measured": expected,
                "spread_seconds": o.spread,
                "due_per_second": (expected as f64 / o.spread as f64).round(),
                "insert_seconds": round2(inserted_in.as_secs_f64()),
                "engine_started_ms_before_first_due": lead_left_ms,
                "paged": paged,
                "missing": missing,
                "paged_per_second": (paged as f64 / firing_s).round(),
                "p50_ms": round2(pct(&late_ms, 0.50)),
                "p99_ms": round2(pct(&late_ms, 0.99)),
                "max_ms": round2(late_ms.last().copied().unwrap_or(0.0)),
                "engine_stopped": stopped,
                "engine_stop_ms": stop_ms,
                "target_p99_ms": 100,
            })
        );
    });
}

fn ingest(i: usize, due: DateTime<Utc>) -> Ingest {
    let now = Utc::now();
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_owned(), "HighCpu".to_owned());
    labels.insert("instance".to_owned(), format!("web-{i}:9100"));
    let key = format!("timer-{i}");
    Ingest {
        encoded: None,
        service_id: "bench".to_owned(),
        actor: "native:bench".to_owned(),
        policy_id: Some("p".to_owned()),
        urgency: Urgency::High,
        dedup_key: key.clone(),
        event: Event {
            kind: IntakeKind::Native,
            action: Action::Trigger,
            dedup_key: Some(key),
            summary: format!("CPU over 90% on web-{i}"),
            severity: Severity::Critical,
            source: format!("web-{i}"),
            labels,
            details: serde_json::Value::Null,
            links: Vec::new(),
            occurred_at: Some(now),
        },
        received_at: now,
        storm_threshold: u64::MAX,
        first_step_due: Some(due),
    }
}

/// The store keeps instants in milliseconds; compare like with like.
fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

const CATALOG: &str = r#"
people:
  - { id: alice, name: Alice, timezone: UTC, contact: { sms: "+15550000001" } }
rotations:
  - { id: r, timezone: UTC, participants: [alice], shift: 1w, handoff: "09:00", start: 2026-01-05 }
schedules:
  - { id: s, timezone: UTC, layers: [{ rotation: r }] }
policies:
  - id: p
    steps:
      - { delay: 0m, targets: [{ schedule: s }], channels: [sms] }
services:
  - id: bench
    policy: p
    integrations:
      - { name: bench, key: bench-key-0123456789abcdef }
"#;
