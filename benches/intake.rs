//! Intake throughput and latency over real HTTP on loopback, on SQLite.
//!
//! Run: `cargo bench --bench intake` (options: `-- --seconds 10 --connections 64`;
//! `--only new` or `--only duplicate` skips the other Rouse scenario, which is
//! handy under a profiler; the floor always runs, for the ratio). With
//! `--serve` it only starts both servers and prints their addresses, for an
//! outside load generator such as wrk (`benches/wrk/intake.lua`).
//!
//! Three scenarios run back to back in one process, each for the same time
//! with the same number of keep-alive connections:
//! - `floor`: a bare axum handler that parses the JSON and answers 202 (what
//!   every intake sits on; the ratio to it survives a noisy machine);
//! - `new`: Rouse's `/v1/events`, every request a new distinct alert;
//! - `duplicate`: Rouse's `/v1/events`, every request a duplicate of an open alert.
//!
//! Every Rouse 202 is durable (group commit; the SQLite WAL is synced before
//! the answer). Prints one JSON object per scenario on stdout, with the
//! process's CPU time per request (server and load generator together, as in
//! the floor) and how busy the machine's cores were: a scenario that leaves
//! cores idle is bound by its serial stages, not by CPU.

// The same allocator as the `rouse` binary, so the figures match production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use tokio::net::TcpListener;

mod common;

use common::{event, wait_ready, Connection};

struct Options {
    seconds: u64,
    connections: usize,
    only: Option<String>,
    /// A running Prometheus Alertmanager to measure beside Rouse.
    alertmanager: Option<std::net::SocketAddr>,
    /// Its process, so that its CPU time counts with the load generator's.
    alertmanager_pid: Option<u32>,
    /// Only start the floor and Rouse, print their addresses and wait, for an
    /// outside load generator (`benches/wrk/`).
    serve: bool,
    /// Alerts per request: 1 sends Rouse's own format (and Alertmanager one
    /// alert a request); more sends Alertmanager's webhook to Rouse, one
    /// group of this many alerts a request, the way Alertmanager calls its
    /// receivers, and the same alerts as one `POST /api/v2/alerts` array to
    /// Alertmanager, the way Prometheus sends them.
    alerts_per_request: usize,
    /// A PostgreSQL server to run Rouse on instead of SQLite
    /// (`postgres://postgres@127.0.0.1:5432/postgres`): the bench creates a
    /// database of its own there and drops it at the end.
    store: Option<String>,
}

impl Options {
    fn runs(&self, scenario: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == scenario)
    }
}

fn options() -> Options {
    let mut o = Options {
        seconds: 5,
        connections: 64,
        only: None,
        alertmanager: None,
        alertmanager_pid: None,
        serve: false,
        alerts_per_request: 1,
        store: None,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--seconds", Some(v)) => o.seconds = v.max(1),
            ("--connections", Some(v)) => o.connections = (v as usize).max(1),
            ("--only", _) => o.only = args.get(i + 1).cloned(),
            ("--alertmanager", _) => {
                o.alertmanager = args.get(i + 1).and_then(|a| a.parse().ok());
            }
            ("--alertmanager-pid", Some(v)) => o.alertmanager_pid = u32::try_from(v).ok(),
            ("--serve", _) => o.serve = true,
            ("--alerts-per-request", Some(v)) => o.alerts_per_request = (v as usize).max(1),
            ("--store", _) => o.store = args.get(i + 1).cloned(),
            _ => {}
        }
        i += 1;
    }
    o
}

fn main() {
    let o = options();
    // The server gets its own runtime with both cores' worth of workers; the
    // load generator runs on one thread, like `wrk -t1`.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");

    let floor_addr = server_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let floor = || post(|Json(_): Json<serde_json::Value>| async { StatusCode::ACCEPTED });
        let app = Router::new()
            .route("/v1/events", floor())
            .route(WEBHOOK_PATH, floor());
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let rotations = dir.path().join("rotations");
    std::fs::create_dir(&rotations).expect("rotations dir");
    std::fs::write(rotations.join("bench.yaml"), CATALOG).expect("catalog");
    let mut config = rouse::config::Config::default();
    let scratch = o
        .store
        .as_deref()
        .map(|url| client_rt.block_on(ScratchDb::create(url)));
    config.database_url = rouse::config::Secret::new(match &scratch {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", dir.path().join("bench.db").display()),
    });
    let store_name = if scratch.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    config.rotations_dir = rotations;
    config.intake.rate_per_key = 10_000_000;
    config.intake.burst_per_key = 10_000_000;
    config.intake.storm_threshold = 100_000_000;
    let rouse_addr = server_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(rouse::run(config, listener, std::future::pending()));
        addr
    });
    client_rt.block_on(wait_ready(rouse_addr));
    if o.serve {
        println!(
            "{}",
            serde_json::json!({ "floor": floor_addr.to_string(), "rouse": rouse_addr.to_string() })
        );
        client_rt.block_on(std::future::pending::<()>());
    }

    let duration = Duration::from_secs(o.seconds);
    let per = o.alerts_per_request;
    let floor = client_rt.block_on(load(
        Target::rouse(floor_addr, Keys::New, per),
        &o,
        duration,
    ));
    report("floor_bare_axum", &floor, None, &o, None);
    // Each server's targets, and where to read Rouse's group-commit counters.
    type Targets = Box<dyn Fn(Keys) -> Target>;
    let mut servers: Vec<(&str, Targets, Option<std::net::SocketAddr>)> = vec![(
        store_name,
        Box::new(move |keys| Target::rouse(rouse_addr, keys, per)),
        Some(rouse_addr),
    )];
    if let Some(addr) = o.alertmanager {
        let pid = o.alertmanager_pid;
        servers.push((
            "alertmanager",
            Box::new(move |keys| Target::alertmanager(addr, keys, pid, per)),
            None,
        ));
    }
    // Events (alerts) per second of each (scenario, server), for the summary.
    let mut rates: Vec<(&str, &str, f64, u32)> = Vec::new();
    let scenarios = [
        ("new", Keys::New, "new_alerts"),
        ("duplicate", Keys::Duplicate, "duplicates"),
    ];
    for (server, target, metrics) in &servers {
        for (scenario, keys, name) in scenarios {
            if !o.runs(scenario) {
                continue;
            }
            if let Keys::Duplicate = keys {
                // Open the alerts the duplicate run will hit, then hammer them.
                client_rt.block_on(load_n(target(keys)));
            }
            let counters = || metrics.and_then(|addr| client_rt.block_on(commits(addr)));
            let before = counters();
            let run = client_rt.block_on(load(target(keys), &o, duration));
            let after = counters();
            let (rate, p99) = report(
                &format!("{name}_{server}"),
                &run,
                Some(&floor),
                &o,
                per_commit(before, after),
            );
            rates.push((scenario, server, rate, p99));
        }
    }
    summarize(&rates, &o, store_name);
    if let Some(db) = scratch {
        client_rt.block_on(db.drop_db());
    }
}

/// One line per scenario run on both servers: the shape, both rates and
/// p99s, and `rouse_per_alertmanager`, the figure the intake targets name.
fn summarize(rates: &[(&str, &str, f64, u32)], o: &Options, store: &str) {
    let shape = format!(
        "{}x{}_c{}",
        if o.alerts_per_request > 1 {
            "webhook"
        } else {
            "single"
        },
        o.alerts_per_request,
        o.connections
    );
    for (scenario, server, rate, p99) in rates {
        if *server == "alertmanager" {
            continue;
        }
        let am = rates
            .iter()
            .find(|(s, srv, _, _)| s == scenario && *srv == "alertmanager");
        println!(
            "{}",
            serde_json::json!({
                "bench": "intake_summary",
                "shape": format!("{shape}_{scenario}"),
                "store": store,
                "alerts_per_request": o.alerts_per_request,
                "connections": o.connections,
                "rouse_alerts_per_second": rate.round(),
                "rouse_p99_us": p99,
                "alertmanager_alerts_per_second": am.map(|a| a.2.round()),
                "alertmanager_p99_us": am.map(|a| a.3),
                "rouse_per_alertmanager": am.map(|a| (rate / a.2 * 1000.0).round() / 1000.0),
            })
        );
    }
}

/// A database of the bench's own on a PostgreSQL server, dropped at the end.
struct ScratchDb {
    admin: String,
    name: String,
    url: String,
}

impl ScratchDb {
    async fn create(admin: &str) -> Self {
        use sqlx::Connection as _;
        let name = format!("rouse_bench_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .expect("connect to PostgreSQL (--store)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create the bench database");
        let url = match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("--store wants postgres://…/DATABASE"),
        };
        Self {
            admin: admin.to_owned(),
            name,
            url,
        }
    }

    async fn drop_db(self) {
        use sqlx::Connection as _;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(e) = sqlx::query(&sql).execute(&mut conn).await {
                eprintln!("could not drop {}: {e}", self.name);
            }
        }
    }
}

/// (commits, events) of intake's group commit so far, from `/metrics`.
async fn commits(addr: std::net::SocketAddr) -> Option<(f64, f64)> {
    let mut conn = Connection::open(addr).await.ok()?;
    let (_, body) = conn.request("GET", "/metrics", "").await.ok()?;
    let text = String::from_utf8(body).ok()?;
    let value = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains("writer=\"ingest\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    Some((
        value("rouse_group_commits_total"),
        value("rouse_group_commit_items_total"),
    ))
}

/// Events per commit between two readings: the batch size group commit reached.
fn per_commit(before: Option<(f64, f64)>, after: Option<(f64, f64)>) -> Option<f64> {
    let ((c0, e0), (c1, e1)) = (before?, after?);
    (c1 > c0).then(|| ((e1 - e0) / (c1 - c0) * 10.0).round() / 10.0)
}

const DUP_KEYS: usize = 1000;

#[derive(Clone, Copy)]
enum Keys {
    /// Every request a new distinct alert.
    New,
    /// Requests spread over `DUP_KEYS` alerts opened beforehand.
    Duplicate,
}

/// Where a scenario sends its requests and what a success looks like.
#[derive(Clone)]
struct Target {
    addr: std::net::SocketAddr,
    path: &'static str,
    ok: u16,
    /// The body for a request carrying these alerts' keys.
    body: fn(&[String]) -> String,
    keys: Keys,
    /// Alerts (keys) per request.
    per_request: usize,
    /// Keeps one run's keys apart from an earlier run's, for a server that
    /// outlives the bench (Alertmanager).
    run: Arc<str>,
    /// The server's process when it is not this one: `Some(None)` when its
    /// pid is unknown, and then the run's CPU time is too.
    other_process: Option<Option<u32>>,
}

impl Target {
    fn rouse(addr: std::net::SocketAddr, keys: Keys, per_request: usize) -> Self {
        let (path, body): (&'static str, fn(&[String]) -> String) = if per_request > 1 {
            (WEBHOOK_PATH, webhook)
        } else {
            ("/v1/events", |keys| event(&keys[0]))
        };
        Target {
            addr,
            path,
            ok: 202,
            body,
            keys,
            per_request,
            run: Arc::from(""),
            other_process: None,
        }
    }

    /// Alertmanager's own API, as Prometheus posts to it: the same labels and
    /// summary as Rouse's event, one alert per request, keyed by a label.
    fn alertmanager(
        addr: std::net::SocketAddr,
        keys: Keys,
        pid: Option<u32>,
        per_request: usize,
    ) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Target {
            addr,
            path: "/api/v2/alerts",
            ok: 200,
            body: |keys| {
                let alerts: Vec<String> = keys
                    .iter()
                    .map(|key| {
                        format!(
                            r#"{{"labels":{{"alertname":"HighCpu","instance":"web-1:9100","key":"{key}"}},"annotations":{{"summary":"CPU over 90% on web-1"}}}}"#
                        )
                    })
                    .collect();
                format!("[{}]", alerts.join(","))
            },
            keys,
            per_request,
            run: Arc::from(match keys {
                Keys::New => format!("{nanos}-"),
                // The same alerts as the opening pass made.
                Keys::Duplicate => String::new(),
            }),
            other_process: Some(pid),
        }
    }

    fn key(&self, connection: usize, i: usize) -> String {
        match self.keys {
            Keys::New => format!("{}new-{connection}-{i}", self.run),
            Keys::Duplicate => format!("dup-{}", (connection * 7919 + i) % DUP_KEYS),
        }
    }

    /// The body of a connection's `i`th request.
    fn request_body(&self, connection: usize, i: usize) -> String {
        let keys: Vec<String> = (0..self.per_request)
            .map(|j| self.key(connection, i * self.per_request + j))
            .collect();
        (self.body)(&keys)
    }
}

const WEBHOOK_PATH: &str = "/integrations/alertmanager/bench-key-0123456789abcdef";

/// Alertmanager's webhook (version 4): one notification group, each alert
/// keyed by its fingerprint, as Alertmanager sends a group to a receiver.
fn webhook(keys: &[String]) -> String {
    let alerts: Vec<String> = keys
        .iter()
        .map(|key| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"HighCpu","instance":"web-1:9100","key":"{key}"}},"annotations":{{"summary":"CPU over 90% on web-1"}},"startsAt":"2026-12-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph","fingerprint":"{key}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"version":"4","groupKey":"{{}}:{{alertname=\"HighCpu\"}}","truncatedAlerts":0,"status":"firing","receiver":"rouse","groupLabels":{{"alertname":"HighCpu"}},"commonLabels":{{"alertname":"HighCpu"}},"commonAnnotations":{{}},"externalURL":"http://alertmanager:9093","alerts":[{}]}}"#,
        alerts.join(",")
    )
}

struct Run {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    /// Process CPU time over the run, if the platform tells (Linux).
    cpu: Option<Duration>,
}

/// User plus system CPU time so far of this process, or of `pid`, from
/// `/proc/…/stat` (clock ticks of 1/100 s, the USER_HZ of every Linux this
/// runs on).
fn process_cpu(pid: Option<u32>) -> Option<Duration> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// Prints a scenario's line; returns its alerts per second and p99 (µs).
fn report(
    name: &str,
    run: &Run,
    floor: Option<&Run>,
    o: &Options,
    per_commit: Option<f64>,
) -> (f64, u32) {
    let rps = run.requests as f64 / run.elapsed.as_secs_f64();
    let mut lat = run.latencies_us.clone();
    lat.sort_unstable();
    let pct = |p: f64| -> u32 {
        if lat.is_empty() {
            return 0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i.min(lat.len() - 1)]
    };
    let ratio = floor.map(|f| rps / (f.requests as f64 / f.elapsed.as_secs_f64()));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cpu_us = run
        .cpu
        .filter(|_| run.requests > 0)
        .map(|c| (c.as_secs_f64() * 1e6 / run.requests as f64 * 10.0).round() / 10.0);
    let busy = run
        .cpu
        .map(|c| (c.as_secs_f64() / run.elapsed.as_secs_f64() / cores * 1000.0).round() / 1000.0);
    println!(
        "{}",
        serde_json::json!({
            "bench": format!("intake_{name}"),
            "connections": o.connections,
            "seconds": run.elapsed.as_secs_f64(),
            "requests": run.requests,
            "errors": run.errors,
            "requests_per_second": rps.round(),
            "p50_us": pct(0.50),
            "p99_us": pct(0.99),
            "ratio_to_floor": ratio.map(|r| (r * 1000.0).round() / 1000.0),
            "events_per_commit": per_commit,
            "cpu_us_per_request": cpu_us,
            "cores_busy": busy,
            "alerts_per_request": o.alerts_per_request,
            "alerts_per_second": (rps * o.alerts_per_request as f64).round(),
        })
    );
    (rps * o.alerts_per_request as f64, pct(0.99))
}

/// Opens the `DUP_KEYS` alerts a duplicate run hits.
async fn load_n(target: Target) {
    let mut conn = Connection::open(target.addr).await.expect("connect");
    let keys: Vec<String> = (0..DUP_KEYS).map(|i| format!("dup-{i}")).collect();
    for chunk in keys.chunks(target.per_request) {
        let body = (target.body)(chunk);
        let (status, _) = conn
            .request("POST", target.path, &body)
            .await
            .expect("request");
        assert_eq!(status, target.ok);
    }
}

async fn load(target: Target, o: &Options, duration: Duration) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    // The server's CPU counts with the load generator's, as it does when both
    // run in this process.
    let other = target.other_process;
    let cpu = move || {
        let own = process_cpu(None)?;
        match other {
            None => Some(own),
            Some(pid) => Some(own + process_cpu(Some(pid?))?),
        }
    };
    let cpu_before = cpu();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..o.connections {
        let (stop, target) = (stop.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(target.addr).await.expect("connect");
            let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::with_capacity(100_000));
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let body = target.request_body(c, i);
                i += 1;
                let t = Instant::now();
                match conn.request("POST", target.path, &body).await {
                    Ok((status, _)) if status == target.ok => ok += 1,
                    _ => errors += 1,
                }
                lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            (ok, errors, lat)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut run = Run {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        cpu: None,
    };
    for task in tasks {
        let (ok, errors, lat) = task.await.expect("load task");
        run.requests += ok;
        run.errors += errors;
        run.latencies_us.extend(lat);
    }
    run.elapsed = started.elapsed();
    run.cpu = cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    run
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
      # Delayed so the measurement is intake (each alert still gets its
      # escalation timer in the same transaction); paging is measured by
      # benches/escalation.rs.
      - { delay: 1h, targets: [{ schedule: s }], channels: [sms] }
services:
  - id: bench
    policy: p
    integrations:
      - { name: bench, key: bench-key-0123456789abcdef }
"#;
