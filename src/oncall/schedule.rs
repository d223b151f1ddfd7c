//! Schedules: layers of rotations plus overrides, and the two questions Rouse asks of
//! them — who is on call at an instant, and the effective shifts over a window.

use super::rotation::{Rotation, RotationCursor, Segment};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::sync::Arc;

/// How far (and over how many pieces) a reported shift is merged with identical neighbours.
/// Bounds the work for degenerate rotations such as a single person in 1-hour shifts.
pub const MERGE_HORIZON_DAYS: i64 = 90;
pub const MERGE_MAX_PIECES: usize = 512;

/// One layer: a rotation. Layers listed later take precedence where they have someone.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub rotation: Arc<Rotation>,
}

/// Someone standing in during `[from, until)`: for one person's shifts (`for_person`) or for
/// the whole schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub who: String,
    pub for_person: Option<String>,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub id: String,
    pub name: Option<String>,
    /// Used to display shifts and gaps; rotations compute handoffs in their own zones.
    pub zone: Tz,
    pub layers: Vec<Layer>,
    pub overrides: Vec<Override>,
}

/// What put someone on call (or left a gap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// `layer` is the 0-based position in the schedule's `layers` list.
    Layer { layer: usize, rotation: String },
    /// `index` is the 0-based position in the schedule's `overrides` list.
    Override { index: usize },
}

/// The answer to "who is on call at t".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnCall {
    pub person_id: String,
    /// The merged effective interval containing t (see [`MERGE_HORIZON_DAYS`]).
    pub shift_start: DateTime<Utc>,
    pub shift_end: DateTime<Utc>,
    pub source: Source,
}

/// One effective shift; `person_id == None` is a coverage gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    pub person_id: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub source: Option<Source>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceRef {
    Layer(usize),
    Override(usize),
}

/// A stretch over which the schedule's answer (person and source) is constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece<'a> {
    who: Option<&'a str>,
    src: Option<SourceRef>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Piece<'_> {
    fn same_answer(&self, other: &Piece<'_>) -> bool {
        self.who == other.who && self.src == other.src
    }
}

/// Where a schedule gets its layers' segments from.
trait Segments<'a> {
    fn segment_at(&mut self, layer: usize, t: DateTime<Utc>) -> Segment<'a>;
}

/// One cursor per layer, so that the many neighbouring instants a single question visits
/// (a walk over a window, the merge around a lookup) share their handoffs and window edges.
struct Walk<'a> {
    cursors: Vec<RotationCursor<'a>>,
}

impl<'a> Walk<'a> {
    fn new(schedule: &'a Schedule) -> Self {
        Walk {
            cursors: schedule
                .layers
                .iter()
                .map(|l| RotationCursor::new(&l.rotation))
                .collect(),
        }
    }
}

impl<'a> Segments<'a> for Walk<'a> {
    fn segment_at(&mut self, layer: usize, t: DateTime<Utc>) -> Segment<'a> {
        match self.cursors.get_mut(layer) {
            Some(cursor) => cursor.segment_at(t),
            // Walk::new makes one cursor per layer; an empty answer keeps this total.
            None => Segment {
                who: None,
                start: t,
                end: add_days(t, 1),
            },
        }
    }
}

impl Schedule {
    /// Who is on call at `t`, or None when nobody is.
    pub fn on_call_at(&self, t: DateTime<Utc>) -> Option<OnCall> {
        self.on_call_with(&mut Walk::new(self), t)
    }

    fn on_call_with<'a>(&'a self, seg: &mut impl Segments<'a>, t: DateTime<Utc>) -> Option<OnCall> {
        let p = self.piece_at(seg, t);
        let who = p.who?;
        let source = self.source(p.src?);
        Some(OnCall {
            person_id: who.to_string(),
            shift_start: self.extend_back(seg, &p, t),
            shift_end: self.extend_forward(seg, &p, t),
            source,
        })
    }

    /// The effective shifts covering `[from, until)`: consecutive, non-overlapping, the first
    /// starting at or before `from` and the last ending at or after `until`. Consecutive
    /// pieces with the same person and source are merged; gaps have `person_id == None`.
    pub fn shifts(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Shift> {
        self.shifts_with(&mut Walk::new(self), from, until)
    }

    fn shifts_with<'a>(
        &'a self,
        seg: &mut impl Segments<'a>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<Shift> {
        let mut pieces: Vec<Piece<'_>> = Vec::new();
        if from >= until {
            return Vec::new();
        }
        let mut t = from;
        loop {
            let p = self.piece_at(seg, t);
            match pieces.last_mut() {
                Some(last) if last.same_answer(&p) => last.end = p.end,
                _ => pieces.push(p),
            }
            if p.end >= until {
                break;
            }
            t = p.end;
        }
        if let Some(first) = pieces.first_mut() {
            first.start = self.extend_back(seg, first, from);
        }
        if let Some(last) = pieces.last_mut() {
            last.end = self.extend_forward(seg, last, until);
        }
        pieces
            .into_iter()
            .map(|p| Shift {
                person_id: p.who.map(str::to_string),
                start: p.start,
                end: p.end,
                source: p.src.map(|s| self.source(s)),
            })
            .collect()
    }

    fn source(&self, s: SourceRef) -> Source {
        match s {
            SourceRef::Layer(i) => Source::Layer {
                layer: i,
                rotation: self
                    .layers
                    .get(i)
                    .map(|l| l.rotation.id.clone())
                    .unwrap_or_default(),
            },
            SourceRef::Override(index) => Source::Override { index },
        }
    }

    fn extend_back<'a>(
        &'a self,
        seg: &mut impl Segments<'a>,
        p: &Piece<'_>,
        around: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let limit = sub_days(around, MERGE_HORIZON_DAYS);
        let mut start = p.start;
        for _ in 0..MERGE_MAX_PIECES {
            if start <= limit {
                break;
            }
            let Some(before) = start.checked_sub_signed(TimeDelta::nanoseconds(1)) else {
                break;
            };
            let prev = self.piece_at(seg, before);
            if !prev.same_answer(p) {
                break;
            }
            start = prev.start;
        }
        start
    }

    fn extend_forward<'a>(
        &'a self,
        seg: &mut impl Segments<'a>,
        p: &Piece<'_>,
        around: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let limit = add_days(around, MERGE_HORIZON_DAYS);
        let mut end = p.end;
        for _ in 0..MERGE_MAX_PIECES {
            if end >= limit {
                break;
            }
            let next = self.piece_at(seg, end);
            if !next.same_answer(p) {
                break;
            }
            end = next.end;
        }
        end
    }

    /// Layers first (later layers win where they have someone; a layer with nobody falls
    /// through), then overrides on top (the one listed last wins).
    fn piece_at<'a>(&'a self, seg: &mut impl Segments<'a>, t: DateTime<Utc>) -> Piece<'a> {
        let mut piece = Piece {
            who: None,
            src: None,
            start: DateTime::<Utc>::MIN_UTC,
            end: DateTime::<Utc>::MAX_UTC,
        };
        for i in (0..self.layers.len()).rev() {
            let layer = seg.segment_at(i, t);
            // Every layer consulted bounds the piece: a higher layer that is empty now may
            // take over at its next boundary.
            piece.start = piece.start.max(layer.start);
            piece.end = piece.end.min(layer.end);
            if layer.who.is_some() {
                piece.who = layer.who;
                piece.src = Some(SourceRef::Layer(i));
                break;
            }
        }
        let underlying = piece.who;
        let mut winner = None;
        for (i, o) in self.overrides.iter().enumerate() {
            if o.from <= t {
                piece.start = piece.start.max(o.from);
            } else {
                piece.end = piece.end.min(o.from);
            }
            if o.until <= t {
                piece.start = piece.start.max(o.until);
            } else {
                piece.end = piece.end.min(o.until);
            }
            let covers = o.from <= t && t < o.until;
            let applies = match &o.for_person {
                None => true,
                Some(p) => underlying == Some(p.as_str()),
            };
            if covers && applies {
                winner = Some((i, o.who.as_str()));
            }
        }
        if let Some((i, who)) = winner {
            piece.who = Some(who);
            piece.src = Some(SourceRef::Override(i));
        }
        if piece.start == DateTime::<Utc>::MIN_UTC {
            // No layers and no override edge before t: the answer is constant back to the
            // horizon; a finite start keeps reports and arithmetic sane.
            piece.start = sub_days(t, MERGE_HORIZON_DAYS);
        }
        if piece.end == DateTime::<Utc>::MAX_UTC {
            piece.end = add_days(t, MERGE_HORIZON_DAYS);
        }
        piece
    }
}

fn sub_days(t: DateTime<Utc>, n: i64) -> DateTime<Utc> {
    t.checked_sub_signed(TimeDelta::days(n))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn add_days(t: DateTime<Utc>, n: i64) -> DateTime<Utc> {
    t.checked_add_signed(TimeDelta::days(n))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::rotation::tests::{instant_strategy, rotation_strategy};
    use proptest::prelude::*;

    /// The straightforward computation: every segment from scratch.
    struct Uncached<'a>(&'a Schedule);

    impl<'a> Segments<'a> for Uncached<'a> {
        fn segment_at(&mut self, layer: usize, t: DateTime<Utc>) -> Segment<'a> {
            self.0.layers[layer].rotation.segment_at(t)
        }
    }

    fn schedule_strategy() -> impl Strategy<Value = Schedule> {
        (
            proptest::collection::vec(rotation_strategy(), 1..=3),
            proptest::collection::vec(
                (
                    0usize..4,
                    proptest::option::of(0usize..5),
                    instant_strategy(),
                    1i64..(10 * 24),
                ),
                0..=2,
            ),
        )
            .prop_map(|(rotations, overrides)| Schedule {
                id: "s".into(),
                name: None,
                zone: chrono_tz::UTC,
                layers: rotations
                    .into_iter()
                    .map(|r| Layer {
                        rotation: Arc::new(r),
                    })
                    .collect(),
                overrides: overrides
                    .into_iter()
                    .map(|(who, person, from, hours)| Override {
                        who: format!("o{who}"),
                        for_person: person.map(|p| format!("p{p}")),
                        from,
                        until: from + TimeDelta::hours(hours),
                    })
                    .collect(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn cached_shifts_equal_uncached(s in schedule_strategy(), from in instant_strategy(), hours in 1i64..(60 * 24)) {
            let until = from + TimeDelta::hours(hours);
            prop_assert_eq!(s.shifts(from, until), s.shifts_with(&mut Uncached(&s), from, until));
        }

        #[test]
        fn cached_lookup_equals_uncached(s in schedule_strategy(), ts in proptest::collection::vec(instant_strategy(), 1..10)) {
            for t in ts {
                prop_assert_eq!(s.on_call_at(t), s.on_call_with(&mut Uncached(&s), t), "at {}", t);
            }
        }
    }
}
