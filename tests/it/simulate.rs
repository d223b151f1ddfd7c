//! `rouse simulate` against hand-computed expectations: a handoff between two
//! steps on the night New York springs forward, quiet hours for low urgency,
//! a maintenance window, and `POST /v1/simulate` with a stored silence.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use rouse::alert::silence::SilenceSet;
use rouse::alert::Severity;
use rouse::escalation::simulate::{simulate, Question, Simulation};
use serde_json::json;

use crate::support::{TestApp, TestDb, ADMIN_TOKEN};

const CATALOG: &str = r#"
people:
  - { id: ann, name: Ann, timezone: America/New_York, contact: { sms: "+12125550101", voice: "+12125550101" } }
  - id: ben
    name: Ben
    timezone: Europe/Berlin
    contact: { sms: "+4915100000002", voice: "+4915100000002" }
    quiet_hours: { from: "22:00", to: "07:00" }
rotations:
  - { id: daily, timezone: America/New_York, participants: [ann, ben], shift: 1d, handoff: "02:30", start: 2026-03-01 }
schedules:
  - { id: primary, timezone: America/New_York, layers: [{ rotation: daily }] }
policies:
  - id: wake
    steps:
      - { delay: 0m, targets: [{ schedule: primary }], channels: [sms] }
      - { delay: 15m, targets: [{ schedule: primary }], channels: [voice] }
services:
  - id: shop
    policy: wake
    routes:
      - { match: { severity: warning }, urgency: low }
maintenance:
  - { service: shop, from: "2026-03-10T10:00:00Z", until: "2026-03-10T11:00:00Z", reason: "db upgrade" }
"#;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn run(at: &str, severity: Severity, minutes: i64) -> Simulation {
    let files = vec![(PathBuf::from("oncall.yaml"), CATALOG.to_owned())];
    let catalog = rouse::catalog::load_files(&files, &|_| None).unwrap();
    let labels = BTreeMap::new();
    let silences = SilenceSet::default();
    simulate(
        &catalog,
        &Question {
            service_id: "shop",
            at: utc(at),
            severity,
            labels: &labels,
            horizon: TimeDelta::minutes(minutes),
            silences: &silences,
            number_cap_per_hour: 20,
        },
    )
    .unwrap()
}

fn pages(sim: &Simulation) -> Vec<(String, &str, &str, &str)> {
    sim.pages
        .iter()
        .map(|p| {
            (
                p.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                p.channel.as_str(),
                p.recipient.as_str(),
                p.local_time.as_deref().unwrap_or(""),
            )
        })
        .collect()
}

#[test]
fn a_handoff_between_steps_on_the_spring_forward_night() {
    // 2026-03-08: New York skips 02:00–03:00. The 02:30 handoff happens at
    // 03:00 EDT = 07:00 UTC: Ann (on call since 03-07 02:30 EST) gets the SMS
    // at 06:55 UTC, Ben (from the handoff) the call 15 minutes later.
    let sim = run("2026-03-08T06:55:00Z", Severity::Critical, 16);
    assert_eq!(
        pages(&sim),
        vec![
            ("2026-03-08T06:55:00Z".into(), "sms", "Ann", "01:55 EST"),
            ("2026-03-08T07:10:00Z".into(), "voice", "Ben", "08:10 CET"),
        ]
    );
    assert!(sim
        .notes
        .iter()
        .any(|n| n.message.contains("the policy has nothing more to do")));
}

#[test]
fn low_urgency_waits_out_quiet_hours_and_high_urgency_does_not() {
    // Ben is on call on 2026-03-10 (02:30 EDT on) and it is 23:00 in Berlin.
    let high = run("2026-03-10T22:00:00Z", Severity::Critical, 1);
    assert_eq!(pages(&high)[0].1, "sms");
    let low = run("2026-03-10T22:00:00Z", Severity::Warning, 1);
    assert!(low.pages.is_empty(), "{:?}", low.pages);
    assert!(
        low.notes.iter().any(|n| n.message.contains("quiet hours")),
        "{:?}",
        low.notes
    );
}

#[test]
fn a_maintenance_window_holds_pages_until_it_ends() {
    let sim = run("2026-03-10T10:30:00Z", Severity::Critical, 60);
    assert_eq!(
        sim.notes[0].message,
        "in maintenance: db upgrade: nobody is paged until 2026-03-10T11:00:00Z"
    );
    assert_eq!(pages(&sim)[0].0, "2026-03-10T11:00:00Z");
}

#[test]
fn the_text_output_shows_utc_and_local_times() {
    let text =
        rouse::escalation::simulate::render(&run("2026-03-08T06:55:00Z", Severity::Critical, 16));
    assert!(
        text.contains("2026-03-08T06:55:00Z  step 1          sms    Ann +12125550101 (01:55 EST)"),
        "{text}"
    );
    assert!(
        text.contains(
            "2026-03-08T07:10:00Z  step 2          voice  Ben +4915100000002 (08:10 CET)"
        ),
        "{text}"
    );
}

async fn the_api_applies_stored_silences(db: &TestDb) {
    let app = TestApp::spawn_with_catalog(db, CATALOG, |_| {}).await;
    let now = Utc::now();
    let silence = app
        .http
        .post(app.url("/v1/silences"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"matchers": [{"name": "service", "value": "shop"}], "ends_at": now + TimeDelta::minutes(30),
                      "comment": "load test", "created_by": "ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(silence.status().as_u16(), 201);
    let answer: serde_json::Value = app
        .http
        .post(app.url("/v1/simulate"))
        .bearer_auth(ADMIN_TOKEN)
        // A minute in: the silence (made with the server's clock) has begun.
        .json(&json!({"service": "shop", "at": now + TimeDelta::minutes(1), "for_minutes": 45}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first_note = answer["notes"][0]["message"].as_str().unwrap();
    assert!(
        first_note.starts_with("silenced by #1: load test, by ann"),
        "{answer}"
    );
    let first_page =
        DateTime::parse_from_rfc3339(answer["pages"][0]["at"].as_str().unwrap()).unwrap();
    assert!(
        first_page.to_utc() >= now + TimeDelta::minutes(29),
        "{answer}"
    );
    app.stop().await;
}
crate::both_backends!(the_api_applies_stored_silences);

#[test]
fn rouse_oncall_shows_maintenance_windows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("oncall.yaml"), CATALOG).unwrap();
    let show = |at: Option<DateTime<Utc>>, from: Option<DateTime<Utc>>| {
        let args = rouse::commands::oncall::OncallArgs {
            dir: dir.path().to_owned(),
            at,
            schedule: None,
            json: false,
            from,
            until: from.map(|f| f + TimeDelta::days(1)),
        };
        let mut out = Vec::new();
        rouse::commands::oncall::oncall(&args, Utc::now(), &|_| None, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let now = show(Some(utc("2026-03-10T10:30:00Z")), None);
    assert!(
        now.contains("maintenance: shop until 2026-03-10T11:00:00Z (db upgrade): nobody is paged"),
        "{now}"
    );
    let range = show(None, Some(utc("2026-03-10T00:00:00Z")));
    assert!(
        range.contains(
            "maintenance: shop from 2026-03-10T10:00:00Z to 2026-03-10T11:00:00Z (db upgrade)"
        ),
        "{range}"
    );
}
