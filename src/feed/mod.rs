//! iCalendar feeds of on-call shifts, for Google Calendar, Apple Calendar and
//! anything else that subscribes to an `.ics` URL.
//!
//! Pure: a catalog, what the feed is of (a schedule or a person) and the
//! current instant in, RFC 5545 text out. The shifts are the ones
//! `rouse oncall --from/--until` prints ([`Schedule::shifts`]), in UTC, so a
//! DST change in the rotation's zone moves nothing that was not meant to move.
//! The transport (tokens, routes) is in `http/feeds.rs`.

use chrono::{DateTime, TimeDelta, Utc};
use icalendar::{Calendar, Component, EventLike, Property};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::oncall::{Schedule, Shift, Source};

/// How far back a feed reaches: last week's shifts stay visible.
pub const PAST: TimeDelta = TimeDelta::days(7);
/// How far ahead a feed reaches: about two months of planning.
pub const AHEAD: TimeDelta = TimeDelta::days(60);
/// How often subscribers are asked to fetch again. Google Calendar refreshes
/// on its own schedule (hours) whatever this says; Apple honours it.
pub const REFRESH: TimeDelta = TimeDelta::hours(1);

/// What a feed shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Every shift of one schedule, gaps included (as "nobody on call").
    Schedule(String),
    /// One person's shifts across every schedule.
    Person(String),
}

impl Subject {
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Schedule(_) => "schedule",
            Subject::Person(_) => "person",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Subject::Schedule(id) | Subject::Person(id) => id,
        }
    }

    /// From a stored (kind, id) pair.
    pub fn parse(kind: &str, id: &str) -> Option<Subject> {
        match kind {
            "schedule" => Some(Subject::Schedule(id.to_owned())),
            "person" => Some(Subject::Person(id.to_owned())),
            _ => None,
        }
    }

    /// Whether the catalog has it.
    pub fn exists(&self, catalog: &Catalog) -> bool {
        match self {
            Subject::Schedule(id) => catalog.schedule(id).is_some(),
            Subject::Person(id) => catalog.person(id).is_some(),
        }
    }
}

/// One event of a feed, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedShift {
    pub uid: String,
    pub summary: String,
    pub description: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The shifts of `subject` from `now - PAST` to `now + AHEAD`, or None when
/// the catalog no longer has it.
pub fn shifts(catalog: &Catalog, subject: &Subject, now: DateTime<Utc>) -> Option<Vec<FeedShift>> {
    let (from, until) = (now - PAST, now + AHEAD);
    let mut out = Vec::new();
    match subject {
        Subject::Schedule(id) => {
            let schedule = catalog.schedule(id)?;
            for shift in schedule.shifts(from, until) {
                out.push(feed_shift(catalog, schedule, &shift));
            }
        }
        Subject::Person(id) => {
            catalog.person(id)?;
            for schedule in catalog.schedules() {
                for shift in schedule.shifts(from, until) {
                    if shift.person_id.as_deref() == Some(id.as_str()) {
                        out.push(feed_shift(catalog, schedule, &shift));
                    }
                }
            }
            out.sort_by(|a, b| (a.start, &a.uid).cmp(&(b.start, &b.uid)));
        }
    }
    Some(out)
}

fn feed_shift(catalog: &Catalog, schedule: &Schedule, shift: &Shift) -> FeedShift {
    let schedule_name = schedule.name.as_deref().unwrap_or(&schedule.id);
    let person = shift
        .person_id
        .as_deref()
        .map(|id| (id, catalog.person(id)));
    let summary = match person {
        Some((_, Some(p))) => format!("On call: {} ({schedule_name})", p.name),
        Some((id, None)) => format!("On call: {id} ({schedule_name})"),
        None => format!("Nobody on call ({schedule_name})"),
    };
    let via = match &shift.source {
        Some(Source::Layer { layer, rotation }) => {
            format!("rotation {rotation} (layer {layer})")
        }
        Some(Source::Override { index }) => format!("override {index}"),
        None => "a coverage gap: nobody is paged".to_owned(),
    };
    let local = |zone: chrono_tz::Tz| {
        format!(
            "{} to {} {}",
            shift.start.with_timezone(&zone).format("%a %Y-%m-%d %H:%M"),
            shift.end.with_timezone(&zone).format("%a %Y-%m-%d %H:%M"),
            zone.name()
        )
    };
    let mut description = format!("Schedule {} via {via}.\n", schedule.id);
    description.push_str(&format!("Schedule time: {}.", local(schedule.zone)));
    if let Some((_, Some(p))) = person {
        if p.zone != schedule.zone {
            description.push_str(&format!("\n{}'s time: {}.", p.name, local(p.zone)));
        }
    }
    FeedShift {
        uid: uid(&schedule.id, shift),
        summary,
        description,
        start: shift.start,
        end: shift.end,
    }
}

/// Stable per shift: the same schedule, person, source and start give the
/// same UID on every fetch (a shift's start is its merged start, not the
/// window's edge), so calendars update events instead of duplicating them.
/// An edit that moves a shift makes a new one, and the old disappears.
fn uid(schedule: &str, shift: &Shift) -> String {
    let mut h = Sha256::new();
    for part in [
        schedule,
        shift.person_id.as_deref().unwrap_or(""),
        &serde_json::to_string(&shift.source).unwrap_or_default(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(shift.start.timestamp().to_be_bytes());
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}@rouse")
}

/// The calendar's display name.
pub fn title(catalog: &Catalog, subject: &Subject) -> String {
    match subject {
        Subject::Schedule(id) => {
            let name = catalog
                .schedule(id)
                .and_then(|s| s.name.as_deref())
                .unwrap_or(id);
            format!("On call: {name}")
        }
        Subject::Person(id) => {
            let name = catalog.person(id).map_or(id.as_str(), |p| p.name.as_str());
            format!("On call: {name}")
        }
    }
}

/// The feed as `text/calendar`: times in UTC (`…Z`), every event with a
/// stable UID and a DTSTAMP of `now`.
pub fn render(title: &str, shifts: &[FeedShift], now: DateTime<Utc>) -> String {
    let mut calendar = Calendar::empty();
    calendar
        .append_property(Property::new("VERSION", "2.0"))
        .append_property(Property::new("PRODID", "-//Rouse//On-call feed//EN"))
        .append_property(Property::new("CALSCALE", "GREGORIAN"))
        .append_property(Property::new("METHOD", "PUBLISH"))
        .name(title)
        .ttl(&REFRESH);
    for s in shifts {
        calendar.push(
            icalendar::Event::new()
                .uid(&s.uid)
                .timestamp(now)
                .starts(s.start)
                .ends(s.end)
                .summary(&s.summary)
                .description(&s.description)
                // Shifts are not appointments: they must not show the
                // subscriber as busy all week.
                .add_property("TRANSP", "TRANSPARENT")
                .done(),
        );
    }
    calendar.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_shift(uid: &str) -> FeedShift {
        FeedShift {
            uid: uid.to_owned(),
            summary: "On call: Alice, Bob; and \"friends\" (Primary)".to_owned(),
            description: "line one\nline two".to_owned(),
            start: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            end: DateTime::from_timestamp(1_800_086_400, 0).unwrap(),
        }
    }

    #[test]
    fn times_are_utc_and_text_is_escaped() {
        let now = DateTime::from_timestamp(1_799_000_000, 0).unwrap();
        let text = render("On call: Primary", &[feed_shift("a@rouse")], now);
        assert!(text.starts_with("BEGIN:VCALENDAR\r\n"), "{text}");
        assert!(text.contains("DTSTART:20270115T080000Z\r\n"), "{text}");
        assert!(text.contains("DTEND:20270116T080000Z\r\n"), "{text}");
        assert!(text.contains("X-WR-CALNAME:On call: Primary\r\n"), "{text}");
        assert!(
            text.contains("SUMMARY:On call: Alice\\, Bob\\; and"),
            "{text}"
        );
        assert!(text.contains("DESCRIPTION:line one\\nline two"), "{text}");
        assert!(text.contains("UID:a@rouse\r\n"), "{text}");
        assert!(text.contains("REFRESH-INTERVAL;VALUE=DURATION:"), "{text}");
        // Lines are folded at 75 octets (RFC 5545 §3.1).
        assert!(text.split("\r\n").all(|l| l.len() <= 75), "{text}");
    }

    #[test]
    fn uids_depend_on_the_shift_not_the_window() {
        let shift = |start: i64, who: &str| Shift {
            person_id: Some(who.to_owned()),
            start: DateTime::from_timestamp(start, 0).unwrap(),
            end: DateTime::from_timestamp(start + 3600, 0).unwrap(),
            source: None,
        };
        assert_eq!(uid("s", &shift(10, "a")), uid("s", &shift(10, "a")));
        assert_ne!(uid("s", &shift(10, "a")), uid("s", &shift(11, "a")));
        assert_ne!(uid("s", &shift(10, "a")), uid("s", &shift(10, "b")));
        assert_ne!(uid("s", &shift(10, "a")), uid("t", &shift(10, "a")));
    }
}
