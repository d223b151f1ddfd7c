//! Silences through the API, inside the whole server, on both stores: a
//! matching alert is stored and nobody is paged, its timeline names the
//! silence; others page; when the silence ends (or is expired early) the
//! alert escalates from its first step.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::clock::ManualClock;
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::{eventually, TestApp, TestDb, ADMIN_TOKEN, PAYMENTS_KEY, TEST_CATALOG};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app
        .http
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn trigger(app: &TestApp, key: &str, instance: &str) -> i64 {
    let (status, body) = app
        .post(
            "/v1/events",
            &[("x-rouse-key", PAYMENTS_KEY)],
            json!({"action": "trigger", "dedup_key": key, "summary": format!("{key} down"),
                   "severity": "critical", "labels": {"instance": instance}})
            .to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["alert_id"].as_i64().unwrap()
}

async fn timeline(app: &TestApp, id: i64) -> Vec<String> {
    let (_, shown) = app.admin_get(&format!("/v1/alerts/{id}")).await;
    shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Whether a step of the policy fired for the alert (someone was paged).
async fn fired(app: &TestApp, id: i64) -> bool {
    let (_, shown) = app.admin_get(&format!("/v1/alerts/{id}")).await;
    shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "step_fired")
}

async fn has(app: &TestApp, id: i64, needle: &str) -> bool {
    timeline(app, id).await.iter().any(|m| m.contains(needle))
}

async fn a_silence_holds_pages_until_it_ends_or_is_expired(db: &TestDb) {
    let clock = ManualClock::new(t0());
    let app = TestApp::spawn_with_clock(db, TEST_CATALOG, Arc::new(clock.clone()), |_| {}).await;
    let (status, created) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/silences",
        Some(json!({
            "matchers": [{"name": "instance", "op": "=~", "value": "db-[0-9]+"},
                         {"name": "service", "value": "payments", "isRegex": false, "isEqual": true}],
            "ends_at": t0() + TimeDelta::minutes(30),
            "comment": "deploying db-1", "created_by": "alice"
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["state"], "active");

    let held = trigger(&app, "db-1-disk", "db-1").await;
    let paged = trigger(&app, "web-1-disk", "web-1").await;
    eventually("the unsilenced alert pages", || async {
        fired(&app, paged).await
    })
    .await;
    eventually("the silence is in the timeline", || async {
        has(
            &app,
            held,
            &format!("silenced by #{id}: deploying db-1, by alice"),
        )
        .await
    })
    .await;
    assert!(
        !fired(&app, held).await,
        "nobody is paged: {:?}",
        timeline(&app, held).await
    );

    // Ended early: the held alert escalates from its first step now.
    clock.set(t0() + TimeDelta::minutes(5));
    let (status, expired) = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/silences/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{expired}");
    assert_eq!(expired["state"], "expired");
    eventually("the held alert starts paging", || async {
        has(&app, held, "silence over: escalating from the first step").await
    })
    .await;

    // A silence that simply runs out does the same at its end.
    let (_, second) = admin(
        &app,
        reqwest::Method::POST,
        "/v1/silences",
        Some(json!({"matchers": [{"name": "instance", "value": "db-2"}],
                    "ends_at": t0() + TimeDelta::minutes(20), "comment": "rebooting", "created_by": "bob"})),
    )
    .await;
    let later = trigger(&app, "db-2-disk", "db-2").await;
    eventually("silenced", || async {
        has(
            &app,
            later,
            &format!("silenced by #{}: rebooting, by bob", second["id"]),
        )
        .await
    })
    .await;
    clock.set(t0() + TimeDelta::minutes(20));
    eventually("pages when the silence ends", || async {
        has(&app, later, "silence over: escalating from the first step").await
    })
    .await;

    let (_, listed) = admin(&app, reqwest::Method::GET, "/v1/silences", None).await;
    let states: Vec<&str> = listed["silences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["expired", "expired"], "{listed}");
    app.stop().await;
}
both_backends!(a_silence_holds_pages_until_it_ends_or_is_expired);

async fn bad_silences_are_refused_with_reasons(db: &TestDb) {
    let app = TestApp::spawn(db, |_| {}).await;
    let now = Utc::now();
    for (body, reason) in [
        (
            json!({"matchers": [{"name": "a", "op": "=~", "value": "("}], "ends_at": now + TimeDelta::hours(1),
                "comment": "x", "created_by": "y"}),
            "invalid regular expression for a",
        ),
        (
            json!({"matchers": [{"name": "a", "value": "b"}], "ends_at": now + TimeDelta::days(31),
                "comment": "x", "created_by": "y"}),
            "at most 30 days",
        ),
        (
            json!({"matchers": [], "ends_at": now + TimeDelta::hours(1), "comment": "x", "created_by": "y"}),
            "matchers: give 1 to 32",
        ),
        (
            json!({"matchers": [{"name": "a", "value": "b"}], "ends_at": now + TimeDelta::hours(1),
                "comment": " ", "created_by": "y"}),
            "comment: say why",
        ),
    ] {
        let (status, answer) = admin(&app, reqwest::Method::POST, "/v1/silences", Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(reason), "{reason}: {answer}");
    }
    let (status, _) = admin(&app, reqwest::Method::DELETE, "/v1/silences/999", None).await;
    assert_eq!(status, 404);
    let unauthenticated = app.http.get(app.url("/v1/silences")).send().await.unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    app.stop().await;
}
both_backends!(bad_silences_are_refused_with_reasons);
