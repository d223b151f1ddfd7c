//! Real peers for the chat and email tests: loopback capture servers that
//! answer as Slack, Teams, Discord and Mattermost do; Slack's own Block Kit
//! validator (`slack_sdk`); an aiosmtpd SMTP server; one Synapse homeserver
//! shared by the Matrix tests.
//!
//! The Python peers live in a venv made by `tests/peers/install.sh`
//! (`ROUSE_PEERS_VENV`, default `/tmp/rouse-peers-venv`). A test whose peer is
//! missing prints `SKIPPED …` and passes — except under `CI`, where a missing
//! peer fails the test, so CI cannot go green by skipping.

#![allow(dead_code)] // each test module uses a different part

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::TimeZone;
use rouse::alert::{AlertStatus, Link, Severity, Urgency};
use rouse::channel::{Notification, Outcome, Recipient};

/// Debian's Chromium with npm playwright-core in `tests/peers`, or skip (fail
/// under `CI`).
pub fn chromium(test: &str) -> Option<PathBuf> {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if !path.exists() {
        return missing(test, "Chromium (Debian package chromium)");
    }
    if !peers_dir().join("node_modules/playwright-core").exists() {
        return missing(test, "npm playwright-core in tests/peers");
    }
    Some(path)
}

/// Runs the playwright script `script` of `tests/peers` in `chromium` with
/// `args`, and returns the one JSON object it prints; a failed run fails the
/// test with everything the script printed.
pub async fn run_browser(chromium: &Path, script: &str, args: Vec<String>) -> serde_json::Value {
    let (chromium, script) = (chromium.to_owned(), peers_dir().join(script));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .args(&args)
            .env("CHROMIUM", &chromium)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// `tests/peers/`: the peers' scripts and their install script.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

pub fn venv() -> PathBuf {
    std::env::var_os("ROUSE_PEERS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/rouse-peers-venv"))
}

/// The venv's python if it can import `module`; otherwise skip (or fail in CI).
pub fn python_with(test: &str, module: &str) -> Option<PathBuf> {
    let python = venv().join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return Some(python);
    }
    missing(
        test,
        &format!("python module {module} in {}", venv().display()),
    )
}

/// A peer is missing: fail under CI, skip loudly otherwise.
pub fn missing<T>(test: &str, what: &str) -> Option<T> {
    let msg = format!("SKIPPED {test}: {what} not available (run tests/peers/install.sh)");
    if std::env::var_os("CI").is_some() {
        panic!("{msg} — CI must have every peer");
    }
    eprintln!("{msg}");
    None
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// An address where nothing listens: connection refused.
pub fn refused_url(path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", free_port())
}

fn wait_for_port(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The notification most tests send: alert 42, critical, paging alice and bob.
pub fn notification(status: AlertStatus) -> Notification {
    Notification {
        idempotency_key: "42/1/alice/chat/1".into(),
        alert_id: 42,
        service_id: "payments".into(),
        summary: "disk full on db-1 <@everyone> & more".into(),
        severity: Severity::Critical,
        urgency: Urgency::High,
        status,
        links: vec![Link::new(
            "https://grafana.example/d/disk",
            "Disk dashboard",
        )],
        ack_url: Some("https://rouse.example/ack/t0k3n".into()),
        reply_code: None,
        action_url: None,
        paged: vec!["alice".into(), "bob".into()],
        recipient: Recipient::Room {
            address: "C123".into(),
        },
        attempt: 1,
        created_at: chrono::Utc
            .timestamp_opt(1_700_000_000, 0)
            .single()
            .unwrap_or_default(),
    }
}

/// A client like `rouse::channel::http::client()` but with a short timeout, so
/// the timeout tests do not wait ten seconds.
pub fn quick_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

pub fn is_retry(o: &Outcome) -> bool {
    matches!(o, Outcome::Retry { .. })
}

// ---------------------------------------------------------------- capture --

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Option<Duration>,
}

impl Canned {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: None,
        }
    }
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self::new(status, body.to_string()).header("content-type", "application/json")
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
}

/// One request as the capture server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct CaptureState {
    replies: Mutex<Vec<Canned>>,
    seen: Mutex<Vec<Recorded>>,
}

/// An HTTP server on 127.0.0.1:0 answering with scripted replies in order
/// (the last one repeats) and recording every request.
pub struct Capture {
    pub addr: SocketAddr,
    state: Arc<CaptureState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Capture {
    pub async fn start(replies: Vec<Canned>) -> Capture {
        let state = Arc::new(CaptureState {
            replies: Mutex::new(replies),
            seen: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Capture {
            addr,
            state,
            stop: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The same server reached with `https://`: it speaks plain HTTP, so the
    /// TLS handshake fails the way a misconfigured endpoint does.
    pub fn tls_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    pub fn only(&self) -> Recorded {
        let all = self.requests();
        assert_eq!(all.len(), 1, "expected exactly one request: {all:?}");
        all[0].clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn answer(
    State(state): State<Arc<CaptureState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Ok(mut seen) = state.seen.lock() {
        seen.push(Recorded {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers,
            body: body.to_vec(),
        });
    }
    let canned = state.replies.lock().ok().and_then(|mut r| {
        if r.len() > 1 {
            Some(r.remove(0))
        } else {
            r.first().cloned()
        }
    });
    let Some(canned) = canned else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(d) = canned.delay {
        tokio::time::sleep(d).await;
    }
    let mut response = (
        StatusCode::from_u16(canned.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        canned.body,
    )
        .into_response();
    for (name, value) in canned.headers {
        if let Ok(v) = value.parse() {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

// ------------------------------------------------------------------ slack --

/// Runs Slack's own Block Kit models (slack_sdk) over a recorded body.
/// `None` when skipped; panics with the validator's message when invalid.
pub fn validate_slack_blocks(test: &str, body: &serde_json::Value) -> Option<()> {
    let (ok, message) = slack_sdk_verdict(test, body)?;
    assert!(ok, "slack_sdk rejected the blocks: {message}\n{body:#}");
    Some(())
}

/// slack_sdk's verdict on a body: (valid, what the validator printed).
pub fn slack_sdk_verdict(test: &str, body: &serde_json::Value) -> Option<(bool, String)> {
    let python = python_with(test, "slack_sdk")?;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = dir.path().join("body.json");
    std::fs::write(&file, body.to_string()).unwrap_or_else(|e| panic!("write: {e}"));
    let out = Command::new(python)
        .arg(peers_dir().join("validate_blocks.py"))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("validate_blocks.py: {e}"));
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

// ------------------------------------------------------------------- smtp --

/// aiosmtpd on a free loopback port, storing each message as NNNN.eml + .json.
pub struct SmtpPeer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl SmtpPeer {
    pub fn start(test: &str, auth: Option<(&str, &str)>) -> Option<SmtpPeer> {
        let python = python_with(test, "aiosmtpd")?;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = free_port();
        let mut cmd = Command::new(python);
        cmd.arg(peers_dir().join("smtp_capture.py"))
            .arg(dir.path())
            .args(["--port", &port.to_string(), "--max-seconds", "300"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("smtp_capture.py: {e}"));
        let peer = SmtpPeer { port, dir, child };
        assert!(
            wait_for_port(port, Duration::from_secs(20)),
            "SMTP capture did not listen on {port}"
        );
        Some(peer)
    }

    /// Captured messages in arrival order: (raw .eml, envelope JSON).
    pub fn messages(&self) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        for i in 1.. {
            let base = self.dir.path().join(format!("{i:04}"));
            let (Ok(eml), Ok(env)) = (
                std::fs::read_to_string(base.with_extension("eml")),
                std::fs::read_to_string(base.with_extension("json")),
            ) else {
                break;
            };
            out.push((eml, serde_json::from_str(&env).unwrap_or_default()));
        }
        out
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- synapse --

/// The shared homeserver: started once per test process, stopped by its
/// watchdog script when this process exits.
pub struct Synapse {
    pub base: String,
    child: Mutex<Child>,
}

static SYNAPSE: OnceLock<Option<Synapse>> = OnceLock::new();

pub fn synapse(test: &str) -> Option<&'static Synapse> {
    let venv_ok = SYNAPSE.get_or_init(start_synapse);
    match venv_ok {
        Some(s) => Some(s),
        None => missing(test, "Synapse (matrix-synapse in the peers venv)"),
    }
}

fn start_synapse() -> Option<Synapse> {
    let venv = venv();
    let importable = Command::new(venv.join("bin/python"))
        .args(["-c", "import synapse"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !importable {
        return None;
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("rouse-synapse-{}-{port}", std::process::id()));
    let child = Command::new("bash")
        .arg(peers_dir().join("synapse.sh"))
        .arg(&dir)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .env("ROUSE_PEERS_VENV", &venv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("synapse.sh: {e}"));
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while !health_ok(port) {
        if start.elapsed() > Duration::from_secs(120) {
            let log = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
            panic!("Synapse did not become healthy on {port} in 120 s:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for user in ["pager", "oncall"] {
        let out = Command::new(venv.join("bin/register_new_matrix_user"))
            .args(["-u", user, "-p", &format!("{user}pass"), "--no-admin"])
            .args(["-k", "test-shared-secret", &base])
            .output()
            .unwrap_or_else(|e| panic!("register_new_matrix_user: {e}"));
        assert!(
            out.status.success(),
            "register {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "synapse up at {base} in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    Some(Synapse {
        base,
        child: Mutex::new(child),
    })
}

/// `GET /health` answered 200, with a blocking socket (no runtime needed).
fn health_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
}

/// `X-Slack-Signature` for `body` at `timestamp`, computed by Slack's own SDK
/// (`slack_sdk.signature.SignatureVerifier`), so Rouse's verifier is checked
/// against Slack's code rather than against itself.
pub fn slack_sdk_signature(test: &str, secret: &str, timestamp: i64, body: &str) -> Option<String> {
    use std::io::Write;
    let python = python_with(test, "slack_sdk")?;
    let mut child = Command::new(python)
        .arg(peers_dir().join("slack_sign.py"))
        .arg(secret)
        .arg(timestamp.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("slack_sign.py: {e}"));
    child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(body.as_bytes()))
        .transpose()
        .unwrap_or_else(|e| panic!("write body: {e}"));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("slack_sign.py: {e}"));
    assert!(out.status.success(), "slack_sign.py failed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("X-Slack-Signature: "))
        .map(|s| s.trim().to_owned())
}
