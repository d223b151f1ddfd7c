//! Watchers: Rouse itself looks for the failures nobody else reports — a
//! domain about to lapse or parked at the registrar, a certificate that
//! expired or names the wrong host, an endpoint that stopped answering, a
//! heartbeat or a monitoring stack that went quiet — and pages through the
//! same policies as any other alert.
//!
//! The split is the one `escalation/` uses: what a check *means* is pure
//! ([`spec`], [`schedule`], [`decide`], [`domain`], [`cert`], [`silence`]);
//! the probes that do network I/O live in [`probe`]; [`runner`] schedules
//! them, keeps their state in the store and turns findings into events.

pub mod cert;
pub mod decide;
pub mod domain;
pub mod probe;
pub mod runner;
pub mod schedule;
pub mod silence;
pub mod spec;

use serde::{Deserialize, Serialize};

/// How bad a finding is. A warning pages at low urgency (quiet hours hold);
/// a critical finding pages at the service's own urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warning,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

/// One thing wrong that a check found. Each `code` becomes one alert with the
/// dedup key `watch:<watcher id>:<code>`, so a finding that persists refreshes
/// one alert instead of opening a new one every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable, short, `[a-z_]+`: `expiry`, `status`, `nameservers`,
    /// `cert_expiry`, `cert_name`, `cert_chain`, `cert_validity`,
    /// `unreachable`, `http`, `silent`, `cannot_check`.
    pub code: String,
    pub level: Level,
    /// A finding that can be a blip (refused connection, timeout, a 5xx, a
    /// failed lookup) opens an alert only after `failures_before_alert`
    /// consecutive runs show it; a fact (client hold, wrong-name
    /// certificate) opens one at once.
    pub transient: bool,
    /// Written for a half-asleep human: what, where, and what to do, e.g.
    /// `example.app: domain on CLIENT HOLD at the registrar (expiry 2025-01-11) — renew it now`.
    pub summary: String,
    /// Machine-readable facts stored with the alert (names, dates, errors).
    pub details: serde_json::Value,
}

/// What one run of a check concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Empty when everything is fine.
    pub findings: Vec<Finding>,
    /// One line on the state of the thing watched, shown by `rouse watch
    /// --once` and used as the note when an alert resolves, e.g.
    /// `expires 2027-03-01T00:00:00Z (in 455 days)` or `renewed until 2026-01-11`.
    pub status: String,
    /// The facts the check read, for `--json` and the watcher's stored state.
    pub facts: serde_json::Value,
}

impl Verdict {
    pub fn healthy(status: impl Into<String>, facts: serde_json::Value) -> Verdict {
        Verdict {
            findings: Vec::new(),
            status: status.into(),
            facts,
        }
    }
}

/// The check could not reach a verdict at all (every retry of a lookup
/// failed). Counted against `failures_before_alert`; never itself critical.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{reason}")]
pub struct CheckFailure {
    pub reason: String,
}

impl CheckFailure {
    pub fn new(reason: impl Into<String>) -> CheckFailure {
        CheckFailure {
            reason: reason.into(),
        }
    }
}

/// The result every probe returns.
pub type CheckResult = Result<Verdict, CheckFailure>;
