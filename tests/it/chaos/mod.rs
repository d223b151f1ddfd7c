//! Several `rouse serve` processes (the real binary, not tasks) on one
//! PostgreSQL database — the test's own — and one fake Twilio that records
//! every request with the instant it arrived.
//!
//! The harness starts, kills (`SIGKILL`) and stops (`SIGTERM`) replicas on
//! fixed ports, so a restarted replica comes back at the same address (its
//! `public_url`, which Twilio's `StatusCallback` carries, says which replica
//! sent a message). The checks read the database and the fake's record:
//! which steps fired when, which pages reached Twilio how often.

pub mod kill;
pub mod notify;
pub mod outage;
pub mod poison;
pub mod rolling;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::fake_twilio::{FakeTwilio, RecordedRequest};
use crate::support::{TestDb, ADMIN_TOKEN, PAYMENTS_KEY};

pub const SID: &str = "AC00000000000000000000000000000c4a";
pub const TOKEN: &str = "chaos-auth-token";
/// Shared by all replicas, as the README asks of replicas.
const SIGNING_KEY: &str = "chaos-signing-key-shared-by-every-replica-01";
/// The people a policy pages, one per step: each step's page goes to its own
/// number, so a page is known by (alert, number).
pub const NUMBERS: [&str; 3] = ["+15550001001", "+15550001002", "+15550001003"];

/// Three steps, the first `first` after the alert opens, the others `delay`
/// apart, each paging one person by SMS; no repeat.
pub fn catalog(first: &str, delay: &str) -> String {
    format!(
        r#"
people:
  - {{ id: p1, name: P1, timezone: UTC, contact: {{ sms: "{}" }} }}
  - {{ id: p2, name: P2, timezone: UTC, contact: {{ sms: "{}" }} }}
  - {{ id: p3, name: P3, timezone: UTC, contact: {{ sms: "{}" }} }}
policies:
  - id: chaos
    steps:
      - {{ delay: {first}, targets: [{{ person: p1 }}], channels: [sms] }}
      - {{ delay: {delay}, targets: [{{ person: p2 }}], channels: [sms] }}
      - {{ delay: {delay}, targets: [{{ person: p3 }}], channels: [sms] }}
services:
  - id: payments
    policy: chaos
    integrations: [{{ name: prometheus, key: {PAYMENTS_KEY} }}]
"#,
        NUMBERS[0], NUMBERS[1], NUMBERS[2]
    )
}

/// One `rouse serve` process slot: the same port across restarts.
pub struct Replica {
    pub port: u16,
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether any of this slot's processes logged a line containing `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// The replicas and what they share.
pub struct Cluster {
    pub db: TestDb,
    pub twilio: FakeTwilio,
    pub replicas: Vec<Replica>,
    /// Which replica was killed when.
    pub kills: Vec<(usize, SystemTime)>,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// One cluster at a time: three debug servers each already fill two
    /// cores, and two storms at once would mostly measure each other.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Cluster {
    /// `n` replicas on a fresh database, or `None` where PostgreSQL cannot be
    /// had (and CI is unset: [`TestDb::postgres`] fails the test under CI).
    pub async fn start(
        test: &str,
        n: usize,
        catalog: &str,
        env: &[(&str, &str)],
    ) -> Option<Cluster> {
        let turn = TURN.lock().await;
        let db = TestDb::postgres(test).await?;
        // Migrate once up front: replicas then all start on the same schema.
        db.open().await.close().await;
        let twilio = FakeTwilio::start(SID, TOKEN).await;
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("rotations")).expect("rotations dir");
        std::fs::write(dir.path().join("rotations/oncall.yaml"), catalog).expect("catalog");
        std::fs::write(
            dir.path().join("rouse.yaml"),
            format!(
                "channels:\n  twilio:\n    account_sid: {SID}\n    from: \"+15005550006\"\n    base_url: {}\n",
                twilio.base_url()
            ),
        )
        .expect("config");
        let mut cluster = Cluster {
            db,
            twilio,
            replicas: Vec::new(),
            kills: Vec::new(),
            dir,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            _turn: turn,
        };
        for _ in 0..n {
            cluster.replicas.push(Replica {
                port: crate::peers::free_port(),
                child: None,
                log: Arc::new(Mutex::new(Vec::new())),
            });
        }
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.ready(i).await;
        }
        Some(cluster)
    }

    /// Starts replica `i`'s process (not waiting for it to be ready).
    pub fn spawn(&mut self, i: usize) {
        let port = self.replicas[i].port;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rouse"));
        for (key, _) in std::env::vars() {
            if key.starts_with("ROUSE_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("--config")
            .arg(self.dir.path().join("rouse.yaml"))
            .arg("serve")
            .env("ROUSE_LISTEN", format!("127.0.0.1:{port}"))
            .env("ROUSE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("ROUSE_DATABASE_URL", self.db.url())
            .env("ROUSE_DATABASE_MAX_CONNECTIONS", "4")
            .env("ROUSE_ROTATIONS_DIR", self.dir.path().join("rotations"))
            .env("ROUSE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("ROUSE_SIGNING_KEY", SIGNING_KEY)
            .env("ROUSE_TWILIO_AUTH_TOKEN", TOKEN)
            // Every event opens its own alert and nothing is held back.
            .env("ROUSE_INTAKE_STORM_THRESHOLD", "100000")
            .env("ROUSE_INTAKE_BURST_PER_KEY", "100000")
            .env("ROUSE_INTAKE_RATE_PER_KEY", "100000")
            .env("ROUSE_PAGES_PER_NUMBER_PER_HOUR", "100000")
            .env("RUST_LOG", "info")
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn rouse");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = self.replicas[i].log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        self.replicas[i].child = Some(child);
    }

    /// Waits until replica `i` answers `/readyz`.
    pub async fn ready(&mut self, i: usize) {
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", self.replicas[i].base());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if matches!(http.get(&url).send().await, Ok(r) if r.status() == 200) {
                return;
            }
            assert!(
                self.replicas[i].is_running(),
                "replica {i} exited while starting: {:#?}",
                self.replicas[i].log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("replica {i} was not ready within 60 s");
    }

    /// `kill -9` replica `i` and reap it; records when.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            let at = SystemTime::now();
            let _ = child.kill();
            let _ = child.wait();
            self.kills.push((i, at));
        }
    }

    /// SIGTERM replica `i` and wait for it to exit 0.
    pub async fn terminate(&mut self, i: usize) {
        let Some(mut child) = self.replicas[i].child.take() else {
            return;
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
            .await
            .expect("join");
        assert_eq!(status.code(), Some(0), "replica {i} after SIGTERM");
    }

    /// Opens one alert (dedup key `key`), trying the replicas from `first`
    /// on until one answers 202: a replica being killed or restarted refuses
    /// or drops the request, and a retry with the same key lands on the
    /// same alert.
    pub async fn open(&self, http: &reqwest::Client, first: usize, key: &str) -> i64 {
        let body = serde_json::json!({"action": "trigger", "dedup_key": key,
                                      "summary": format!("chaos {key}"), "severity": "critical"});
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut i = first;
        while Instant::now() < deadline {
            let url = format!(
                "{}/v1/events",
                self.replicas[i % self.replicas.len()].base()
            );
            let answer = http
                .post(url)
                .header("x-rouse-key", PAYMENTS_KEY)
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            if let Ok(r) = answer {
                if r.status() == 202 {
                    let json: serde_json::Value = r.json().await.expect("JSON");
                    return json["alert_id"].as_i64().expect("alert_id");
                }
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no replica accepted {key} within 60 s");
    }

    /// Acknowledges alert `id` on some replica; returns when the answer came.
    pub async fn acknowledge(&self, http: &reqwest::Client, first: usize, id: i64) -> SystemTime {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut i = first;
        while Instant::now() < deadline {
            let url = format!(
                "{}/v1/alerts/{id}/acknowledge",
                self.replicas[i % self.replicas.len()].base()
            );
            let answer = http
                .post(url)
                .bearer_auth(ADMIN_TOKEN)
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            if matches!(answer, Ok(ref r) if r.status() == 200) {
                return SystemTime::now();
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no replica acknowledged #{id} within 60 s");
    }

    /// Waits (at most `limit`) until no escalation is active and no
    /// notification is waiting to be sent.
    pub async fn settled(&self, limit: Duration) {
        let pool = self.pool().await;
        let deadline = Instant::now() + limit;
        loop {
            let active: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM escalations WHERE state = 'active')
                      + (SELECT COUNT(*) FROM notifications WHERE status IN ('pending', 'retry'))",
            )
            .fetch_one(&pool)
            .await
            .expect("count open work");
            if active == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{active} escalations/notifications still open after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        pool.close().await;
    }

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(self.db.url())
            .await
            .expect("connect to the test database")
    }

    /// The SMS pages (not follow-ups) that reached Twilio, by (alert, number).
    pub fn pages(&self) -> BTreeMap<(i64, String), Vec<Sent>> {
        pages(&self.twilio.requests())
    }

    /// `rouse_delivery_unrecorded_seconds` from every running replica: the window
    /// between a provider's 2xx and the commit recording it.
    pub async fn windows(&mut self) -> Vec<String> {
        let http = reqwest::Client::new();
        let mut out = Vec::new();
        for i in 0..self.replicas.len() {
            if !self.replicas[i].is_running() {
                continue;
            }
            let Ok(r) = http
                .get(format!("{}/metrics", self.replicas[i].base()))
                .send()
                .await
            else {
                continue;
            };
            let text = r.text().await.unwrap_or_default();
            out.push(format!("replica {i}: {}", window_summary(&text)));
        }
        out
    }

    /// Stops every replica (SIGTERM) and drops the database.
    pub async fn finish(mut self) {
        for i in 0..self.replicas.len() {
            if self.replicas[i].is_running() {
                self.terminate(i).await;
            }
        }
        // `Drop` below keeps `db` from being moved out; swap in a stand-in.
        std::mem::replace(&mut self.db, TestDb::sqlite())
            .drop_db()
            .await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failed assertion must not leave servers running.
        for r in &mut self.replicas {
            if let Some(mut c) = r.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// One page as Twilio received it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: SystemTime,
    /// The port of the replica that sent it (from its `StatusCallback`).
    pub port: u16,
}

fn pages(requests: &[RecordedRequest]) -> BTreeMap<(i64, String), Vec<Sent>> {
    let alert = regex::Regex::new(r"#(\d+)").expect("regex");
    let mut out: BTreeMap<(i64, String), Vec<Sent>> = BTreeMap::new();
    for r in requests {
        if r.method != "POST" || !r.path.ends_with("/Messages.json") {
            continue;
        }
        let body = r.param("Body").unwrap_or_default();
        if body.contains("ACKNOWLEDGED") || body.contains("RESOLVED") {
            continue;
        }
        let to = r.param("To").unwrap_or_default().to_owned();
        let port = r
            .param("StatusCallback")
            .and_then(|u| u.strip_prefix("http://127.0.0.1:"))
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        // A bundle names several alerts, and "Reply 4a to ack #12" one again.
        let mut ids: Vec<i64> = alert
            .captures_iter(body)
            .filter_map(|c| c[1].parse().ok())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            out.entry((id, to.clone())).or_default().push(Sent {
                at: r.received_at,
                port,
            });
        }
    }
    out
}

/// When each step of each alert fired and when its page was recorded
/// delivered, from the database.
#[derive(Debug)]
pub struct Fired {
    pub opened: chrono::DateTime<chrono::Utc>,
    /// By firing number (1, 2, 3): (fired at, recorded at, status).
    pub steps: BTreeMap<
        i64,
        (
            chrono::DateTime<chrono::Utc>,
            chrono::DateTime<chrono::Utc>,
            String,
        ),
    >,
}

pub async fn fired(pool: &sqlx::PgPool) -> HashMap<i64, Fired> {
    use sqlx::Row;
    let mut out: HashMap<i64, Fired> = HashMap::new();
    for row in sqlx::query("SELECT id, created_at FROM alerts")
        .fetch_all(pool)
        .await
        .expect("alerts")
    {
        out.insert(
            row.get("id"),
            Fired {
                opened: row.get("created_at"),
                steps: BTreeMap::new(),
            },
        );
    }
    for row in sqlx::query(
        "SELECT alert_id, fired, created_at, updated_at, status FROM notifications
          WHERE NOT follow_up AND channel = 'sms'",
    )
    .fetch_all(pool)
    .await
    .expect("notifications")
    {
        let id: i64 = row.get("alert_id");
        if let Some(f) = out.get_mut(&id) {
            f.steps.insert(
                row.get("fired"),
                (
                    row.get("created_at"),
                    row.get("updated_at"),
                    row.get("status"),
                ),
            );
        }
    }
    out
}

/// A small deterministic generator, seeded per run and printed, so a failing
/// run's kill order can be replayed.
pub struct Dice(u64);

impl Dice {
    pub fn new() -> Dice {
        let seed = std::env::var("ROUSE_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("chaos: seed {seed} (ROUSE_CHAOS_SEED={seed} replays it)");
        Dice(seed | 1)
    }

    pub fn below(&mut self, n: usize) -> usize {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The delivery window's histogram in a scrape, as count, mean and the bucket
/// bounds that hold its median and its largest value.
fn window_summary(scrape: &str) -> String {
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let (mut sum, mut count) = (0.0, 0.0);
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("rouse_delivery_unrecorded_seconds_bucket{le=\"") {
            let le = rest.split('"').next().unwrap_or("");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            if let Some(n) = value(line) {
                buckets.push((le, n));
            }
        } else if line.starts_with("rouse_delivery_unrecorded_seconds_sum") {
            sum = value(line).unwrap_or(0.0);
        } else if line.starts_with("rouse_delivery_unrecorded_seconds_count") {
            count = value(line).unwrap_or(0.0);
        }
    }
    if count == 0.0 {
        return "no delivered pages".to_owned();
    }
    let bound = |share: f64| {
        buckets
            .iter()
            .find(|(_, n)| *n >= share * count)
            .map(|(le, _)| format!("{:.1} ms", le * 1000.0))
            .unwrap_or_else(|| "?".to_owned())
    };
    format!(
        "{count} pages, mean {:.1} ms, median <= {}, max <= {}",
        sum / count * 1000.0,
        bound(0.5),
        bound(1.0)
    )
}
