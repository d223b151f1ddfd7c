//! Maintenance windows: planned time in which a service's alerts are still
//! accepted, deduplicated and stored, but nobody is paged. When the window
//! ends, alerts still open escalate from their first step.
//!
//! A window is one-off (`from`–`until`) or recurring (a cron expression in a
//! zone, each occurrence lasting `duration`; DST handled as for watchers).

use chrono::{DateTime, TimeDelta, Utc};

use crate::watch::schedule::When;

#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// The services it silences (at least one).
    pub services: Vec<String>,
    pub reason: String,
    pub when: WindowTimes,
    /// Where it was defined, for messages.
    pub place: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WindowTimes {
    Once {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    Recurring {
        starts: When,
        duration: TimeDelta,
    },
}

impl MaintenanceWindow {
    /// When the occurrence covering `t` ends, if one does (`[start, end)`).
    pub fn covering(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            WindowTimes::Once { from, until } => (*from <= t && t < *until).then_some(*until),
            WindowTimes::Recurring { starts, duration } => {
                // The earliest start that can still cover `t` is one
                // `duration` back; walk the starts from there (a window
                // longer than its period overlaps the next one: keep the
                // latest end).
                let mut start = starts.next_after(t - *duration - TimeDelta::seconds(1));
                let mut end = None;
                for _ in 0..1000 {
                    if start > t {
                        break;
                    }
                    if t < start + *duration {
                        end = Some(start + *duration);
                    }
                    start = starts.next_after(start);
                }
                end
            }
        }
    }

    /// Occurrences that overlap `[from, until)`, at most `limit`, for display.
    pub fn occurrences(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        match &self.when {
            WindowTimes::Once { from: f, until: u } => {
                if *f < until && *u > from {
                    vec![(*f, *u)]
                } else {
                    Vec::new()
                }
            }
            WindowTimes::Recurring { starts, duration } => {
                let mut out = Vec::new();
                let mut start = starts.next_after(from - *duration - TimeDelta::seconds(1));
                while start < until && out.len() < limit {
                    if start + *duration > from {
                        out.push((start, start + *duration));
                    }
                    start = starts.next_after(start);
                }
                out
            }
        }
    }
}

/// The latest end among the windows covering `service` at `t`, with the
/// reason of the window that ends last.
pub fn in_maintenance<'a>(
    windows: &'a [MaintenanceWindow],
    service: &str,
    t: DateTime<Utc>,
) -> Option<(DateTime<Utc>, &'a str)> {
    windows
        .iter()
        .filter(|w| w.services.iter().any(|s| s == service))
        .filter_map(|w| w.covering(t).map(|end| (end, w.reason.as_str())))
        .max_by_key(|(end, _)| *end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sunday_2am_berlin() -> MaintenanceWindow {
        MaintenanceWindow {
            services: vec!["db".into()],
            reason: "weekly patching".into(),
            when: WindowTimes::Recurring {
                starts: When::cron("0 2 * * sun", chrono_tz::Europe::Berlin).unwrap(),
                duration: TimeDelta::hours(2),
            },
            place: String::new(),
        }
    }

    #[test]
    fn a_recurring_window_follows_local_time_across_dst() {
        let w = sunday_2am_berlin();
        // Winter: 02:00 CET is 01:00 UTC.
        assert_eq!(
            w.covering(utc("2026-03-22T01:30:00Z")),
            Some(utc("2026-03-22T03:00:00Z"))
        );
        assert_eq!(w.covering(utc("2026-03-22T03:00:00Z")), None);
        // 2026-03-29: 02:00 does not exist in Berlin; the window starts when
        // the gap ends (03:00 CEST = 01:00 UTC) and lasts two hours.
        assert_eq!(w.covering(utc("2026-03-29T00:59:00Z")), None);
        assert_eq!(
            w.covering(utc("2026-03-29T01:00:00Z")),
            Some(utc("2026-03-29T03:00:00Z"))
        );
        // Summer: 02:00 CEST is 00:00 UTC.
        assert_eq!(
            w.covering(utc("2026-04-05T00:00:00Z")),
            Some(utc("2026-04-05T02:00:00Z"))
        );
    }

    #[test]
    fn a_one_off_window_is_half_open_and_only_for_its_services() {
        let w = MaintenanceWindow {
            services: vec!["db".into(), "api".into()],
            reason: "migration".into(),
            when: WindowTimes::Once {
                from: utc("2026-12-24T22:00:00Z"),
                until: utc("2026-12-25T02:00:00Z"),
            },
            place: String::new(),
        };
        let all = [w];
        assert_eq!(
            in_maintenance(&all, "api", utc("2026-12-24T22:00:00Z")),
            Some((utc("2026-12-25T02:00:00Z"), "migration"))
        );
        assert_eq!(
            in_maintenance(&all, "api", utc("2026-12-25T02:00:00Z")),
            None
        );
        assert_eq!(
            in_maintenance(&all, "web", utc("2026-12-24T23:00:00Z")),
            None
        );
    }

    #[test]
    fn occurrences_list_the_windows_in_a_range() {
        let w = sunday_2am_berlin();
        let got = w.occurrences(utc("2026-03-20T00:00:00Z"), utc("2026-04-06T00:00:00Z"), 10);
        assert_eq!(
            got,
            vec![
                (utc("2026-03-22T01:00:00Z"), utc("2026-03-22T03:00:00Z")),
                (utc("2026-03-29T01:00:00Z"), utc("2026-03-29T03:00:00Z")),
                (utc("2026-04-05T00:00:00Z"), utc("2026-04-05T02:00:00Z")),
            ]
        );
    }
}
