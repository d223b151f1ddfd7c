//! `rouse check DIR`: validate a rotations folder and warn about coverage gaps ahead;
//! with the database's test pages, also about people going on call whose
//! phones have not proven they wake them.

use crate::catalog::load_dir;
use crate::escalation::test_page::{self, TestPageResult};
use crate::oncall::coverage_gaps;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use std::io::Write;
use std::path::Path;

/// How far ahead `check` looks for coverage gaps.
pub const GAP_HORIZON_DAYS: i64 = 28;

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(crate) fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn local(t: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    t.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// Prints every error as `file:line:column: message` and returns false if there were any.
/// Coverage gaps are printed as `warning:` lines and do not make the check fail.
pub fn check(
    dir: &Path,
    now: DateTime<Utc>,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    check_with(dir, now, env, None, out)
}

/// [`check`], and with `test_pages` (from `--database-url`) a `warning:` at
/// each person on call in the next 14 days without an acknowledged test page
/// on one of their high-urgency methods in the last 90 days.
pub fn check_with(
    dir: &Path,
    now: DateTime<Utc>,
    env: &dyn Fn(&str) -> Option<String>,
    test_pages: Option<&[TestPageResult]>,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let catalog = match load_dir(dir, env) {
        Ok(c) => c,
        Err(diags) => {
            for d in &diags.0 {
                writeln!(out, "{d}")?;
            }
            writeln!(
                out,
                "error: {}",
                plural(diags.0.len(), "problem", "problems")
            )?;
            return Ok(false);
        }
    };
    let until = now + TimeDelta::days(GAP_HORIZON_DAYS);
    let gaps = coverage_gaps(&catalog, now, until);
    for g in &gaps {
        let zone = catalog
            .schedule(&g.schedule_id)
            .map_or(chrono_tz::UTC, |s| s.zone);
        writeln!(
            out,
            "warning: schedule `{}` has nobody on call from {} to {} ({} to {})",
            g.schedule_id,
            utc(g.start),
            utc(g.end),
            local(g.start, zone),
            local(g.end, zone),
        )?;
    }
    if let Some(results) = test_pages {
        for (person, method) in test_page::unproven(&catalog, results, now) {
            let place = catalog
                .person_place(&person)
                .map(|p| format!("{p}: "))
                .unwrap_or_default();
            writeln!(
                out,
                "warning: {place}person `{person}` is on call in the next {} days without an acknowledged {} test page in the last {} days; run `rouse test-page {person} --via {}`",
                test_page::ON_CALL_HORIZON.num_days(),
                method.as_str(),
                test_page::PROOF_MAX_AGE.num_days(),
                method.as_str(),
            )?;
        }
    }
    let gap_text = if gaps.is_empty() {
        "no coverage gaps".to_string()
    } else {
        plural(gaps.len(), "coverage gap", "coverage gaps")
    };
    writeln!(
        out,
        "ok: {}, {}, {}, {}, {}; {} in the next {} days",
        plural(catalog.people().count(), "person", "people"),
        plural(catalog.rotations().count(), "rotation", "rotations"),
        plural(catalog.schedules().count(), "schedule", "schedules"),
        plural(catalog.policies().count(), "policy", "policies"),
        plural(catalog.services().count(), "service", "services"),
        gap_text,
        GAP_HORIZON_DAYS,
    )?;
    Ok(true)
}
