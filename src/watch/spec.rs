//! What a watcher is asked to watch, as validated from the `watchers:`
//! section of the on-call YAML. Plain data: the catalog builds it, the
//! runner and the probes read it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::schedule::When;

#[derive(Debug, Clone, PartialEq)]
pub struct WatcherSpec {
    /// `[A-Za-z0-9._-]{1,64}`, unique; part of every dedup key it emits.
    pub id: String,
    /// The service whose routing and escalation policy its alerts take.
    pub service: String,
    pub when: When,
    pub kind: WatchKind,
    /// Consecutive runs that must show a transient finding (or fail to
    /// check at all) before it opens an alert.
    pub failures_before_alert: u32,
    /// Consecutive runs without a finding before its alert resolves.
    pub successes_before_resolve: u32,
    /// The longest one run may take; the runner abandons it after this.
    pub timeout: Duration,
    /// Where it was defined, for `rouse check`'s messages.
    pub place: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WatchKind {
    Domain(DomainSpec),
    Tls(TlsSpec),
    Http(HttpSpec),
    Heartbeat(HeartbeatSpec),
    Watchdog(WatchdogSpec),
    Pulse(PulseSpec),
}

impl WatchKind {
    pub fn name(&self) -> &'static str {
        match self {
            WatchKind::Domain(_) => "domain",
            WatchKind::Tls(_) => "tls",
            WatchKind::Http(_) => "http",
            WatchKind::Heartbeat(_) => "heartbeat",
            WatchKind::Watchdog(_) => "watchdog",
            WatchKind::Pulse(_) => "pulse",
        }
    }
}

/// Registration expiry and health over RDAP, with WHOIS as the fallback.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainSpec {
    /// As configured (may be a subdomain); the probe finds the registrable
    /// domain with the Public Suffix List.
    pub domain: String,
    /// Warn when the registration expires within this (default 30 days).
    pub warn: TimeDelta,
    /// Critical within this (default 7 days).
    pub critical: TimeDelta,
    /// An RDAP base URL (ending in `/`) to use instead of the IANA bootstrap.
    pub rdap_url: Option<String>,
    /// `host:port` of a WHOIS server to use instead of the registry's own.
    pub whois: Option<String>,
    /// When set, nameservers other than these (compared lower-case, without
    /// a trailing dot, as sets) are a critical finding: parked domains are
    /// moved to the registrar's parking nameservers.
    pub expect_nameservers: Vec<String>,
    /// For registries that publish no expiry date: the date to remind against
    /// (from the registrar's invoice).
    pub expires: Option<DateTime<Utc>>,
}

/// Certificate thresholds and trust, shared by `tls` and HTTPS `http` checks.
#[derive(Debug, Clone, PartialEq)]
pub struct CertPolicy {
    /// Warn when the leaf expires within this (default 21 days).
    pub warn: TimeDelta,
    /// Critical within this (default 7 days).
    pub critical: TimeDelta,
    /// PEM file of extra trusted roots (a private CA), beside the system roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsSpec {
    pub host: String,
    pub port: u16,
    /// The name sent as SNI and checked against the certificate (default: `host`).
    pub server_name: String,
    pub cert: CertPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    pub url: String,
    /// Upper-case: GET, HEAD or POST.
    pub method: String,
    /// Inclusive range of acceptable status codes (default 200–399 when
    /// following redirects is off, 200–299 when on).
    pub expect_status: (u16, u16),
    /// The body must contain this (checked on the first 1 MiB).
    pub body_contains: Option<String>,
    pub follow_redirects: bool,
    /// An `https` URL's certificate is checked like a `tls` watcher's.
    pub cert: CertPolicy,
}

/// `POST /v1/heartbeat/{key}?name=…` pings of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatSpec {
    /// The heartbeat's name (default: the watcher's id).
    pub name: String,
    pub interval: TimeDelta,
    pub grace: TimeDelta,
}

/// A dead man's switch for the monitoring stack: an always-firing alert
/// (Prometheus' `Watchdog`) must keep arriving.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchdogSpec {
    /// Label equalities an event must carry to count (e.g. `alertname: Watchdog`).
    pub matchers: BTreeMap<String, String>,
    pub interval: TimeDelta,
    pub grace: TimeDelta,
}

impl WatchdogSpec {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// The heartbeat name under which matching events are recorded.
    pub fn heartbeat_name(watcher_id: &str) -> String {
        format!("watchdog:{watcher_id}")
    }
}

/// Rouse's own liveness, pinged to an outside dead man's switch.
#[derive(Debug, Clone, PartialEq)]
pub struct PulseSpec {
    pub url: String,
    /// GET or POST.
    pub method: String,
}
