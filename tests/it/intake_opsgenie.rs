//! Opsgenie-compatible intake: the Alert API's shapes against the server,
//! the requests Alertmanager 0.25 really sends (captured into
//! `tests/fixtures/opsgenie/`), and a real Alertmanager whose
//! `opsgenie_configs` receiver points at Rouse, started by the test.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::peers::{free_port, missing};
use crate::support::{eventually, fixture, TestApp, TestDb, PAYMENTS_KEY};

fn genie() -> String {
    format!("GenieKey {PAYMENTS_KEY}")
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
    body: Option<String>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    send(
        app,
        reqwest::Method::POST,
        path,
        Some(&genie()),
        Some(body.to_string()),
    )
    .await
}

fn accepted(status: u16, body: &Value) {
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["result"], "Request will be processed");
    assert!(
        body["took"].is_number() && body["requestId"].is_string(),
        "{body}"
    );
}

async fn the_alert_api_creates_closes_and_acknowledges(db: &TestDb) {
    let app = TestApp::spawn(db, |_| {}).await;
    let (status, body) = post(
        &app,
        "/v2/alerts",
        json!({"message": "Disk full on db-1", "alias": "disk-db-1", "priority": "P1",
               "details": {"instance": "db-1"}, "tags": ["db"], "responders": [{"name": "ops", "type": "team"}]}),
    )
    .await;
    accepted(status, &body);
    let alerts = app.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["dedup_key"], "disk-db-1");
    assert_eq!(alerts[0]["severity"], "critical");
    assert_eq!(alerts[0]["labels"]["instance"], "db-1");

    // The same alias again refreshes it; close by alias resolves it.
    post(
        &app,
        "/v2/alerts",
        json!({"message": "Disk full on db-1", "alias": "disk-db-1"}),
    )
    .await;
    assert_eq!(app.alerts().await[0]["event_count"], 2);
    let (status, body) = post(
        &app,
        "/v2/alerts/disk-db-1/close?identifierType=alias",
        json!({"user": "alice", "source": "script", "note": "fixed"}),
    )
    .await;
    accepted(status, &body);
    assert_eq!(app.alerts().await[0]["status"], "resolved");

    // Acknowledge by id (Rouse's alert id; `id` is Opsgenie's default type).
    post(
        &app,
        "/v2/alerts",
        json!({"message": "CPU hot", "alias": "cpu"}),
    )
    .await;
    let id = app.alerts().await[0]["id"].as_i64().unwrap();
    let (status, body) = post(
        &app,
        &format!("/v2/alerts/{id}/acknowledge"),
        json!({"user": "bob"}),
    )
    .await;
    accepted(status, &body);
    let cpu = app
        .alerts()
        .await
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap();
    assert_eq!(cpu["status"], "acknowledged");
    assert_eq!(cpu["acknowledged_by"], "bob");

    // Heartbeats ping with GET or POST.
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let (status, body) = send(
            &app,
            method,
            "/v2/heartbeats/nightly-backup/ping",
            Some(&genie()),
            None,
        )
        .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["result"], "PONG - Heartbeat received");
    }
    app.stop().await;
}
both_backends!(the_alert_api_creates_closes_and_acknowledges);

async fn errors_come_in_opsgenie_shapes(db: &TestDb) {
    let app = TestApp::spawn(db, |_| {}).await;
    let body = json!({"message": "x"}).to_string();
    for auth in [
        None,
        Some("GenieKey wrong-key-0123456789"),
        Some("Bearer x"),
    ] {
        let (status, answer) = send(
            &app,
            reqwest::Method::POST,
            "/v2/alerts",
            auth,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 401, "{answer}");
        assert!(answer["message"]
            .as_str()
            .unwrap()
            .starts_with("Could not authenticate"));
        assert!(answer["requestId"].is_string() && answer["took"].is_number());
    }
    let (status, answer) = post(&app, "/v2/alerts", json!({"alias": "no-message"})).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["errors"]["message"], "Message can not be empty.");
    let (status, answer) = post(
        &app,
        "/v2/alerts",
        json!({"message": "m", "priority": "P9"}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let (status, answer) = post(&app, "/v2/alerts/x/close?identifierType=name", json!({})).await;
    assert_eq!(status, 422, "{answer}");
    let (status, answer) = post(&app, "/v2/alerts/999/close", json!({})).await;
    assert_eq!(status, 404, "{answer}");
    assert!(app.alerts().await.is_empty(), "nothing was stored");
    app.stop().await;
}
both_backends!(errors_come_in_opsgenie_shapes);

/// The bodies Alertmanager 0.25 sent, replayed with their paths and headers.
async fn captured_alertmanager_requests_open_and_close_one_grouped_alert(db: &TestDb) {
    let app = TestApp::spawn(db, |_| {}).await;
    for name in ["am-0.25-create-grouped", "am-0.25-close"] {
        let meta: Value =
            serde_json::from_slice(&fixture(&format!("opsgenie/{name}.meta.json"))).unwrap();
        let body = String::from_utf8(fixture(&format!("opsgenie/{name}.json"))).unwrap();
        let auth = meta["headers"]["authorization"].as_str().unwrap();
        let path = meta["path"].as_str().unwrap();
        let (status, answer) =
            send(&app, reqwest::Method::POST, path, Some(auth), Some(body)).await;
        accepted(status, &answer);
    }
    let alerts = app.alerts().await;
    assert_eq!(alerts.len(), 1, "one Opsgenie alert per Alertmanager group");
    assert_eq!(alerts[0]["summary"], "[FIRING:2] DiskFull (critical)");
    assert_eq!(alerts[0]["severity"], "critical");
    assert_eq!(alerts[0]["status"], "resolved");
    assert_eq!(alerts[0]["labels"]["alertname"], "DiskFull");
    app.stop().await;
}
both_backends!(captured_alertmanager_requests_open_and_close_one_grouped_alert);

/// Debian's `prometheus-alertmanager`, or `None` (skipped loudly; fails under CI).
fn alertmanager_binary(test: &str) -> Option<String> {
    for name in ["prometheus-alertmanager", "alertmanager"] {
        let found = Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return Some(name.to_owned());
        }
    }
    missing(
        test,
        "Alertmanager (Debian package prometheus-alertmanager)",
    )
}

struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_alertmanager(binary: &str, rouse: &str) -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
route:
  receiver: rouse
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: rouse
    opsgenie_configs:
      - api_key: {PAYMENTS_KEY}
        api_url: {rouse}/
        priority: '{{{{ if eq .CommonLabels.severity "critical" }}}}P1{{{{ else }}}}P3{{{{ end }}}}'
        send_resolved: true
"#
    );
    std::fs::write(dir.path().join("am.yml"), config).unwrap();
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!(
            "--config.file={}",
            dir.path().join("am.yml").display()
        ))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start alertmanager");
    Alertmanager {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

fn am_alert(instance: &str, ends_at: Option<&str>) -> Value {
    let mut a = json!({
        "labels": {"alertname": "DiskFull", "instance": instance, "severity": "critical"},
        "annotations": {"summary": format!("Disk full on {instance}")},
        "startsAt": "2026-01-01T00:00:00Z",
    });
    if let Some(end) = ends_at {
        a["endsAt"] = json!(end);
    }
    a
}

async fn a_real_alertmanager_opsgenie_receiver_pages_rouse() {
    let test = "a_real_alertmanager_opsgenie_receiver_pages_rouse";
    let Some(binary) = alertmanager_binary(test) else {
        return;
    };
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let am = start_alertmanager(&binary, &app.base);
    let client = reqwest::Client::new();
    eventually("alertmanager is ready", || async {
        client
            .get(format!("{}/-/ready", am.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let push = |alerts: Value| {
        let client = client.clone();
        let url = format!("{}/api/v2/alerts", am.url);
        async move {
            let r = client.post(url).json(&alerts).send().await.unwrap();
            assert!(
                r.status().is_success(),
                "alertmanager refused: {}",
                r.status()
            );
        }
    };
    // Two alerts of one group: one Opsgenie alert.
    push(json!([am_alert("db-1", None), am_alert("db-2", None)])).await;
    eventually("the group reached Rouse", || async {
        !app.alerts().await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts = app.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["severity"], "critical");
    assert!(alerts[0]["summary"].as_str().unwrap().contains("DiskFull"));

    // Resolved in Alertmanager: it closes the alert by alias.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    push(json!([
        am_alert("db-1", Some(&now)),
        am_alert("db-2", Some(&now))
    ]))
    .await;
    eventually("Alertmanager closed it", || async {
        app.alerts().await[0]["status"] == "resolved"
    })
    .await;
    drop(am);
    app.stop().await;
}

#[tokio::test]
async fn real_alertmanager() {
    a_real_alertmanager_opsgenie_receiver_pages_rouse().await;
}
