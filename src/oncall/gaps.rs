//! Coverage gaps: stretches in which a schedule that pages people has nobody on call.

use crate::catalog::Catalog;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub schedule_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Gaps within `[from, until)` (clipped to it) of every schedule that an escalation policy
/// targets directly, ordered by schedule id then time.
pub fn coverage_gaps(catalog: &Catalog, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Gap> {
    let mut gaps = Vec::new();
    for id in catalog.paged_schedule_ids() {
        let Some(schedule) = catalog.schedule(&id) else {
            continue;
        };
        for s in schedule.shifts(from, until) {
            if s.person_id.is_none() {
                gaps.push(Gap {
                    schedule_id: id.clone(),
                    start: s.start.max(from),
                    end: s.end.min(until),
                });
            }
        }
    }
    gaps
}
