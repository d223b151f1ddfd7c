//! The shipped `rotations/` example must load, and `check` must pass without gaps.

use chrono::{TimeZone, Utc};
use rouse::commands::check::check;
use rouse::commands::oncall::{oncall, OncallArgs};
use std::path::Path;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn example_checks_clean() {
    let mut out = Vec::new();
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let ok = check(Path::new("rotations"), now, &no_env, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    assert!(ok, "{text}");
    // The example has no warnings; the only other line says test pages
    // were not checked (no database given).
    let (note, ok_line) = text.trim().split_once('\n').unwrap();
    assert!(note.starts_with("note: test pages not checked"), "{note}");
    assert_eq!(
        ok_line,
        "ok: 6 people, 4 rotations, 2 schedules, 2 policies, 1 service, 5 watchers; no coverage gaps in the next 28 days"
    );
}

#[test]
fn example_has_no_gaps_over_a_whole_year() {
    let c = rouse::catalog::load_dir(Path::new("rotations"), &no_env).unwrap();
    let from = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
    let until = Utc.with_ymd_and_hms(2027, 1, 5, 0, 0, 0).unwrap();
    assert_eq!(rouse::oncall::coverage_gaps(&c, from, until), vec![]);
}

#[test]
fn example_oncall_text_and_json() {
    let at = Utc.with_ymd_and_hms(2026, 12, 24, 12, 0, 0).unwrap();
    let mut args = OncallArgs {
        dir: "rotations".into(),
        at: Some(at),
        ..Default::default()
    };
    let mut out = Vec::new();
    assert!(oncall(&args, at, &no_env, &mut out).unwrap());
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    args.json = true;
    args.schedule = Some("primary".into());
    let mut out = Vec::new();
    assert!(oncall(&args, at, &no_env, &mut out).unwrap());
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    println!("{v:#}");
    assert_eq!(v["schedules"][0]["schedule"], "primary");
    args.from = Some(at);
    args.json = false;
    let mut out = Vec::new();
    assert!(oncall(&args, at, &no_env, &mut out).unwrap());
    println!("{}", String::from_utf8(out).unwrap());
}
