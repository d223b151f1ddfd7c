//! WHOIS over TCP port 43 (RFC 3912): the fallback for registries that
//! publish no RDAP (DENIC, EURid, …). Send the name and a CRLF, read until
//! the server closes. The text is read by `domain::parse_whois`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::watch::domain::{self, parse_whois};
use crate::watch::spec::DomainSpec;
use crate::watch::{CheckFailure, CheckResult};

/// Where to ask which server holds a TLD's WHOIS.
pub const IANA_WHOIS: &str = "whois.iana.org:43";

/// The most of an answer read; real ones are a few KiB.
pub const MAX_ANSWER: u64 = 256 * 1024;

/// Sends `domain` to `server` (`host` or `host:port`, port 43 by default)
/// and returns the answer, truncated at 256 KiB. Connect, send and read all
/// happen within `timeout`.
pub async fn query(server: &str, domain: &str, timeout: Duration) -> Result<String, String> {
    if domain.chars().any(char::is_control) {
        return Err("refusing to send a query with control characters".to_owned());
    }
    let addr = with_port(server);
    match tokio::time::timeout(timeout, exchange(&addr, domain)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no complete answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

async fn exchange(addr: &str, domain: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect ({e})"))?;
    stream
        .write_all(format!("{domain}\r\n").as_bytes())
        .await
        .map_err(|e| format!("cannot send the query ({e})"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("connection broke while reading ({e})"))?;
    // Some ccTLD servers answer in Latin-1; the keys stay readable.
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// `host` → `host:43`; `host:port` and `[v6]:port` are kept.
pub fn with_port(server: &str) -> String {
    let server = server.trim();
    let has_port = match server.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    match (has_port, server.contains(':')) {
        (true, _) => server.to_owned(),
        (false, true) => format!("[{}]:43", server.trim_matches(['[', ']'])),
        (false, false) => format!("{server}:43"),
    }
}

/// Looks `name` (a registrable domain) up over WHOIS: `spec.whois` if set,
/// else the built-in table, else the server IANA refers to.
pub async fn lookup(
    spec: &DomainSpec,
    name: &str,
    iana: &str,
    timeout: Duration,
    now: DateTime<Utc>,
) -> CheckResult {
    let server = server_for(spec, name, iana, timeout).await?;
    let text = query(&server, name, timeout)
        .await
        .map_err(|e| CheckFailure::new(format!("{name}: WHOIS query to {server} failed: {e}")))?;
    let parsed = parse_whois(&text);
    if parsed.not_found {
        return Err(CheckFailure::new(format!(
            "{name}: the registry has no record of this domain (WHOIS {server})"
        )));
    }
    let facts = parsed.into_facts(name, format!("whois {server}"));
    Ok(domain::findings(&facts, spec, now))
}

async fn server_for(
    spec: &DomainSpec,
    name: &str,
    iana: &str,
    timeout: Duration,
) -> Result<String, CheckFailure> {
    if let Some(server) = &spec.whois {
        return Ok(with_port(server));
    }
    let tld = name.rsplit('.').next().unwrap_or(name);
    if let Some(server) = domain::whois_server_for(tld) {
        return Ok(with_port(server));
    }
    let text = query(iana, tld, timeout).await.map_err(|e| {
        CheckFailure::new(format!(
            "{name}: no RDAP service for .{tld}, and asking {iana} for its WHOIS server failed: {e}"
        ))
    })?;
    match parse_whois(&text).referral {
        Some(server) => Ok(with_port(&server)),
        None => Err(CheckFailure::new(format!(
            "{name}: neither RDAP nor WHOIS is known for .{tld} ({iana} gave no referral); set rdap_url or whois on the watcher"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_port_43() {
        assert_eq!(with_port("whois.denic.de"), "whois.denic.de:43");
        assert_eq!(with_port("127.0.0.1:4343"), "127.0.0.1:4343");
        assert_eq!(with_port("[::1]:4343"), "[::1]:4343");
        assert_eq!(with_port("::1"), "[::1]:43");
    }
}
