//! Schedules: layers of rotations plus overrides, and the two questions Rouse asks of
//! them — who is on call at an instant, and the effective shifts over a window.

use super::rotation::Rotation;
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

impl Schedule {
    /// Who is on call at `t`, or None when nobody is.
    pub fn on_call_at(&self, t: DateTime<Utc>) -> Option<OnCall> {
        let p = self.piece_at(t);
        let who = p.who?;
        let source = self.source(p.src?);
        Some(OnCall {
            person_id: who.to_string(),
            shift_start: self.extend_back(&p, t),
            shift_end: self.extend_forward(&p, t),
            source,
        })
    }

    /// The effective shifts covering `[from, until)`: consecutive, non-overlapping, the first
    /// starting at or before `from` and the last ending at or after `until`. Consecutive
    /// pieces with the same person and source are merged; gaps have `person_id == None`.
    pub fn shifts(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Shift> {
        let mut pieces: Vec<Piece<'_>> = Vec::new();
        if from >= until {
            return Vec::new();
        }
        let mut t = from;
        loop {
            let p = self.piece_at(t);
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
            first.start = self.extend_back(first, from);
        }
        if let Some(last) = pieces.last_mut() {
            last.end = self.extend_forward(last, until);
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

    fn extend_back(&self, p: &Piece<'_>, around: DateTime<Utc>) -> DateTime<Utc> {
        let limit = sub_days(around, MERGE_HORIZON_DAYS);
        let mut start = p.start;
        for _ in 0..MERGE_MAX_PIECES {
            if start <= limit {
                break;
            }
            let Some(before) = start.checked_sub_signed(TimeDelta::nanoseconds(1)) else {
                break;
            };
            let prev = self.piece_at(before);
            if !prev.same_answer(p) {
                break;
            }
            start = prev.start;
        }
        start
    }

    fn extend_forward(&self, p: &Piece<'_>, around: DateTime<Utc>) -> DateTime<Utc> {
        let limit = add_days(around, MERGE_HORIZON_DAYS);
        let mut end = p.end;
        for _ in 0..MERGE_MAX_PIECES {
            if end >= limit {
                break;
            }
            let next = self.piece_at(end);
            if !next.same_answer(p) {
                break;
            }
            end = next.end;
        }
        end
    }

    /// Layers first (later layers win where they have someone; a layer with nobody falls
    /// through), then overrides on top (the one listed last wins).
    fn piece_at(&self, t: DateTime<Utc>) -> Piece<'_> {
        let mut piece = Piece {
            who: None,
            src: None,
            start: DateTime::<Utc>::MIN_UTC,
            end: DateTime::<Utc>::MAX_UTC,
        };
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let seg = layer.rotation.segment_at(t);
            // Every layer consulted bounds the piece: a higher layer that is empty now may
            // take over at its next boundary.
            piece.start = piece.start.max(seg.start);
            piece.end = piece.end.min(seg.end);
            if seg.who.is_some() {
                piece.who = seg.who;
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
