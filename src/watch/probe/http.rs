//! The HTTP probe: does an endpoint answer with the expected status (and
//! body)? For an `https` URL the certificate is first read with the TLS
//! probe, so a wrong-name or expired certificate is reported as what it is
//! instead of as an opaque request error. Also Rouse's own liveness ping.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode, Url};
use rustls::RootCertStore;
use serde_json::json;

use super::tls::{self, ConnectProblem};
use crate::watch::cert::{self, CertFacts};
use crate::watch::spec::{HttpSpec, PulseSpec};
use crate::watch::{CheckFailure, CheckResult, Finding, Level, Verdict};

/// How much of a body is read to look for `body_contains`.
const BODY_LIMIT: usize = 1024 * 1024;
/// How much of a body a summary quotes.
const EXCERPT_CHARS: usize = 120;

/// Two verifying clients over the system roots: one follows redirects, one
/// does not. A check whose spec names a `ca_file` gets its own pair.
#[derive(Debug, Clone)]
pub struct HttpClients {
    follow: reqwest::Client,
    no_follow: reqwest::Client,
}

impl HttpClients {
    /// Clients trusting the system roots.
    pub fn new() -> Result<HttpClients, String> {
        HttpClients::with_roots(tls::system_roots())
    }

    fn with_roots(roots: Arc<RootCertStore>) -> Result<HttpClients, String> {
        Ok(HttpClients {
            follow: build(roots.clone(), Policy::limited(10))?,
            no_follow: build(roots, Policy::none())?,
        })
    }

    fn pick(&self, follow_redirects: bool) -> &reqwest::Client {
        if follow_redirects {
            &self.follow
        } else {
            &self.no_follow
        }
    }
}

fn build(roots: Arc<RootCertStore>, redirect: Policy) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls::client_config(roots)?)
        .redirect(redirect)
        .user_agent(concat!("rouse-watch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// What came back from one request.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Vec<u8>,
    elapsed: Duration,
}

/// An `http` watcher's run. All of it (certificate read, request, body)
/// stays within `timeout`.
pub async fn check(
    spec: &HttpSpec,
    client: &HttpClients,
    now: DateTime<Utc>,
    timeout: Duration,
) -> CheckResult {
    let started = Instant::now();
    let url = Url::parse(&spec.url)
        .map_err(|e| CheckFailure::new(format!("invalid url {}: {e}", spec.url)))?;
    let cert = match read_cert(spec, &url, timeout).await {
        Ok(cert) => cert,
        Err(Outcome::Failure(failure)) => return Err(failure),
        Err(Outcome::Verdict(verdict)) => return Ok(verdict),
    };
    let clients = clients_for(spec, client).await?;
    let left = timeout.saturating_sub(started.elapsed());
    let result = request(spec, clients.pick(spec.follow_redirects), left).await;
    Ok(verdict(spec, cert, result, now, timeout))
}

/// The certificate an `https` URL's server presented.
struct Cert {
    facts: CertFacts,
    host: String,
    port: u16,
}

/// A check that ended before the request.
enum Outcome {
    Failure(CheckFailure),
    Verdict(Verdict),
}

/// The certificate of an `https` URL, or the verdict when the TLS
/// connection itself fails: the request would fail the same way, and one
/// `unreachable` finding says it better than two.
async fn read_cert(spec: &HttpSpec, url: &Url, timeout: Duration) -> Result<Option<Cert>, Outcome> {
    if url.scheme() != "https" {
        return Ok(None);
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let ca_file = spec.cert.ca_file.as_deref();
    match tls::inspect(&host, port, &host, ca_file, timeout).await {
        Ok(facts) => Ok(Some(Cert { facts, host, port })),
        Err(ConnectProblem::Config(reason)) => Err(Outcome::Failure(CheckFailure::new(reason))),
        Err(problem) => Err(Outcome::Verdict(tls::unreachable_verdict(
            &host, port, &problem, timeout,
        ))),
    }
}

async fn clients_for<'a>(
    spec: &HttpSpec,
    shared: &'a HttpClients,
) -> Result<Cow<'a, HttpClients>, CheckFailure> {
    let Some(ca_file) = spec.cert.ca_file.as_deref() else {
        return Ok(Cow::Borrowed(shared));
    };
    let roots = tls::trust_roots(Some(ca_file))
        .await
        .map_err(CheckFailure::new)?;
    HttpClients::with_roots(roots)
        .map(Cow::Owned)
        .map_err(CheckFailure::new)
}

async fn request(
    spec: &HttpSpec,
    client: &reqwest::Client,
    timeout: Duration,
) -> Result<Answer, reqwest::Error> {
    let method = Method::from_bytes(spec.method.as_bytes()).unwrap_or(Method::GET);
    let started = Instant::now();
    let mut response = client
        .request(method, &spec.url)
        .timeout(timeout)
        .send()
        .await?;
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(BODY_LIMIT);
    let elapsed = started.elapsed();
    Ok(Answer {
        status,
        location,
        body,
        elapsed,
    })
}

fn verdict(
    spec: &HttpSpec,
    cert: Option<Cert>,
    result: Result<Answer, reqwest::Error>,
    now: DateTime<Utc>,
    timeout: Duration,
) -> Verdict {
    let mut findings = Vec::new();
    let mut status = Vec::new();
    if let Some(c) = &cert {
        findings.extend(cert::findings(&c.facts, &c.host, c.port, &spec.cert, now));
        status.push(cert::status_line(&c.facts, now));
    }
    // A request that failed on a certificate the findings already describe
    // needs no second, vaguer finding.
    let cert_fails_request = cert
        .as_ref()
        .is_some_and(|c| c.facts.verify_error.is_some());
    let (line, problem, response) = match &result {
        Ok(answer) => (
            answer_line(answer),
            judge(spec, answer),
            answer_facts(answer),
        ),
        Err(e) => {
            let what = transport_text(e, timeout);
            let problem = (!cert_fails_request).then(|| what.clone());
            (what.clone(), problem, json!({ "error": what }))
        }
    };
    if let Some(what) = problem {
        findings.push(http_finding(spec, what, &response));
    }
    status.insert(0, line);
    let certificate = cert.map(|c| serde_json::to_value(c.facts).unwrap_or_default());
    Verdict {
        findings,
        status: status.join("; "),
        facts: json!({ "url": spec.url, "response": response, "certificate": certificate }),
    }
}

fn http_finding(spec: &HttpSpec, what: String, facts: &serde_json::Value) -> Finding {
    Finding {
        code: "http".to_owned(),
        level: Level::Critical,
        // A 5xx or a timeout can be a deploy in progress.
        transient: true,
        summary: format!("{}: {what}", spec.url),
        details: json!({
            "url": spec.url,
            "method": spec.method,
            "expect_status": [spec.expect_status.0, spec.expect_status.1],
            "body_contains": spec.body_contains,
            "response": facts,
        }),
    }
}

/// `200 OK in 42 ms`.
fn answer_line(answer: &Answer) -> String {
    format!(
        "{} in {} ms",
        status_text(answer.status),
        answer.elapsed.as_millis()
    )
}

fn answer_facts(answer: &Answer) -> serde_json::Value {
    json!({
        "status": answer.status.as_u16(),
        "location": answer.location,
        "elapsed_ms": u64::try_from(answer.elapsed.as_millis()).unwrap_or(u64::MAX),
        "body_bytes_read": answer.body.len(),
    })
}

/// What is wrong with an answer, if anything.
fn judge(spec: &HttpSpec, answer: &Answer) -> Option<String> {
    let (low, high) = spec.expect_status;
    let code = answer.status.as_u16();
    if code < low || code > high {
        let to = match &answer.location {
            Some(location) if answer.status.is_redirection() => format!(" to {location}"),
            _ => String::new(),
        };
        return Some(format!(
            "answered {}{to} (expected {low}–{high}){}",
            status_text(answer.status),
            excerpt_note(&answer.body)
        ));
    }
    let needle = spec.body_contains.as_deref()?;
    if contains(&answer.body, needle.as_bytes()) {
        return None;
    }
    Some(format!(
        "answered {} but the body lacks {needle:?}{}",
        status_text(answer.status),
        excerpt_note(&answer.body)
    ))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// ` — body starts "…"`, or nothing for an empty body.
fn excerpt_note(body: &[u8]) -> String {
    let text = excerpt(body);
    if text.is_empty() {
        String::new()
    } else {
        format!(" — body starts \"{text}\"")
    }
}

/// The body's start as one printable line: control characters and runs of
/// whitespace become one space, cut at [`EXCERPT_CHARS`].
fn excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(EXCERPT_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let line = words.join(" ");
    if line.chars().count() <= EXCERPT_CHARS {
        return line;
    }
    let cut: String = line.chars().take(EXCERPT_CHARS).collect();
    format!("{}…", cut.trim_end())
}

/// A request that got no answer, in words: the innermost cause (reqwest's
/// own text repeats the URL, which may carry a token).
fn transport_text(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    let cause = innermost(e);
    if e.is_connect() {
        format!("cannot connect: {cause}")
    } else if e.is_body() || e.is_decode() {
        format!("the response broke off: {cause}")
    } else {
        format!("request failed: {cause}")
    }
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Rouse's own liveness ping to an outside dead man's switch: any 2xx is
/// success. Errors name only the host, since ping URLs embed their secret.
pub async fn pulse(
    spec: &PulseSpec,
    client: &HttpClients,
    timeout: Duration,
) -> Result<(), String> {
    let host = Url::parse(&spec.url)
        .map_err(|e| format!("invalid pulse url: {e}"))?
        .host_str()
        .unwrap_or_default()
        .to_owned();
    let method = Method::from_bytes(spec.method.as_bytes()).unwrap_or(Method::GET);
    let response = client
        .follow
        .request(method, &spec.url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("pulse to {host}: {}", transport_text(&e, timeout)))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "pulse to {host}: answered {}",
            status_text(response.status())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_one_printable_line_cut_at_its_limit() {
        assert_eq!(
            excerpt(b"  upstream\r\n connect\terror\x07 "),
            "upstream connect error"
        );
        let long = "x".repeat(500);
        let cut = excerpt(long.as_bytes());
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt(&[0xff, 0xfe, b'o', b'k']), "\u{fffd}\u{fffd}ok");
    }

    #[test]
    fn contains_finds_bytes_anywhere() {
        assert!(contains(b"hello world", b"o w"));
        assert!(!contains(b"hello", b"world"));
        assert!(contains(b"", b""));
    }
}
