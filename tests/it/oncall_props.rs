//! Property tests: random rotations in DST-heavy zones over windows spanning DST changes.

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use rouse::oncall::{ActiveWindow, Layer, LocalTime, Rotation, Schedule, ShiftLength, Weekdays};
use std::sync::Arc;

const ZONES: &[Tz] = &[
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Europe::Berlin,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Tokyo,
    chrono_tz::Asia::Kolkata,
    chrono_tz::America::Santiago,
    chrono_tz::Pacific::Chatham,
    chrono_tz::UTC,
];

fn shift_strategy() -> impl Strategy<Value = ShiftLength> {
    prop_oneof![
        (1u32..=48).prop_map(ShiftLength::Hours),
        (1u32..=14).prop_map(ShiftLength::Days),
        (1u32..=2).prop_map(ShiftLength::Weeks),
    ]
}

fn rotation_strategy() -> impl Strategy<Value = Rotation> {
    (
        0..ZONES.len(),
        1usize..=6,
        shift_strategy(),
        // Quarter-hour handoffs; weights towards 00:00-03:45 where DST changes happen.
        prop_oneof![0u16..16, 0u16..96],
        0i64..500,
        proptest::option::of((1u8..128, 0u16..96, 1u16..97)),
    )
        .prop_map(|(z, n, shift, q, anchor_days, window)| {
            let start = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap() + TimeDelta::days(anchor_days);
            let active = window
                .into_iter()
                .filter(|(_, f, t)| f != t)
                .map(|(mask, f, t)| ActiveWindow {
                    days: Weekdays::parse(&days_text(mask)).unwrap(),
                    from: LocalTime::from_hm(f / 4, (f % 4) * 15).unwrap(),
                    to: if t == 96 {
                        LocalTime::END_OF_DAY
                    } else {
                        LocalTime::from_hm(t / 4, (t % 4) * 15).unwrap()
                    },
                })
                .collect();
            Rotation {
                id: "r".into(),
                name: None,
                zone: ZONES[z],
                participants: (0..n).map(|i| format!("p{i}")).collect(),
                shift,
                handoff: LocalTime::from_hm(q / 4, (q % 4) * 15).unwrap(),
                start,
                active,
            }
        })
}

fn days_text(mask: u8) -> String {
    let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn window_strategy() -> impl Strategy<Value = (DateTime<Utc>, DateTime<Utc>)> {
    (0i64..(500 * 24), 1i64..(30 * 24)).prop_map(|(start_h, len_h)| {
        let from = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
            + TimeDelta::hours(start_h)
            + TimeDelta::minutes(7);
        (from, from + TimeDelta::hours(len_h))
    })
}

fn schedule(layers: Vec<Rotation>) -> Schedule {
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
        overrides: vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn shifts_tile_the_window((from, until) in window_strategy(), a in rotation_strategy(), b in rotation_strategy()) {
        let s = schedule(vec![a, b]);
        let shifts = s.shifts(from, until);
        prop_assert!(!shifts.is_empty());
        prop_assert!(shifts[0].start <= from);
        prop_assert!(shifts[shifts.len() - 1].end >= until);
        for w in shifts.windows(2) {
            prop_assert_eq!(w[0].end, w[1].start);
            prop_assert!(w[0].person_id != w[1].person_id || w[0].source != w[1].source, "unmerged neighbours");
        }
        for x in &shifts {
            prop_assert!(x.start < x.end);
        }
    }

    #[test]
    fn lookup_agrees_with_expansion((from, until) in window_strategy(), a in rotation_strategy(), b in rotation_strategy(), samples in proptest::collection::vec(0.0f64..1.0, 20)) {
        let s = schedule(vec![a, b]);
        let shifts = s.shifts(from, until);
        for f in samples {
            let secs = ((until - from).num_seconds() as f64 * f) as i64;
            let t = from + TimeDelta::seconds(secs);
            let containing = shifts.iter().filter(|x| x.start <= t && t < x.end).collect::<Vec<_>>();
            prop_assert_eq!(containing.len(), 1, "exactly one shift contains t");
            let on_call = s.on_call_at(t);
            prop_assert_eq!(on_call.as_ref().map(|o| o.person_id.clone()), containing[0].person_id.clone());
            if let Some(o) = on_call {
                prop_assert!(o.shift_start <= t && t < o.shift_end);
                // The rotation's own layer answer is one person at most and is consistent.
                let (k, hs, he) = s.layers[0].rotation.shift_at(t).unwrap();
                prop_assert!(hs <= t && t < he && k >= -1_000_000);
            }
        }
    }

    #[test]
    fn handoffs_land_on_local_time_or_first_instant_after_gap(r in rotation_strategy(), (from, until) in window_strategy()) {
        let mut r = r;
        r.active.clear();
        let step = r.shift.wall_seconds();
        let anchor = r.start.and_time(r.handoff.to_naive_time());
        let (k0, _, _) = r.shift_at(from).unwrap();
        let (k1, _, _) = r.shift_at(until).unwrap();
        for k in k0..=k1 + 1 {
            let h = r.handoff_at(k).unwrap();
            let expected = anchor + TimeDelta::seconds(k * step);
            match r.zone.from_local_datetime(&expected) {
                chrono::LocalResult::Single(x) => prop_assert_eq!(h, x.with_timezone(&Utc)),
                chrono::LocalResult::Ambiguous(x, y) => prop_assert_eq!(h, x.min(y).with_timezone(&Utc)),
                chrono::LocalResult::None => {
                    // First valid instant after the gap: the offset changes exactly at h and
                    // the local time just before h is before the requested local time.
                    let before = h - TimeDelta::seconds(1);
                    prop_assert!(before.with_timezone(&r.zone).naive_local() < expected);
                    prop_assert!(h.with_timezone(&r.zone).naive_local() > expected);
                }
            }
            // Handoffs are ordered (equal only when a gap swallowed a shift).
            prop_assert!(r.handoff_at(k + 1).unwrap() >= h);
        }
    }

    #[test]
    fn lookup_matches_shift_index(r in rotation_strategy(), (from, _until) in window_strategy()) {
        let mut r = r;
        r.active.clear();
        let s = schedule(vec![r.clone()]);
        let (k, hs, he) = r.shift_at(from).unwrap();
        let got = s.on_call_at(from).map(|o| o.person_id);
        let want = (k >= 0).then(|| r.participants[(k as usize) % r.participants.len()].clone());
        prop_assert_eq!(got, want);
        prop_assert!(hs <= from && from < he);
    }
}
