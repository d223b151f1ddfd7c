//! Runs the configured watchers on their schedules and turns what they find
//! into events on the ordinary intake path.
//!
//! One round ([`Runner::tick`]): give every configured watcher a row, lease
//! the due ones (so with several replicas each slot runs once, and a replica
//! that dies mid-run hands the slot on when its lease runs out), run them
//! concurrently under a cap, each in its own task under its own timeout (a
//! peer that never answers, or a parser that panics, costs one failed run of
//! one watcher and nothing else), apply [`decide`], store the events in one
//! durable batch, then the watchers' new state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::decide::{self, Emit, WatchState};
use super::probe;
use super::silence::Silence;
use super::spec::{WatchKind, WatchdogSpec, WatcherSpec};
use super::{CheckFailure, CheckResult, Level};
use crate::alert::{Action, Event, IntakeKind, Severity};
use crate::catalog::live::LiveCatalog;
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::escalation::plan;
use crate::oncall::Urgency;
use crate::store::watch::WatcherClaim;
use crate::store::{Heartbeat, Ingest, Store, StoreError};

/// Runs one watcher's check: the seam between the runner and the network,
/// so tests can put a check of their own (one that panics, say) in its place.
#[async_trait::async_trait]
pub trait Prober: Send + Sync {
    async fn check(
        &self,
        spec: &WatcherSpec,
        now: DateTime<Utc>,
        last_ping: Option<DateTime<Utc>>,
        configured_at: DateTime<Utc>,
    ) -> CheckResult;
}

#[async_trait::async_trait]
impl Prober for Probes {
    async fn check(
        &self,
        spec: &WatcherSpec,
        now: DateTime<Utc>,
        last_ping: Option<DateTime<Utc>>,
        configured_at: DateTime<Utc>,
    ) -> CheckResult {
        check(self, spec, now, last_ping, configured_at).await
    }
}

/// What the probes share: HTTP clients and the RDAP bootstrap cache.
pub struct Probes {
    pub rdap: probe::rdap::RdapClient,
    pub http: probe::http::HttpClients,
}

impl Probes {
    pub fn from_config(config: &crate::config::WatchConfig) -> Result<Probes, String> {
        // RDAP servers redirect (RFC 7480 §5.2).
        let http = reqwest::Client::builder()
            .user_agent(concat!("rouse-watch/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| format!("cannot build the RDAP client: {e}"))?;
        Ok(Probes {
            // Four tries, 2 s, 4 s and 8 s apart (or what Retry-After asks,
            // up to 20 s): well inside the domain check's 60 s timeout.
            rdap: probe::rdap::RdapClient::new(
                http,
                config.rdap_bootstrap_url.clone(),
                Some(config.bootstrap_cache.clone()),
                Duration::from_secs(2),
                4,
                Duration::from_secs(20),
            ),
            http: probe::http::HttpClients::new()?,
        })
    }
}

pub struct Runner {
    store: Arc<dyn Store>,
    catalog: Arc<LiveCatalog>,
    clock: Arc<dyn Clock>,
    probes: Arc<dyn Prober>,
    owner: String,
    concurrency: Arc<Semaphore>,
    storm_threshold: u64,
    engine_wake: Arc<Notify>,
    wake: Arc<Notify>,
    /// The fingerprint of the catalog whose watchers were last given rows:
    /// rows are written when the configuration changes, not every round.
    ensured: std::sync::Mutex<Option<u64>>,
}

/// How much longer than its own timeout a check may run before the runner
/// abandons it.
const GUARD_MARGIN: Duration = Duration::from_secs(2);

/// Watchers leased in one round, at most.
const CLAIM_LIMIT: u32 = 256;

/// What one run produced, before it is stored.
struct Ran {
    claim: WatcherClaim,
    /// The state the claim carried, as read.
    state: WatchState,
    spec: WatcherSpec,
    result: CheckResult,
    took: Duration,
    /// For silence kinds: when silence next becomes a finding.
    deadline: Option<DateTime<Utc>>,
}

impl Runner {
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Arc<LiveCatalog>,
        clock: Arc<dyn Clock>,
        probes: Arc<dyn Prober>,
        concurrency: usize,
        storm_threshold: u64,
        engine_wake: Arc<Notify>,
    ) -> Runner {
        Runner {
            store,
            catalog,
            clock,
            probes,
            owner: format!("watch-{}", uuid::Uuid::new_v4().simple()),
            concurrency: Arc::new(Semaphore::new(concurrency.max(1))),
            storm_threshold,
            engine_wake,
            wake: Arc::new(Notify::new()),
            ensured: std::sync::Mutex::new(None),
        }
    }

    /// Wakes the loop now (a configuration reload, a test that moved its clock).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs every watcher that is due, waits for all of them, and records
    /// what they found. Returns how many ran.
    pub async fn tick(&self) -> Result<usize, StoreError> {
        let Some(catalog) = self.catalog.current() else {
            return Ok(0);
        };
        let now = self.clock.now();
        let specs: Vec<&WatcherSpec> = catalog.watchers().collect();
        if specs.is_empty() {
            return Ok(0);
        }
        self.ensure(&catalog, &specs, now).await?;
        let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
        let longest = specs.iter().map(|s| s.timeout).max().unwrap_or_default();
        // Long enough that a live run never loses its slot, short enough
        // that a dead replica's slot is soon run by another.
        let lease = (longest + GUARD_MARGIN) * 2 + Duration::from_secs(30);
        let claims = self
            .store
            .claim_watchers(&ids, now, &self.owner, lease, CLAIM_LIMIT)
            .await?;
        if claims.is_empty() {
            return Ok(0);
        }
        // Only silence watchers read pings.
        let beats = if claims
            .iter()
            .filter_map(|c| catalog.watcher(&c.id))
            .any(|spec| silence(spec).is_some())
        {
            self.store.heartbeats().await?
        } else {
            Vec::new()
        };
        let ran = self.run_all(&catalog, claims, &beats, now).await;
        let count = ran.len();
        self.record(&catalog, ran, now).await?;
        Ok(count)
    }

    /// Gives the catalog's watchers their rows, once per configuration.
    async fn ensure(
        &self,
        catalog: &Catalog,
        specs: &[&WatcherSpec],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let loaded = Some(catalog.fingerprint());
        let done = *self
            .ensured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if done == loaded {
            return Ok(());
        }
        let prints: Vec<(String, String)> = specs
            .iter()
            .map(|s| (s.id.clone(), fingerprint(s)))
            .collect();
        self.store.ensure_watchers(&prints, now).await?;
        *self
            .ensured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        Ok(())
    }

    async fn run_all(
        &self,
        catalog: &Catalog,
        claims: Vec<WatcherClaim>,
        beats: &[Heartbeat],
        now: DateTime<Utc>,
    ) -> Vec<Ran> {
        let mut tasks = Vec::with_capacity(claims.len());
        for claim in claims {
            let Some(spec) = catalog.watcher(&claim.id).cloned() else {
                continue;
            };
            let state: WatchState = claim
                .state
                .clone()
                .and_then(|s| serde_json::from_value(s).ok())
                .unwrap_or_default();
            let configured_at = state.configured_at.unwrap_or(now);
            let last_ping = last_ping(&spec, beats);
            let handle = spawn_check(
                self.probes.clone(),
                self.concurrency.clone(),
                spec.clone(),
                now,
                last_ping,
                configured_at,
            );
            let deadline = silence(&spec).map(|s| s.deadline(last_ping, configured_at));
            tasks.push((claim, state, spec, handle, deadline));
        }
        let mut ran = Vec::with_capacity(tasks.len());
        for (claim, state, spec, handle, deadline) in tasks {
            let (result, took) = joined(&spec, handle.await);
            ran.push(Ran {
                claim,
                state,
                spec,
                result,
                took,
                deadline,
            });
        }
        ran
    }

    /// Stores the events first, then each watcher's state: a crash between
    /// the two runs the slot again, and its events only refresh the same
    /// alerts (their dedup keys are stable).
    async fn record(
        &self,
        catalog: &Catalog,
        ran: Vec<Ran>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut items = Vec::new();
        let mut finished = Vec::with_capacity(ran.len());
        for run in ran {
            let (mut state, emits) =
                decide::apply(run.state, &run.spec, &target(&run.spec), &run.result, now);
            state.last_duration_ms = u64::try_from(run.took.as_millis()).unwrap_or(u64::MAX);
            observe(&run.spec, &state, &run.result, run.took);
            if let WatchKind::Pulse(_) = run.spec.kind {
                // Paging about Rouse through Rouse would tell nobody.
                if let Err(e) = &run.result {
                    tracing::warn!(watcher = %run.spec.id, reason = %e, "pulse could not reach the outside dead man's switch");
                    metrics::counter!("rouse_pulse_failures_total").increment(1);
                }
            } else {
                for emit in emits {
                    items.extend(self.ingest_for(catalog, &run.spec, &run.result, emit, now));
                }
            }
            let mut next = run.spec.when.next_slot(run.claim.due_at, now);
            if let Some(deadline) = run.deadline.filter(|d| *d > now) {
                next = next.min(deadline);
            }
            finished.push((run.claim, next, state));
        }
        if !items.is_empty() {
            let due_now = items
                .iter()
                .any(|i| i.first_step_due.is_some_and(|d| d <= now));
            self.store.ingest(&items).await?;
            self.store.sync().await?;
            if due_now {
                self.engine_wake.notify_one();
            }
        }
        for (claim, next, state) in finished {
            let value = serde_json::to_value(&state).unwrap_or_default();
            if !self.store.finish_watcher(&claim, next, &value, now).await? {
                tracing::warn!(watcher = %claim.id, "a watcher's run outlived its lease; another runner took the slot");
            }
        }
        Ok(())
    }

    fn ingest_for(
        &self,
        catalog: &Catalog,
        spec: &WatcherSpec,
        result: &CheckResult,
        emit: Emit,
        now: DateTime<Utc>,
    ) -> Option<Ingest> {
        let service = catalog.service(&spec.service)?;
        let dedup_key = decide::dedup_key(&spec.id, emit.code());
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("watcher".to_owned(), spec.id.clone());
        labels.insert("watch_kind".to_owned(), spec.kind.name().to_owned());
        labels.insert("finding".to_owned(), emit.code().to_owned());
        let (action, summary, severity, details, level) = match emit {
            Emit::Trigger(f) => {
                let severity = match f.level {
                    Level::Critical => Severity::Critical,
                    Level::Warning => Severity::Warning,
                };
                (
                    Action::Trigger,
                    f.summary,
                    severity,
                    f.details,
                    Some(f.level),
                )
            }
            Emit::Resolve { code, note } => {
                let note = resolve_note(spec, &code, result).unwrap_or(note);
                (
                    Action::Resolve,
                    note,
                    Severity::Info,
                    serde_json::Value::Null,
                    None,
                )
            }
        };
        let route = service.route(&labels, severity.as_str());
        // A warning is worth knowing in the morning, not at 03:00.
        let urgency = match level {
            Some(Level::Warning) => Urgency::Low,
            _ => route.urgency,
        };
        Some(Ingest {
            encoded: None,
            service_id: service.id.clone(),
            actor: format!("watch:{}", spec.id),
            first_step_due: catalog
                .policy(&route.policy_id)
                .map(|p| plan::first_due(p, now)),
            policy_id: Some(route.policy_id),
            urgency,
            dedup_key: dedup_key.clone(),
            event: Event {
                kind: IntakeKind::Watch,
                action,
                dedup_key: Some(dedup_key),
                summary: crate::alert::truncate_summary(&summary),
                severity,
                source: format!("rouse watcher {}", spec.id),
                labels,
                details,
                links: Vec::new(),
                occurred_at: Some(now),
            },
            received_at: now,
            storm_threshold: self.storm_threshold,
        })
    }

    /// Runs rounds until `stop`: right away, then whenever the earliest
    /// watcher is due, at least once a second (a virtual clock in tests, a
    /// slot freed by a dead replica) and when woken.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "watcher round failed; trying again shortly");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// Starts one check in its own task (a panic inside a probe ends that task
/// only and comes back as a `JoinError`), waiting for one of `permits`, under
/// a guard a little longer than its timeout: the probe keeps to the timeout
/// itself and reports what timed out; the guard catches one that does not.
/// Returns the result and how long the check took once it had its permit.
pub fn spawn_check(
    prober: Arc<dyn Prober>,
    permits: Arc<Semaphore>,
    spec: WatcherSpec,
    now: DateTime<Utc>,
    last_ping: Option<DateTime<Utc>>,
    configured_at: DateTime<Utc>,
) -> tokio::task::JoinHandle<(CheckResult, Duration)> {
    tokio::spawn(async move {
        let _permit = permits.acquire_owned().await;
        let started = Instant::now();
        let check = prober.check(&spec, now, last_ping, configured_at);
        let result = tokio::time::timeout(spec.timeout + GUARD_MARGIN, check)
            .await
            .unwrap_or_else(|_| {
                Err(CheckFailure::new(format!(
                    "no verdict within {}s (the check was abandoned)",
                    spec.timeout.as_secs()
                )))
            });
        (result, started.elapsed())
    })
}

/// A [`spawn_check`] task's outcome; a panic is a failed run, logged.
pub fn joined(
    spec: &WatcherSpec,
    done: Result<(CheckResult, Duration), tokio::task::JoinError>,
) -> (CheckResult, Duration) {
    done.unwrap_or_else(|err| {
        tracing::error!(watcher = %spec.id, error = %err, "a watcher's check panicked; recorded as a failed run");
        metrics::counter!("rouse_watcher_panics_total").increment(1);
        (
            Err(CheckFailure::new(
                "the check failed unexpectedly (an internal error was logged)",
            )),
            Duration::ZERO,
        )
    })
}

/// Runs one watcher's check once. Used by the runner and by `rouse watch --once`.
pub async fn check(
    probes: &Probes,
    spec: &WatcherSpec,
    now: DateTime<Utc>,
    last_ping: Option<DateTime<Utc>>,
    configured_at: DateTime<Utc>,
) -> CheckResult {
    match &spec.kind {
        WatchKind::Domain(d) => probes.rdap.lookup(d, now).await,
        WatchKind::Tls(t) => probe::tls::check(t, now, spec.timeout).await,
        WatchKind::Http(h) => probe::http::check(h, &probes.http, now, spec.timeout).await,
        WatchKind::Pulse(p) => probe::http::pulse(p, &probes.http, spec.timeout)
            .await
            .map(|()| super::Verdict::healthy("pinged", serde_json::Value::Null))
            .map_err(CheckFailure::new),
        WatchKind::Heartbeat(_) | WatchKind::Watchdog(_) => {
            let Some(s) = silence(spec) else {
                return Err(CheckFailure::new("not a silence watcher"));
            };
            Ok(s.verdict(last_ping, configured_at, now))
        }
    }
}

/// What a silence watcher listens for, if it is one.
fn silence(spec: &WatcherSpec) -> Option<Silence<'_>> {
    match &spec.kind {
        WatchKind::Heartbeat(h) => Some(Silence {
            what: &h.name,
            interval: h.interval,
            grace: h.grace,
        }),
        WatchKind::Watchdog(d) => Some(Silence {
            what: &spec.id,
            interval: d.interval,
            grace: d.grace,
        }),
        _ => None,
    }
}

/// The last ping a silence watcher has heard.
pub fn last_ping(spec: &WatcherSpec, beats: &[Heartbeat]) -> Option<DateTime<Utc>> {
    let name = match &spec.kind {
        WatchKind::Heartbeat(h) => h.name.clone(),
        WatchKind::Watchdog(_) => WatchdogSpec::heartbeat_name(&spec.id),
        _ => return None,
    };
    beats
        .iter()
        .find(|b| b.service_id == spec.service && b.name == name)
        .map(|b| b.last_ping_at)
}

/// What is watched, in a few words, for summaries.
pub fn target(spec: &WatcherSpec) -> String {
    match &spec.kind {
        WatchKind::Domain(d) => d.domain.clone(),
        WatchKind::Tls(t) => format!("{}:{}", t.host, t.port),
        WatchKind::Http(h) => h.url.clone(),
        WatchKind::Heartbeat(h) => format!("heartbeat {}", h.name),
        WatchKind::Watchdog(_) => format!("watchdog {}", spec.id),
        WatchKind::Pulse(p) => p.url.clone(),
    }
}

/// A domain whose expiry alert resolves says until when it was renewed.
fn resolve_note(spec: &WatcherSpec, code: &str, result: &CheckResult) -> Option<String> {
    let (WatchKind::Domain(_), "expiry", Ok(verdict)) = (&spec.kind, code, result) else {
        return None;
    };
    let facts: super::domain::DomainFacts = serde_json::from_value(verdict.facts.clone()).ok()?;
    // A registry auto-renews a domain the registrar has parked: the date
    // looks fine, the domain is not. Say so instead of "renewed".
    if let Some(status) = verdict.findings.iter().find(|f| f.code == "status") {
        let date = facts.expires.map_or_else(
            || "unknown".to_owned(),
            |d| d.format("%Y-%m-%d").to_string(),
        );
        return Some(format!(
            "the registry's expiry date moved to {date}, but the domain is not healthy: {}",
            status.summary
        ));
    }
    Some(super::domain::renewed_note(&facts))
}

/// A stable digest of what the watcher was configured as (not where it is
/// written): an edit to it makes the watcher due at once.
pub fn fingerprint(spec: &WatcherSpec) -> String {
    let bare = WatcherSpec {
        place: String::new(),
        ..spec.clone()
    };
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{bare:?}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn observe(spec: &WatcherSpec, state: &WatchState, result: &CheckResult, took: Duration) {
    let id = spec.id.clone();
    metrics::gauge!("rouse_watcher_duration_seconds", "watcher" => id.clone())
        .set(took.as_secs_f64());
    if let Some(at) = state.last_success_at {
        metrics::gauge!("rouse_watcher_last_success_timestamp_seconds", "watcher" => id.clone())
            .set(at.timestamp() as f64);
    }
    let findings = result.as_ref().map_or(0, |v| v.findings.len());
    let worst = match result {
        Err(_) => 1.0,
        Ok(v) if v.findings.iter().any(|f| f.level == Level::Critical) => 3.0,
        Ok(v) if !v.findings.is_empty() => 2.0,
        Ok(_) => 0.0,
    };
    // 0 ok, 1 could not check, 2 warning, 3 critical.
    metrics::gauge!("rouse_watcher_result", "watcher" => id.clone()).set(worst);
    metrics::gauge!("rouse_watcher_findings", "watcher" => id.clone()).set(findings as f64);
    metrics::counter!("rouse_watcher_runs_total", "watcher" => id, "result" => state.last_result.clone())
        .increment(1);
}
