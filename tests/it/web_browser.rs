//! The web UI in a real browser: Debian's headless Chromium, driven by
//! playwright-core (tests/peers/web_ui.js), logs in with a password on a
//! phone-sized screen, sees an alert arrive without reloading, opens its
//! timeline and acknowledges it, then reads the schedule picture across a
//! DST change with coverage gaps. Screenshots: `target/screenshots/web-*.png`.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use rouse::clock::ManualClock;

use crate::peers::{chromium, run_browser};
use crate::support::{TestApp, TestDb, PAYMENTS_KEY};
use crate::web_ui::{catalog_with_login, ALICE_PASSWORD};

/// Berlin days and New York evenings leave 04:00–06:00 UTC uncovered in
/// winter; New York's clocks move on 14 March 2027 and Berlin's on the 28th,
/// so the gap grows to 03:00–06:00 UTC and shrinks back. Bob stands in for a
/// few hours on the 13th.
const CATALOG: &str = r#"
people:
  - id: alice
    name: Alice
    timezone: Europe/Berlin
    contact: { sms: "+4915100000001" }
    quiet_hours: { from: "22:00", to: "07:00" }
  - id: bob
    name: Bob
    timezone: Europe/Berlin
    contact: { sms: "+4915100000002" }
  - id: carol
    name: Carol
    timezone: America/New_York
    contact: { sms: "+12125550003" }
    quiet_hours: { from: "23:00", to: "07:00" }
rotations:
  - id: berlin-day
    timezone: Europe/Berlin
    participants: [alice, bob]
    shift: 1w
    handoff: "09:00"
    start: 2027-01-11
    active:
      - { days: daily, from: "07:00", to: "19:00" }
  - id: ny-evening
    timezone: America/New_York
    participants: [carol]
    shift: 1w
    handoff: "13:00"
    start: 2027-01-04
    active:
      - { days: daily, from: "13:00", to: "23:00" }
schedules:
  - id: primary
    timezone: Europe/Berlin
    layers:
      - rotation: berlin-day
      - rotation: ny-evening
    overrides:
      - { who: bob, from: "2027-03-13T08:00:00Z", until: "2027-03-13T12:00:00Z" }
policies:
  - id: default
    steps:
      - delay: 0m
        targets: [{ schedule: primary }]
        channels: [sms]
services:
  - id: payments
    policy: default
    integrations:
      - name: prometheus
        key: payments-test-key-0123456789
"#;

#[tokio::test]
async fn web_ui_in_headless_chromium() {
    let Some(chromium) = chromium("web_ui_in_headless_chromium") else {
        return;
    };
    let db = TestDb::sqlite();
    // Friday 12 March 2027, 10:00 UTC: Alice has the Berlin day.
    let now = Utc.with_ymd_and_hms(2027, 3, 12, 10, 0, 0).unwrap();
    let clock = ManualClock::new(now);
    let catalog = catalog_with_login(CATALOG);
    let app = TestApp::spawn_with_clock(&db, &catalog, Arc::new(clock), |_| {}).await;

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let base = app.base.clone();
    let seen = run_browser(
        &chromium,
        "web_ui.js",
        vec![
            base.clone(),
            shots.display().to_string(),
            PAYMENTS_KEY.to_owned(),
            "alice".to_owned(),
            ALICE_PASSWORD.to_owned(),
        ],
    )
    .await;

    assert!(
        seen["loginUrl"]
            .as_str()
            .unwrap()
            .contains("/ui/login?next="),
        "{seen}"
    );
    assert!(
        seen["afterLogin"]
            .as_str()
            .unwrap()
            .ends_with("/ui/alerts?status=open"),
        "{seen}"
    );
    assert_eq!(
        seen["marker"], "kept",
        "the list reloaded instead of refreshing in place"
    );
    assert_eq!(seen["filterKept"], "open");
    assert!(
        seen["localShown"].as_str().unwrap().contains("your time"),
        "{seen}"
    );
    let timeline = seen["timeline"].as_str().unwrap();
    assert!(timeline.contains("acknowledged via web"), "{timeline}");
    assert!(
        timeline.contains("acknowledged via web alice"),
        "{timeline}"
    );

    let id = seen["alertId"].as_i64().unwrap();
    let (_, body) = app.admin_get(&format!("/v1/alerts/{id}")).await;
    assert_eq!(body["alert"]["acknowledged_by"], "alice", "{body}");

    // The picture: New York's change on the 14th and Berlin's on the 28th
    // (seen from New York, Berlin's change does not move its clocks, so one).
    let dst = seen["dst"].as_str().unwrap();
    assert!(
        dst.contains("2027-03-14 03:00") && dst.contains("EST") && dst.contains("EDT"),
        "{dst}"
    );
    assert!(seen["overrides"].as_u64().unwrap() >= 1, "{seen}");
    // The gaps listed are exactly the coverage gaps `rouse oncall` computes.
    let files = vec![(PathBuf::from("oncall.yaml"), catalog.clone())];
    let loaded = rouse::catalog::load_files(&files, &|_| None).expect("catalog loads");
    let (from, until) = rouse::web::timeline::window(now, "America/New_York".parse().unwrap(), 14);
    let expected = rouse::oncall::coverage_gaps(&loaded, from, until);
    let gaps: Vec<&str> = seen["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(gaps.len(), expected.len(), "{gaps:?}");
    assert_eq!(seen["redBlocks"].as_u64().unwrap() as usize, expected.len());
    for (shown, gap) in gaps.iter().zip(&expected) {
        let utc = format!(
            "{} – {}",
            gap.start.format("%Y-%m-%d %H:%M"),
            gap.end.format("%Y-%m-%d %H:%M UTC")
        );
        assert!(shown.contains(&utc), "{shown} should show {utc}");
    }
    // Before New York's change the gap is two hours, after it three.
    let gap_on = |day: u32| {
        expected
            .iter()
            .find(|g| {
                g.start.date_naive() == chrono::NaiveDate::from_ymd_opt(2027, 3, day).unwrap()
            })
            .map(|g| g.end - g.start)
    };
    assert_eq!(gap_on(13), Some(TimeDelta::hours(2)));
    assert_eq!(gap_on(15), Some(TimeDelta::hours(3)));
    let oncall = seen["oncall"].as_str().unwrap();
    assert!(oncall.contains("Alice"), "{oncall}");
    assert!(oncall.contains("for Alice in Europe/Berlin"), "{oncall}");

    for shot in seen["screenshots"].as_array().unwrap() {
        let path = PathBuf::from(shot.as_str().unwrap());
        assert!(
            std::fs::metadata(&path)
                .map(|m| m.len() > 1000)
                .unwrap_or(false),
            "screenshot {} is missing or empty",
            path.display()
        );
    }
    app.stop().await;
}
