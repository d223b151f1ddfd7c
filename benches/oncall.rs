//! Loop-timer benchmark (no criterion): one JSON object per line.
//! Run with `cargo bench --bench oncall`.

use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use rouse::oncall::{
    ActiveWindow, Layer, LocalTime, Override, Rotation, Schedule, ShiftLength, Weekdays,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

fn rotation(i: usize) -> Rotation {
    let zones = [
        chrono_tz::America::New_York,
        chrono_tz::Europe::Berlin,
        chrono_tz::Asia::Tokyo,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::Europe::London,
    ];
    let shifts = [
        ShiftLength::Weeks(1),
        ShiftLength::Days(1),
        ShiftLength::Hours(12),
        ShiftLength::Hours(8),
    ];
    let windowed = i.is_multiple_of(3);
    Rotation {
        id: format!("r{i}"),
        name: None,
        zone: zones[i % zones.len()],
        participants: (0..(2 + i % 5)).map(|p| format!("p{p}")).collect(),
        shift: shifts[i % shifts.len()],
        handoff: LocalTime::from_hm(9, 0).unwrap_or(LocalTime::MIDNIGHT),
        start: NaiveDate::from_ymd_opt(2025, 1, 6).unwrap_or_default(),
        active: if windowed {
            vec![ActiveWindow {
                days: Weekdays::parse("mon-fri").unwrap_or(Weekdays::ALL),
                from: LocalTime::from_hm(8, 0).unwrap_or(LocalTime::MIDNIGHT),
                to: LocalTime::from_hm(18, 0).unwrap_or(LocalTime::END_OF_DAY),
            }]
        } else {
            vec![]
        },
    }
}

fn schedule(rotations: Vec<Rotation>, overrides: Vec<Override>) -> Schedule {
    Schedule {
        id: "s".into(),
        name: None,
        zone: chrono_tz::UTC,
        layers: rotations
            .into_iter()
            .map(|r| Layer {
                rotation: Arc::new(r),
            })
            .collect(),
        overrides,
    }
}

fn main() {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();

    // A realistic schedule: weekly base layer + follow-the-sun windowed layer + 2 overrides.
    let lookup = schedule(
        vec![rotation(0), rotation(3)],
        vec![
            Override {
                who: "x".into(),
                for_person: Some("p1".into()),
                from: t0,
                until: t0 + TimeDelta::days(3),
            },
            Override {
                who: "y".into(),
                for_person: None,
                from: t0 + TimeDelta::days(200),
                until: t0 + TimeDelta::days(201),
            },
        ],
    );
    let n = 200_000u32;
    let start = Instant::now();
    for i in 0..n {
        // Spread over the year so DST transitions and many shifts are exercised.
        let t = t0 + TimeDelta::seconds(i64::from(i) * 157);
        black_box(lookup.on_call_at(black_box(t)));
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{{\"bench\":\"oncall_lookup\",\"iterations\":{n},\"ns_per_iter\":{ns:.0}}}");

    let schedules: Vec<Schedule> = (0..100)
        .map(|i| schedule(vec![rotation(i)], vec![]))
        .collect();
    let until = t0 + TimeDelta::days(365);
    let mut best = f64::MAX;
    let mut total = 0usize;
    for _ in 0..5 {
        let start = Instant::now();
        total = schedules
            .iter()
            .map(|s| black_box(s.shifts(t0, until)).len())
            .sum();
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!("{{\"bench\":\"expand_year_100_rotations\",\"ms\":{best:.2},\"shifts\":{total}}}");
}
