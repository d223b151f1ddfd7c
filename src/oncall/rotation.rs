//! A rotation: participants taking turns in fixed wall-clock shifts, optionally limited to
//! local active windows. Lookup is arithmetic from the anchor, never a walk over shifts.

use super::time::{resolve_local, ActiveWindow, LocalTime, ShiftLength};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;

/// A rotation as configured: shift `k` (k >= 0) begins at the local wall-clock time
/// `start + handoff + k * shift` in `zone` and belongs to `participants[k % len]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub id: String,
    pub name: Option<String>,
    pub zone: Tz,
    pub participants: Vec<String>,
    pub shift: ShiftLength,
    pub handoff: LocalTime,
    pub start: NaiveDate,
    /// Empty means "always active".
    pub active: Vec<ActiveWindow>,
}

/// A stretch of time in which a rotation's answer does not change. Not necessarily
/// maximal: neighbouring segments may carry the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub who: Option<&'a str>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Rotation {
    fn anchor(&self) -> Option<NaiveDateTime> {
        self.handoff.on(self.start)
    }

    /// The instant of handoff `k` (handoff 0 starts the first shift).
    pub fn handoff_at(&self, k: i64) -> Option<DateTime<Utc>> {
        let wall = TimeDelta::try_seconds(k.checked_mul(self.shift.wall_seconds())?)?;
        resolve_local(self.zone, self.anchor()?.checked_add_signed(wall)?)
    }

    /// The shift containing `t`: its index and `[start, end)`. Negative indices are the
    /// (empty) stretches before the rotation starts. A handoff swallowed by a DST gap can make
    /// a shift zero-length; such a shift never contains any instant and is skipped.
    pub fn shift_at(&self, t: DateTime<Utc>) -> Option<(i64, DateTime<Utc>, DateTime<Utc>)> {
        let local = t.with_timezone(&self.zone).naive_local();
        let step = self.shift.wall_seconds();
        let mut k = (local - self.anchor()?).num_seconds().div_euclid(step);
        // The estimate is off by at most one or two because resolution moves handoffs by
        // less than a shift; these loops only correct that.
        let mut start = self.handoff_at(k)?;
        while start > t {
            k -= 1;
            start = self.handoff_at(k)?;
        }
        let mut end = self.handoff_at(k + 1)?;
        while end <= t {
            k += 1;
            start = end;
            end = self.handoff_at(k + 1)?;
        }
        Some((k, start, end))
    }

    /// Who is on call at `t` and the surrounding stretch over which that stays true.
    pub fn segment_at(&self, t: DateTime<Utc>) -> Segment<'_> {
        self.try_segment_at(t).unwrap_or(Segment {
            // Only reachable at the edges of chrono's calendar range.
            who: None,
            start: t,
            end: t
                .checked_add_signed(TimeDelta::days(1))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        })
    }

    fn try_segment_at(&self, t: DateTime<Utc>) -> Option<Segment<'_>> {
        let (k, mut start, mut end) = self.shift_at(t)?;
        let len = i64::try_from(self.participants.len()).ok()?;
        let mut who = if k >= 0 && len > 0 {
            let i = usize::try_from(k.rem_euclid(len)).ok()?;
            self.participants.get(i).map(String::as_str)
        } else {
            None
        };
        if !self.active.is_empty() {
            let (on, a, b) = self.active_at(t)?;
            start = start.max(a);
            end = end.min(b);
            if !on {
                who = None;
            }
        }
        Some(Segment { who, start, end })
    }

    /// Whether `t` is inside an active window, and a stretch around `t` with the same answer.
    fn active_at(&self, t: DateTime<Utc>) -> Option<(bool, DateTime<Utc>, DateTime<Utc>)> {
        let d = t.with_timezone(&self.zone).date_naive();
        let day = |n: i64| d.checked_add_signed(TimeDelta::days(n));
        let midnight = |n: i64| resolve_local(self.zone, LocalTime::MIDNIGHT.on(day(n)?)?);
        // A window instance starting on day x lies within [x 00:00, x+2 00:00), so the
        // instances of days d-1..=d+1 decide everything in [d 00:00, d+2 00:00).
        let (mut lo, mut hi) = (midnight(0)?, midnight(2)?);
        let mut on = false;
        for n in -1..=1 {
            let x = day(n)?;
            for w in &self.active {
                let Some((s, e)) = w.on(x) else { continue };
                let (s, e) = (resolve_local(self.zone, s)?, resolve_local(self.zone, e)?);
                if s >= e {
                    continue;
                }
                on |= s <= t && t < e;
                for edge in [s, e] {
                    if edge <= t {
                        lo = lo.max(edge);
                    } else {
                        hi = hi.min(edge);
                    }
                }
            }
        }
        Some((on, lo, hi))
    }
}
