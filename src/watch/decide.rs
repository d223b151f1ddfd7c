//! What a run's result means for alerts: which findings open, refresh,
//! change or resolve an alert, given the watcher's remembered state.
//!
//! Pure: the runner feeds it the stored [`WatchState`] and a
//! [`CheckResult`], stores the new state and sends the [`Emit`]s as events.
//! Hysteresis lives here so a blip neither pages nor clears a real problem:
//! a transient finding must persist `failures_before_alert` runs, any alert
//! resolves only after `successes_before_resolve` runs without its finding,
//! and a run that could not check at all changes nothing but its own
//! `cannot_check` count.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::spec::WatcherSpec;
use super::{CheckResult, Finding, Level};

/// The code of the finding a run that could not check at all produces.
pub const CANNOT_CHECK: &str = "cannot_check";

/// What a watcher remembers between runs (stored as JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    /// When the runner first saw this watcher: heartbeats count their first
    /// deadline from here.
    pub configured_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    /// The last run that reached a verdict with no finding.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Runs in a row that could not check at all.
    pub consecutive_failures: u32,
    /// `ok`, `finding`, `failed` (could not check) or `waiting`.
    pub last_result: String,
    /// The last verdict's status line, or the failure's reason.
    pub last_status: String,
    pub last_duration_ms: u64,
    /// Per finding code seen recently.
    #[serde(default)]
    pub findings: BTreeMap<String, FindingState>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingState {
    /// Runs in a row that showed it.
    pub seen: u32,
    /// Runs in a row (that reached a verdict) that did not.
    pub clear: u32,
    /// The level of the alert Rouse has open for it, if any.
    pub open: Option<Level>,
}

/// What to send for one finding; the runner makes it an event with the
/// dedup key `watch:<watcher id>:<code>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Emit {
    /// Open (or refresh) the finding's alert at this level.
    Trigger(Finding),
    /// Resolve the finding's alert; `note` says why (what the run found).
    Resolve { code: String, note: String },
}

impl Emit {
    pub fn code(&self) -> &str {
        match self {
            Emit::Trigger(f) => &f.code,
            Emit::Resolve { code, .. } => code,
        }
    }
}

/// The dedup key of a watcher's finding.
pub fn dedup_key(watcher_id: &str, code: &str) -> String {
    format!("watch:{watcher_id}:{code}")
}

/// Applies one run's result. `target` names what is watched (a domain, a
/// `host:port`, a URL) for the cannot-check summary.
pub fn apply(
    mut state: WatchState,
    spec: &WatcherSpec,
    target: &str,
    result: &CheckResult,
    now: DateTime<Utc>,
) -> (WatchState, Vec<Emit>) {
    state.last_run_at = Some(now);
    state.configured_at.get_or_insert(now);
    let (present, status): (Vec<Finding>, String) = match result {
        Ok(verdict) => {
            state.consecutive_failures = 0;
            state.last_result = if verdict.findings.is_empty() {
                state.last_success_at = Some(now);
                "ok".into()
            } else {
                "finding".into()
            };
            state.last_status = verdict.status.clone();
            (verdict.findings.clone(), verdict.status.clone())
        }
        Err(failure) => {
            state.consecutive_failures += 1;
            state.last_result = "failed".into();
            state.last_status = failure.reason.clone();
            let finding = cannot_check(spec, target, &failure.reason, state.consecutive_failures);
            (vec![finding], String::new())
        }
    };
    let checked = result.is_ok();
    let mut emits = Vec::new();
    for finding in present {
        let entry = state.findings.entry(finding.code.clone()).or_default();
        entry.seen = entry.seen.saturating_add(1);
        entry.clear = 0;
        let needed = if finding.transient {
            spec.failures_before_alert.max(1)
        } else {
            1
        };
        // An alert still open (waiting out successes_before_resolve) is
        // refreshed at once when its finding comes back.
        if entry.seen < needed && entry.open.is_none() {
            continue;
        }
        match entry.open {
            // A changed level is a new alert under the same key: the old one
            // resolves saying why, so the new one pages per policy at its
            // own severity and urgency instead of hiding in an acknowledged
            // warning.
            Some(level) if level != finding.level => emits.push(Emit::Resolve {
                code: finding.code.clone(),
                note: format!("now {}: {}", finding.level.as_str(), finding.summary),
            }),
            _ => {}
        }
        entry.open = Some(finding.level);
        emits.push(Emit::Trigger(finding));
    }
    let shown: Vec<String> = match result {
        Ok(v) => v.findings.iter().map(|f| f.code.clone()).collect(),
        Err(_) => vec![CANNOT_CHECK.to_owned()],
    };
    let mut forget = Vec::new();
    for (code, entry) in state.findings.iter_mut() {
        if shown.contains(code) {
            continue;
        }
        // A run that could not check says nothing about other findings.
        if !checked && code != CANNOT_CHECK {
            continue;
        }
        entry.seen = 0;
        entry.clear = entry.clear.saturating_add(1);
        if entry.open.is_some() && entry.clear >= spec.successes_before_resolve.max(1) {
            entry.open = None;
            let note = if code == CANNOT_CHECK {
                format!("checking works again: {status}")
            } else {
                status.clone()
            };
            emits.push(Emit::Resolve {
                code: code.clone(),
                note,
            });
        }
        if entry.open.is_none() {
            forget.push(code.clone());
        }
    }
    for code in forget {
        state.findings.remove(&code);
    }
    (state, emits)
}

fn cannot_check(spec: &WatcherSpec, target: &str, reason: &str, runs: u32) -> Finding {
    let kind = spec.kind.name();
    Finding {
        code: CANNOT_CHECK.to_owned(),
        level: Level::Warning,
        transient: true,
        summary: format!(
            "{target}: cannot check the {kind} ({runs} failed run{} in a row): {reason}",
            if runs == 1 { "" } else { "s" }
        ),
        details: serde_json::json!({ "reason": reason, "failed_runs": runs }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::schedule::When;
    use crate::watch::spec::{HeartbeatSpec, WatchKind};
    use crate::watch::{CheckFailure, Verdict};
    use chrono::TimeDelta;

    fn spec(failures: u32, successes: u32) -> WatcherSpec {
        WatcherSpec {
            id: "w".into(),
            service: "s".into(),
            when: When::every(TimeDelta::minutes(1)).unwrap(),
            kind: WatchKind::Heartbeat(HeartbeatSpec {
                name: "n".into(),
                interval: TimeDelta::minutes(5),
                grace: TimeDelta::minutes(1),
            }),
            failures_before_alert: failures,
            successes_before_resolve: successes,
            timeout: std::time::Duration::from_secs(5),
            place: String::new(),
        }
    }

    fn finding(code: &str, level: Level, transient: bool) -> Finding {
        Finding {
            code: code.into(),
            level,
            transient,
            summary: format!("{code} {}", level.as_str()),
            details: serde_json::Value::Null,
        }
    }

    fn verdict(findings: Vec<Finding>) -> CheckResult {
        Ok(Verdict {
            findings,
            status: "fine".into(),
            facts: serde_json::Value::Null,
        })
    }

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::minutes(min)
    }

    fn run(
        state: WatchState,
        spec: &WatcherSpec,
        results: &[CheckResult],
    ) -> (WatchState, Vec<Vec<Emit>>) {
        let mut state = state;
        let mut all = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let (s, e) = apply(state, spec, "x", r, t(i as i64));
            state = s;
            all.push(e);
        }
        (state, all)
    }

    #[test]
    fn a_fact_opens_at_once_and_resolves_when_gone() {
        let s = spec(3, 1);
        let hold = finding("status", Level::Critical, false);
        let (state, emits) = run(
            WatchState::default(),
            &s,
            &[verdict(vec![hold.clone()]), verdict(vec![])],
        );
        assert_eq!(emits[0], vec![Emit::Trigger(hold)]);
        assert_eq!(
            emits[1],
            vec![Emit::Resolve {
                code: "status".into(),
                note: "fine".into()
            }]
        );
        assert!(state.findings.is_empty());
        assert_eq!(state.last_result, "ok");
    }

    #[test]
    fn a_transient_finding_waits_for_failures_before_alert() {
        let s = spec(3, 2);
        let down = finding("http", Level::Critical, true);
        let (_, emits) = run(
            WatchState::default(),
            &s,
            &[
                verdict(vec![down.clone()]),
                verdict(vec![down.clone()]),
                verdict(vec![down.clone()]),
                verdict(vec![]),
                verdict(vec![down.clone()]),
                verdict(vec![]),
                verdict(vec![]),
            ],
        );
        assert!(emits[0].is_empty() && emits[1].is_empty());
        assert_eq!(emits[2], vec![Emit::Trigger(down.clone())]);
        // One good run is not enough to resolve (successes_before_resolve 2),
        // and the finding coming back refreshes the same alert.
        assert!(emits[3].is_empty());
        assert_eq!(emits[4], vec![Emit::Trigger(down)]);
        assert!(emits[5].is_empty());
        assert!(matches!(&emits[6][..], [Emit::Resolve { code, .. }] if code == "http"));
    }

    #[test]
    fn a_blip_shorter_than_the_threshold_never_pages() {
        let s = spec(2, 1);
        let down = finding("http", Level::Critical, true);
        let (state, emits) = run(
            WatchState::default(),
            &s,
            &[
                verdict(vec![down.clone()]),
                verdict(vec![]),
                verdict(vec![down]),
            ],
        );
        assert!(emits.iter().all(Vec::is_empty), "{emits:?}");
        assert_eq!(state.findings["http"].seen, 1);
    }

    #[test]
    fn a_level_change_resolves_the_old_alert_and_opens_the_new_level() {
        let s = spec(1, 1);
        let warn = finding("expiry", Level::Warning, false);
        let crit = finding("expiry", Level::Critical, false);
        let (_, emits) = run(
            WatchState::default(),
            &s,
            &[verdict(vec![warn.clone()]), verdict(vec![crit.clone()])],
        );
        assert_eq!(emits[0], vec![Emit::Trigger(warn)]);
        assert!(
            matches!(&emits[1][0], Emit::Resolve { code, note } if code == "expiry" && note.starts_with("now critical"))
        );
        assert_eq!(emits[1][1], Emit::Trigger(crit));
    }

    #[test]
    fn failed_runs_open_cannot_check_only_after_the_threshold_and_keep_other_findings() {
        let s = spec(3, 1);
        let soon = finding("expiry", Level::Warning, false);
        let fail = || Err(CheckFailure::new("RDAP answered 500"));
        let (state, emits) = run(
            WatchState::default(),
            &s,
            &[
                verdict(vec![soon.clone()]),
                fail(),
                fail(),
                fail(),
                verdict(vec![soon]),
            ],
        );
        assert!(emits[1].is_empty() && emits[2].is_empty());
        assert!(
            matches!(&emits[3][..], [Emit::Trigger(f)] if f.code == CANNOT_CHECK && f.level == Level::Warning && f.summary.contains("3 failed runs"))
        );
        // The expiry alert stayed open through the failures (no resolve),
        // and the good run resolves only the cannot-check alert.
        assert!(emits[1..4]
            .iter()
            .flatten()
            .all(|e| e.code() != "expiry" || matches!(e, Emit::Trigger(_))));
        assert!(
            matches!(&emits[4][..], [Emit::Trigger(f), Emit::Resolve { code, .. }] if f.code == "expiry" && code == CANNOT_CHECK)
        );
        assert_eq!(state.consecutive_failures, 0);
        assert_eq!(state.findings["expiry"].open, Some(Level::Warning));
    }

    #[test]
    fn state_survives_a_round_trip_through_json() {
        let s = spec(1, 1);
        let (state, _) = run(
            WatchState::default(),
            &s,
            &[verdict(vec![finding("status", Level::Critical, false)])],
        );
        let back: WatchState =
            serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
        assert_eq!(back, state);
        // Restarted with that state, the same finding refreshes, it does not re-open.
        let (_, emits) = apply(
            back,
            &s,
            "x",
            &verdict(vec![finding("status", Level::Critical, false)]),
            t(10),
        );
        assert_eq!(emits.len(), 1);
        assert!(matches!(&emits[0], Emit::Trigger(_)));
    }
}
