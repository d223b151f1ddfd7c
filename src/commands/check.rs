//! `rouse check DIR`: validate a rotations folder and warn about coverage gaps ahead.

use crate::catalog::load_dir;
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
