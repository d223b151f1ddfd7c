//! `/metrics` as Prometheus scrapes it: the `rouse` executable after real
//! traffic, its answer linted by `promtool check metrics` (the Prometheus
//! project's own checker), the new series present with the values the
//! traffic implies, and open-alert gauges that are right after a restart.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::peers::{free_port, missing};
use crate::support::{eventually, TestDb, ADMIN_TOKEN, PAYMENTS_KEY};

/// `rouse serve` as a child process, its stderr kept line by line.
pub struct Served {
    child: Child,
    pub base: String,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
}

impl Served {
    /// Starts the binary on `db` with the test catalogue in `rotations` and
    /// waits until `/readyz` says ready.
    pub async fn start(db_url: &str, rotations: &std::path::Path, env: &[(&str, &str)]) -> Served {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rouse"));
        for (key, _) in std::env::vars() {
            if key.starts_with("ROUSE_") {
                cmd.env_remove(key);
            }
        }
        let base = format!("http://127.0.0.1:{port}");
        cmd.arg("serve")
            .env("ROUSE_LISTEN", format!("127.0.0.1:{port}"))
            .env("ROUSE_DATABASE_URL", db_url)
            .env("ROUSE_ROTATIONS_DIR", rotations)
            .env("ROUSE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("ROUSE_PUBLIC_URL", &base)
            .envs(env.iter().copied())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start rouse");
        let stderr = child.stderr.take().expect("stderr piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let served = Served {
            child,
            base,
            lines,
            http: reqwest::Client::new(),
        };
        let http = served.http.clone();
        let url = served.url("/readyz");
        eventually("rouse answers /readyz", || {
            let (http, url) = (http.clone(), url.clone());
            async move { matches!(http.get(url).send().await, Ok(r) if r.status() == 200) }
        })
        .await;
        served
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn trigger(&self, key: &str) -> serde_json::Value {
        let body = serde_json::json!({"action": "trigger", "dedup_key": key,
                                      "summary": format!("{key} is down"), "severity": "critical"});
        let r = self
            .http
            .post(self.url("/v1/events"))
            .header("x-rouse-key", PAYMENTS_KEY)
            .json(&body)
            .send()
            .await
            .expect("post event");
        assert_eq!(r.status(), 202);
        r.json().await.expect("JSON answer")
    }

    pub async fn metrics(&self) -> String {
        let r = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(r.status(), 200);
        r.text().await.expect("body")
    }

    /// SIGTERM, and waits for exit 0.
    pub fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("wait for rouse");
        assert_eq!(exit.code(), Some(0), "rouse must exit 0 after SIGTERM");
        // The reader thread ends with the pipe; give it the last lines.
        std::thread::sleep(std::time::Duration::from_millis(100));
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every sample line as `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| {
        let near: Vec<&String> = samples
            .keys()
            .filter(|k| k.starts_with(series.split('{').next().unwrap_or(series)))
            .collect();
        panic!("/metrics has no {series}; series of that name: {near:#?}")
    })
}

/// `promtool check metrics` reads the exposition on stdin and prints every
/// lint problem; it must print none and exit 0.
fn promtool_check(text: &str) -> Option<()> {
    let promtool = ["/usr/bin/promtool", "promtool"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok());
    let Some(promtool) = promtool else {
        return missing("metrics::promtool", "promtool (Debian package prometheus)");
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics found problems ({}):\n{said}\n--- exposition ---\n{text}",
        out.status
    );
    Some(())
}

async fn scrape_after_traffic(db: &TestDb) {
    let rotations = crate::support::test_rotations();
    let served = Served::start(db.url(), rotations.path(), &[]).await;
    for key in ["db-1", "db-2", "db-3"] {
        served.trigger(key).await;
    }
    let duplicate = served.trigger("db-1").await;
    assert_eq!(duplicate["outcome"], "deduplicated");
    let acked = served.trigger("db-3").await;
    let r = served
        .http
        .post(served.url(&format!("/v1/alerts/{}/acknowledge", acked["alert_id"])))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"by": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The first step (SMS, to the console channel without Twilio) is sent
    // by the engine in the background.
    eventually("a notification is recorded in /metrics", || async {
        served
            .metrics()
            .await
            .contains("rouse_notification_delivery_duration_seconds_count")
    })
    .await;

    let text = served.metrics().await;
    promtool_check(&text);
    let s = samples(&text);
    assert_eq!(
        value(
            &s,
            r#"rouse_alerts_open{service="payments",state="triggered"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            r#"rouse_alerts_open{service="payments",state="acknowledged"}"#
        ),
        1.0
    );
    // A configured service with nothing open has its series, at 0.
    assert_eq!(
        value(
            &s,
            r#"rouse_alerts_open{service="search",state="triggered"}"#
        ),
        0.0
    );
    assert_eq!(
        value(&s, r#"rouse_catalog_reloads_total{result="rejected"}"#),
        0.0
    );
    assert!(
        value(
            &s,
            r#"rouse_group_commit_batch_items_count{writer="ingest"}"#
        ) >= 1.0
    );
    // Five events were committed, however they were batched.
    assert_eq!(
        value(&s, r#"rouse_group_commit_batch_items_sum{writer="ingest"}"#),
        5.0
    );
    assert!(
        value(
            &s,
            r#"rouse_db_query_duration_seconds_count{query="ingest"}"#
        ) >= 1.0
    );
    let inf = s
        .iter()
        .find(|(k, _)| {
            k.starts_with("rouse_db_query_duration_seconds_bucket{")
                && k.contains(r#"query="ingest""#)
                && k.contains(r#"le="+Inf""#)
        })
        .map(|(_, v)| *v);
    assert!(inf.is_some_and(|v| v >= 1.0), "no +Inf bucket: {text}");
    let notified: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("rouse_notifications_total{") && k.contains("outcome="))
        .map(|(_, v)| v)
        .sum();
    assert!(notified >= 1.0, "no notification outcome counted: {text}");
    let pools: Vec<&String> = s
        .keys()
        .filter(|k| k.starts_with("rouse_db_pool_max_connections{"))
        .collect();
    assert!(!pools.is_empty(), "no pool series: {text}");
    for pool in pools {
        let name = pool.replace("rouse_db_pool_max_connections", "rouse_db_pool_connections");
        let idle = pool.replace(
            "rouse_db_pool_max_connections",
            "rouse_db_pool_idle_connections",
        );
        let (max, size, idle) = (value(&s, pool), value(&s, &name), value(&s, &idle));
        assert!(
            max >= 1.0 && size <= max && idle <= size,
            "{pool}: max {max}, size {size}, idle {idle}"
        );
    }
    served.stop();

    // Counted from the store, so a restarted server knows what is open.
    let again = Served::start(db.url(), rotations.path(), &[]).await;
    let s = samples(&again.metrics().await);
    assert_eq!(
        value(
            &s,
            r#"rouse_alerts_open{service="payments",state="triggered"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            r#"rouse_alerts_open{service="payments",state="acknowledged"}"#
        ),
        1.0
    );
    // Its last acknowledged alert resolved, the series drops to 0 (it is
    // not left at its last figure).
    let r = again
        .http
        .post(again.url(&format!("/v1/alerts/{}/resolve", acked["alert_id"])))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"by": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s = samples(&again.metrics().await);
    assert_eq!(
        value(
            &s,
            r#"rouse_alerts_open{service="payments",state="acknowledged"}"#
        ),
        0.0
    );
    assert_eq!(
        value(
            &s,
            r#"rouse_alerts_open{service="payments",state="triggered"}"#
        ),
        2.0
    );
    again.stop();
}

crate::both_backends!(scrape_after_traffic);

/// A rejected edit of the rotations folder counts as a reload failure.
#[tokio::test]
async fn a_rejected_reload_is_counted() {
    let db = TestDb::sqlite();
    let rotations = crate::support::test_rotations();
    let served = Served::start(
        db.url(),
        rotations.path(),
        &[("ROUSE_ROTATIONS_POLL", "100ms")],
    )
    .await;
    std::fs::write(
        rotations.path().join("oncall.yaml"),
        "services: [{ id: x, policy: nowhere }]\n",
    )
    .unwrap();
    eventually("the rejected reload is counted", || async {
        let s = samples(&served.metrics().await);
        s.get(r#"rouse_catalog_reloads_total{result="rejected"}"#)
            .is_some_and(|v| *v >= 1.0)
            && s.get("rouse_catalog_valid") == Some(&0.0)
    })
    .await;
    promtool_check(&served.metrics().await);
    served.stop();
}
