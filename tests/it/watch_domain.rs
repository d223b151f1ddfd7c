//! The domain watcher against a real HTTP server playing an RDAP registry
//! (and the IANA bootstrap), and real TCP servers playing WHOIS. Fixtures
//! are in `tests/fixtures/rdap/`, in the shapes real registries answer with.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::watch::domain::{self, NO_EXPIRY_STATUS};
use rouse::watch::probe::rdap::RdapClient;
use rouse::watch::spec::DomainSpec;
use rouse::watch::{Level, Verdict};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::support::fixture;

// ------------------------------------------------------------ fake RDAP

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type", "application/rdap+json".into())],
            body,
        }
    }

    fn status(status: u16, body: &[u8]) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/rdap+json".into())],
            body: body.to_vec(),
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }
}

struct Seen {
    path: String,
    at: Instant,
    accept: Option<String>,
}

#[derive(Default)]
struct FakeState {
    /// Per path, the answers still to give; the last one repeats.
    scripts: HashMap<String, VecDeque<Reply>>,
    seen: Vec<Seen>,
}

/// An RDAP registry on `127.0.0.1:0`: answers each path as told (404 with
/// the RFC 9083 error body when not told) and records every request.
struct FakeRdap {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRdap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeRdap {
    async fn start() -> FakeRdap {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let app_state = state.clone();
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let state = app_state.clone();
            async move { answer(&state, &uri, &headers) }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeRdap { addr, state, task }
    }

    /// The RDAP base URL `http://127.0.0.1:<port>/rdap/`.
    fn base(&self) -> String {
        format!("http://{}/rdap/", self.addr)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn script(&self, path: &str, replies: Vec<Reply>) {
        let mut state = self.state.lock().unwrap();
        state.scripts.insert(path.to_owned(), replies.into());
    }

    fn seen(&self, path: &str) -> Vec<(Instant, Option<String>)> {
        let state = self.state.lock().unwrap();
        let hits = state.seen.iter().filter(|s| s.path == path);
        hits.map(|s| (s.at, s.accept.clone())).collect()
    }

    fn paths(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.seen.iter().map(|s| s.path.clone()).collect()
    }
}

fn answer(state: &Mutex<FakeState>, uri: &Uri, headers: &HeaderMap) -> Response {
    let mut state = state.lock().unwrap();
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = uri.path().to_owned();
    state.seen.push(Seen {
        path: path.clone(),
        at: Instant::now(),
        accept,
    });
    let reply = match state.scripts.get_mut(&path) {
        Some(queue) if queue.len() > 1 => queue.pop_front(),
        Some(queue) => queue.front().cloned(),
        None => None,
    };
    let reply = reply.unwrap_or_else(|| Reply::status(404, &fixture("rdap/error_404.json")));
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

// ------------------------------------------------------------ fake WHOIS

/// A WHOIS server on `127.0.0.1:0` that answers every query with `text`
/// (or, with `None`, accepts and never answers). Returns its address and
/// the queries it received.
async fn whois_server(text: Option<String>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_whois(stream, text.clone(), seen.clone()));
        }
    });
    (addr, queries)
}

async fn serve_whois(
    stream: tokio::net::TcpStream,
    text: Option<String>,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    if stream.read_line(&mut line).await.is_err() {
        return;
    }
    seen.lock().unwrap().push(line);
    match text {
        Some(text) => {
            let _ = stream.get_mut().write_all(text.as_bytes()).await;
            let _ = stream.get_mut().shutdown().await;
        }
        None => tokio::time::sleep(Duration::from_secs(60)).await,
    }
}

// -------------------------------------------------------------- helpers

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

fn spec(domain: &str, rdap_url: Option<String>) -> DomainSpec {
    DomainSpec {
        domain: domain.to_owned(),
        warn: TimeDelta::days(30),
        critical: TimeDelta::days(7),
        rdap_url,
        whois: None,
        expect_nameservers: Vec::new(),
        expires: None,
    }
}

fn whois_spec(domain: &str, server: &str) -> DomainSpec {
    DomainSpec {
        whois: Some(server.to_owned()),
        ..spec(domain, None)
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// A client that never reaches a real bootstrap: tests set `rdap_url`.
fn client(bootstrap_url: &str, cache_file: Option<PathBuf>) -> RdapClient {
    RdapClient::new(
        http(),
        bootstrap_url,
        cache_file,
        Duration::from_millis(10),
        3,
        Duration::from_secs(5),
    )
    .with_request_timeout(Duration::from_secs(5))
    .with_iana_whois("127.0.0.1:1")
}

fn offline_client() -> RdapClient {
    client("http://127.0.0.1:1/dns.json", None)
}

/// A fixture with its expiration event moved to `expires`.
fn with_expiry(name: &str, expires: DateTime<Utc>) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(&fixture(name)).unwrap();
    for event in doc["events"].as_array_mut().unwrap() {
        if event["eventAction"] == "expiration" {
            event["eventDate"] = json!(expires.to_rfc3339());
        }
    }
    serde_json::to_vec(&doc).unwrap()
}

fn with_name(name: &str, ldh: &str) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(&fixture(name)).unwrap();
    doc["ldhName"] = json!(ldh);
    serde_json::to_vec(&doc).unwrap()
}

async fn check(fake: &FakeRdap, body: Vec<u8>, now: DateTime<Utc>) -> Verdict {
    fake.script("/rdap/domain/example.app", vec![Reply::json(body)]);
    let spec = spec("www.example.app", Some(fake.base()));
    offline_client().lookup(&spec, now).await.expect("verdict")
}

const APP_PATH: &str = "/rdap/domain/example.app";

// ---------------------------------------------------------------- RDAP

#[tokio::test]
async fn a_healthy_domain_has_no_finding() {
    let fake = FakeRdap::start().await;
    let v = check(
        &fake,
        fixture("rdap/domain_app_active.json"),
        utc(2023, 6, 1),
    )
    .await;
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert!(v.status.starts_with("expires 2024-01-11 ("), "{}", v.status);
    assert!(v.status.contains("registrar Example Registrar, Inc."));
    assert_eq!(
        v.facts["source"],
        format!("rdap {}domain/example.app", fake.base())
    );
    let seen = fake.seen(APP_PATH);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1.as_deref(), Some("application/rdap+json"));
}

#[tokio::test]
async fn expiring_in_ten_days_warns_and_within_seven_is_critical() {
    let fake = FakeRdap::start().await;
    let now = utc(2025, 3, 1);
    let body = with_expiry("rdap/domain_app_active.json", now + TimeDelta::days(10));
    let v = check(&fake, body, now).await;
    assert_eq!(v.findings.len(), 1, "{:?}", v.findings);
    let f = &v.findings[0];
    assert_eq!((f.code.as_str(), f.level), ("expiry", Level::Warning));
    assert_eq!(
        f.summary,
        "example.app: domain expires 2025-03-11 12:00 UTC (in 10 days) — renew it"
    );
    assert_eq!(f.details["domain"], "example.app");

    let body = with_expiry("rdap/domain_app_active.json", now + TimeDelta::days(5));
    let v = check(&fake, body, now).await;
    assert_eq!(v.findings[0].level, Level::Critical);
    assert!(v.findings[0].summary.contains("(in 5 days) — renew it now"));
}

#[tokio::test]
async fn client_hold_is_critical_though_the_date_looks_fine() {
    let fake = FakeRdap::start().await;
    let v = check(
        &fake,
        fixture("rdap/domain_app_expired_parked.json"),
        utc(2024, 1, 20),
    )
    .await;
    assert_eq!(v.findings.len(), 1, "{:?}", v.findings);
    let f = &v.findings[0];
    assert_eq!(
        (f.code.as_str(), f.level, f.transient),
        ("status", Level::Critical, false)
    );
    assert_eq!(
        f.summary,
        "example.app: domain on CLIENT HOLD at the registrar (expiry 2025-01-11) — renew it now"
    );
}

#[tokio::test]
async fn redemption_period_says_restore() {
    let fake = FakeRdap::start().await;
    let v = check(
        &fake,
        fixture("rdap/domain_app_redemption.json"),
        utc(2024, 2, 26),
    )
    .await;
    let status = v
        .findings
        .iter()
        .find(|f| f.code == "status")
        .expect("status");
    assert_eq!(status.level, Level::Critical);
    assert_eq!(
        status.summary,
        "example.app: domain in REDEMPTION PERIOD (expiry 2024-01-11) — restore it at the registrar now"
    );
}

#[tokio::test]
async fn a_renewal_clears_on_the_next_check() {
    let fake = FakeRdap::start().await;
    let now = utc(2024, 1, 12);
    let client = offline_client();
    let spec = spec("example.app", Some(fake.base()));
    fake.script(
        APP_PATH,
        vec![
            Reply::json(fixture("rdap/domain_app_active.json")),
            Reply::json(fixture("rdap/domain_app_renewed.json")),
        ],
    );
    let before = client.lookup(&spec, now).await.expect("verdict");
    assert_eq!(
        before.findings[0].summary,
        "example.app: domain EXPIRED on 2024-01-11 — renew it now"
    );
    let after = client.lookup(&spec, now).await.expect("verdict");
    assert!(after.findings.is_empty(), "{:?}", after.findings);
    assert!(
        after.status.starts_with("expires 2026-01-11"),
        "{}",
        after.status
    );
    let facts: domain::DomainFacts = serde_json::from_value(after.facts).unwrap();
    assert_eq!(domain::renewed_note(&facts), "renewed until 2026-01-11");
}

#[tokio::test]
async fn a_404_is_one_request_and_a_check_failure() {
    let fake = FakeRdap::start().await;
    let spec = spec("example.app", Some(fake.base()));
    let err = offline_client()
        .lookup(&spec, utc(2024, 1, 1))
        .await
        .unwrap_err();
    assert!(
        err.reason
            .starts_with("example.app: the registry has no record of this domain (RDAP 404"),
        "{}",
        err.reason
    );
    assert!(err.reason.contains("127.0.0.1"), "{}", err.reason);
    assert_eq!(fake.seen(APP_PATH).len(), 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured() {
    let fake = FakeRdap::start().await;
    fake.script(
        APP_PATH,
        vec![
            Reply::status(429, b"").header("retry-after", "1"),
            Reply::json(fixture("rdap/domain_app_renewed.json")),
        ],
    );
    let spec = spec("example.app", Some(fake.base()));
    let v = offline_client()
        .lookup(&spec, utc(2024, 6, 1))
        .await
        .expect("verdict");
    assert!(v.findings.is_empty());
    let seen = fake.seen(APP_PATH);
    assert_eq!(seen.len(), 2);
    assert!(seen[1].0.duration_since(seen[0].0) >= Duration::from_secs(1));
}

#[tokio::test]
async fn server_errors_fail_after_max_attempts() {
    let fake = FakeRdap::start().await;
    fake.script(APP_PATH, vec![Reply::status(500, b"oops")]);
    let spec = spec("example.app", Some(fake.base()));
    let err = offline_client()
        .lookup(&spec, utc(2024, 1, 1))
        .await
        .unwrap_err();
    assert_eq!(
        err.reason,
        "example.app: RDAP lookup at 127.0.0.1 failed after 3 attempts: HTTP 500 Internal Server Error"
    );
    assert_eq!(fake.seen(APP_PATH).len(), 3);
}

#[tokio::test]
async fn malformed_json_fails_after_max_attempts() {
    let fake = FakeRdap::start().await;
    fake.script(
        APP_PATH,
        vec![Reply::json(b"{\"objectClassName\": \"domain\", ".to_vec())],
    );
    let spec = spec("example.app", Some(fake.base()));
    let err = offline_client()
        .lookup(&spec, utc(2024, 1, 1))
        .await
        .unwrap_err();
    assert!(
        err.reason.starts_with(
            "example.app: RDAP lookup at 127.0.0.1 failed after 3 attempts: malformed RDAP JSON"
        ),
        "{}",
        err.reason
    );
    assert_eq!(fake.seen(APP_PATH).len(), 3);
}

#[tokio::test]
async fn a_com_br_subdomain_is_looked_up_as_its_registered_name() {
    let fake = FakeRdap::start().await;
    let path = "/rdap/domain/example.com.br";
    fake.script(
        path,
        vec![Reply::json(with_name(
            "rdap/domain_app_renewed.json",
            "example.com.br",
        ))],
    );
    let spec = spec("api.shop.example.com.br", Some(fake.base()));
    let v = offline_client()
        .lookup(&spec, utc(2024, 6, 1))
        .await
        .expect("verdict");
    assert!(v.findings.is_empty());
    assert_eq!(fake.paths(), [path]);
    assert_eq!(v.facts["name"], "example.com.br");
}

#[tokio::test]
async fn parked_nameservers_are_a_critical_finding() {
    let fake = FakeRdap::start().await;
    fake.script(
        APP_PATH,
        vec![Reply::json(fixture("rdap/domain_app_expired_parked.json"))],
    );
    let mut spec = spec("example.app", Some(fake.base()));
    spec.expect_nameservers = vec![
        "ns1.dns-host.example.".into(),
        "NS2.dns-host.example".into(),
    ];
    let v = offline_client()
        .lookup(&spec, utc(2024, 1, 20))
        .await
        .expect("verdict");
    let ns = v
        .findings
        .iter()
        .find(|f| f.code == "nameservers")
        .expect("nameservers");
    assert_eq!(ns.level, Level::Critical);
    assert!(ns.summary.contains("nameservers changed to ns1.parking.registrar.example, ns2.parking.registrar.example (expected ns1.dns-host.example, ns2.dns-host.example)"), "{}", ns.summary);
    assert_eq!(
        ns.details["nameservers"][0],
        "ns1.parking.registrar.example"
    );
}

// ------------------------------------------------------------ bootstrap

fn serve_bootstrap(fake: &FakeRdap) {
    let body = json!({
        "version": "1.0",
        "publication": "2026-11-20T18:00:00Z",
        "services": [
            [["app", "dev"], [fake.url("/rdap/")]],
            [["br"], [fake.url("/br/")]],
            [["com.br"], [fake.url("/combr/")]],
        ]
    });
    let body = serde_json::to_vec(&body).unwrap();
    fake.script(
        "/dns.json",
        vec![Reply::status(200, &body).header("content-type", "application/json")],
    );
    fake.script(
        APP_PATH,
        vec![Reply::json(fixture("rdap/domain_app_renewed.json"))],
    );
    let combr = with_name("rdap/domain_app_renewed.json", "example.com.br");
    fake.script("/combr/domain/example.com.br", vec![Reply::json(combr)]);
}

#[tokio::test]
async fn the_bootstrap_picks_the_base_and_is_cached_on_disk() {
    let fake = FakeRdap::start().await;
    serve_bootstrap(&fake);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("rdap").join("dns.json");
    let now = utc(2024, 6, 1);

    let first = client(&fake.url("/dns.json"), Some(cache.clone()));
    assert!(first.bootstrap_age().is_none());
    first
        .lookup(&spec("example.app", None), now)
        .await
        .expect("verdict");
    first
        .lookup(&spec("www.example.com.br", None), now)
        .await
        .expect("verdict");
    assert_eq!(
        fake.seen("/dns.json").len(),
        1,
        "fetched once, then from memory"
    );
    assert_eq!(
        fake.seen("/combr/domain/example.com.br").len(),
        1,
        "longest match wins"
    );
    assert!(first.bootstrap_age().expect("age") < TimeDelta::minutes(5));
    let stored: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert!(stored["fetched_at"].is_string());

    // A restart with IANA unreachable: the fresh cache file is enough.
    let second = client("http://127.0.0.1:1/dns.json", Some(cache.clone()));
    let v = second
        .lookup(&spec("example.app", None), now)
        .await
        .expect("verdict");
    assert!(v.findings.is_empty());
    assert_eq!(fake.seen(APP_PATH).len(), 2);
    assert_eq!(fake.seen("/dns.json").len(), 1);
}

#[tokio::test]
async fn a_stale_cache_still_beats_the_bundled_copy_when_the_fetch_fails() {
    let fake = FakeRdap::start().await;
    serve_bootstrap(&fake);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("dns.json");
    let now = utc(2024, 6, 1);
    client(&fake.url("/dns.json"), Some(cache.clone()))
        .lookup(&spec("example.app", None), now)
        .await
        .expect("verdict");
    let mut stored: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    stored["fetched_at"] = json!((Utc::now() - TimeDelta::days(30)).to_rfc3339());
    std::fs::write(&cache, serde_json::to_vec(&stored).unwrap()).unwrap();

    let stale = client("http://127.0.0.1:1/dns.json", Some(cache));
    stale
        .lookup(&spec("example.app", None), now)
        .await
        .expect("verdict");
    assert_eq!(fake.seen(APP_PATH).len(), 2);
    assert!(stale.bootstrap_age().expect("age") >= TimeDelta::days(29));
}

#[tokio::test]
async fn without_fetch_or_cache_the_bundled_copy_is_used() {
    let c = offline_client();
    // .zz is in no bootstrap, and the IANA WHOIS of these tests is closed.
    let err = c
        .lookup(&spec("example.zz", None), utc(2024, 6, 1))
        .await
        .unwrap_err();
    assert!(
        err.reason.starts_with("example.zz: no RDAP service for .zz, and asking 127.0.0.1:1 for its WHOIS server failed: cannot connect"),
        "{}",
        err.reason
    );
    assert!(
        c.bootstrap_age().is_some(),
        "the bundled snapshot is in use"
    );
}

// ---------------------------------------------------------------- WHOIS

#[tokio::test]
async fn whois_icann_format_reads_the_expiry() {
    let text = String::from_utf8(fixture("rdap/whois_com.txt")).unwrap();
    let (addr, queries) = whois_server(Some(text)).await;
    let v = offline_client()
        .lookup(&whois_spec("www.example.com", &addr), utc(2026, 12, 1))
        .await
        .expect("verdict");
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert!(
        v.status.starts_with("expires 2027-08-13 (in 254 days)"),
        "{}",
        v.status
    );
    assert_eq!(v.facts["source"], format!("whois {addr}"));
    assert_eq!(v.facts["statuses"][0], "client delete prohibited");
    assert_eq!(*queries.lock().unwrap(), ["example.com\r\n"]);
}

#[tokio::test]
async fn whois_denic_format_says_no_date_is_published() {
    let text = String::from_utf8(fixture("rdap/whois_de.txt")).unwrap();
    let (addr, _) = whois_server(Some(text)).await;
    let now = utc(2025, 2, 19);
    let mut spec = whois_spec("example.de", &addr);
    let v = offline_client().lookup(&spec, now).await.expect("verdict");
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert_eq!(v.status, NO_EXPIRY_STATUS);

    spec.expires = Some(now + TimeDelta::days(10));
    let v = offline_client().lookup(&spec, now).await.expect("verdict");
    assert_eq!(v.findings.len(), 1);
    assert_eq!(
        (v.findings[0].code.as_str(), v.findings[0].level),
        ("expiry", Level::Warning)
    );
    assert!(
        v.findings[0]
            .summary
            .contains("(in 10 days, date from the watcher's `expires`)"),
        "{}",
        v.findings[0].summary
    );
    assert!(v.status.starts_with("expires 2025-03-01"), "{}", v.status);
}

#[tokio::test]
async fn a_silent_whois_server_is_a_failure_within_the_timeout() {
    let (addr, _) = whois_server(None).await;
    let client = offline_client().with_request_timeout(Duration::from_millis(300));
    let err = client
        .lookup(&whois_spec("example.de", &addr), utc(2024, 1, 1))
        .await
        .unwrap_err();
    assert_eq!(
        err.reason,
        format!("example.de: WHOIS query to {addr} failed: no complete answer within 300ms")
    );
}

#[tokio::test]
async fn whois_follows_the_iana_referral() {
    let text = String::from_utf8(fixture("rdap/whois_com.txt")).unwrap();
    let (registry, queries) = whois_server(Some(text)).await;
    let iana_text =
        format!("% IANA WHOIS server\n\ndomain:       ZZ\n\nrefer:        {registry}\n");
    let (iana, iana_queries) = whois_server(Some(iana_text)).await;
    let client = offline_client().with_iana_whois(iana);
    let v = client
        .lookup(&spec("example.zz", None), utc(2026, 12, 1))
        .await
        .expect("verdict");
    assert!(v.status.starts_with("expires 2027-08-13"), "{}", v.status);
    assert_eq!(*iana_queries.lock().unwrap(), ["zz\r\n"]);
    assert_eq!(*queries.lock().unwrap(), ["example.zz\r\n"]);
}

#[tokio::test]
async fn whois_no_match_is_a_failure() {
    let (addr, _) = whois_server(Some("No match for \"EXAMPLE.COM\".\r\n".into())).await;
    let err = offline_client()
        .lookup(&whois_spec("example.com", &addr), utc(2024, 1, 1))
        .await
        .unwrap_err();
    assert_eq!(
        err.reason,
        format!("example.com: the registry has no record of this domain (WHOIS {addr})")
    );
}
