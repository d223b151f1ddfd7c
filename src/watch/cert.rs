//! What a server's certificate means, decided without I/O: whether it names
//! the host asked for, whether it is valid now, how soon it expires and
//! whether its chain verified. The TLS probe reads the facts; this module
//! turns them into findings a half-asleep human can act on.
//!
//! The outage this exists for: a parked domain served the registrar's
//! certificate, so every request failed with a name mismatch for hours. That
//! is a fact about the certificate, not a blip, so every finding here is
//! non-transient and pages at once.

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use x509_parser::prelude::{
    AttributeTypeAndValue, FromDer, GeneralName, X509Certificate, X509Name,
};

use super::spec::CertPolicy;
use super::{Finding, Level};

/// What the probe read from the chain a server presented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertFacts {
    /// The leaf's subject, e.g. `CN=api.example.app`.
    pub subject: String,
    /// SAN DNS names (and IP addresses as text); the subject CN when the
    /// certificate has no SAN.
    pub names: Vec<String>,
    /// The issuer's common name (else organisation, else the whole name).
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// Certificates presented: the leaf plus intermediates.
    pub chain_len: usize,
    /// The exact rustls/webpki error when the chain does not verify against
    /// the trusted roots for the server name; `None` when it verifies.
    pub verify_error: Option<String>,
}

/// `(subject, names, issuer, not_before, not_after)` of a leaf certificate.
pub type LeafFields = (String, Vec<String>, String, DateTime<Utc>, DateTime<Utc>);

/// Reads the fields findings need from a DER-encoded leaf certificate.
pub fn parse_leaf(der: &[u8]) -> Result<LeafFields, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let validity = cert.validity();
    let not_before = timestamp(validity.not_before.timestamp())?;
    let not_after = timestamp(validity.not_after.timestamp())?;
    Ok((
        cert.subject().to_string(),
        leaf_names(&cert)?,
        short_name(cert.issuer()),
        not_before,
        not_after,
    ))
}

fn timestamp(secs: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| format!("certificate date out of range: {secs}"))
}

/// SAN names first: browsers and webpki ignore the CN when a SAN is present.
fn leaf_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, String> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("cannot read the subjectAltName: {e}"))?;
    let names: Vec<String> = san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(general_name_text)
                .collect()
        })
        .unwrap_or_default();
    if !names.is_empty() {
        return Ok(names);
    }
    Ok(cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect())
}

fn general_name_text(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(dns) => Some((*dns).to_owned()),
        GeneralName::IPAddress(bytes) => ip_text(bytes),
        _ => None,
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

/// `R3` rather than `C=US, O=Let's Encrypt, CN=R3`: what people call an issuer.
fn short_name(name: &X509Name<'_>) -> String {
    let text = |a: &AttributeTypeAndValue<'_>| a.as_str().ok().map(str::to_owned);
    name.iter_common_name()
        .find_map(text)
        .or_else(|| name.iter_organization().find_map(text))
        .unwrap_or_else(|| name.to_string())
}

/// RFC 6125 matching, kept simple: case-insensitive, a trailing dot ignored,
/// and only a whole left-most `*` label, which matches exactly one label and
/// needs at least two labels after it (so `*.com` matches nothing). IP
/// addresses match only themselves.
pub fn name_matches(names: &[String], host: &str) -> bool {
    let host = normalize(host);
    names
        .iter()
        .any(|name| one_matches(&normalize(name), &host))
}

fn normalize(name: &str) -> String {
    let name = name.trim();
    let name = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn one_matches(pattern: &str, host: &str) -> bool {
    if let (Ok(a), Ok(b)) = (pattern.parse::<IpAddr>(), host.parse::<IpAddr>()) {
        return a == b;
    }
    if host.parse::<IpAddr>().is_ok() {
        return false;
    }
    let Some(rest) = pattern.strip_prefix("*.") else {
        return pattern == host;
    };
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.contains('*')) {
        return false;
    }
    match host.split_once('.') {
        Some((first, tail)) => !first.is_empty() && tail == rest,
        None => false,
    }
}

/// Everything wrong with the certificate `host:port` presented, at `now`.
pub fn findings(
    facts: &CertFacts,
    host: &str,
    port: u16,
    policy: &CertPolicy,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let place = format!("{host}:{port}");
    let details = details(facts, host, port);
    let finding = |code: &str, level, summary| Finding {
        code: code.to_owned(),
        level,
        transient: false,
        summary,
        details: details.clone(),
    };
    let mut out = Vec::new();
    let wrong_name = !name_matches(&facts.names, host);
    if wrong_name {
        out.push(finding(
            "cert_name",
            Level::Critical,
            name_summary(&place, facts, host),
        ));
    }
    let invalid_now = validity_summary(&place, facts, now);
    match &invalid_now {
        Some(summary) => out.push(finding("cert_validity", Level::Critical, summary.clone())),
        None => {
            if let Some((level, summary)) = expiry(&place, facts, policy, now) {
                out.push(finding("cert_expiry", level, summary));
            }
        }
    }
    if let Some(error) = &facts.verify_error {
        if !explained(error, wrong_name, invalid_now.is_some()) {
            out.push(finding(
                "cert_chain",
                Level::Critical,
                chain_summary(&place, facts, error),
            ));
        }
    }
    out
}

fn details(facts: &CertFacts, host: &str, port: u16) -> serde_json::Value {
    json!({
        "host": host,
        "port": port,
        "names": facts.names,
        "subject": facts.subject,
        "issuer": facts.issuer,
        "not_before": facts.not_before,
        "not_after": facts.not_after,
        "chain_len": facts.chain_len,
        "verify_error": facts.verify_error,
    })
}

fn name_summary(place: &str, facts: &CertFacts, host: &str) -> String {
    format!(
        "{place}: certificate is for {}, not {host} (ERR_TLS_CERT_ALTNAME_INVALID) \
         — check the domain's registration and DNS",
        names_text(&facts.names)
    )
}

fn names_text(names: &[String]) -> String {
    match names.len() {
        0 => "no host name at all".to_owned(),
        1..=3 => names.join(", "),
        n => format!("{} and {} more", names[..3].join(", "), n - 3),
    }
}

fn validity_summary(place: &str, facts: &CertFacts, now: DateTime<Utc>) -> Option<String> {
    if now > facts.not_after {
        return Some(format!(
            "{place}: certificate EXPIRED on {} ({}), issuer {} — renew it and reload the server",
            minute(facts.not_after),
            ago(now - facts.not_after),
            facts.issuer
        ));
    }
    if now < facts.not_before {
        return Some(format!(
            "{place}: certificate is not valid until {} ({}) — check the server's certificate \
             and this host's clock",
            minute(facts.not_before),
            ahead(facts.not_before - now)
        ));
    }
    None
}

fn expiry(
    place: &str,
    facts: &CertFacts,
    policy: &CertPolicy,
    now: DateTime<Utc>,
) -> Option<(Level, String)> {
    let left = facts.not_after - now;
    let level = if left <= policy.critical {
        Level::Critical
    } else if left <= policy.warn {
        Level::Warning
    } else {
        return None;
    };
    let summary = format!(
        "{place}: certificate expires {} ({}), issuer {} — renew it",
        minute(facts.not_after),
        ahead(left),
        facts.issuer
    );
    Some((level, summary))
}

/// A name mismatch or a date problem already has its own finding; a second
/// one restating webpki's words would only confuse. Anything else (unknown
/// issuer, self-signed, bad signature) is a finding of its own.
fn explained(error: &str, name_reported: bool, validity_reported: bool) -> bool {
    let e = error.to_ascii_lowercase();
    let name_error = e.contains("not valid for name") || e.contains("notvalidforname");
    let time_error = e.contains("certificate expired")
        || e.ends_with(": expired")
        || e.contains("not valid yet")
        || e.contains("notvalidyet");
    (name_error && name_reported) || (time_error && validity_reported)
}

fn chain_summary(place: &str, facts: &CertFacts, error: &str) -> String {
    let presented = match facts.chain_len {
        1 => "1 certificate presented".to_owned(),
        n => format!("{n} certificates presented"),
    };
    format!(
        "{place}: certificate does not verify: {error} (issuer {}, {presented}) — serve the full \
         chain from a trusted CA, or add a private CA to ca_file",
        facts.issuer
    )
}

/// One line on the certificate, e.g. `certificate for api.example.app,
/// issuer R3, valid until 2024-03-01 (in 90 days)`.
pub fn status_line(facts: &CertFacts, now: DateTime<Utc>) -> String {
    let subject = match facts.names.as_slice() {
        [] => facts.subject.clone(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
    };
    let when = if facts.not_after >= now {
        ahead(facts.not_after - now)
    } else {
        format!("expired {}", ago(now - facts.not_after))
    };
    format!(
        "certificate for {subject}, issuer {}, valid until {} ({when})",
        facts.issuer,
        facts.not_after.format("%Y-%m-%d")
    )
}

fn minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn ahead(delta: TimeDelta) -> String {
    format!("in {}", span(delta))
}

fn ago(delta: TimeDelta) -> String {
    format!("{} ago", span(delta))
}

/// Whole days, rounded, beyond a day ("3 days" for 2 days 23 hours: a cert
/// issued for exactly 3 days reads as such a moment later); hours below.
fn span(delta: TimeDelta) -> String {
    let secs = delta.num_seconds().max(0);
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs >= 86_400 {
        plural((secs + 43_200) / 86_400, "day")
    } else if secs >= 3_600 {
        plural(secs / 3_600, "hour")
    } else {
        "less than an hour".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 11, 9, 0, 0).unwrap()
    }

    fn facts(names_: &[&str], not_after: DateTime<Utc>) -> CertFacts {
        CertFacts {
            subject: "CN=api.example.app".to_owned(),
            names: names(names_),
            issuer: "R3".to_owned(),
            not_before: now() - TimeDelta::days(60),
            not_after,
            chain_len: 2,
            verify_error: None,
        }
    }

    fn policy(warn: i64, critical: i64) -> CertPolicy {
        CertPolicy {
            warn: TimeDelta::days(warn),
            critical: TimeDelta::days(critical),
            ca_file: None,
        }
    }

    fn codes(found: &[Finding]) -> Vec<(&str, Level)> {
        found.iter().map(|f| (f.code.as_str(), f.level)).collect()
    }

    #[test]
    fn exact_names_match_case_insensitively_and_ignore_a_trailing_dot() {
        assert!(name_matches(
            &names(&["API.Example.App"]),
            "api.example.app"
        ));
        assert!(name_matches(
            &names(&["api.example.app."]),
            "api.example.app"
        ));
        assert!(name_matches(
            &names(&["x.test", "api.example.app"]),
            "API.example.app."
        ));
        assert!(!name_matches(
            &names(&["api.example.app"]),
            "www.example.app"
        ));
        assert!(!name_matches(&[], "api.example.app"));
    }

    #[test]
    fn a_wildcard_matches_exactly_one_left_most_label() {
        let wild = names(&["*.example.app"]);
        assert!(name_matches(&wild, "shop.example.app"));
        assert!(name_matches(&wild, "SHOP.Example.app"));
        assert!(!name_matches(&wild, "example.app"));
        assert!(!name_matches(&wild, "a.b.example.app"));
        assert!(!name_matches(&wild, "shop.example.org"));
    }

    #[test]
    fn a_wildcard_never_covers_a_bare_suffix_or_sits_inside_a_label() {
        assert!(!name_matches(&names(&["*.com"]), "example.com"));
        assert!(!name_matches(&names(&["*"]), "localhost"));
        assert!(!name_matches(
            &names(&["*.*.example.app"]),
            "a.b.example.app"
        ));
        assert!(!name_matches(
            &names(&["sh*.example.app"]),
            "shop.example.app"
        ));
        assert!(!name_matches(&names(&["*..app"]), "x..app"));
    }

    #[test]
    fn ip_addresses_match_only_themselves() {
        assert!(name_matches(&names(&["127.0.0.1"]), "127.0.0.1"));
        assert!(name_matches(&names(&["::1"]), "[::1]"));
        assert!(!name_matches(&names(&["*.0.0.1"]), "127.0.0.1"));
        assert!(!name_matches(&names(&["127.0.0.2"]), "127.0.0.1"));
    }

    #[test]
    fn a_healthy_certificate_has_no_finding() {
        let f = facts(&["api.example.app"], now() + TimeDelta::days(90));
        assert!(findings(&f, "api.example.app", 443, &policy(21, 7), now()).is_empty());
    }

    #[test]
    fn expiry_thresholds_pick_the_level() {
        let f = facts(&["api.example.app"], now() + TimeDelta::days(3));
        let critical = findings(&f, "api.example.app", 443, &policy(21, 7), now());
        assert_eq!(codes(&critical), [("cert_expiry", Level::Critical)]);
        assert_eq!(
            critical[0].summary,
            "api.example.app:443: certificate expires 2024-01-14 09:00 UTC (in 3 days), issuer R3 — renew it"
        );
        assert!(!critical[0].transient);
        let warning = findings(&f, "api.example.app", 443, &policy(21, 1), now());
        assert_eq!(codes(&warning), [("cert_expiry", Level::Warning)]);
        assert!(findings(&f, "api.example.app", 443, &policy(2, 1), now()).is_empty());
    }

    #[test]
    fn a_threshold_is_inclusive() {
        let f = facts(&["api.example.app"], now() + TimeDelta::days(7));
        let found = findings(&f, "api.example.app", 443, &policy(21, 7), now());
        assert_eq!(codes(&found), [("cert_expiry", Level::Critical)]);
    }

    #[test]
    fn an_expired_certificate_is_a_validity_finding_not_an_expiry_one() {
        let mut f = facts(&["api.example.app"], now() - TimeDelta::minutes(90));
        f.verify_error = Some(
            "invalid peer certificate: certificate expired: verification time 1 (UNIX), \
             but certificate is not valid after 0 (1 seconds ago)"
                .to_owned(),
        );
        let found = findings(&f, "api.example.app", 443, &policy(21, 7), now());
        assert_eq!(codes(&found), [("cert_validity", Level::Critical)]);
        assert!(
            found[0].summary.contains("EXPIRED on 2024-01-11 07:30 UTC"),
            "{}",
            found[0].summary
        );
    }

    #[test]
    fn a_certificate_not_yet_valid_is_a_validity_finding() {
        let mut f = facts(&["api.example.app"], now() + TimeDelta::days(90));
        f.not_before = now() + TimeDelta::days(2);
        let found = findings(&f, "api.example.app", 443, &policy(21, 7), now());
        assert_eq!(codes(&found), [("cert_validity", Level::Critical)]);
        assert!(found[0]
            .summary
            .contains("not valid until 2024-01-13 09:00 UTC"));
    }

    #[test]
    fn a_parked_domain_names_both_hosts() {
        let mut f = facts(&["parking.registrar.example"], now() + TimeDelta::days(90));
        f.verify_error = Some(
            "invalid peer certificate: certificate not valid for name \"shop.example.app\"; \
             certificate is only valid for DnsName(\"parking.registrar.example\")"
                .to_owned(),
        );
        let found = findings(&f, "shop.example.app", 443, &policy(21, 7), now());
        assert_eq!(codes(&found), [("cert_name", Level::Critical)]);
        assert_eq!(
            found[0].summary,
            "shop.example.app:443: certificate is for parking.registrar.example, not shop.example.app \
             (ERR_TLS_CERT_ALTNAME_INVALID) — check the domain's registration and DNS"
        );
        assert_eq!(found[0].details["names"][0], "parking.registrar.example");
    }

    #[test]
    fn an_unexplained_verify_error_is_a_chain_finding_with_the_exact_text() {
        let mut f = facts(&["api.example.app"], now() + TimeDelta::days(90));
        f.verify_error = Some("invalid peer certificate: UnknownIssuer".to_owned());
        f.chain_len = 1;
        let found = findings(&f, "api.example.app", 443, &policy(21, 7), now());
        assert_eq!(codes(&found), [("cert_chain", Level::Critical)]);
        assert!(found[0]
            .summary
            .contains("does not verify: invalid peer certificate: UnknownIssuer (issuer R3, 1 certificate presented)"));
    }

    #[test]
    fn a_wrong_name_from_an_unknown_issuer_is_two_findings() {
        let mut f = facts(&["parking.registrar.example"], now() + TimeDelta::days(90));
        f.verify_error = Some("invalid peer certificate: UnknownIssuer".to_owned());
        let found = findings(&f, "shop.example.app", 443, &policy(21, 7), now());
        let expected = [
            ("cert_name", Level::Critical),
            ("cert_chain", Level::Critical),
        ];
        assert_eq!(codes(&found), expected);
    }

    #[test]
    fn a_name_error_webpki_sees_but_the_names_do_not_explain_is_kept() {
        // A CN-only certificate: the CN matches, but webpki reads SANs only.
        let mut f = facts(&["api.example.app"], now() + TimeDelta::days(90));
        f.verify_error = Some(
            "invalid peer certificate: certificate not valid for name \"api.example.app\"; \
             certificate is not valid for any names (according to its subjectAltName extension)"
                .to_owned(),
        );
        let found = findings(&f, "api.example.app", 443, &policy(21, 7), now());
        assert_eq!(codes(&found), [("cert_chain", Level::Critical)]);
    }

    #[test]
    fn the_status_line_says_who_issued_it_and_until_when() {
        let f = facts(&["api.example.app"], now() + TimeDelta::days(90));
        assert_eq!(
            status_line(&f, now()),
            "certificate for api.example.app, issuer R3, valid until 2024-04-10 (in 90 days)"
        );
        let f = facts(&["a.test", "b.test"], now() - TimeDelta::days(2));
        assert_eq!(
            status_line(&f, now()),
            "certificate for a.test (+1 more), issuer R3, valid until 2024-01-09 (expired 2 days ago)"
        );
    }

    #[test]
    fn spans_round_to_days_and_fall_back_to_hours() {
        assert_eq!(span(TimeDelta::days(3) - TimeDelta::seconds(5)), "3 days");
        assert_eq!(span(TimeDelta::hours(25)), "1 day");
        assert_eq!(span(TimeDelta::hours(5)), "5 hours");
        assert_eq!(span(TimeDelta::minutes(5)), "less than an hour");
    }

    #[test]
    fn a_leaf_yields_its_san_names_issuer_and_dates() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(names(&["api.example.app", "10.0.0.1"])).unwrap();
        leaf.not_before = rcgen::date_time_ymd(2024, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2024, 4, 1);
        let der = leaf.signed_by(&key, &issuer).unwrap();
        let (subject, found, issuer, from, until) = parse_leaf(der.der()).unwrap();
        assert_eq!(subject, "CN=rcgen self signed cert");
        assert_eq!(found, names(&["api.example.app", "10.0.0.1"]));
        assert_eq!(issuer, "Test CA");
        assert_eq!(from, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(until, Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_leaf(b"not a certificate").is_err());
        assert!(parse_leaf(&[]).is_err());
    }
}
