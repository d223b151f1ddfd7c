//! Hand-written DST edges, layer precedence, active windows and overrides.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rouse::oncall::{
    ActiveWindow, Layer, LocalTime, Override, Rotation, Schedule, ShiftLength, Source, Weekdays,
};
use std::sync::Arc;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn rot(
    id: &str,
    zone: Tz,
    people: &[&str],
    shift: ShiftLength,
    handoff: &str,
    start: &str,
) -> Rotation {
    Rotation {
        id: id.into(),
        name: None,
        zone,
        participants: people.iter().map(|p| p.to_string()).collect(),
        shift,
        handoff: LocalTime::parse(handoff, false).unwrap(),
        start: NaiveDate::parse_from_str(start, "%Y-%m-%d").unwrap(),
        active: vec![],
    }
}

fn sched(layers: Vec<Rotation>, overrides: Vec<Override>) -> Schedule {
    Schedule {
        id: "s".into(),
        name: None,
        zone: chrono_tz::UTC,
        layers: layers
            .into_iter()
            .map(|r| Layer {
                rotation: Arc::new(r),
            })
            .collect(),
        overrides,
    }
}

fn hours(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_minutes() as f64 / 60.0
}

#[test]
fn new_york_day_shifts_are_23_and_25_hours() {
    let r = rot(
        "r",
        chrono_tz::America::New_York,
        &["a", "b"],
        ShiftLength::Days(1),
        "09:00",
        "2026-03-01",
    );
    let (_, s, e) = r.shift_at(utc("2026-03-07T20:00:00Z")).unwrap();
    assert_eq!(
        (s, e),
        (utc("2026-03-07T14:00:00Z"), utc("2026-03-08T13:00:00Z"))
    );
    assert_eq!(hours(s, e), 23.0);
    let (_, s, e) = r.shift_at(utc("2026-10-31T20:00:00Z")).unwrap();
    assert_eq!(
        (s, e),
        (utc("2026-10-31T13:00:00Z"), utc("2026-11-01T14:00:00Z"))
    );
    assert_eq!(hours(s, e), 25.0);
}

#[test]
fn twelve_hour_shifts_are_11_and_13_hours_across_dst() {
    let r = rot(
        "r",
        chrono_tz::America::New_York,
        &["a", "b"],
        ShiftLength::Hours(12),
        "00:00",
        "2026-03-01",
    );
    // 00:00 -> 12:00 on spring-forward day is 11 hours; on fall-back day 13 hours.
    let (_, s, e) = r.shift_at(utc("2026-03-08T10:00:00Z")).unwrap();
    assert_eq!(hours(s, e), 11.0);
    let (_, s, e) = r.shift_at(utc("2026-11-01T10:00:00Z")).unwrap();
    assert_eq!(hours(s, e), 13.0);
    // Handoffs stay at 00:00 and 12:00 local.
    let (_, s, _) = r.shift_at(utc("2026-11-01T18:00:00Z")).unwrap();
    assert_eq!(s, utc("2026-11-01T17:00:00Z")); // 12:00 EST
}

#[test]
fn spring_gap_handoff_moves_to_first_valid_instant() {
    let r = rot(
        "r",
        chrono_tz::America::New_York,
        &["a", "b"],
        ShiftLength::Days(1),
        "02:30",
        "2026-03-01",
    );
    // 2026-03-08 02:30 does not exist; the handoff is at 03:00 EDT = 07:00Z.
    let (_, s, e) = r.shift_at(utc("2026-03-08T12:00:00Z")).unwrap();
    assert_eq!(s, utc("2026-03-08T07:00:00Z"));
    assert_eq!(e, utc("2026-03-09T06:30:00Z"));
    let (_, _, e) = r.shift_at(utc("2026-03-07T12:00:00Z")).unwrap();
    assert_eq!(e, utc("2026-03-08T07:00:00Z"));
}

#[test]
fn fall_back_handoff_happens_at_first_occurrence() {
    let r = rot(
        "r",
        chrono_tz::America::New_York,
        &["a", "b"],
        ShiftLength::Days(1),
        "01:30",
        "2026-10-01",
    );
    // 01:30 happens twice on 2026-11-01; the first is 01:30 EDT = 05:30Z.
    let (_, s, e) = r.shift_at(utc("2026-11-01T06:00:00Z")).unwrap();
    assert_eq!(s, utc("2026-11-01T05:30:00Z"));
    assert_eq!(e, utc("2026-11-02T06:30:00Z"));
    assert_eq!(hours(s, e), 25.0);
}

#[test]
fn london_day_shifts() {
    let r = rot(
        "r",
        chrono_tz::Europe::London,
        &["a"],
        ShiftLength::Days(1),
        "01:30",
        "2026-01-01",
    );
    // 2026-03-29 01:00 GMT -> 02:00 BST: 01:30 is in the gap, handoff at 01:00Z (02:00 BST).
    let (_, s, e) = r.shift_at(utc("2026-03-29T12:00:00Z")).unwrap();
    assert_eq!(s, utc("2026-03-29T01:00:00Z"));
    assert_eq!(e, utc("2026-03-30T00:30:00Z"));
    // 2026-10-25 02:00 BST -> 01:00 GMT: 01:30 is ambiguous, first is 00:30Z.
    let (_, s, e) = r.shift_at(utc("2026-10-25T12:00:00Z")).unwrap();
    assert_eq!(s, utc("2026-10-25T00:30:00Z"));
    assert_eq!(e, utc("2026-10-26T01:30:00Z"));
    assert_eq!(hours(s, e), 25.0);
}

#[test]
fn lord_howe_half_hour_dst() {
    // Lord Howe: +10:30 standard, +11:00 summer. 2026-04-05 02:00 -> 01:30; 2026-10-04 02:00 -> 02:30.
    let r = rot(
        "r",
        chrono_tz::Australia::Lord_Howe,
        &["a", "b"],
        ShiftLength::Days(1),
        "02:15",
        "2026-01-01",
    );
    let (_, s, e) = r.shift_at(utc("2026-10-04T06:00:00Z")).unwrap();
    // 02:15 does not exist on 2026-10-04; handoff at 02:30 +11 = 2026-10-03T15:30Z.
    assert_eq!(s, utc("2026-10-03T15:30:00Z"));
    assert_eq!(hours(s, e), 23.75);
    let r = rot(
        "r",
        chrono_tz::Australia::Lord_Howe,
        &["a", "b"],
        ShiftLength::Days(1),
        "01:45",
        "2026-01-01",
    );
    // 01:45 happens twice on 2026-04-05; first is 01:45 +11 = 2026-04-04T14:45Z.
    let (_, s, e) = r.shift_at(utc("2026-04-05T06:00:00Z")).unwrap();
    assert_eq!(s, utc("2026-04-04T14:45:00Z"));
    assert_eq!(hours(s, e), 24.5);
}

#[test]
fn tokyo_has_no_dst() {
    let r = rot(
        "r",
        chrono_tz::Asia::Tokyo,
        &["a", "b", "c"],
        ShiftLength::Days(1),
        "02:30",
        "2026-01-01",
    );
    for t in [
        "2026-03-08T12:00:00Z",
        "2026-03-29T12:00:00Z",
        "2026-11-01T12:00:00Z",
    ] {
        let (_, s, e) = r.shift_at(utc(t)).unwrap();
        assert_eq!(hours(s, e), 24.0);
    }
}

#[test]
fn weekly_rotation_order_and_before_start() {
    let r = rot(
        "r",
        chrono_tz::Europe::Berlin,
        &["a", "b", "c"],
        ShiftLength::Weeks(1),
        "09:00",
        "2026-01-05",
    );
    let s = sched(vec![r], vec![]);
    assert_eq!(s.on_call_at(utc("2026-01-05T07:59:00Z")), None);
    let who = |t: &str| s.on_call_at(utc(t)).map(|o| o.person_id);
    assert_eq!(who("2026-01-05T08:00:00Z").as_deref(), Some("a"));
    assert_eq!(who("2026-01-12T07:59:59Z").as_deref(), Some("a"));
    assert_eq!(who("2026-01-12T08:00:00Z").as_deref(), Some("b"));
    assert_eq!(who("2026-01-19T08:00:00Z").as_deref(), Some("c"));
    // 52 weeks later (summer time in between and after): still aligned on 09:00 local.
    let o = s.on_call_at(utc("2027-01-04T08:00:00Z")).unwrap();
    assert_eq!(o.person_id, "b"); // 52 % 3 == 1
    assert_eq!(o.shift_start, utc("2027-01-04T08:00:00Z"));
}

#[test]
fn five_hour_shifts_count_local_wall_clock_from_anchor() {
    let r = rot(
        "r",
        chrono_tz::America::New_York,
        &["a", "b"],
        ShiftLength::Hours(5),
        "00:00",
        "2026-03-07",
    );
    // Handoffs at local 00:00, 05:00, 10:00, 15:00, 20:00, 01:00 (next day), ... wall clock.
    let (k, s, e) = r.shift_at(utc("2026-03-08T08:00:00Z")).unwrap();
    // Local 2026-03-08 01:00 EST (06:00Z) -> 06:00 EDT (10:00Z): 4 elapsed hours.
    assert_eq!(k, 5);
    assert_eq!(
        (s, e),
        (utc("2026-03-08T06:00:00Z"), utc("2026-03-08T10:00:00Z"))
    );
}

#[test]
fn later_layer_wins_and_empty_layer_falls_through() {
    let base = rot(
        "base",
        chrono_tz::UTC,
        &["base"],
        ShiftLength::Days(1),
        "00:00",
        "2026-01-01",
    );
    let mut day = rot(
        "day",
        chrono_tz::UTC,
        &["day"],
        ShiftLength::Days(1),
        "00:00",
        "2026-01-01",
    );
    day.active = vec![ActiveWindow {
        days: Weekdays::parse("mon-fri").unwrap(),
        from: LocalTime::parse("09:00", false).unwrap(),
        to: LocalTime::parse("17:00", true).unwrap(),
    }];
    let s = sched(vec![base, day], vec![]);
    let o = s.on_call_at(utc("2026-01-05T10:00:00Z")).unwrap(); // Monday
    assert_eq!(o.person_id, "day");
    assert_eq!(
        (o.shift_start, o.shift_end),
        (utc("2026-01-05T09:00:00Z"), utc("2026-01-05T17:00:00Z"))
    );
    assert_eq!(
        o.source,
        Source::Layer {
            layer: 1,
            rotation: "day".into()
        }
    );
    assert_eq!(
        s.on_call_at(utc("2026-01-05T18:00:00Z")).unwrap().person_id,
        "base"
    );
    // Saturday: the day layer is inactive all day.
    assert_eq!(
        s.on_call_at(utc("2026-01-10T10:00:00Z")).unwrap().person_id,
        "base"
    );
    // Rotation alone: nobody outside windows.
    let only = sched(vec![s.layers[1].rotation.as_ref().clone()], vec![]);
    assert_eq!(only.on_call_at(utc("2026-01-05T08:59:59Z")), None);
}

#[test]
fn overnight_active_window() {
    let mut r = rot(
        "n",
        chrono_tz::Europe::Berlin,
        &["n"],
        ShiftLength::Weeks(1),
        "00:00",
        "2026-01-05",
    );
    r.active = vec![ActiveWindow {
        days: Weekdays::parse("fri").unwrap(),
        from: LocalTime::parse("22:00", false).unwrap(),
        to: LocalTime::parse("06:00", true).unwrap(),
    }];
    let s = sched(vec![r], vec![]);
    assert!(s.on_call_at(utc("2026-01-09T20:59:00Z")).is_none());
    let o = s.on_call_at(utc("2026-01-10T02:00:00Z")).unwrap(); // Saturday 03:00 local
    assert_eq!(
        (o.shift_start, o.shift_end),
        (utc("2026-01-09T21:00:00Z"), utc("2026-01-10T05:00:00Z"))
    );
}

fn ov(who: &str, for_person: Option<&str>, from: &str, until: &str) -> Override {
    Override {
        who: who.into(),
        for_person: for_person.map(Into::into),
        from: utc(from),
        until: utc(until),
    }
}

#[test]
fn override_for_a_person_only_covers_their_shifts() {
    let r = rot(
        "r",
        chrono_tz::UTC,
        &["alice", "bob"],
        ShiftLength::Days(1),
        "00:00",
        "2026-01-01",
    );
    let s = sched(
        vec![r],
        vec![ov(
            "carol",
            Some("alice"),
            "2026-01-01T00:00:00Z",
            "2026-01-05T00:00:00Z",
        )],
    );
    let who = |t: &str| s.on_call_at(utc(t)).unwrap().person_id;
    assert_eq!(who("2026-01-01T12:00:00Z"), "carol"); // alice's day
    assert_eq!(who("2026-01-02T12:00:00Z"), "bob");
    assert_eq!(who("2026-01-03T12:00:00Z"), "carol");
    assert_eq!(who("2026-01-05T12:00:00Z"), "alice"); // after the override
}

#[test]
fn whole_schedule_override_wins_over_every_layer() {
    let a = rot(
        "a",
        chrono_tz::UTC,
        &["alice", "bob"],
        ShiftLength::Days(1),
        "00:00",
        "2026-01-01",
    );
    let b = rot(
        "b",
        chrono_tz::UTC,
        &["dave"],
        ShiftLength::Days(1),
        "00:00",
        "2026-01-01",
    );
    let s = sched(
        vec![a, b],
        vec![ov(
            "carol",
            None,
            "2026-01-02T06:00:00Z",
            "2026-01-02T18:00:00Z",
        )],
    );
    let o = s.on_call_at(utc("2026-01-02T07:00:00Z")).unwrap();
    assert_eq!(o.person_id, "carol");
    assert_eq!(o.source, Source::Override { index: 0 });
    assert_eq!(
        (o.shift_start, o.shift_end),
        (utc("2026-01-02T06:00:00Z"), utc("2026-01-02T18:00:00Z"))
    );
    assert_eq!(
        s.on_call_at(utc("2026-01-02T19:00:00Z")).unwrap().person_id,
        "dave"
    );
}

#[test]
fn overlapping_overrides_later_listed_wins() {
    let r = rot(
        "r",
        chrono_tz::UTC,
        &["alice"],
        ShiftLength::Days(1),
        "00:00",
        "2026-01-01",
    );
    let s = sched(
        vec![r],
        vec![
            ov("bob", None, "2026-01-02T00:00:00Z", "2026-01-04T00:00:00Z"),
            ov(
                "carol",
                None,
                "2026-01-03T00:00:00Z",
                "2026-01-05T00:00:00Z",
            ),
        ],
    );
    let shifts = s.shifts(utc("2026-01-01T00:00:00Z"), utc("2026-01-06T00:00:00Z"));
    let got: Vec<(Option<&str>, DateTime<Utc>)> = shifts
        .iter()
        .map(|x| (x.person_id.as_deref(), x.start))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("alice"), utc("2026-01-01T00:00:00Z")),
            (Some("bob"), utc("2026-01-02T00:00:00Z")),
            (Some("carol"), utc("2026-01-03T00:00:00Z")),
            (Some("alice"), utc("2026-01-05T00:00:00Z")),
        ]
    );
}

#[test]
fn shifts_mark_gaps_explicitly() {
    let r = rot(
        "r",
        chrono_tz::UTC,
        &["a"],
        ShiftLength::Days(1),
        "00:00",
        "2026-01-03",
    );
    let s = sched(vec![r], vec![]);
    let shifts = s.shifts(utc("2026-01-01T00:00:00Z"), utc("2026-01-04T00:00:00Z"));
    assert_eq!(shifts.len(), 2);
    assert_eq!(shifts[0].person_id, None);
    assert_eq!(shifts[0].end, utc("2026-01-03T00:00:00Z"));
    assert_eq!(shifts[1].person_id.as_deref(), Some("a"));
}

#[test]
fn service_routes_by_severity_and_labels() {
    use rouse::oncall::{RoutingRule, Service, Urgency};
    use std::collections::BTreeMap;
    let svc = Service {
        id: "s".into(),
        name: "S".into(),
        policy_id: "default".into(),
        urgency: Urgency::High,
        integrations: vec![],
        routes: vec![
            RoutingRule {
                matches: [("severity".to_string(), "warning".to_string())].into(),
                policy_id: Some("chat-only".into()),
                urgency: Some(Urgency::Low),
            },
            RoutingRule {
                matches: [("team".to_string(), "db".to_string())].into(),
                policy_id: Some("db".into()),
                urgency: None,
            },
        ],
    };
    let none = BTreeMap::new();
    assert_eq!(svc.route(&none, "critical").policy_id, "default");
    let r = svc.route(&none, "warning");
    assert_eq!(
        (r.policy_id.as_str(), r.urgency),
        ("chat-only", Urgency::Low)
    );
    let labels: BTreeMap<String, String> = [("team".to_string(), "db".to_string())].into();
    let r = svc.route(&labels, "critical");
    assert_eq!((r.policy_id.as_str(), r.urgency), ("db", Urgency::High));
}

#[test]
fn quiet_hours_cross_midnight() {
    use rouse::oncall::{Contact, Person, QuietHours};
    let p = Person {
        id: "a".into(),
        name: "A".into(),
        zone: chrono_tz::Europe::Berlin,
        contact: Contact::default(),
        quiet_hours: Some(QuietHours {
            from: LocalTime::parse("22:00", false).unwrap(),
            to: LocalTime::parse("07:00", true).unwrap(),
        }),
        max_calls_per_hour: None,
        notify: Vec::new(),
    };
    assert!(p.in_quiet_hours(Utc.with_ymd_and_hms(2026, 1, 5, 22, 0, 0).unwrap())); // 23:00 local
    assert!(!p.in_quiet_hours(Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap()));
}
