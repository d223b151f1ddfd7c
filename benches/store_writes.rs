//! What one event costs the store's write path alone, without HTTP: batches
//! of new alerts or of duplicates applied with `Store::ingest` (the call
//! group commit makes), each batch synced like a 202 needs.
//!
//! Run: `cargo bench --bench store_writes -- --events 20000 --batch 100`
//! (`--only new|duplicate|new_no_timer`, `--store postgres://…` for
//! PostgreSQL). Prints one JSON object per scenario with wall time per event.
//! Wall time is noisy on a shared machine; instruction counts are not:
//! `valgrind --tool=callgrind` two runs with `--events N` and `--events 2N`,
//! and the difference over N is the instructions per event, start-up and
//! migrations cancelled out (`benches/store_writes.sh` does that).

// The same allocator as the `rouse` binary, so the figures match production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{TimeDelta, Utc};
use rouse::alert::{Action, Event, IntakeKind, Severity, Urgency};
use rouse::store::{EventJson, Ingest, Store};

struct Options {
    events: usize,
    batch: usize,
    only: Option<String>,
    store: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        events: 20_000,
        batch: 100,
        only: None,
        store: None,
    };
    let args: Vec<String> = std::env::args().collect();
    for (i, arg) in args.iter().enumerate() {
        let value = args.get(i + 1);
        let number = value.and_then(|v| v.parse::<usize>().ok());
        match (arg.as_str(), number) {
            ("--events", Some(n)) => o.events = n.max(1),
            ("--batch", Some(n)) => o.batch = n.max(1),
            ("--only", _) => o.only = value.cloned(),
            ("--store", _) => o.store = value.cloned(),
            _ => {}
        }
    }
    o
}

const DUP_KEYS: usize = 1000;

/// Event `i`'s arrival: 1 ms apart from a minute's start, so that a run's
/// duplicates stay within one minute whatever the run's wall time (under
/// callgrind it is 50 times longer) and instruction counts do not depend on
/// when a minute happens to turn.
fn arrival(i: usize) -> chrono::DateTime<Utc> {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| Utc::now().timestamp().div_euclid(60) * 60 - 600);
    chrono::DateTime::from_timestamp(start, 0).unwrap_or_default()
        + TimeDelta::milliseconds(i64::try_from(i % 50_000).unwrap_or(0))
}

fn ingest(key: String, with_timer: bool, now: chrono::DateTime<Utc>) -> Ingest {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_owned(), "HighCpu".to_owned());
    labels.insert("instance".to_owned(), "web-1:9100".to_owned());
    let mut item = Ingest {
        encoded: None,
        service_id: "bench".to_owned(),
        actor: "native:bench".to_owned(),
        policy_id: with_timer.then(|| "p".to_owned()),
        urgency: Urgency::High,
        dedup_key: key.clone(),
        event: Event {
            kind: IntakeKind::Native,
            action: Action::Trigger,
            dedup_key: Some(key),
            summary: "CPU over 90% on web-1".to_owned(),
            severity: Severity::Critical,
            source: "web-1".to_owned(),
            labels,
            details: serde_json::Value::Null,
            links: Vec::new(),
            occurred_at: None,
        },
        received_at: now,
        // As in the HTTP bench: storm control never folds.
        storm_threshold: u64::MAX,
        first_step_due: with_timer.then(|| now + TimeDelta::hours(1)),
    };
    // As intake does, before the event joins a commit; still counted here.
    item.encoded = EventJson::of(&item.event).ok();
    item
}

async fn run(store: &dyn Store, o: &Options, scenario: &str) {
    let key = |i: usize| match scenario {
        "duplicate" => format!("dup-{}", (i * 7919) % DUP_KEYS),
        _ => format!("{scenario}-{}-{i}", std::process::id()),
    };
    let with_timer = scenario != "new_no_timer";
    if scenario == "duplicate" {
        let open: Vec<Ingest> = (0..DUP_KEYS)
            .map(|i| ingest(format!("dup-{i}"), true, arrival(0)))
            .collect();
        for chunk in open.chunks(o.batch) {
            store.ingest(chunk).await.expect("open");
        }
        store.sync().await.expect("sync");
    }
    let started = Instant::now();
    let mut done = 0;
    while done < o.events {
        let n = o.batch.min(o.events - done);
        let batch: Vec<Ingest> = (done..done + n)
            .map(|i| ingest(key(i), with_timer, arrival(i)))
            .collect();
        store.ingest(&batch).await.expect("ingest");
        store.sync().await.expect("sync");
        done += n;
    }
    let elapsed = started.elapsed();
    println!(
        "{}",
        serde_json::json!({
            "bench": format!("store_writes_{scenario}"),
            "store": format!("{:?}", store.backend()).to_lowercase(),
            "events": o.events,
            "batch": o.batch,
            "us_per_event": (elapsed.as_secs_f64() * 1e7 / o.events as f64).round() / 10.0,
        })
    );
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = o
        .store
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    rt.block_on(async {
        let store = rouse::store::open(&url, 4).await.expect("open store");
        store.migrate().await.expect("migrate");
        for scenario in ["new", "new_no_timer", "duplicate"] {
            if o.only.as_deref().is_none_or(|s| s == scenario) {
                run(&*store, &o, scenario).await;
            }
        }
        store.close().await;
    });
}
