//! Duplicates in the timeline, coalesced: a run of duplicates of one alert
//! within one UTC minute is one timeline entry, `deduplicated ×37
//! (12:00:05–12:00:59)`, not 37 rows.
//!
//! The run being counted lives on the alert row itself (its count, first and
//! last instant, who sent the first), written by the same durable commit as
//! the duplicate, so a duplicate dirties no page but its alert's. The run
//! becomes a timeline row only when something needs it to be one: a
//! duplicate in a later minute starts a new run, or another entry
//! (acknowledged, resolved) is written after it. Until then a timeline read
//! shows it as its last entry. Pure: no I/O, no clock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{TimelineEntry, TimelineKind};

/// Duplicates of one alert within one UTC minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateRun {
    /// At least 1.
    pub count: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// Who sent the run's first duplicate (`alertmanager:prometheus`).
    pub actor: String,
}

impl DuplicateRun {
    pub fn start(at: DateTime<Utc>, actor: &str) -> Self {
        Self {
            count: 1,
            first_at: at,
            last_at: at,
            actor: actor.to_owned(),
        }
    }

    /// Counts one more duplicate into `run`. Returns the run it closes when
    /// the duplicate falls in another minute than the run's first: that one
    /// must become a timeline row before `run` is overwritten.
    pub fn record(
        run: &mut Option<DuplicateRun>,
        at: DateTime<Utc>,
        actor: &str,
    ) -> Option<DuplicateRun> {
        match run {
            Some(r) if minute(r.first_at) == minute(at) => {
                r.count = r.count.saturating_add(1);
                // Clocks of concurrent requests are not ordered exactly.
                r.first_at = r.first_at.min(at);
                r.last_at = r.last_at.max(at);
                None
            }
            _ => run.replace(DuplicateRun::start(at, actor)),
        }
    }

    /// `deduplicated ×37 (12:00:05–12:00:59)`, instants in UTC.
    pub fn message(&self) -> String {
        let first = self.first_at.format("%H:%M:%S");
        if self.count == 1 || self.first_at == self.last_at {
            format!("deduplicated ×{} ({first})", self.count)
        } else {
            let last = self.last_at.format("%H:%M:%S");
            format!("deduplicated ×{} ({first}–{last})", self.count)
        }
    }

    pub fn data(&self, dedup_key: &str) -> serde_json::Value {
        serde_json::json!({
            "dedup_key": dedup_key,
            "count": self.count,
            "first_at": self.first_at,
            "last_at": self.last_at,
        })
    }

    /// The run as a timeline entry that has no row yet (`id` 0).
    pub fn pending_entry(&self, alert_id: i64, dedup_key: &str) -> TimelineEntry {
        TimelineEntry {
            id: 0,
            alert_id,
            at: self.first_at,
            kind: TimelineKind::Deduplicated,
            actor: self.actor.clone(),
            message: self.message(),
            data: Some(self.data(dedup_key)),
        }
    }
}

fn minute(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, s).unwrap()
    }

    #[test]
    fn one_minute_is_one_run() {
        let mut run = None;
        assert_eq!(DuplicateRun::record(&mut run, at(12, 0, 5), "a"), None);
        for s in 6..=59 {
            assert_eq!(DuplicateRun::record(&mut run, at(12, 0, s), "b"), None);
        }
        let run = run.unwrap();
        assert_eq!(run.count, 55);
        assert_eq!(run.actor, "a", "the first duplicate's sender");
        assert_eq!(run.message(), "deduplicated ×55 (12:00:05–12:00:59)");
    }

    #[test]
    fn the_next_minute_closes_the_run() {
        let mut run = Some(DuplicateRun::start(at(12, 0, 59), "a"));
        let closed = DuplicateRun::record(&mut run, at(12, 1, 0), "b").unwrap();
        assert_eq!(closed.message(), "deduplicated ×1 (12:00:59)");
        assert_eq!(run, Some(DuplicateRun::start(at(12, 1, 0), "b")));
    }

    #[test]
    fn an_earlier_instant_in_the_same_minute_widens_the_run() {
        let mut run = Some(DuplicateRun::start(at(12, 0, 30), "a"));
        let earlier = at(12, 0, 30) - TimeDelta::milliseconds(1500);
        assert_eq!(DuplicateRun::record(&mut run, earlier, "a"), None);
        let run = run.unwrap();
        assert_eq!((run.first_at, run.last_at), (earlier, at(12, 0, 30)));
        assert_eq!(run.message(), "deduplicated ×2 (12:00:28–12:00:30)");
    }

    #[test]
    fn a_pending_run_is_an_entry_without_a_row() {
        let run = DuplicateRun::start(at(23, 59, 59), "native:x");
        let entry = run.pending_entry(7, "disk");
        assert_eq!(entry.id, 0);
        assert_eq!(entry.kind, TimelineKind::Deduplicated);
        assert_eq!(entry.data.unwrap()["count"], 1);
    }
}
