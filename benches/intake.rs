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
        let app = Router::new().route(
            "/v1/events",
            post(|Json(_): Json<serde_json::Value>| async { StatusCode::ACCEPTED }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });

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
    let floor = client_rt.block_on(load(Target::rouse(floor_addr, Keys::New), &o, duration));
    report("floor_bare_axum", &floor, None, &o, None);
    // Each server's targets, and where to read Rouse's group-commit counters.
    type Targets = Box<dyn Fn(Keys) -> Target>;
    let mut servers: Vec<(&str, Targets, Option<std::net::SocketAddr>)> = vec![(
        "sqlite",
        Box::new(move |keys| Target::rouse(rouse_addr, keys)),
        Some(rouse_addr),
    )];
    if let Some(addr) = o.alertmanager {
        let pid = o.alertmanager_pid;
        servers.push((
            "alertmanager",
            Box::new(move |keys| Target::alertmanager(addr, keys, pid)),
            None,
        ));
    }
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
            report(
                &format!("{name}_{server}"),
                &run,
                Some(&floor),
                &o,
                per_commit(before, after),
            );
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
    body: fn(&str) -> String,
    keys: Keys,
    /// Keeps one run's keys apart from an earlier run's, for a server that
    /// outlives the bench (Alertmanager).
    run: Arc<str>,
    /// The server's process when it is not this one: `Some(None)` when its
    /// pid is unknown, and then the run's CPU time is too.
    other_process: Option<Option<u32>>,
}

impl Target {
    fn rouse(addr: std::net::SocketAddr, keys: Keys) -> Self {
        Target {
            addr,
            path: "/v1/events",
            ok: 202,
            body: event,
            keys,
            run: Arc::from(""),
            other_process: None,
        }
    }

    /// Alertmanager's own API, as Prometheus posts to it: the same labels and
    /// summary as Rouse's event, one alert per request, keyed by a label.
    fn alertmanager(addr: std::net::SocketAddr, keys: Keys, pid: Option<u32>) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Target {
            addr,
            path: "/api/v2/alerts",
            ok: 200,
            body: |key| {
                format!(
                    r#"[{{"labels":{{"alertname":"HighCpu","instance":"web-1:9100","key":"{key}"}},"annotations":{{"summary":"CPU over 90% on web-1"}}}}]"#
                )
            },
            keys,
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

fn report(name: &str, run: &Run, floor: Option<&Run>, o: &Options, per_commit: Option<f64>) {
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
        })
    );
}

/// Opens the `DUP_KEYS` alerts a duplicate run hits.
async fn load_n(target: Target) {
    let mut conn = Connection::open(target.addr).await.expect("connect");
    for i in 0..DUP_KEYS {
        let body = (target.body)(&format!("dup-{i}"));
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
                let body = (target.body)(&target.key(c, i));
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
