//! A rotation: participants taking turns in fixed wall-clock shifts, optionally limited to
//! local active windows. Lookup is arithmetic from the anchor, never a walk over shifts;
//! a `RotationCursor` answers runs of nearby instants by reusing its neighbours' work.

use super::time::{resolve_local, ActiveWindow, LocalTime, ShiftLength};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
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
        self.handoff_from(self.anchor()?, k)
    }

    fn handoff_from(&self, anchor: NaiveDateTime, k: i64) -> Option<DateTime<Utc>> {
        let wall = TimeDelta::try_seconds(k.checked_mul(self.shift.wall_seconds())?)?;
        resolve_local(self.zone, anchor.checked_add_signed(wall)?)
    }

    /// The shift containing `t`: its index and `[start, end)`. Negative indices are the
    /// (empty) stretches before the rotation starts. A handoff swallowed by a DST gap can make
    /// a shift zero-length; such a shift never contains any instant and is skipped.
    pub fn shift_at(&self, t: DateTime<Utc>) -> Option<(i64, DateTime<Utc>, DateTime<Utc>)> {
        self.shift_from_local(t, t.with_timezone(&self.zone).naive_local())
    }

    /// [`Rotation::shift_at`] for a caller that already knows `local`, the wall-clock reading
    /// of `t` in the rotation's zone.
    fn shift_from_local(
        &self,
        t: DateTime<Utc>,
        local: NaiveDateTime,
    ) -> Option<(i64, DateTime<Utc>, DateTime<Utc>)> {
        let anchor = self.anchor()?;
        let step = self.shift.wall_seconds();
        let mut k = (local - anchor).num_seconds().div_euclid(step);
        // The estimate is off by at most one or two because resolution moves handoffs by
        // less than a shift; these loops only correct that.
        let mut start = self.handoff_from(anchor, k)?;
        while start > t {
            k -= 1;
            start = self.handoff_from(anchor, k)?;
        }
        let mut end = self.handoff_from(anchor, k + 1)?;
        while end <= t {
            k += 1;
            start = end;
            end = self.handoff_from(anchor, k + 1)?;
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
        let (k, start, end) = self.shift_at(t)?;
        let who = self.participant(k)?;
        let active = if self.active.is_empty() {
            None
        } else {
            Some(self.active_at(t)?)
        };
        Some(clip(who, start, end, active))
    }

    /// Who holds shift `k`; the outer None only for a participant count beyond i64.
    fn participant(&self, k: i64) -> Option<Option<&str>> {
        let len = i64::try_from(self.participants.len()).ok()?;
        Some(if k >= 0 && len > 0 {
            let i = usize::try_from(k.rem_euclid(len)).ok()?;
            self.participants.get(i).map(String::as_str)
        } else {
            None
        })
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

/// Narrows a shift to the active-window stretch around the same instant.
fn clip(
    mut who: Option<&str>,
    mut start: DateTime<Utc>,
    mut end: DateTime<Utc>,
    active: Option<(bool, DateTime<Utc>, DateTime<Utc>)>,
) -> Segment<'_> {
    if let Some((on, a, b)) = active {
        start = start.max(a);
        end = end.min(b);
        if !on {
            who = None;
        }
    }
    Segment { who, start, end }
}

/// A segment needs the local days d-1..=d+2 around its own date d; one spare slot lets a
/// walk move a day in either direction without evicting a day it still needs.
const CACHED_DAYS: usize = 5;
/// Handoffs a cursor steps over before it falls back to locating the shift from the anchor.
const MAX_STEPS: usize = 4;

/// One window instance as resolved instants; None when it resolves to an empty stretch,
/// which the uncached path skips too.
type Instance = Option<(DateTime<Utc>, DateTime<Utc>)>;

/// The instance of one window starting on one day.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Local start and end; None when the window does not start on this weekday.
    local: Option<(NaiveDateTime, NaiveDateTime)>,
    /// Resolved on first use.
    resolved: Option<Instance>,
}

impl Window {
    const EMPTY: Window = Window {
        local: None,
        resolved: None,
    };
}

#[derive(Debug, Clone, Copy)]
struct Day {
    date: Option<NaiveDate>,
    midnight: Option<DateTime<Utc>>,
    /// Whether this day's windows (local parts) are filled in.
    windows: bool,
}

impl Day {
    const EMPTY: Day = Day {
        date: None,
        midnight: None,
        windows: false,
    };
}

/// Answers [`Rotation::segment_at`] for a run of nearby instants, such as a schedule's walk
/// over a window or the merge of neighbouring pieces around a lookup.
///
/// Local-to-UTC resolution dominates the cost of a segment, and neighbouring instants share
/// most of it: the same handoffs, the same local midnights, the same window instances. The
/// cursor resolves each of those at most once, only when it can change the answer, and steps
/// between neighbouring handoffs instead of recomputing from the anchor. Every value it
/// uses is produced by the same functions as the uncached path, and anything unusual (the
/// calendar's edges, many windows) falls back to that path, so the answer is always identical
/// to [`Rotation::segment_at`].
#[derive(Debug, Clone)]
pub(crate) struct RotationCursor<'a> {
    rotation: &'a Rotation,
    anchor: Option<NaiveDateTime>,
    /// The last shift found: index and `[start, end)`.
    shift: Option<(i64, DateTime<Utc>, DateTime<Utc>)>,
    days: [Day; CACHED_DAYS],
    /// Window instances of the cached days: window `i` of day slot `d` is at `d * n + i`, for
    /// `n` windows. Allocated only for rotations that have windows.
    windows: Vec<Window>,
}

/// What the window edges seen so far say about the stretch around `t`.
struct Edges {
    t: DateTime<Utc>,
    on: bool,
    /// Latest edge at or before `t`, and whether one of those edges is read on or after the
    /// local midnight starting `t`'s date (then it is no earlier than that midnight).
    lo: Option<DateTime<Utc>>,
    lo_after_midnight: bool,
    day_start: NaiveDateTime,
    /// Earliest edge after `t`, and the earliest local reading among edges after `t`.
    hi: Option<DateTime<Utc>>,
    hi_local: Option<NaiveDateTime>,
}

impl Edges {
    fn add(&mut self, instance: Instance, (ls, le): (NaiveDateTime, NaiveDateTime)) {
        let Some((s, e)) = instance else { return };
        let t = self.t;
        self.on |= s <= t && t < e;
        for (edge, local) in [(s, ls), (e, le)] {
            if edge <= t {
                self.lo = Some(self.lo.map_or(edge, |lo| lo.max(edge)));
                self.lo_after_midnight |= local >= self.day_start;
            } else {
                self.hi = Some(self.hi.map_or(edge, |hi| hi.min(edge)));
                self.hi_local = Some(self.hi_local.map_or(local, |h| h.min(local)));
            }
        }
    }
}

impl<'a> RotationCursor<'a> {
    pub(crate) fn new(rotation: &'a Rotation) -> Self {
        RotationCursor {
            rotation,
            anchor: rotation.anchor(),
            shift: None,
            days: [Day::EMPTY; CACHED_DAYS],
            windows: if rotation.active.is_empty() {
                Vec::new()
            } else {
                vec![Window::EMPTY; CACHED_DAYS * rotation.active.len()]
            },
        }
    }

    /// Same answer as [`Rotation::segment_at`].
    pub(crate) fn segment_at(&mut self, t: DateTime<Utc>) -> Segment<'a> {
        match self.try_segment_at(t) {
            Some(segment) => segment,
            None => self.rotation.segment_at(t),
        }
    }

    fn try_segment_at(&mut self, t: DateTime<Utc>) -> Option<Segment<'a>> {
        let rotation = self.rotation;
        let windowed = !rotation.active.is_empty();
        // The wall-clock reading of `t` costs a zone lookup; read it once, and only when the
        // windows or a fresh shift search need it.
        let local = windowed.then(|| t.with_timezone(&rotation.zone).naive_local());
        let (k, start, end) = self.shift_at(t, local)?;
        let who = rotation.participant(k)?;
        let active = match local {
            None => None,
            Some(local) => Some(self.active_at(t, local.date())?),
        };
        Some(clip(who, start, end, active))
    }

    /// Same answer as [`Rotation::shift_at`]: handoffs never decrease with their index, so the
    /// shift containing `t` is the last one starting at or before `t`, however it is found.
    fn shift_at(
        &mut self,
        t: DateTime<Utc>,
        local: Option<NaiveDateTime>,
    ) -> Option<(i64, DateTime<Utc>, DateTime<Utc>)> {
        if let (Some(anchor), Some((mut k, mut start, mut end))) = (self.anchor, self.shift) {
            for _ in 0..MAX_STEPS {
                if t < start {
                    k = k.checked_sub(1)?;
                    end = start;
                    start = self.rotation.handoff_from(anchor, k)?;
                } else if t >= end {
                    k = k.checked_add(1)?;
                    start = end;
                    end = self.rotation.handoff_from(anchor, k.checked_add(1)?)?;
                } else {
                    self.shift = Some((k, start, end));
                    return self.shift;
                }
            }
        }
        let local = local.unwrap_or_else(|| t.with_timezone(&self.rotation.zone).naive_local());
        self.shift = Some(self.rotation.shift_from_local(t, local)?);
        self.shift
    }

    /// Same answer as [`Rotation::active_at`] for `t` read on local date `d`, resolving only
    /// what can change it.
    ///
    /// Resolution never reorders local times (a later wall-clock time never resolves to an
    /// earlier instant), which is what lets an edge stand in for the ones it dominates:
    /// - an instance of d-1 that ends by d 00:00 ends by the midnight that bounds the answer
    ///   anyway, so it cannot move the bounds or contain `t`;
    /// - an edge after `t` read no later than d+1's first window start dominates all of d+1;
    /// - an edge read from d 00:00 on at or before `t` dominates d's midnight, and an edge
    ///   read by d+2 00:00 after `t` dominates that midnight.
    fn active_at(
        &mut self,
        t: DateTime<Utc>,
        d: NaiveDate,
    ) -> Option<(bool, DateTime<Utc>, DateTime<Utc>)> {
        let (prev, next) = (d.pred_opt()?, d.succ_opt()?);
        let after = next.succ_opt()?;
        // Same readings as `LocalTime::MIDNIGHT.on`, without the zero-minute date arithmetic.
        let day_start = d.and_time(NaiveTime::MIN);
        let after_start = after.and_time(NaiveTime::MIN);
        let mut edges = Edges {
            t,
            on: false,
            lo: None,
            lo_after_midnight: false,
            day_start,
            hi: None,
            hi_local: None,
        };
        // Four consecutive days never share a slot, so these stay valid below.
        let (prev, today, next) = (self.filled(prev)?, self.filled(d)?, self.filled(next)?);
        for i in 0..self.rotation.active.len() {
            if let Some(local) = self.cached(prev, i)?.local {
                if local.1 > day_start {
                    edges.add(self.resolved(prev, i)?, local);
                }
            }
            if let Some(local) = self.cached(today, i)?.local {
                edges.add(self.resolved(today, i)?, local);
            }
        }
        let mut first_next: Option<NaiveDateTime> = None;
        for i in 0..self.rotation.active.len() {
            if let Some((ls, _)) = self.cached(next, i)?.local {
                first_next = Some(first_next.map_or(ls, |f| f.min(ls)));
            }
        }
        if let Some(first) = first_next {
            if edges.hi_local.is_none_or(|h| h > first) {
                for i in 0..self.rotation.active.len() {
                    if let Some(local) = self.cached(next, i)?.local {
                        edges.add(self.resolved(next, i)?, local);
                    }
                }
            }
        }
        let lo = match edges.lo {
            Some(lo) if edges.lo_after_midnight => lo,
            lo => {
                let midnight = self.midnight(d)?;
                lo.map_or(midnight, |lo| lo.max(midnight))
            }
        };
        let hi = match (edges.hi, edges.hi_local) {
            (Some(hi), Some(local)) if local <= after_start => hi,
            (hi, _) => {
                let midnight = self.midnight(after)?;
                hi.map_or(midnight, |hi| hi.min(midnight))
            }
        };
        Some((edges.on, lo, hi))
    }

    /// The cache slot holding `date`, emptied first if it held another day.
    fn day(&mut self, date: NaiveDate) -> usize {
        let slot = date
            .num_days_from_ce()
            .rem_euclid(CACHED_DAYS as i32)
            .try_into()
            .unwrap_or(0);
        let day = &mut self.days[slot];
        if day.date != Some(date) {
            *day = Day {
                date: Some(date),
                ..Day::EMPTY
            };
        }
        slot
    }

    fn midnight(&mut self, date: NaiveDate) -> Option<DateTime<Utc>> {
        let zone = self.rotation.zone;
        let slot = self.day(date);
        let day = &mut self.days[slot];
        if day.midnight.is_none() {
            day.midnight = resolve_local(zone, date.and_time(NaiveTime::MIN));
        }
        day.midnight
    }

    /// The cache slot holding `date`, with its windows' local parts filled in.
    fn filled(&mut self, date: NaiveDate) -> Option<usize> {
        let rotation = self.rotation;
        let n = rotation.active.len();
        let slot = self.day(date);
        if !self.days[slot].windows {
            let cached = self.windows.get_mut(slot * n..(slot + 1) * n)?;
            for (cached, w) in cached.iter_mut().zip(&rotation.active) {
                *cached = Window {
                    local: w.on(date),
                    resolved: None,
                };
            }
            self.days[slot].windows = true;
        }
        Some(slot)
    }

    /// Window `i` of the day in `slot` (see [`RotationCursor::filled`]).
    fn cached(&self, slot: usize, i: usize) -> Option<Window> {
        let n = self.rotation.active.len();
        self.windows.get(slot * n + i).copied()
    }

    /// Window `i` of the day in `slot`, resolved as the uncached path does.
    fn resolved(&mut self, slot: usize, i: usize) -> Option<Instance> {
        let zone = self.rotation.zone;
        let n = self.rotation.active.len();
        let window = self.windows.get_mut(slot * n + i)?;
        if let Some(instance) = window.resolved {
            return Some(instance);
        }
        let (s, e) = window.local?;
        let (s, e) = (resolve_local(zone, s)?, resolve_local(zone, e)?);
        let instance = (s < e).then_some((s, e));
        window.resolved = Some(instance);
        Some(instance)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::oncall::time::Weekdays;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// Zones with half-hour DST (Lord Howe), a 45-minute offset (Chatham), a fall-back at
    /// midnight (Santiago), no DST (Kolkata) and the usual northern ones.
    pub(in crate::oncall) const ZONES: &[Tz] = &[
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::America::New_York,
        chrono_tz::Europe::London,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Pacific::Chatham,
        chrono_tz::America::Santiago,
        chrono_tz::Europe::Berlin,
        chrono_tz::UTC,
    ];

    fn quarter_hour(q: u16) -> LocalTime {
        LocalTime::from_hm(q / 4, (q % 4) * 15).unwrap_or(LocalTime::MIDNIGHT)
    }

    fn window_strategy() -> impl Strategy<Value = ActiveWindow> {
        (1u8..128, 0u16..96, 1u16..97).prop_map(|(mask, f, t)| {
            let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            let days: Vec<&str> = (0..7)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| names[i])
                .collect();
            ActiveWindow {
                days: Weekdays::parse(&days.join(",")).unwrap_or(Weekdays::ALL),
                from: quarter_hour(f),
                to: if t == 96 {
                    LocalTime::END_OF_DAY
                } else {
                    quarter_hour(t)
                },
            }
        })
    }

    pub(in crate::oncall) fn rotation_strategy() -> impl Strategy<Value = Rotation> {
        (
            0..ZONES.len(),
            1usize..=5,
            prop_oneof![
                (1u32..=48).prop_map(ShiftLength::Hours),
                (1u32..=14).prop_map(ShiftLength::Days),
                (1u32..=2).prop_map(ShiftLength::Weeks),
            ],
            // Weighted towards 00:00-03:45, where DST changes happen.
            prop_oneof![0u16..16, 0u16..96],
            0i64..1000,
            // Several windows per day, overlapping or not.
            proptest::collection::vec(window_strategy(), 0..=5),
        )
            .prop_map(|(z, n, shift, q, start_days, active)| Rotation {
                id: "r".into(),
                name: None,
                zone: ZONES[z],
                participants: (0..n).map(|i| format!("p{i}")).collect(),
                shift,
                handoff: quarter_hour(q),
                start: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default()
                    + TimeDelta::days(start_days),
                active: active.into_iter().filter(|w| w.from != w.to).collect(),
            })
    }

    /// An instant between 2024 and 2028, at a random second, so that walks start before
    /// and after rotation starts and on both sides of DST changes.
    pub(in crate::oncall) fn instant_strategy() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..5 * 365 * 86_400).prop_map(|s| {
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(s)
        })
    }

    #[derive(Debug, Clone)]
    enum Move {
        /// To the end of the current segment, as a schedule's walk does.
        Forward,
        /// To just before the current segment, as the merge of earlier pieces does.
        Back,
        /// A little way, within the cached days and shifts or just beyond them.
        Near(i64),
        /// Far away, so the cursor must find the shift from the anchor again.
        Far(i64),
    }

    fn moves() -> impl Strategy<Value = Vec<Move>> {
        proptest::collection::vec(
            prop_oneof![
                4 => Just(Move::Forward),
                2 => Just(Move::Back),
                1 => (-3 * 86_400i64..3 * 86_400).prop_map(Move::Near),
                1 => (-400 * 86_400i64..400 * 86_400).prop_map(Move::Far),
            ],
            1..80,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn cursor_answers_exactly_like_segment_at(r in rotation_strategy(), start in instant_strategy(), moves in moves()) {
            let mut cursor = RotationCursor::new(&r);
            let mut t = start;
            for m in moves {
                let got = cursor.segment_at(t);
                let want = r.segment_at(t);
                prop_assert_eq!(got, want, "at {} in {} after {:?}", t, r.zone, m);
                t = match m {
                    Move::Forward => want.end,
                    Move::Back => want.start - TimeDelta::nanoseconds(1),
                    Move::Near(s) | Move::Far(s) => t + TimeDelta::seconds(s),
                };
            }
        }

        #[test]
        fn cursor_walks_a_window_exactly(r in rotation_strategy(), start in instant_strategy(), days in 1i64..120) {
            let mut cursor = RotationCursor::new(&r);
            let until = start + TimeDelta::days(days);
            let mut t = start;
            while t < until {
                let want = r.segment_at(t);
                prop_assert_eq!(cursor.segment_at(t), want, "at {} in {}", t, r.zone);
                prop_assert!(want.end > t);
                t = want.end;
            }
        }
    }

    #[test]
    fn cursor_agrees_on_a_spring_forward_handoff() {
        // New York skips 02:00-03:00 on 2026-03-08; the 02:30 handoff happens at 03:00 EDT.
        let r = Rotation {
            id: "r".into(),
            name: None,
            zone: chrono_tz::America::New_York,
            participants: vec!["a".into(), "b".into()],
            shift: ShiftLength::Days(1),
            handoff: LocalTime::from_hm(2, 30).unwrap_or(LocalTime::MIDNIGHT),
            start: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default(),
            active: vec![],
        };
        let mut cursor = RotationCursor::new(&r);
        let mut t = Utc.with_ymd_and_hms(2026, 3, 6, 12, 0, 0).unwrap();
        let gap_end = Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap();
        let mut ends = Vec::new();
        for _ in 0..4 {
            let s = cursor.segment_at(t);
            assert_eq!(s, r.segment_at(t));
            ends.push(s.end);
            t = s.end;
        }
        assert!(
            ends.contains(&gap_end),
            "handoff at the end of the gap: {ends:?}"
        );
    }
}
