//! The TLS and HTTP probes against real servers on 127.0.0.1: rustls servers
//! presenting certificates from a test CA made with rcgen (healthy, expiring,
//! expired, wrong name, self-signed, untrusted), TCP servers that are not
//! TLS at all or never answer, a refused port, and an axum server for HTTP.
//! Validity is relative to the real clock, since `now` is passed through.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::routing::get;
use chrono::{TimeDelta, Utc};
use rouse::watch::probe::http::{self, HttpClients};
use rouse::watch::probe::tls::{self, ConnectProblem};
use rouse::watch::spec::{CertPolicy, HttpSpec, PulseSpec, TlsSpec};
use rouse::watch::{Finding, Level, Verdict};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::tls_peer::{Identity, TestCa};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A rustls server presenting `identity`; each connection that completes
/// the handshake gets a minimal HTTP/1.1 `200 OK` answer.
async fn serve_tls(identity: Identity) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // The probe hangs up right after the handshake; that is fine.
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    answer_ok(&mut tls).await;
                }
            });
        }
    });
    port
}

async fn answer_ok(stream: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin)) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let answer = "HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nhealthy";
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A TCP server that reads the ClientHello and answers with plain HTTP.
async fn serve_garbage() -> u16 {
    serve_tcp(|mut stream| async move {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await
}

/// A TCP server that accepts and never says anything.
async fn serve_silence() -> u16 {
    serve_tcp(|stream| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    })
    .await
}

async fn serve_tcp<F, Fut>(handle: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    port
}

/// A port nothing listens on (bound, then released).
async fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn policy(ca_file: Option<PathBuf>, warn_days: i64, critical_days: i64) -> CertPolicy {
    CertPolicy {
        warn: TimeDelta::days(warn_days),
        critical: TimeDelta::days(critical_days),
        ca_file,
    }
}

fn tls_spec(port: u16, server_name: &str, cert: CertPolicy) -> TlsSpec {
    TlsSpec {
        host: "127.0.0.1".to_owned(),
        port,
        server_name: server_name.to_owned(),
        cert,
    }
}

async fn tls_check(spec: &TlsSpec) -> Verdict {
    tls::check(spec, Utc::now(), TIMEOUT).await.unwrap()
}

fn codes(verdict: &Verdict) -> Vec<(&str, Level)> {
    verdict
        .findings
        .iter()
        .map(|f| (f.code.as_str(), f.level))
        .collect()
}

fn only<'a>(verdict: &'a Verdict, code: &str) -> &'a Finding {
    assert_eq!(verdict.findings.len(), 1, "{:#?}", verdict.findings);
    assert_eq!(verdict.findings[0].code, code, "{:#?}", verdict.findings);
    &verdict.findings[0]
}

fn unknown_issuer() -> String {
    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer).to_string()
}

#[tokio::test]
async fn a_healthy_certificate_from_a_trusted_ca_has_no_finding() {
    let ca = TestCa::new("Rouse Test CA");
    let leaf = ca.leaf(
        &["api.example.test"],
        -TimeDelta::days(1),
        TimeDelta::days(90),
    );
    let port = serve_tls(leaf).await;
    let verdict = tls_check(&tls_spec(
        port,
        "api.example.test",
        policy(ca.path(), 21, 7),
    ))
    .await;
    assert!(verdict.findings.is_empty(), "{:#?}", verdict.findings);
    assert!(
        verdict
            .status
            .starts_with("certificate for api.example.test, issuer Rouse Test CA, valid until "),
        "{}",
        verdict.status
    );
    assert!(
        verdict.status.ends_with("(in 90 days)"),
        "{}",
        verdict.status
    );
    assert_eq!(verdict.facts["verify_error"], serde_json::Value::Null);
    assert_eq!(verdict.facts["chain_len"], 1);
}

#[tokio::test]
async fn a_certificate_expiring_in_three_days_is_critical_or_a_warning_per_thresholds() {
    let ca = TestCa::new("Rouse Test CA");
    let leaf = ca.leaf(
        &["api.example.test"],
        -TimeDelta::days(60),
        TimeDelta::days(3),
    );
    let port = serve_tls(leaf).await;
    let critical = tls_check(&tls_spec(
        port,
        "api.example.test",
        policy(ca.path(), 21, 7),
    ))
    .await;
    assert_eq!(codes(&critical), [("cert_expiry", Level::Critical)]);
    let finding = &critical.findings[0];
    assert!(!finding.transient);
    assert!(
        finding.summary.starts_with("api.example.test:")
            && finding.summary.contains("certificate expires ")
            && finding
                .summary
                .ends_with("(in 3 days), issuer Rouse Test CA — renew it"),
        "{}",
        finding.summary
    );
    let warning = tls_check(&tls_spec(
        port,
        "api.example.test",
        policy(ca.path(), 21, 1),
    ))
    .await;
    assert_eq!(codes(&warning), [("cert_expiry", Level::Warning)]);
}

#[tokio::test]
async fn an_expired_certificate_is_a_validity_finding_alone() {
    let ca = TestCa::new("Rouse Test CA");
    let leaf = ca.leaf(
        &["api.example.test"],
        -TimeDelta::days(90),
        -TimeDelta::days(2),
    );
    let port = serve_tls(leaf).await;
    let verdict = tls_check(&tls_spec(
        port,
        "api.example.test",
        policy(ca.path(), 21, 7),
    ))
    .await;
    let finding = only(&verdict, "cert_validity");
    assert_eq!(finding.level, Level::Critical);
    assert!(
        finding.summary.contains("certificate EXPIRED on ")
            && finding.summary.contains("(2 days ago)"),
        "{}",
        finding.summary
    );
    let error = verdict.facts["verify_error"].as_str().unwrap();
    assert!(error.contains("certificate expired"), "{error}");
}

#[tokio::test]
async fn a_wrong_name_certificate_names_both_hosts() {
    let ca = TestCa::new("Rouse Test CA");
    let leaf = ca.leaf(
        &["parking.registrar.example"],
        -TimeDelta::days(1),
        TimeDelta::days(90),
    );
    let port = serve_tls(leaf).await;
    let verdict = tls_check(&tls_spec(
        port,
        "shop.example.test",
        policy(ca.path(), 21, 7),
    ))
    .await;
    let finding = only(&verdict, "cert_name");
    assert_eq!(finding.level, Level::Critical);
    assert!(!finding.transient);
    assert_eq!(
        finding.summary,
        format!(
            "shop.example.test:{port}: certificate is for parking.registrar.example, not \
             shop.example.test (ERR_TLS_CERT_ALTNAME_INVALID) — check the domain's registration and DNS"
        )
    );
    let error = finding.details["verify_error"].as_str().unwrap();
    assert!(error.contains("not valid for name"), "{error}");
}

#[tokio::test]
async fn a_self_signed_leaf_is_a_chain_finding_with_the_exact_error() {
    let ca = TestCa::new("Rouse Test CA");
    let port = serve_tls(Identity::self_signed(&["api.example.test"])).await;
    let verdict = tls_check(&tls_spec(
        port,
        "api.example.test",
        policy(ca.path(), 21, 7),
    ))
    .await;
    let finding = only(&verdict, "cert_chain");
    assert_eq!(finding.level, Level::Critical);
    assert_eq!(finding.details["verify_error"], unknown_issuer());
    assert!(
        finding
            .summary
            .contains(&format!("does not verify: {}", unknown_issuer())),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn a_healthy_certificate_from_an_untrusted_ca_is_an_unknown_issuer() {
    let ca = TestCa::new("Rouse Test CA");
    let other = TestCa::new("Some Other CA");
    let leaf = ca.leaf(
        &["api.example.test"],
        -TimeDelta::days(1),
        TimeDelta::days(90),
    );
    let port = serve_tls(leaf).await;
    let verdict = tls_check(&tls_spec(
        port,
        "api.example.test",
        policy(other.path(), 21, 7),
    ))
    .await;
    let finding = only(&verdict, "cert_chain");
    assert_eq!(finding.details["verify_error"], unknown_issuer());
    assert!(
        finding.summary.contains("issuer Rouse Test CA"),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn something_other_than_tls_is_an_unreachable_handshake_failure() {
    let port = serve_garbage().await;
    let problem = tls::inspect("127.0.0.1", port, "api.example.test", None, TIMEOUT)
        .await
        .unwrap_err();
    let ConnectProblem::Handshake(text) = &problem else {
        panic!("{problem:?}");
    };
    assert!(text.contains("corrupt message"), "{text}");
    let verdict = tls_check(&tls_spec(port, "api.example.test", policy(None, 21, 7))).await;
    let finding = only(&verdict, "unreachable");
    assert_eq!(finding.level, Level::Critical);
    assert!(finding.transient);
    assert!(
        finding
            .summary
            .starts_with(&format!("127.0.0.1:{port}: TLS handshake failed: "))
            && finding
                .summary
                .ends_with("(is something other than TLS listening?)"),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn a_peer_that_never_answers_is_a_timeout() {
    let port = serve_silence().await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let problem = tls::inspect("127.0.0.1", port, "api.example.test", None, timeout)
        .await
        .unwrap_err();
    assert_eq!(problem, ConnectProblem::Timeout);
    assert!(started.elapsed() < timeout * 10, "{:?}", started.elapsed());
    let spec = tls_spec(port, "api.example.test", policy(None, 21, 7));
    let verdict = tls::check(&spec, Utc::now(), timeout).await.unwrap();
    let finding = only(&verdict, "unreachable");
    assert!(finding.transient);
    assert!(
        finding.summary.contains("no answer within 300ms"),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn a_refused_port_is_unreachable() {
    let port = refused_port().await;
    let verdict = tls_check(&tls_spec(port, "api.example.test", policy(None, 21, 7))).await;
    let finding = only(&verdict, "unreachable");
    assert!(finding.transient);
    assert!(
        finding
            .summary
            .starts_with(&format!("127.0.0.1:{port}: connection refused")),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn an_unreadable_ca_file_is_a_check_failure_not_a_finding() {
    let spec = tls_spec(
        443,
        "api.example.test",
        policy(Some("/nonexistent/ca.pem".into()), 21, 7),
    );
    let failure = tls::check(&spec, Utc::now(), TIMEOUT).await.unwrap_err();
    assert!(
        failure.reason.contains("cannot read ca_file"),
        "{}",
        failure.reason
    );
}

// ---- HTTP ----

async fn serve_http() -> String {
    let long_body = format!(
        "upstream connect error or disconnect/reset before headers.\r\n\treset reason: {}",
        "connection failure ".repeat(20)
    );
    let app = axum::Router::new()
        .route("/ok", get(|| async { "all good" }))
        .route(
            "/down",
            get(move || async move { (StatusCode::SERVICE_UNAVAILABLE, long_body) }),
        )
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]) }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn http_spec(url: String, expect: (u16, u16), follow: bool) -> HttpSpec {
    HttpSpec {
        url,
        method: "GET".to_owned(),
        expect_status: expect,
        body_contains: None,
        follow_redirects: follow,
        cert: policy(None, 21, 7),
    }
}

async fn http_check(spec: &HttpSpec) -> Verdict {
    let clients = HttpClients::new().unwrap();
    http::check(spec, &clients, Utc::now(), TIMEOUT)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_200_is_healthy_with_its_timing() {
    let base = serve_http().await;
    let verdict = http_check(&http_spec(format!("{base}/ok"), (200, 299), false)).await;
    assert!(verdict.findings.is_empty(), "{:#?}", verdict.findings);
    assert!(
        verdict.status.starts_with("200 OK in ") && verdict.status.ends_with(" ms"),
        "{}",
        verdict.status
    );
}

#[tokio::test]
async fn a_503_is_a_transient_http_finding_quoting_the_body() {
    let base = serve_http().await;
    let url = format!("{base}/down");
    let verdict = http_check(&http_spec(url.clone(), (200, 299), false)).await;
    let finding = only(&verdict, "http");
    assert_eq!(finding.level, Level::Critical);
    assert!(finding.transient);
    let expected = format!(
        "{url}: answered 503 Service Unavailable (expected 200–299) — body starts \
         \"upstream connect error or disconnect/reset before headers. reset reason: connection"
    );
    assert!(
        finding.summary.starts_with(&expected),
        "{}",
        finding.summary
    );
    assert!(finding.summary.ends_with("…\""), "{}", finding.summary);
    assert!(
        finding.summary.chars().count() < url.len() + 200,
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn a_missing_body_text_is_an_http_finding() {
    let base = serve_http().await;
    let mut spec = http_spec(format!("{base}/ok"), (200, 299), false);
    spec.body_contains = Some("healthy".to_owned());
    let verdict = http_check(&spec).await;
    let finding = only(&verdict, "http");
    assert!(
        finding
            .summary
            .ends_with("answered 200 OK but the body lacks \"healthy\" — body starts \"all good\""),
        "{}",
        finding.summary
    );
    spec.body_contains = Some("good".to_owned());
    assert!(http_check(&spec).await.findings.is_empty());
}

#[tokio::test]
async fn a_redirect_is_followed_only_when_asked() {
    let base = serve_http().await;
    let url = format!("{base}/redirect");
    let not_followed = http_check(&http_spec(url.clone(), (200, 299), false)).await;
    let finding = only(&not_followed, "http");
    assert!(
        finding
            .summary
            .contains("answered 302 Found to /ok (expected 200–299)"),
        "{}",
        finding.summary
    );
    let followed = http_check(&http_spec(url.clone(), (200, 299), true)).await;
    assert!(followed.findings.is_empty(), "{:#?}", followed.findings);
    let redirect_ok = http_check(&http_spec(url, (200, 399), false)).await;
    assert!(
        redirect_ok.findings.is_empty(),
        "{:#?}",
        redirect_ok.findings
    );
}

#[tokio::test]
async fn a_refused_http_port_is_an_http_finding() {
    let port = refused_port().await;
    let verdict = http_check(&http_spec(
        format!("http://127.0.0.1:{port}/"),
        (200, 299),
        false,
    ))
    .await;
    let finding = only(&verdict, "http");
    assert!(finding.transient);
    assert!(
        finding.summary.contains("cannot connect: "),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn https_over_a_trusted_private_ca_is_healthy() {
    let ca = TestCa::new("Rouse Test CA");
    let leaf = ca.leaf(&["localhost"], -TimeDelta::days(1), TimeDelta::days(90));
    let port = serve_tls(leaf).await;
    let mut spec = http_spec(
        format!("https://localhost:{port}/healthz"),
        (200, 299),
        false,
    );
    spec.cert = policy(ca.path(), 21, 7);
    spec.body_contains = Some("healthy".to_owned());
    let verdict = http_check(&spec).await;
    assert!(verdict.findings.is_empty(), "{:#?}", verdict.findings);
    assert!(
        verdict.status.starts_with("200 OK in ")
            && verdict
                .status
                .contains("; certificate for localhost, issuer Rouse Test CA"),
        "{}",
        verdict.status
    );
}

#[tokio::test]
async fn https_with_a_wrong_name_certificate_is_one_cert_name_finding() {
    let ca = TestCa::new("Rouse Test CA");
    let leaf = ca.leaf(
        &["parking.registrar.example"],
        -TimeDelta::days(1),
        TimeDelta::days(90),
    );
    let port = serve_tls(leaf).await;
    let mut spec = http_spec(
        format!("https://localhost:{port}/healthz"),
        (200, 299),
        false,
    );
    spec.cert = policy(ca.path(), 21, 7);
    let verdict = http_check(&spec).await;
    let finding = only(&verdict, "cert_name");
    assert!(
        finding
            .summary
            .contains("certificate is for parking.registrar.example, not localhost"),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn https_to_something_other_than_tls_is_one_unreachable_finding() {
    let port = serve_garbage().await;
    let verdict = http_check(&http_spec(
        format!("https://localhost:{port}/"),
        (200, 299),
        false,
    ))
    .await;
    let finding = only(&verdict, "unreachable");
    assert!(
        finding.summary.contains("TLS handshake failed"),
        "{}",
        finding.summary
    );
}

#[tokio::test]
async fn a_pulse_succeeds_on_2xx_and_hides_its_path_on_failure() {
    let base = serve_http().await;
    let clients = HttpClients::new().unwrap();
    let ok = PulseSpec {
        url: format!("{base}/ok"),
        method: "POST".to_owned(),
    };
    // POST to a GET-only route: 405, a failure.
    let error = http::pulse(&ok, &clients, TIMEOUT).await.unwrap_err();
    assert_eq!(error, "pulse to 127.0.0.1: answered 405 Method Not Allowed");
    let get_ok = PulseSpec {
        url: format!("{base}/ok"),
        method: "GET".to_owned(),
    };
    http::pulse(&get_ok, &clients, TIMEOUT).await.unwrap();
    let down = PulseSpec {
        url: format!("{base}/down?token=secret"),
        method: "GET".to_owned(),
    };
    let error = http::pulse(&down, &clients, TIMEOUT).await.unwrap_err();
    assert!(
        !error.contains("secret") && error.contains("503"),
        "{error}"
    );
}
