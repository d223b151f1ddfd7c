//! Calendar feeds, end to end: made through the admin API, fetched as a
//! subscriber would, read by Python's `icalendar`, and compared shift by
//! shift with `rouse oncall --from/--until --json` across two DST changes
//! (New York on 2027-03-14, Berlin on 2027-03-28). A revoked feed is 404.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use crate::peers::{peers_dir, python_with};
use crate::support::{TestApp, TestDb, ADMIN_TOKEN, TEST_CATALOG};

/// The test catalog plus a daily New York rotation with an override.
fn catalog() -> String {
    TEST_CATALOG
        .replace(
            "rotations:\n",
            "rotations:\n  - id: daily-ny\n    timezone: America/New_York\n    participants: [bob, alice]\n    shift: 1d\n    handoff: \"09:00\"\n    start: 2027-01-04\n",
        )
        .replace(
            "policies:\n",
            "  - id: ny\n    name: New York days\n    timezone: America/New_York\n    layers:\n      - rotation: daily-ny\n    overrides:\n      - { who: alice, from: \"2027-03-22T00:00:00Z\", until: \"2027-03-23T00:00:00Z\" }\npolicies:\n",
        )
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2027-03-20T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Fetches a feed; (status, content type, body).
async fn fetch(app: &TestApp, url: &str) -> (u16, String, String) {
    let response = app.http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, kind, response.text().await.unwrap())
}

/// What Python's icalendar reads from `text` (panics with its complaint).
fn parse(python: &std::path::Path, text: &str) -> Value {
    let mut child = Command::new(python)
        .arg(peers_dir().join("parse_ics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "icalendar rejected the feed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `rouse oncall --schedule ID --from now-7d --until now+60d --json`.
fn oncall(app: &TestApp, schedule: &str) -> Value {
    let args = rouse::commands::oncall::OncallArgs {
        dir: app.rotations.path().to_owned(),
        schedule: Some(schedule.to_owned()),
        json: true,
        from: Some(now() - rouse::feed::PAST),
        until: Some(now() + rouse::feed::AHEAD),
        ..Default::default()
    };
    let mut out = Vec::new();
    assert!(rouse::commands::oncall::oncall(&args, now(), &|_| None, &mut out).unwrap());
    let doc: Value = serde_json::from_slice(&out).unwrap();
    doc["schedules"][0]["shifts"].clone()
}

fn spans(events: &Value) -> Vec<(String, String)> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["start"].as_str().unwrap().to_owned(),
                e["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn feeds_match_rouse_oncall(db: &TestDb) {
    let Some(python) = python_with("feeds_match_rouse_oncall", "icalendar") else {
        return;
    };
    let clock = Arc::new(rouse::clock::ManualClock::new(now()));
    let app = TestApp::spawn_with_clock(db, &catalog(), clock.clone(), |_| {}).await;

    let (status, ny) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/feeds",
        Some(json!({"schedule": "ny", "label": "team wall"})),
    )
    .await;
    assert_eq!(status, 201, "{ny}");
    let url = ny["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&app.url("/feeds/rf_")) && url.ends_with(".ics"),
        "{url}"
    );
    let (status, kind, text) = fetch(&app, &url).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(kind, "text/calendar; charset=utf-8");
    let cal = parse(&python, &text);
    assert_eq!(cal["name"], "On call: New York days");
    assert_eq!(cal["method"], "PUBLISH");
    assert!(!cal["refresh"].as_str().unwrap().is_empty(), "{cal}");

    // The same shifts as `rouse oncall`, gaps and the override included.
    let shifts = oncall(&app, "ny");
    let events = &cal["events"];
    assert_eq!(
        spans(events),
        spans(&shifts),
        "feed and rouse oncall disagree"
    );
    let people: Vec<Value> = shifts
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["person"].clone())
        .collect();
    for (event, person) in events.as_array().unwrap().iter().zip(&people) {
        let summary = event["summary"].as_str().unwrap();
        let name = match person.as_str() {
            Some("alice") => "Alice",
            Some("bob") => "Bob",
            _ => "Nobody",
        };
        assert!(
            summary.contains(name) && summary.contains("New York days"),
            "{summary} for {person}"
        );
        assert_eq!(event["dtstamp"], "2027-03-20T12:00:00Z");
    }
    // Across New York's spring-forward (02:00 local on 2027-03-14) the 09:00
    // handoff stays 09:00 local: 14:00Z before, 13:00Z after, and the shift
    // across it is 23 hours.
    let starts: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["start"].as_str().unwrap())
        .collect();
    assert!(starts.contains(&"2027-03-13T14:00:00Z"), "{starts:?}");
    assert!(starts.contains(&"2027-03-15T13:00:00Z"), "{starts:?}");
    let across = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["start"] == "2027-03-13T14:00:00Z")
        .unwrap();
    assert_eq!(across["end"], "2027-03-14T13:00:00Z");

    // A day later the shifts both fetches cover keep their UIDs.
    let first: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["uid"].as_str().unwrap().to_owned(),
                e["start"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    clock.set(now() + TimeDelta::days(1));
    let again = parse(&python, &fetch(&app, &url).await.2);
    let later: Vec<(String, String)> = again["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["uid"].as_str().unwrap().to_owned(),
                e["start"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let kept = first.iter().filter(|f| later.contains(f)).count();
    assert!(
        kept >= first.len() - 2,
        "UIDs changed between fetches: {first:?} vs {later:?}"
    );
    clock.set(now());

    // A person's feed: Alice's shifts from both schedules, Berlin's weekly
    // 09:00 handoff moving from 08:00Z to 07:00Z on 2027-03-28.
    let (status, alice) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/feeds",
        Some(json!({"person": "alice"})),
    )
    .await;
    assert_eq!(status, 201, "{alice}");
    let cal = parse(
        &python,
        &fetch(&app, alice["url"].as_str().unwrap()).await.2,
    );
    assert_eq!(cal["name"], "On call: Alice");
    let mut want: Vec<(String, String)> = ["primary", "ny"]
        .iter()
        .flat_map(|s| oncall(&app, s).as_array().unwrap().clone())
        .filter(|s| s["person"] == "alice")
        .map(|s| {
            (
                s["start"].as_str().unwrap().to_owned(),
                s["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    want.sort();
    let mut got = spans(&cal["events"]);
    got.sort();
    assert_eq!(got, want);
    // The Berlin week across 2027-03-28 is 167 hours, 09:00 local at both ends.
    let berlin = spans(&oncall(&app, "primary"));
    assert!(
        berlin.contains(&(
            "2027-03-22T08:00:00Z".to_owned(),
            "2027-03-29T07:00:00Z".to_owned()
        )),
        "{berlin:?}"
    );

    // Listing shows both, never a token; revoking one makes its URL 404.
    let (status, list) = admin(&app, reqwest::Method::GET, "/v1/feeds", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["feeds"].as_array().unwrap().len(), 2, "{list}");
    assert!(
        !list.to_string().contains("rf_"),
        "a token leaked into the listing: {list}"
    );
    let id = ny["id"].as_i64().unwrap();
    let (status, revoked) = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/feeds/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    let (status, _, body) = fetch(&app, &url).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "error"
    );
    let (status, _, _) = fetch(&app, alice["url"].as_str().unwrap()).await;
    assert_eq!(status, 200, "revoking one feed must leave the others");

    app.stop().await;
}
crate::both_backends!(feeds_match_rouse_oncall);

async fn bad_feed_requests_get_clear_errors(db: &TestDb) {
    let app = TestApp::spawn_with_catalog(db, &catalog(), |_| {}).await;
    for body in [
        json!({"schedule": "ny", "person": "alice"}),
        json!({}),
        json!({"schedule": "nope"}),
        json!({"person": 3}),
        json!({"schedule": "ny", "extra": 1}),
    ] {
        let (status, answer) =
            admin(&app, reqwest::Method::POST, "/v1/feeds", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["status"], "error");
    }
    let response = app
        .http
        .post(app.url("/v1/feeds"))
        .json(&json!({"schedule": "ny"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (status, _) = admin(&app, reqwest::Method::DELETE, "/v1/feeds/999", None).await;
    assert_eq!(status, 404);
    let (status, _) = admin(&app, reqwest::Method::DELETE, "/v1/feeds/abc", None).await;
    assert_eq!(status, 400);
    for path in [
        "/feeds/rf_0123456789abcdef.ics",
        "/feeds/anything",
        "/feeds/%FF.ics",
    ] {
        let (status, _, body) = fetch(&app, &app.url(path)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("no such feed"), "{path}: {body}");
    }
    app.stop().await;
}
crate::both_backends!(bad_feed_requests_get_clear_errors);
