//! The domain probe: asks the registry's RDAP server (RFC 7480/9083) about a
//! domain, found through the IANA bootstrap (RFC 9224), and falls back to
//! WHOIS for registries without RDAP.
//!
//! Registries rate-limit and blip, so transient failures are retried with
//! exponential backoff (honouring `Retry-After`); a 404 is an answer, not a
//! blip. The bootstrap is refreshed at most weekly, survives restarts in a
//! cache file, and never makes a lookup fail: a stale copy or the bundled
//! snapshot stands in.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::{HeaderMap, ACCEPT, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::whois;
use crate::watch::domain::{self, Bootstrap, DomainFacts, MAX_RDAP_BODY};
use crate::watch::spec::DomainSpec;
use crate::watch::{CheckFailure, CheckResult};

pub const DEFAULT_BOOTSTRAP_URL: &str = "https://data.iana.org/rdap/dns.json";

/// IANA updates the file rarely; weekly is what RFC 9224 §8 suggests is fine.
const BOOTSTRAP_MAX_AGE: TimeDelta = TimeDelta::days(7);
/// After a failed bootstrap fetch, lookups use the fallback this long
/// before trying again, so a dead IANA is not asked on every lookup.
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(3600);
/// The live `dns.json` is ~50 KiB.
const MAX_BOOTSTRAP_BODY: usize = 4 << 20;

pub struct RdapClient {
    http: reqwest::Client,
    bootstrap_url: String,
    cache_file: Option<PathBuf>,
    retry_base: Duration,
    max_attempts: u32,
    max_retry_after: Duration,
    request_timeout: Duration,
    iana_whois: String,
    state: Mutex<BootState>,
    /// Held while refreshing, so concurrent lookups fetch the file once.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct BootState {
    current: Option<Arc<Bootstrap>>,
    /// When the current copy was fetched; `None` for the bundled snapshot.
    fetched_at: Option<DateTime<Utc>>,
    last_attempt: Option<Instant>,
    cache_read: bool,
}

/// The cache file: the raw bootstrap and when it was fetched.
#[derive(Serialize, Deserialize)]
struct CacheFile {
    fetched_at: DateTime<Utc>,
    url: String,
    bootstrap: serde_json::Value,
}

/// One failed attempt: whether another may help, and how long to wait first.
struct AttemptError {
    reason: String,
    retry: bool,
    wait: Option<Duration>,
}

impl AttemptError {
    fn retry(reason: impl Into<String>, wait: Option<Duration>) -> AttemptError {
        AttemptError {
            reason: reason.into(),
            retry: true,
            wait,
        }
    }

    fn fatal(reason: impl Into<String>) -> AttemptError {
        AttemptError {
            reason: reason.into(),
            retry: false,
            wait: None,
        }
    }
}

impl RdapClient {
    /// `http` should follow redirects (RDAP servers redirect, RFC 7480 §5.2).
    pub fn new(
        http: reqwest::Client,
        bootstrap_url: impl Into<String>,
        cache_file: Option<PathBuf>,
        retry_base: Duration,
        max_attempts: u32,
        max_retry_after: Duration,
    ) -> RdapClient {
        RdapClient {
            http,
            bootstrap_url: bootstrap_url.into(),
            cache_file,
            retry_base,
            max_attempts: max_attempts.max(1),
            max_retry_after,
            request_timeout: Duration::from_secs(10),
            iana_whois: whois::IANA_WHOIS.to_owned(),
            state: Mutex::new(BootState::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Per-request timeout for RDAP and bootstrap fetches, and each WHOIS
    /// query (default 10 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> RdapClient {
        self.request_timeout = timeout;
        self
    }

    /// The server asked for a TLD's WHOIS server (default `whois.iana.org:43`).
    pub fn with_iana_whois(mut self, server: impl Into<String>) -> RdapClient {
        self.iana_whois = server.into();
        self
    }

    /// How old the bootstrap in use is: since it was fetched, or for the
    /// bundled snapshot since its publication. `None` before first use.
    pub fn bootstrap_age(&self) -> Option<TimeDelta> {
        let state = self.state();
        let since = state
            .fetched_at
            .or_else(|| state.current.as_ref().and_then(|b| b.publication()))?;
        Some(Utc::now() - since)
    }

    /// Checks `spec.domain`'s registration.
    pub async fn lookup(&self, spec: &DomainSpec, now: DateTime<Utc>) -> CheckResult {
        let name = domain::registrable_domain(&spec.domain).ok_or_else(|| {
            CheckFailure::new(format!(
                "{}: not a registrable domain name (an IP address or a public suffix?)",
                spec.domain
            ))
        })?;
        if spec.whois.is_some() {
            return self.whois(spec, &name, now).await;
        }
        let base = match &spec.rdap_url {
            Some(url) => Some(url.clone()),
            None => self.bootstrap().await.base_url_for(&name),
        };
        let Some(base) = base else {
            return self.whois(spec, &name, now).await;
        };
        let slash = if base.ends_with('/') { "" } else { "/" };
        let url = format!("{base}{slash}domain/{name}");
        let mut facts = self.fetch_domain(&name, &url).await?;
        facts.source = format!("rdap {url}");
        Ok(domain::findings(&facts, spec, now))
    }

    async fn whois(&self, spec: &DomainSpec, name: &str, now: DateTime<Utc>) -> CheckResult {
        whois::lookup(spec, name, &self.iana_whois, self.request_timeout, now).await
    }

    // ------------------------------------------------------------ RDAP

    async fn fetch_domain(&self, name: &str, url: &str) -> Result<DomainFacts, CheckFailure> {
        let host = host_of(url);
        let mut attempt = 1;
        loop {
            let error = match self.attempt(name, url, &host).await {
                Ok(facts) => return Ok(facts),
                Err(error) => error,
            };
            if !error.retry {
                return Err(CheckFailure::new(error.reason));
            }
            if attempt >= self.max_attempts {
                return Err(CheckFailure::new(format!(
                    "{name}: RDAP lookup at {host} failed after {attempt} attempts: {}",
                    error.reason
                )));
            }
            let wait = error.wait.unwrap_or_else(|| self.backoff(attempt));
            tracing::debug!(domain = name, host, attempt, ?wait, reason = %error.reason, "RDAP lookup failed, retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// `retry_base`, doubling each attempt, never above `max_retry_after`.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.retry_base
            .saturating_mul(factor)
            .min(self.max_retry_after.max(self.retry_base))
    }

    async fn attempt(
        &self,
        name: &str,
        url: &str,
        host: &str,
    ) -> Result<DomainFacts, AttemptError> {
        let response = self
            .http
            .get(url)
            .header(ACCEPT, "application/rdap+json")
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| AttemptError::retry(self.describe(&e), None))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(AttemptError::fatal(format!(
                "{name}: the registry has no record of this domain (RDAP 404 from {host})"
            )));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let wait =
                retry_after(response.headers(), Utc::now()).map(|w| w.min(self.max_retry_after));
            return Err(AttemptError::retry(format!("HTTP {status}"), wait));
        }
        if !status.is_success() {
            return Err(AttemptError::fatal(format!(
                "{name}: RDAP server {host} refused the lookup: HTTP {status}"
            )));
        }
        let body = read_limited(response, MAX_RDAP_BODY)
            .await
            .map_err(|e| self.body_error(name, host, e))?;
        domain::parse_rdap(&body).map_err(|e| AttemptError::retry(e, None))
    }

    fn body_error(&self, name: &str, host: &str, error: BodyError) -> AttemptError {
        match error {
            BodyError::TooLarge => AttemptError::fatal(format!(
                "{name}: RDAP answer from {host} is larger than 1 MiB"
            )),
            BodyError::Read(e) => AttemptError::retry(self.describe(&e), None),
        }
    }

    /// A reqwest error in a few words, without the URL it repeats.
    fn describe(&self, error: &reqwest::Error) -> String {
        let cause = root_cause(error);
        if error.is_timeout() {
            format!(
                "timed out after {}",
                humantime::format_duration(self.request_timeout)
            )
        } else if error.is_connect() {
            format!("could not connect ({cause})")
        } else {
            format!("request failed ({cause})")
        }
    }

    // ------------------------------------------------------- bootstrap

    fn state(&self) -> MutexGuard<'_, BootState> {
        // The state is plain data; a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bootstrap to use now: fresh if possible, else whatever we have.
    async fn bootstrap(&self) -> Arc<Bootstrap> {
        if let Some(fresh) = self.fresh() {
            return fresh;
        }
        let _refreshing = self.refresh.lock().await;
        if !self.state().cache_read {
            self.read_cache().await;
        }
        if let Some(fresh) = self.fresh() {
            return fresh;
        }
        if self.may_fetch() {
            if let Some(fetched) = self.refresh_bootstrap().await {
                return fetched;
            }
        }
        self.fallback()
    }

    fn fresh(&self) -> Option<Arc<Bootstrap>> {
        let state = self.state();
        let fetched = state.fetched_at?;
        (Utc::now() - fetched < BOOTSTRAP_MAX_AGE)
            .then(|| state.current.clone())
            .flatten()
    }

    fn may_fetch(&self) -> bool {
        let mut state = self.state();
        let due = state
            .last_attempt
            .is_none_or(|at| at.elapsed() >= BOOTSTRAP_RETRY);
        if due {
            state.last_attempt = Some(Instant::now());
        }
        due
    }

    /// A stale fetched copy, else the bundled snapshot.
    fn fallback(&self) -> Arc<Bootstrap> {
        let mut state = self.state();
        let current = state
            .current
            .get_or_insert_with(|| Arc::new(domain::bundled()));
        current.clone()
    }

    async fn refresh_bootstrap(&self) -> Option<Arc<Bootstrap>> {
        let (bootstrap, raw) = match self.fetch_bootstrap().await {
            Ok(fetched) => fetched,
            Err(e) => {
                tracing::warn!(url = %self.bootstrap_url, error = %e, "RDAP bootstrap fetch failed; using the cached or bundled copy");
                return None;
            }
        };
        let fetched_at = Utc::now();
        let bootstrap = Arc::new(bootstrap);
        {
            let mut state = self.state();
            state.current = Some(bootstrap.clone());
            state.fetched_at = Some(fetched_at);
        }
        self.write_cache(fetched_at, raw).await;
        Some(bootstrap)
    }

    async fn fetch_bootstrap(&self) -> Result<(Bootstrap, serde_json::Value), String> {
        let response = self
            .http
            .get(&self.bootstrap_url)
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| self.describe(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body = read_limited(response, MAX_BOOTSTRAP_BODY)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => "bootstrap file larger than 4 MiB".to_owned(),
                BodyError::Read(e) => self.describe(&e),
            })?;
        let bootstrap = domain::parse_bootstrap(&body)?;
        if bootstrap.is_empty() {
            return Err("bootstrap file lists no services".to_owned());
        }
        let raw = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        Ok((bootstrap, raw))
    }

    async fn read_cache(&self) {
        self.state().cache_read = true;
        let Some(path) = &self.cache_file else { return };
        let bytes = match tokio::fs::read(path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the RDAP bootstrap cache");
                return;
            }
        };
        match parse_cache(&bytes) {
            Ok((bootstrap, fetched_at)) => {
                let mut state = self.state();
                state.current = Some(Arc::new(bootstrap));
                state.fetched_at = Some(fetched_at);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring the RDAP bootstrap cache")
            }
        }
    }

    async fn write_cache(&self, fetched_at: DateTime<Utc>, bootstrap: serde_json::Value) {
        let Some(path) = &self.cache_file else { return };
        let file = CacheFile {
            fetched_at,
            url: self.bootstrap_url.clone(),
            bootstrap,
        };
        if let Err(e) = write_atomically(path, &file).await {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the RDAP bootstrap cache");
        }
    }
}

fn parse_cache(bytes: &[u8]) -> Result<(Bootstrap, DateTime<Utc>), String> {
    let file: CacheFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&file.bootstrap).map_err(|e| e.to_string())?;
    Ok((domain::parse_bootstrap(&body)?, file.fetched_at))
}

/// Temp file and rename, so a crash never leaves half a cache behind.
async fn write_atomically(path: &std::path::Path, file: &CacheFile) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(file)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".tmp{}", std::process::id()));
    tokio::fs::write(&temp, json).await?;
    tokio::fs::rename(&temp, path).await
}

enum BodyError {
    TooLarge,
    Read(reqwest::Error),
}

/// The body, chunk by chunk, refusing more than `limit` bytes.
async fn read_limited(mut response: Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| url.to_owned())
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn retry_after_seconds_or_http_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            retry_after(&headers("3"), now),
            Some(Duration::from_secs(3))
        );
        let date = headers("Wed, 21 Oct 2015 07:28:30 GMT");
        assert_eq!(retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = headers("Wed, 21 Oct 2015 07:00:00 GMT");
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let client = RdapClient::new(
            reqwest::Client::new(),
            DEFAULT_BOOTSTRAP_URL,
            None,
            Duration::from_millis(100),
            5,
            Duration::from_millis(350),
        );
        let waits: Vec<_> = (1..=4).map(|a| client.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
    }
}
