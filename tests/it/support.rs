//! Test harness: fresh databases on both backends and the whole server on port 0.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rouse::config::Config;
use rouse::store::{self, Store};
use tokio::sync::oneshot;

/// A database that exists only for one test.
pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("rouse.db").display());
        TestDb::Sqlite { _dir: dir, url }
    }

    /// A fresh PostgreSQL database on the server named by `ROUSE_TEST_DATABASE_URL`,
    /// or `None` (with a loud note) when that is unset outside CI.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("ROUSE_TEST_DATABASE_URL") else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI is set but ROUSE_TEST_DATABASE_URL is not: PostgreSQL tests must run in CI"
                );
            }
            eprintln!("SKIPPED {test} on PostgreSQL: ROUSE_TEST_DATABASE_URL is not set");
            return None;
        };
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rouse_t_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros() % 1_000_000
        );
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at ROUSE_TEST_DATABASE_URL is unreachable: {e}")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = replace_database(&admin_url, &name);
        Some(TestDb::Postgres {
            admin_url,
            name,
            url,
        })
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        let store = store::open(self.url(), 4).await.expect("open store");
        store.migrate().await.expect("migrate");
        store
    }

    pub async fn drop_db(self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
        {
            if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await;
                admin.close().await;
            }
        }
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs `body` against SQLite and, when available, PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = $crate::support::TestDb::sqlite();
                super::$name(&db).await;
                db.drop_db().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) =
                    $crate::support::TestDb::postgres(concat!(module_path!(), "::postgres")).await
                else {
                    return;
                };
                super::$name(&db).await;
                db.drop_db().await;
            }
        }
    };
}

/// The whole server, in this process, on an ephemeral port.
pub struct TestApp {
    pub base: String,
    /// The rotations folder the server watches; tests may edit it.
    pub rotations: tempfile::TempDir,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), rouse::RunError>>>,
}

impl TestApp {
    pub async fn spawn(db: &TestDb, adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_with_catalog(db, TEST_CATALOG, adjust).await
    }

    /// The server with its own on-call configuration; `public_url` is set to
    /// the server's own address so provider callbacks come back to it.
    pub async fn spawn_with_catalog(
        db: &TestDb,
        catalog: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        Self::spawn_with_clock(db, catalog, Arc::new(rouse::clock::SystemClock), adjust).await
    }

    /// [`TestApp::spawn_with_catalog`] on a clock the test controls.
    pub async fn spawn_with_clock(
        db: &TestDb,
        catalog: &str,
        clock: Arc<dyn rouse::clock::Clock>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let rotations = tempfile::tempdir().expect("temp dir");
        std::fs::write(rotations.path().join("oncall.yaml"), catalog).expect("write catalog");
        let mut config = Config::default();
        config.rotations_dir = rotations.path().to_owned();
        config.rotations_poll = std::time::Duration::from_millis(100);
        config.admin_token = Some(rouse::config::Secret::new(ADMIN_TOKEN));
        config.database_url = rouse::config::Secret::new(db.url());
        config.database_max_connections = 4;
        config.shutdown_grace = std::time::Duration::from_secs(5);
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        config.public_url = base.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(rouse::run_with_clock(
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
            clock,
        ));
        let app = TestApp {
            base,
            rotations,
            http: reqwest::Client::new(),
            stop: Some(stop),
            handle: Some(handle),
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.http.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the server did not answer /healthz within 5 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs a body with a content type; returns status and JSON answer.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("answer is not JSON ({status}): {text:?}"));
        (status, json)
    }

    /// GETs with the admin token.
    pub async fn admin_get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON answer"))
    }

    /// The open and resolved alerts, newest first, via the admin API.
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.admin_get("/v1/alerts?limit=500").await;
        assert_eq!(status, 200, "{body}");
        body["alerts"].as_array().cloned().unwrap_or_default()
    }

    /// Stops the server the way SIGTERM does and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task panicked")
                .expect("server returned an error");
        }
    }
}

#[test]
fn database_name_is_replaced_in_urls() {
    assert_eq!(
        replace_database("postgres://u@127.0.0.1:5432/test", "x"),
        "postgres://u@127.0.0.1:5432/x"
    );
    assert_eq!(
        replace_database("postgres://127.0.0.1/test?sslmode=disable", "x"),
        "postgres://127.0.0.1/x?sslmode=disable"
    );
    assert_eq!(replace_database("postgres://h", "x"), "postgres://h/x");
}

/// Integration keys of the test catalog.
pub const PAYMENTS_KEY: &str = "payments-test-key-0123456789";
pub const SEARCH_KEY: &str = "search-test-key-0123456789";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

/// A small, valid on-call configuration: two services, one policy.
pub const TEST_CATALOG: &str = r#"
people:
  - id: alice
    name: Alice
    timezone: Europe/Berlin
    contact: { sms: "+4915100000001", voice: "+4915100000001" }
  - id: bob
    name: Bob
    timezone: America/New_York
    contact: { sms: "+12125550002", voice: "+12125550002" }
rotations:
  - id: weekly
    timezone: Europe/Berlin
    participants: [alice, bob]
    shift: 1w
    handoff: "09:00"
    start: 2026-01-05
schedules:
  - id: primary
    timezone: Europe/Berlin
    layers:
      - rotation: weekly
policies:
  - id: default
    repeat: until_ack
    voice_repeat_every: 5m
    steps:
      - delay: 0m
        targets: [{ schedule: primary }]
        channels: [sms]
      - delay: 5m
        targets: [{ schedule: primary }]
        channels: [voice]
services:
  - id: payments
    policy: default
    integrations:
      - name: prometheus
        key: payments-test-key-0123456789
    routes:
      - match: { severity: warning }
        urgency: low
  - id: search
    policy: default
    integrations:
      - name: grafana
        key: search-test-key-0123456789
"#;

/// A folder holding [`TEST_CATALOG`] as `oncall.yaml`.
pub fn test_rotations() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("oncall.yaml"), TEST_CATALOG).expect("write catalog");
    dir
}

/// Reads a file from `tests/fixtures/`.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Polls `check` until it holds or 20 s pass: for effects that happen in the
/// background (a reload). Not a timing assertion: only an upper bound on waiting.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
