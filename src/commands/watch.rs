//! `rouse watch [DIR] --once [--json]`: runs every configured watcher's check
//! once, now, and prints what each found. It opens no alerts and stores no
//! watcher state: it is for seeing what `rouse serve` would see, e.g. right
//! after adding a watcher or while an alert is open.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::check::{plural, utc};
use crate::catalog::load_dir;
use crate::config::Config;
use crate::store::Heartbeat;
use crate::watch::decide::WatchState;
use crate::watch::runner::{self, Probes};
use crate::watch::spec::{WatchKind, WatcherSpec};
use crate::watch::{CheckResult, Level};

/// Exit code: nothing critical found.
pub const EXIT_OK: u8 = 0;
/// Exit code: some finding is critical.
pub const EXIT_CRITICAL: u8 = 1;
/// Exit code: the configuration (or the command line) is wrong.
pub const EXIT_CONFIG: u8 = 2;

/// Opening the database must not hang the command (a Postgres host that drops packets).
const STORE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Default)]
pub struct WatchArgs {
    /// Folder of on-call YAML files.
    pub dir: PathBuf,
    pub once: bool,
    pub json: bool,
}

/// Runs every watcher once and prints the results; returns the exit code.
pub async fn watch(
    args: &WatchArgs,
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> std::io::Result<u8> {
    if !args.once {
        writeln!(
            out,
            "`rouse serve` runs the watchers continuously; `rouse watch --once` runs each of them now"
        )?;
        return Ok(EXIT_CONFIG);
    }
    let catalog = match load_dir(&args.dir, env) {
        Ok(c) => c,
        Err(diags) => {
            for d in &diags.0 {
                writeln!(out, "{d}")?;
            }
            return Ok(EXIT_CONFIG);
        }
    };
    let probes = match Probes::from_config(&config.watch) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            writeln!(out, "error: {e}")?;
            return Ok(EXIT_CRITICAL);
        }
    };
    let specs: Vec<WatcherSpec> = catalog.watchers().cloned().collect();
    let pings = if specs.iter().any(is_silence) {
        read_pings(config).await
    } else {
        Ok(Pings::default())
    };
    let reports = run_all(probes, specs, &pings, now, config.watch.concurrency).await;
    if args.json {
        print_json(&reports, now, out)?;
    } else {
        print_text(&reports, out)?;
    }
    let critical = reports.iter().any(|r| r.has_critical());
    Ok(if critical { EXIT_CRITICAL } else { EXIT_OK })
}

/// What heartbeat and watchdog watchers need from the store.
#[derive(Default)]
struct Pings {
    beats: Vec<Heartbeat>,
    /// Watcher id → when `rouse serve` first saw it.
    configured_at: HashMap<String, DateTime<Utc>>,
}

/// Reads the pings; `Err` says why they cannot be read (the silence
/// watchers are then skipped, the others still run).
async fn read_pings(config: &Config) -> Result<Pings, String> {
    let read = async {
        let store = crate::store::open(config.database_url.expose(), 2)
            .await
            .map_err(|e| format!("cannot open the database: {e}"))?;
        let read = async {
            store.migrate().await?;
            Ok::<_, crate::store::StoreError>((store.heartbeats().await?, store.watchers().await?))
        };
        let result = read.await;
        store.close().await;
        result.map_err(|e| format!("cannot read the database: {e}"))
    };
    let (beats, rows) = tokio::time::timeout(STORE_TIMEOUT, read)
        .await
        .map_err(|_| {
            format!(
                "the database did not answer within {}s",
                STORE_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("{e} ({})", config.database_display()))?;
    let configured_at = rows
        .into_iter()
        .filter_map(|row| {
            let state: WatchState = serde_json::from_value(row.state?).ok()?;
            Some((row.id, state.configured_at?))
        })
        .collect();
    Ok(Pings {
        beats,
        configured_at,
    })
}

fn is_silence(spec: &WatcherSpec) -> bool {
    matches!(spec.kind, WatchKind::Heartbeat(_) | WatchKind::Watchdog(_))
}

/// One watcher's run, as printed.
struct Report {
    spec: WatcherSpec,
    /// `ok`, `warning`, `critical`, `cannot check`, `waiting`, `skipped`
    /// or (pulse) `failed`.
    result: &'static str,
    outcome: Result<CheckResult, String>,
}

impl Report {
    fn has_critical(&self) -> bool {
        matches!(&self.outcome, Ok(Ok(v)) if v.findings.iter().any(|f| f.level == Level::Critical))
    }

    fn status(&self) -> &str {
        match &self.outcome {
            Ok(Ok(v)) => &v.status,
            Ok(Err(failure)) => &failure.reason,
            Err(skipped) => skipped,
        }
    }
}

/// Runs the checks concurrently, at most `concurrency` at once; reports in
/// the catalog's order.
async fn run_all(
    probes: Arc<Probes>,
    specs: Vec<WatcherSpec>,
    pings: &Result<Pings, String>,
    now: DateTime<Utc>,
    concurrency: usize,
) -> Vec<Report> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(specs.len());
    for spec in specs {
        let (last_ping, configured_at) = match pings {
            Err(reason) if is_silence(&spec) => {
                tasks.push((spec, None, Err(reason.clone())));
                continue;
            }
            Err(_) => (None, now),
            Ok(p) => (
                runner::last_ping(&spec, &p.beats),
                p.configured_at.get(&spec.id).copied().unwrap_or(now),
            ),
        };
        let handle = runner::spawn_check(
            probes.clone(),
            permits.clone(),
            spec.clone(),
            now,
            last_ping,
            configured_at,
        );
        tasks.push((spec, last_ping, Ok(handle)));
    }
    let mut reports = Vec::with_capacity(tasks.len());
    for (spec, last_ping, task) in tasks {
        let outcome = match task {
            Ok(handle) => Ok(runner::joined(&spec, handle.await).0),
            Err(skipped) => Err(skipped),
        };
        let result = classify(&spec, &outcome, last_ping);
        reports.push(Report {
            spec,
            result,
            outcome,
        });
    }
    reports
}

fn classify(
    spec: &WatcherSpec,
    outcome: &Result<CheckResult, String>,
    last_ping: Option<DateTime<Utc>>,
) -> &'static str {
    let worst = |v: &crate::watch::Verdict| v.findings.iter().map(|f| f.level).max();
    match outcome {
        Err(_) => "skipped",
        Ok(Err(_)) if matches!(spec.kind, WatchKind::Pulse(_)) => "failed",
        Ok(Err(_)) => "cannot check",
        Ok(Ok(v)) => match worst(v) {
            Some(Level::Critical) => "critical",
            Some(Level::Warning) => "warning",
            // Never pinged, and its first deadline has not passed yet.
            None if is_silence(spec) && last_ping.is_none() => "waiting",
            None => "ok",
        },
    }
}

/// What is watched, without the path of a pulse URL: dead man's switch ping
/// URLs carry their secret in the path.
fn target(spec: &WatcherSpec) -> String {
    match &spec.kind {
        WatchKind::Pulse(p) => match reqwest::Url::parse(&p.url) {
            Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or_default()),
            Err(_) => "(invalid url)".to_owned(),
        },
        _ => runner::target(spec),
    }
}

fn print_text(reports: &[Report], out: &mut dyn Write) -> std::io::Result<()> {
    let rows: Vec<[String; 4]> = reports
        .iter()
        .map(|r| {
            [
                r.spec.id.clone(),
                r.spec.kind.name().to_owned(),
                target(&r.spec),
                r.result.to_owned(),
            ]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2), width(3)];
    for (report, row) in reports.iter().zip(&rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        writeln!(out, "{line}{}", report.status())?;
        if let Ok(Ok(v)) = &report.outcome {
            for f in &v.findings {
                writeln!(out, "    {}: {}", f.level.as_str(), f.summary)?;
            }
        }
    }
    writeln!(out, "{}", summary(reports))
}

/// The results in the order the summary counts them.
const RESULTS: [&str; 7] = [
    "ok",
    "waiting",
    "warning",
    "critical",
    "cannot check",
    "failed",
    "skipped",
];

/// `5 watchers: 2 ok, 1 waiting, 1 critical, 1 cannot check`.
fn summary(reports: &[Report]) -> String {
    let parts: Vec<String> = RESULTS
        .iter()
        .filter_map(|name| {
            let n = reports.iter().filter(|r| r.result == *name).count();
            (n > 0).then(|| format!("{n} {name}"))
        })
        .collect();
    let head = plural(reports.len(), "watcher", "watchers");
    if parts.is_empty() {
        head
    } else {
        format!("{head}: {}", parts.join(", "))
    }
}

fn print_json(reports: &[Report], now: DateTime<Utc>, out: &mut dyn Write) -> std::io::Result<()> {
    let watchers: Vec<Value> = reports.iter().map(report_json).collect();
    let doc = json!({ "checked_at": utc(now), "watchers": watchers });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

fn report_json(r: &Report) -> Value {
    let (findings, facts) = match &r.outcome {
        Ok(Ok(v)) => (
            v.findings
                .iter()
                .map(|f| {
                    json!({
                        "code": f.code,
                        "level": f.level,
                        "summary": f.summary,
                        "details": f.details,
                    })
                })
                .collect(),
            v.facts.clone(),
        ),
        _ => (Vec::new(), Value::Null),
    };
    json!({
        "id": r.spec.id,
        "kind": r.spec.kind.name(),
        "target": target(&r.spec),
        "result": r.result,
        "status": r.status(),
        "findings": findings,
        "facts": facts,
    })
}
