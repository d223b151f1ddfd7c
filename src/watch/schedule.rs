//! When a watcher runs: every fixed interval, or on a cron expression read in
//! a named time zone.
//!
//! Cron is evaluated on the zone's local wall clock, so `0 7 * * *` in
//! Europe/Berlin is 07:00 there in winter and in summer. Around DST changes
//! the rule is the one cron daemons follow: a local time that does not exist
//! (skipped by a spring-forward gap) runs once at the first instant after
//! the gap; a local time that happens twice (fall-back overlap) runs once,
//! at its first occurrence.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone)]
pub enum When {
    Every(Duration),
    Cron {
        /// As written (5 fields, or 6 with seconds), for messages.
        expr: String,
        schedule: Box<cron::Schedule>,
        zone: Tz,
    },
}

impl PartialEq for When {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (When::Every(a), When::Every(b)) => a == b,
            (
                When::Cron {
                    expr: a, zone: za, ..
                },
                When::Cron {
                    expr: b, zone: zb, ..
                },
            ) => a == b && za == zb,
            _ => false,
        }
    }
}

/// The shortest interval accepted: a watcher that runs more often than this
/// is a load test of somebody else's server.
pub const MIN_EVERY: Duration = Duration::seconds(10);

impl When {
    /// Parses a standard 5-field cron expression (minute hour day month
    /// weekday) or a 6-field one with seconds first.
    pub fn cron(expr: &str, zone: Tz) -> Result<When, String> {
        let fields = expr.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {expr}"),
            6 => expr.to_owned(),
            _ => {
                return Err(format!(
                    "cron expression `{expr}` has {fields} fields; expected 5 (minute hour day month weekday)"
                ))
            }
        };
        let schedule = cron::Schedule::from_str(&full)
            .map_err(|e| format!("invalid cron expression `{expr}`: {e}"))?;
        // An expression that never fires (e.g. 30 February) would silently
        // disable the watcher.
        if schedule.upcoming(Utc).next().is_none() {
            return Err(format!("cron expression `{expr}` never fires"));
        }
        Ok(When::Cron {
            expr: expr.to_owned(),
            schedule: Box::new(schedule),
            zone,
        })
    }

    pub fn every(interval: Duration) -> Result<When, String> {
        if interval < MIN_EVERY {
            return Err(format!(
                "`every` must be at least {}s",
                MIN_EVERY.num_seconds()
            ));
        }
        Ok(When::Every(interval))
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            When::Every(interval) => after + *interval,
            When::Cron { schedule, zone, .. } => cron_next(schedule, *zone, after),
        }
    }

    /// The slot after `slot` that is still ahead of `now`: an interval
    /// keeps its phase (a daily check stays at the minute it first ran,
    /// however late one run started), and slots missed while nothing ran
    /// are skipped, not caught up one by one.
    pub fn next_slot(&self, slot: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            When::Every(interval) if *interval > Duration::zero() && slot <= now => {
                let behind = (now - slot).num_milliseconds();
                let step = interval.num_milliseconds().max(1);
                slot + Duration::milliseconds((behind / step + 1) * step)
            }
            _ => self.next_after(now.max(slot)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            When::Every(d) => format!(
                "every {}",
                humantime::format_duration(d.to_std().unwrap_or_default())
            ),
            When::Cron { expr, zone, .. } => format!("cron `{expr}` ({zone})"),
        }
    }
}

/// Walks the expression over naive local times and maps each to an instant
/// with the rule in the module comment.
fn cron_next(schedule: &cron::Schedule, zone: Tz, after: DateTime<Utc>) -> DateTime<Utc> {
    // Evaluate on the naive wall clock (as if the zone were UTC), starting a
    // little before `after`'s local time so a time pushed forward by a gap
    // is still found, then keep the first that maps past `after`.
    let local_after = after.with_timezone(&zone).naive_local();
    let start = Utc.from_utc_datetime(&(local_after - Duration::hours(3)));
    for naive in schedule.after(&start).take(10_000).map(|t| t.naive_utc()) {
        if let Some(instant) = to_instant(zone, naive) {
            if instant > after {
                return instant;
            }
        }
    }
    // Unreachable for an expression that fires at all; never stall.
    after + Duration::days(1)
}

fn to_instant(zone: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        // Fall back: the first of the two.
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        // Spring forward: the first instant after the gap, found by walking
        // forward a minute at a time (gaps are at most a few hours).
        // Spring forward: the first instant after the gap. Gaps start and
        // end on whole minutes, so walking a minute at a time lands on it.
        LocalResult::None => (1..=24 * 60).find_map(|m| {
            match zone.from_local_datetime(&(naive + Duration::minutes(m))) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    Some(t.with_timezone(&Utc))
                }
                LocalResult::None => None,
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_adds_the_interval() {
        let w = When::every(Duration::minutes(5)).unwrap();
        assert_eq!(
            w.next_after(utc("2026-01-01T00:00:00Z")),
            utc("2026-01-01T00:05:00Z")
        );
        assert!(When::every(Duration::seconds(1)).is_err());
    }

    #[test]
    fn an_interval_keeps_its_phase_and_skips_missed_slots() {
        let w = When::every(Duration::days(1)).unwrap();
        let slot = utc("2026-01-01T00:00:00Z");
        // A run that started late does not move the next slot.
        assert_eq!(
            w.next_slot(slot, utc("2026-01-01T00:09:30Z")),
            utc("2026-01-02T00:00:00Z")
        );
        // Three days down: the next slot is the next one ahead, not three behind.
        assert_eq!(
            w.next_slot(slot, utc("2026-01-04T05:00:00Z")),
            utc("2026-01-05T00:00:00Z")
        );
        // Exactly on a slot: the one after it.
        assert_eq!(
            w.next_slot(slot, utc("2026-01-02T00:00:00Z")),
            utc("2026-01-03T00:00:00Z")
        );
    }

    #[test]
    fn cron_runs_on_local_wall_time_in_winter_and_summer() {
        let w = When::cron("0 7 * * *", chrono_tz::Europe::Berlin).unwrap();
        assert_eq!(
            w.next_after(utc("2026-01-10T12:00:00Z")),
            utc("2026-01-11T06:00:00Z")
        );
        assert_eq!(
            w.next_after(utc("2026-07-10T12:00:00Z")),
            utc("2026-07-11T05:00:00Z")
        );
    }

    #[test]
    fn cron_time_in_a_spring_gap_runs_once_when_the_gap_ends() {
        // Berlin skips 02:00–03:00 on 2026-03-29; 02:30 runs at 03:00 CEST.
        let w = When::cron("30 2 * * *", chrono_tz::Europe::Berlin).unwrap();
        let first = w.next_after(utc("2026-03-28T12:00:00Z"));
        assert_eq!(first, utc("2026-03-29T01:00:00Z"));
        let second = w.next_after(first);
        assert_eq!(second, utc("2026-03-30T00:30:00Z"));
    }

    #[test]
    fn cron_time_in_a_fall_overlap_runs_once() {
        // New York repeats 01:00–02:00 on 2026-11-01; 01:30 runs at the first.
        let w = When::cron("30 1 * * *", chrono_tz::America::New_York).unwrap();
        let first = w.next_after(utc("2026-10-31T12:00:00Z"));
        assert_eq!(first, utc("2026-11-01T05:30:00Z"));
        let second = w.next_after(first);
        assert_eq!(second, utc("2026-11-02T06:30:00Z"));
    }

    #[test]
    fn hourly_cron_across_a_gap_does_not_repeat_or_stall() {
        let w = When::cron("0 * * * *", chrono_tz::Europe::Berlin).unwrap();
        let mut t = utc("2026-03-28T23:30:00Z");
        let mut runs = Vec::new();
        for _ in 0..4 {
            t = w.next_after(t);
            runs.push(t);
        }
        // 01:00, 03:00 (02:00 does not exist and is the gap's end), 04:00 local.
        assert_eq!(
            runs,
            vec![
                utc("2026-03-29T00:00:00Z"),
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-29T02:00:00Z"),
                utc("2026-03-29T03:00:00Z"),
            ]
        );
    }

    #[test]
    fn bad_cron_is_rejected_with_a_reason() {
        assert!(When::cron("0 7 * *", chrono_tz::UTC)
            .unwrap_err()
            .contains("4 fields"));
        assert!(When::cron("0 25 * * *", chrono_tz::UTC).is_err());
    }
}
