//! What a domain registration lookup *means*: the registrable domain of a
//! configured host, the facts in an RDAP answer (RFC 9083) or a WHOIS text,
//! which RDAP server serves a TLD (RFC 9224 bootstrap), and the findings —
//! expiry, a hold or redemption status, nameservers moved to parking.
//!
//! Pure: no I/O. The probes in `probe::rdap` and `probe::whois` fetch the
//! bytes and hand them here.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::spec::DomainSpec;
use super::{Finding, Level, Verdict};

/// The largest RDAP answer read; real ones are a few KiB.
pub const MAX_RDAP_BODY: usize = 1 << 20;

/// What the status line says when there is no date to watch.
pub const NO_EXPIRY_STATUS: &str =
    "the registry publishes no expiry date; set expires: YYYY-MM-DD on the watcher to be reminded";

// ------------------------------------------------------------------ names

/// The name registered at the registry for `host` (`api.shop.example.com.br`
/// → `example.com.br`). Only ICANN suffixes count: `app.github.io` is
/// registered as `github.io`, whatever the private section of the list says.
/// `None` for an IP address, a bare public suffix or a malformed name.
pub fn registrable_domain(host: &str) -> Option<String> {
    let name = normalise_host(host)?;
    let suffix = icann_suffix(&name)?;
    let rest = name.strip_suffix(suffix)?.strip_suffix('.')?;
    let label = rest.rsplit('.').next().filter(|l| !l.is_empty())?;
    Some(format!("{label}.{suffix}"))
}

/// Lower-case ASCII (IDNs as A-labels), no trailing dot; `None` for IPs and
/// anything that is not a host name.
fn normalise_host(host: &str) -> Option<String> {
    let host = host.trim().trim_end_matches('.');
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || bare.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let ascii = if host.is_ascii() {
        host.to_ascii_lowercase()
    } else {
        to_a_labels(host)?
    };
    let valid = ascii.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    valid.then_some(ascii)
}

/// Registries know IDNs by their punycode form; the URL parser converts.
fn to_a_labels(host: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://{host}/")).ok()?;
    url.host_str().map(str::to_owned)
}

/// The longest ICANN public suffix of `name`, skipping private-section rules.
fn icann_suffix(name: &str) -> Option<&str> {
    let mut tail = name;
    loop {
        let suffix = psl::suffix(tail.as_bytes())?;
        let text = std::str::from_utf8(suffix.as_bytes()).ok()?;
        if suffix.typ() != Some(psl::Type::Private) {
            return Some(text);
        }
        // A private rule sits on top of an ICANN one: look under it.
        tail = text.split_once('.').map(|(_, under)| under)?;
    }
}

/// A nameserver as compared: lower-case, without the trailing dot.
pub fn normalise_nameserver(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

// ------------------------------------------------------------------ facts

/// What a registry said about a domain, from RDAP or WHOIS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainFacts {
    pub name: String,
    pub expires: Option<DateTime<Utc>>,
    /// Lower-case EPP words as RDAP gives them (`client hold`).
    pub statuses: Vec<String>,
    /// Lower-case, no trailing dot.
    pub nameservers: Vec<String>,
    pub registrar: Option<String>,
    /// `rdap <url>` or `whois <host:port>`.
    pub source: String,
}

// ------------------------------------------------------------------- RDAP

/// Reads an RFC 9083 domain object. `source` is left as `rdap`; the probe
/// fills in the URL.
pub fn parse_rdap(body: &[u8]) -> Result<DomainFacts, String> {
    if body.len() > MAX_RDAP_BODY {
        return Err(format!(
            "RDAP answer too large ({} bytes, limit 1 MiB)",
            body.len()
        ));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("malformed RDAP JSON: {e}"))?;
    let obj = domain_object(&value)?;
    let name = obj
        .get("ldhName")
        .or_else(|| obj.get("unicodeName"))
        .and_then(Value::as_str)
        .map(normalise_nameserver)
        .filter(|n| !n.is_empty())
        .ok_or("RDAP domain object has no ldhName")?;
    Ok(DomainFacts {
        name,
        expires: rdap_expiry(obj)?,
        statuses: rdap_statuses(obj),
        nameservers: rdap_nameservers(obj),
        registrar: rdap_registrar(obj),
        source: "rdap".to_owned(),
    })
}

fn domain_object(value: &Value) -> Result<&Map<String, Value>, String> {
    let obj = value
        .as_object()
        .ok_or("RDAP answer is not a JSON object")?;
    match obj.get("objectClassName").and_then(Value::as_str) {
        Some(class) if class.eq_ignore_ascii_case("domain") => Ok(obj),
        Some(class) => Err(format!("RDAP answer is a `{class}` object, not a domain")),
        None if obj.contains_key("errorCode") => Err(rdap_error_text(obj)),
        None => Err("RDAP answer has no objectClassName".to_owned()),
    }
}

fn rdap_error_text(obj: &Map<String, Value>) -> String {
    let code = obj
        .get("errorCode")
        .map(Value::to_string)
        .unwrap_or_default();
    let title = obj.get("title").and_then(Value::as_str).unwrap_or("error");
    format!("RDAP error {code}: {title}")
}

fn rdap_expiry(obj: &Map<String, Value>) -> Result<Option<DateTime<Utc>>, String> {
    let events = obj.get("events").and_then(Value::as_array);
    let expiration = events.into_iter().flatten().find(|e| {
        e.get("eventAction")
            .and_then(Value::as_str)
            .is_some_and(|a| a.eq_ignore_ascii_case("expiration"))
    });
    let Some(date) = expiration
        .and_then(|e| e.get("eventDate"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    // An unreadable date must not pass for "no date published".
    parse_date(date)
        .map(Some)
        .ok_or_else(|| format!("RDAP expiration date `{date}` is not a date"))
}

fn rdap_statuses(obj: &Map<String, Value>) -> Vec<String> {
    let list = obj.get("status").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(epp_words)
        .filter(|s| !s.is_empty())
        .collect()
}

fn rdap_nameservers(obj: &Map<String, Value>) -> Vec<String> {
    let list = obj.get("nameservers").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|ns| ns.get("ldhName").or_else(|| ns.get("unicodeName")))
        .filter_map(Value::as_str)
        .map(normalise_nameserver)
        .filter(|n| !n.is_empty())
        .collect()
}

fn rdap_registrar(obj: &Map<String, Value>) -> Option<String> {
    let entities = obj.get("entities").and_then(Value::as_array)?;
    let registrar = entities.iter().find(|e| {
        let roles = e.get("roles").and_then(Value::as_array);
        roles.into_iter().flatten().any(|r| {
            r.as_str()
                .is_some_and(|r| r.eq_ignore_ascii_case("registrar"))
        })
    })?;
    vcard_fn(registrar)
}

/// The `fn` (formatted name) property of a jCard (RFC 7095):
/// `["vcard", [["fn", {}, "text", "Name"], …]]`.
fn vcard_fn(entity: &Value) -> Option<String> {
    let props = entity.get("vcardArray")?.get(1)?.as_array()?;
    props
        .iter()
        .find(|p| p.get(0).and_then(Value::as_str) == Some("fn"))
        .and_then(|p| p.get(3))
        .and_then(Value::as_str)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// EPP statuses in RDAP's form: `clientHold` → `client hold`,
/// `pendingDelete` → `pending delete`; words already spaced stay as they are.
pub fn epp_words(status: &str) -> String {
    let mut out = String::with_capacity(status.len() + 4);
    let mut prev_lower = false;
    for c in status.trim().chars() {
        if c.is_uppercase() && prev_lower {
            out.push(' ');
        }
        if c == '_' {
            out.push(' ');
        } else {
            out.extend(c.to_lowercase());
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

// -------------------------------------------------------------- bootstrap

/// The RFC 9224 DNS bootstrap registry: which RDAP base URL serves a TLD.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bootstrap {
    services: Vec<Service>,
    publication: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Service {
    /// Lower-case label sets, e.g. `com` or (allowed by RFC 9224) `co.uk`.
    suffixes: Vec<String>,
    /// Ends in `/`.
    base: String,
}

impl Bootstrap {
    /// The base URL (ending in `/`) for `domain`: the service whose entry
    /// matches the most labels at the end of the name.
    pub fn base_url_for(&self, domain: &str) -> Option<String> {
        let domain = normalise_nameserver(domain);
        let mut best: Option<(usize, &Service)> = None;
        for service in &self.services {
            for suffix in &service.suffixes {
                let matches = domain == *suffix || domain.ends_with(&format!(".{suffix}"));
                let labels = suffix.split('.').count();
                if matches && best.is_none_or(|(n, _)| labels > n) {
                    best = Some((labels, service));
                }
            }
        }
        best.map(|(_, s)| s.base.clone())
    }

    /// The file's `publication` date, when it has a valid one.
    pub fn publication(&self) -> Option<DateTime<Utc>> {
        self.publication
    }

    /// How many services the file lists.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

/// Reads a `dns.json` bootstrap file: `{"services": [[[tlds…], [urls…]], …]}`.
pub fn parse_bootstrap(body: &[u8]) -> Result<Bootstrap, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("malformed bootstrap JSON: {e}"))?;
    let services = value
        .get("services")
        .and_then(Value::as_array)
        .ok_or("bootstrap file has no `services` list")?;
    let publication = value
        .get("publication")
        .and_then(Value::as_str)
        .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
        .map(|p| p.with_timezone(&Utc));
    Ok(Bootstrap {
        services: services.iter().filter_map(parse_service).collect(),
        publication,
    })
}

fn parse_service(entry: &Value) -> Option<Service> {
    let strings = |i: usize| -> Vec<String> {
        let list = entry.get(i).and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let suffixes: Vec<String> = strings(0).iter().map(|s| normalise_nameserver(s)).collect();
    let urls = strings(1);
    // RFC 9224 §5: prefer https when a service lists several.
    let url = urls
        .iter()
        .find(|u| u.starts_with("https://"))
        .or_else(|| urls.first())?;
    let base = if url.ends_with('/') {
        url.clone()
    } else {
        format!("{url}/")
    };
    (!suffixes.is_empty()).then_some(Service { suffixes, base })
}

/// The snapshot compiled in, used when the live file cannot be fetched.
pub fn bundled() -> Bootstrap {
    parse_bootstrap(include_str!("dns_bootstrap.json").as_bytes()).unwrap_or_default()
}

// ------------------------------------------------------------------ WHOIS

/// What a WHOIS answer said, before it is tied to the domain asked about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhoisFacts {
    pub name: Option<String>,
    pub expires: Option<DateTime<Utc>>,
    /// In RDAP's lower-case words.
    pub statuses: Vec<String>,
    pub nameservers: Vec<String>,
    pub registrar: Option<String>,
    /// The server an IANA answer points to (`refer:` / `whois:`).
    pub referral: Option<String>,
    /// The server said it has no such domain.
    pub not_found: bool,
}

impl WhoisFacts {
    /// The facts about `domain`, the name asked about: summaries must name
    /// what the watcher watches even if the server spells it differently.
    pub fn into_facts(self, domain: &str, source: String) -> DomainFacts {
        DomainFacts {
            name: domain.to_owned(),
            expires: self.expires,
            statuses: self.statuses,
            nameservers: self.nameservers,
            registrar: self.registrar,
            source,
        }
    }

    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.expires.is_none()
            && self.statuses.is_empty()
            && self.nameservers.is_empty()
    }
}

/// Expiry keys, registry's own first: in ICANN output the registrar's
/// `Registrar Registration Expiration Date` is often blank or stale.
const EXPIRY_KEYS: &[&str] = &[
    "registry expiry date",
    "expiry date",
    "expiration date",
    "registrar registration expiration date",
    "domain expiration date",
    "expiration time",
    "expire date",
    "expires on",
    "expires",
    "expire",
    "paid-till",
    "renewal date",
    "valid until",
];

const NOT_FOUND_MARKERS: &[&str] = &[
    "no match for",
    "not found",
    "no data found",
    "no entries found",
    "status: free",
    "is available for registration",
];

/// Reads ICANN-format, DENIC-format and most ccTLD WHOIS texts.
pub fn parse_whois(text: &str) -> WhoisFacts {
    let mut facts = WhoisFacts::default();
    let mut expiry: Option<(usize, DateTime<Utc>)> = None;
    for (key, value) in text.lines().filter_map(whois_line) {
        if let Some(rank) = EXPIRY_KEYS.iter().position(|k| *k == key) {
            if let Some(date) = parse_date(value) {
                if expiry.is_none_or(|(r, _)| rank < r) {
                    expiry = Some((rank, date));
                }
            }
            continue;
        }
        whois_field(&mut facts, &key, value);
    }
    facts.expires = expiry.map(|(_, d)| d);
    let lower = text.to_ascii_lowercase();
    facts.not_found = facts.is_empty() && NOT_FOUND_MARKERS.iter().any(|m| lower.contains(m));
    facts
}

/// `Key: value` with the key lower-cased; comments and banners are skipped.
fn whois_line(line: &str) -> Option<(String, &str)> {
    let line = line.trim();
    if line.starts_with(['%', '#', '>']) {
        return None;
    }
    let (key, value) = line.split_once(':')?;
    let value = value.trim();
    (!value.is_empty()).then(|| (key.trim().to_ascii_lowercase(), value))
}

fn whois_field(facts: &mut WhoisFacts, key: &str, value: &str) {
    match key {
        "domain name" | "domain" if facts.name.is_none() => {
            facts.name = Some(normalise_nameserver(value));
        }
        "domain status" | "status" | "state" => facts.statuses.extend(whois_statuses(value)),
        "name server" | "nserver" | "nameserver" | "name servers" => {
            if let Some(ns) = value.split_whitespace().next() {
                facts.nameservers.push(normalise_nameserver(ns));
            }
        }
        "registrar" | "sponsoring registrar" | "registrar name" if facts.registrar.is_none() => {
            facts.registrar = Some(value.to_owned());
        }
        "refer" | "whois" if facts.referral.is_none() => {
            facts.referral = value.split_whitespace().next().map(str::to_owned);
        }
        _ => {}
    }
}

/// `clientHold https://icann.org/epp#clientHold` → `client hold`;
/// `REGISTERED, DELEGATED` → two statuses.
fn whois_statuses(value: &str) -> Vec<String> {
    let words: Vec<&str> = value
        .split_whitespace()
        .take_while(|w| !w.starts_with("http") && !w.starts_with('('))
        .collect();
    words
        .join(" ")
        .split(',')
        .map(epp_words)
        .filter(|s| !s.is_empty())
        .collect()
}

const DATETIME_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y.%m.%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%d-%b-%Y %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
];

const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%d-%b-%Y", "%Y.%m.%d", "%Y/%m/%d", "%d.%m.%Y"];

/// The date spellings registries use; times without a zone are taken as UTC.
pub fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    let zoneless = ["UTC", "GMT", "(UTC)", "Z"]
        .iter()
        .find_map(|z| value.strip_suffix(z))
        .map(str::trim);
    let first = value.split_whitespace().next();
    [Some(value), zoneless, first]
        .into_iter()
        .flatten()
        .find_map(parse_date_exact)
}

fn parse_date_exact(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(value) {
        return Some(d.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::parse_from_str(value, format) {
            return Some(d.with_timezone(&Utc));
        }
    }
    let naive = DATETIME_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
        .or_else(|| {
            DATE_FORMATS
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(value, f).ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    Some(naive.and_utc())
}

/// WHOIS servers of registries that publish no RDAP (absent from the IANA
/// bootstrap), so the IANA referral round trip is not needed for them.
pub fn whois_server_for(tld: &str) -> Option<&'static str> {
    let server = match tld.trim_end_matches('.').to_ascii_lowercase().as_str() {
        "de" => "whois.denic.de",
        "eu" => "whois.eu",
        "at" => "whois.nic.at",
        "ch" => "whois.nic.ch",
        "li" => "whois.nic.li",
        "it" => "whois.nic.it",
        "be" => "whois.dns.be",
        "nl" => "whois.domain-registry.nl",
        "se" => "whois.iis.se",
        "ru" | "su" => "whois.tcinet.ru",
        _ => return None,
    };
    Some(server)
}

// --------------------------------------------------------------- findings

/// Statuses that mean the domain no longer resolves as it should, most
/// urgent to act on first, with what to tell the human.
const BAD_STATUSES: &[(&str, &str)] = &[
    ("redemption period", "in REDEMPTION PERIOD"),
    ("pending delete", "PENDING DELETE"),
    ("client hold", "on CLIENT HOLD at the registrar"),
    ("server hold", "on SERVER HOLD at the registry"),
    ("inactive", "INACTIVE (no nameservers delegated)"),
];

/// What the facts mean for the watcher `spec` at `now`.
pub fn findings(facts: &DomainFacts, spec: &DomainSpec, now: DateTime<Utc>) -> Verdict {
    let findings: Vec<Finding> = [
        status_finding(facts),
        nameserver_finding(facts, spec),
        expiry_finding(facts, spec, now),
    ]
    .into_iter()
    .flatten()
    .collect();
    Verdict {
        findings,
        status: status_line(facts, spec, now),
        facts: serde_json::to_value(facts).unwrap_or_default(),
    }
}

/// The resolve note once an expiry alert clears: `renewed until 2026-01-11`.
pub fn renewed_note(facts: &DomainFacts) -> String {
    match facts.expires {
        Some(date) => format!("renewed until {}", date.format("%Y-%m-%d")),
        None => "renewed (the registry publishes no expiry date)".to_owned(),
    }
}

fn bad_statuses(facts: &DomainFacts) -> Vec<&'static str> {
    BAD_STATUSES
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| facts.statuses.iter().any(|f| f == s))
        .collect()
}

fn status_finding(facts: &DomainFacts) -> Option<Finding> {
    let (status, phrase) = BAD_STATUSES
        .iter()
        .find(|(s, _)| facts.statuses.iter().any(|f| f == s))?;
    let expiry = facts
        .expires
        .map(|d| format!(" (expiry {})", d.format("%Y-%m-%d")))
        .unwrap_or_default();
    let action = match *status {
        "redemption period" => "restore it at the registrar now",
        "pending delete" => "it is about to be released; contact the registrar now",
        "client hold" => "renew it now",
        "inactive" => "fix the delegation at the registrar now",
        _ => "contact the registrar now",
    };
    let summary = format!("{}: domain {phrase}{expiry} — {action}", facts.name);
    Some(critical(
        "status",
        summary,
        details(facts, json!({ "bad_statuses": bad_statuses(facts) })),
    ))
}

fn nameserver_finding(facts: &DomainFacts, spec: &DomainSpec) -> Option<Finding> {
    if spec.expect_nameservers.is_empty() {
        return None;
    }
    let expected: BTreeSet<String> = spec
        .expect_nameservers
        .iter()
        .map(|n| normalise_nameserver(n))
        .collect();
    let found: BTreeSet<String> = facts
        .nameservers
        .iter()
        .map(|n| normalise_nameserver(n))
        .collect();
    if expected == found {
        return None;
    }
    let list = |set: &BTreeSet<String>| match set.is_empty() {
        true => "(none)".to_owned(),
        false => set.iter().cloned().collect::<Vec<_>>().join(", "),
    };
    let summary = format!(
        "{}: nameservers changed to {} (expected {}) — parked or hijacked?",
        facts.name,
        list(&found),
        list(&expected)
    );
    let extra = json!({ "expected_nameservers": expected });
    Some(critical("nameservers", summary, details(facts, extra)))
}

fn expiry_finding(facts: &DomainFacts, spec: &DomainSpec, now: DateTime<Utc>) -> Option<Finding> {
    let (date, from_watcher) = expiry_date(facts, spec)?;
    let left = date - now;
    let origin = origin_words(from_watcher);
    let name = &facts.name;
    let (level, summary) = if left <= TimeDelta::zero() {
        let day = date.format("%Y-%m-%d");
        (
            Level::Critical,
            format!("{name}: domain EXPIRED on {day}{origin} — renew it now"),
        )
    } else if left <= spec.critical {
        (
            Level::Critical,
            expires_summary(name, date, left, origin, "renew it now"),
        )
    } else if left <= spec.warn {
        (
            Level::Warning,
            expires_summary(name, date, left, origin, "renew it"),
        )
    } else {
        return None;
    };
    let extra = json!({ "expiry_from": if from_watcher { "watcher" } else { "registry" } });
    Some(Finding {
        code: "expiry".to_owned(),
        level,
        transient: false,
        summary,
        details: details(facts, extra),
    })
}

fn expires_summary(
    name: &str,
    date: DateTime<Utc>,
    left: TimeDelta,
    origin: &str,
    action: &str,
) -> String {
    let when = date.format("%Y-%m-%d %H:%M UTC");
    format!(
        "{name}: domain expires {when} ({}{origin}) — {action}",
        in_words(left)
    )
}

/// The registry's date, else the one configured on the watcher.
fn expiry_date(facts: &DomainFacts, spec: &DomainSpec) -> Option<(DateTime<Utc>, bool)> {
    match (facts.expires, spec.expires) {
        (Some(d), _) => Some((d, false)),
        (None, Some(d)) => Some((d, true)),
        (None, None) => None,
    }
}

/// Says where a date came from when the registry did not publish it.
fn origin_words(from_watcher: bool) -> &'static str {
    match from_watcher {
        true => ", date from the watcher's `expires`",
        false => "",
    }
}

fn ago_words(past: TimeDelta) -> String {
    match past.num_days() {
        0 => "today".to_owned(),
        1 => "1 day ago".to_owned(),
        d => format!("{d} days ago"),
    }
}

/// `in 10 days`, `in 1 day`, `in 5 hours`.
fn in_words(left: TimeDelta) -> String {
    match (left.num_days(), left.num_hours()) {
        (1, _) => "in 1 day".to_owned(),
        (d, _) if d > 1 => format!("in {d} days"),
        (_, 1) => "in 1 hour".to_owned(),
        (_, h) if h > 1 => format!("in {h} hours"),
        _ => "in under an hour".to_owned(),
    }
}

/// One line on the registration; starts with `expires …` when healthy, as
/// the runner uses it as the resolve note.
fn status_line(facts: &DomainFacts, spec: &DomainSpec, now: DateTime<Utc>) -> String {
    let Some((date, from_watcher)) = expiry_date(facts, spec) else {
        return NO_EXPIRY_STATUS.to_owned();
    };
    let day = date.format("%Y-%m-%d");
    let origin = origin_words(from_watcher);
    let mut line = if date > now {
        format!("expires {day} ({}{origin})", in_words(date - now))
    } else {
        format!("expired {day} ({}{origin})", ago_words(now - date))
    };
    if let Some(registrar) = &facts.registrar {
        line.push_str(&format!(", registrar {registrar}"));
    }
    let bad = bad_statuses(facts);
    if !bad.is_empty() {
        line.push_str(&format!("; status {}", bad.join(", ")));
    }
    line
}

fn critical(code: &str, summary: String, details: Value) -> Finding {
    Finding {
        code: code.to_owned(),
        level: Level::Critical,
        transient: false,
        summary,
        details,
    }
}

fn details(facts: &DomainFacts, extra: Value) -> Value {
    let mut details = json!({
        "domain": facts.name,
        "expires": facts.expires,
        "statuses": facts.statuses,
        "nameservers": facts.nameservers,
        "source": facts.source,
    });
    if let (Some(map), Value::Object(extra)) = (details.as_object_mut(), extra) {
        map.extend(extra);
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fixture(name: &str) -> &'static str {
        match name {
            "active" => include_str!("../../tests/fixtures/rdap/domain_app_active.json"),
            "parked" => include_str!("../../tests/fixtures/rdap/domain_app_expired_parked.json"),
            "redemption" => include_str!("../../tests/fixtures/rdap/domain_app_redemption.json"),
            "renewed" => include_str!("../../tests/fixtures/rdap/domain_app_renewed.json"),
            "com" => include_str!("../../tests/fixtures/rdap/domain_com_active.json"),
            "404" => include_str!("../../tests/fixtures/rdap/error_404.json"),
            "whois_com" => include_str!("../../tests/fixtures/rdap/whois_com.txt"),
            "whois_de" => include_str!("../../tests/fixtures/rdap/whois_de.txt"),
            _ => unreachable!("no fixture {name}"),
        }
    }

    fn rdap(name: &str) -> DomainFacts {
        parse_rdap(fixture(name).as_bytes()).unwrap()
    }

    fn spec() -> DomainSpec {
        DomainSpec {
            domain: "example.app".into(),
            warn: TimeDelta::days(30),
            critical: TimeDelta::days(7),
            rdap_url: None,
            whois: None,
            expect_nameservers: Vec::new(),
            expires: None,
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn psl_finds_the_registered_name() {
        let cases = [
            ("api.shop.example.com.br", Some("example.com.br")),
            ("www.example.app", Some("example.app")),
            ("Example.APP.", Some("example.app")),
            ("example.co.uk", Some("example.co.uk")),
            ("myapp.github.io", Some("github.io")),
            ("a.b.blogspot.co.uk", Some("blogspot.co.uk")),
            ("münchen.de", Some("xn--mnchen-3ya.de")),
            ("com", None),
            ("com.br", None),
            ("co.uk.", None),
            ("192.0.2.1", None),
            ("::1", None),
            ("[2001:db8::1]", None),
            ("", None),
            ("bad..name.com", None),
            ("evil.com\r\nx", None),
        ];
        for (host, want) in cases {
            assert_eq!(registrable_domain(host).as_deref(), want, "{host}");
        }
    }

    #[test]
    fn parses_the_active_app_fixture() {
        let f = rdap("active");
        assert_eq!(f.name, "example.app");
        assert_eq!(
            f.expires,
            Some(
                Utc.with_ymd_and_hms(2024, 1, 11, 15, 28, 4).unwrap()
                    + TimeDelta::milliseconds(231)
            )
        );
        assert_eq!(f.statuses, ["client transfer prohibited"]);
        assert_eq!(
            f.nameservers,
            ["ns1.dns-host.example", "ns2.dns-host.example"]
        );
        assert_eq!(f.registrar.as_deref(), Some("Example Registrar, Inc."));
        assert_eq!(f.source, "rdap");
    }

    #[test]
    fn parses_the_parked_redemption_renewed_and_com_fixtures() {
        let parked = rdap("parked");
        assert_eq!(
            parked.statuses,
            [
                "client hold",
                "auto renew period",
                "client transfer prohibited"
            ]
        );
        assert_eq!(
            parked.nameservers,
            [
                "ns1.parking.registrar.example",
                "ns2.parking.registrar.example"
            ]
        );
        assert_eq!(
            parked
                .expires
                .map(|d| d.date_naive().to_string())
                .as_deref(),
            Some("2025-01-11")
        );
        assert_eq!(
            rdap("redemption").statuses,
            ["pending delete", "redemption period"]
        );
        assert_eq!(
            rdap("renewed")
                .expires
                .map(|d| d.date_naive().to_string())
                .as_deref(),
            Some("2026-01-11")
        );
        let com = rdap("com");
        assert_eq!(com.name, "example.com");
        assert_eq!(
            com.nameservers,
            ["a.iana-servers.net", "b.iana-servers.net"]
        );
        assert_eq!(com.expires, Some(utc(2027, 8, 13, 4, 0)));
    }

    #[test]
    fn rdap_errors_are_clear() {
        let err = parse_rdap(fixture("404").as_bytes()).unwrap_err();
        assert_eq!(err, "RDAP error 404: Not Found");
        assert!(parse_rdap(b"{not json")
            .unwrap_err()
            .starts_with("malformed RDAP JSON"));
        assert!(parse_rdap(b"[1]")
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(parse_rdap(br#"{"ldhName":"x.app"}"#)
            .unwrap_err()
            .contains("no objectClassName"));
        let ent = br#"{"objectClassName":"entity","handle":"X"}"#;
        assert!(parse_rdap(ent).unwrap_err().contains("`entity` object"));
        let bad_date = br#"{"objectClassName":"domain","ldhName":"x.app","events":[{"eventAction":"expiration","eventDate":"soon"}]}"#;
        assert!(parse_rdap(bad_date).unwrap_err().contains("`soon`"));
        let huge = vec![b' '; MAX_RDAP_BODY + 1];
        assert!(parse_rdap(&huge).unwrap_err().contains("too large"));
    }

    #[test]
    fn rdap_tolerates_missing_optional_parts() {
        let f = parse_rdap(br#"{"objectClassName":"domain","ldhName":"X.App."}"#).unwrap();
        assert_eq!(f.name, "x.app");
        assert_eq!((f.expires, f.registrar), (None, None));
        assert!(f.statuses.is_empty() && f.nameservers.is_empty());
        let odd = br#"{"objectClassName":"domain","ldhName":"x.app","status":["clientHold"],
            "entities":[{"roles":["technical"]},{"roles":["registrar"],"vcardArray":["vcard",[]]}],
            "nameservers":[{"unicodeName":"NS1.X.APP."}],"events":[{"eventAction":"registration"}]}"#;
        let f = parse_rdap(odd).unwrap();
        assert_eq!(f.statuses, ["client hold"]);
        assert_eq!(f.nameservers, ["ns1.x.app"]);
        assert_eq!(f.registrar, None);
    }

    #[test]
    fn epp_camel_case_becomes_rdap_words() {
        let cases = [
            ("clientHold", "client hold"),
            ("serverHold", "server hold"),
            ("pendingDelete", "pending delete"),
            ("redemptionPeriod", "redemption period"),
            ("autoRenewPeriod", "auto renew period"),
            ("clientTransferProhibited", "client transfer prohibited"),
            ("ok", "ok"),
            ("inactive", "inactive"),
            ("client hold", "client hold"),
            ("Client Hold", "client hold"),
            ("ACTIVE", "active"),
            ("pending_delete", "pending delete"),
        ];
        for (epp, words) in cases {
            assert_eq!(epp_words(epp), words, "{epp}");
        }
    }

    #[test]
    fn bootstrap_picks_the_longest_match_and_https() {
        let body = br#"{"version":"1.0","publication":"2024-05-01T00:00:00Z","services":[
            [["uk"],["https://rdap.nominet.uk/uk/"]],
            [["co.uk"],["http://plain.example/co/","https://secure.example/co"]],
            [["com","net"],["https://rdap.verisign.com/com/v1/"]],
            [[],["https://nothing.example/"]],
            "junk"]}"#;
        let b = parse_bootstrap(body).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(
            b.base_url_for("example.co.uk").as_deref(),
            Some("https://secure.example/co/")
        );
        assert_eq!(
            b.base_url_for("example.org.uk").as_deref(),
            Some("https://rdap.nominet.uk/uk/")
        );
        assert_eq!(
            b.base_url_for("EXAMPLE.NET.").as_deref(),
            Some("https://rdap.verisign.com/com/v1/")
        );
        assert_eq!(b.base_url_for("example.de"), None);
        assert_eq!(b.base_url_for("notcom"), None);
        assert_eq!(b.publication(), Some(utc(2024, 5, 1, 0, 0)));
        assert!(parse_bootstrap(b"{}").unwrap_err().contains("services"));
        assert!(parse_bootstrap(b"nope").unwrap_err().contains("malformed"));
    }

    #[test]
    fn bundled_bootstrap_knows_the_common_tlds() {
        let b = bundled();
        assert!(!b.is_empty());
        assert!(b.publication().is_some());
        assert_eq!(
            b.base_url_for("example.app").as_deref(),
            Some("https://pubapi.registry.google/rdap/")
        );
        assert_eq!(
            b.base_url_for("example.com.br").as_deref(),
            Some("https://rdap.registro.br/")
        );
        assert_eq!(b.base_url_for("example.de"), None);
    }

    #[test]
    fn whois_icann_format() {
        let w = parse_whois(fixture("whois_com"));
        assert_eq!(w.name.as_deref(), Some("example.com"));
        assert_eq!(w.expires, Some(utc(2027, 8, 13, 4, 0)));
        assert_eq!(
            w.statuses,
            ["client delete prohibited", "client transfer prohibited"]
        );
        assert_eq!(w.nameservers, ["a.iana-servers.net", "b.iana-servers.net"]);
        assert_eq!(w.registrar.as_deref(), Some("Example Registrar, Inc."));
        assert!(!w.not_found);
    }

    #[test]
    fn whois_denic_format_has_no_date() {
        let w = parse_whois(fixture("whois_de"));
        assert_eq!(w.name.as_deref(), Some("example.de"));
        assert_eq!(w.expires, None);
        assert_eq!(
            w.nameservers,
            ["ns1.dns-host.example", "ns2.dns-host.example"]
        );
        assert_eq!(w.statuses, ["connect"]);
        let facts = w.into_facts("example.de", "whois whois.denic.de:43".into());
        let v = findings(&facts, &spec(), utc(2024, 6, 1, 0, 0));
        assert!(v.findings.is_empty());
        assert_eq!(v.status, NO_EXPIRY_STATUS);
    }

    #[test]
    fn whois_expiry_spellings_and_date_formats() {
        let want = utc(2024, 1, 11, 0, 0);
        let cases = [
            ("Registry Expiry Date: 2024-01-11T00:00:00Z", want),
            (
                "Registrar Registration Expiration Date: 2024-01-11T00:00:00.000Z",
                want,
            ),
            ("Expiration Date: 11-Jan-2024", want),
            ("Expiry Date: 2024.01.11", want),
            ("paid-till: 2024-01-11T00:00:00Z", want),
            ("Expires: 2024-01-11", want),
            ("expire: 11.01.2024", want),
            ("Expires On: 2024/01/11", want),
            ("Expiry date:  11-JAN-2024", want),
            (
                "Expiration Time: 2024-01-11 15:28:00",
                utc(2024, 1, 11, 15, 28),
            ),
            (
                "Expiration Date: 2024-01-11 15:28:00 UTC",
                utc(2024, 1, 11, 15, 28),
            ),
            (
                "Expiry Date: 2024-01-11T17:28:00+02:00",
                utc(2024, 1, 11, 15, 28),
            ),
            (
                "Expiry Date: 2024-01-11T15:28:00+0000",
                utc(2024, 1, 11, 15, 28),
            ),
            ("renewal date: 2024-01-11 (yyyy-mm-dd)", want),
        ];
        for (line, date) in cases {
            assert_eq!(parse_whois(line).expires, Some(date), "{line}");
        }
    }

    #[test]
    fn whois_prefers_the_registry_date() {
        let text = "Registrar Registration Expiration Date: 2023-01-01T00:00:00Z\n\
                    Registry Expiry Date: 2024-01-11T00:00:00Z\n\
                    Registrar Registration Expiration Date:\n";
        assert_eq!(parse_whois(text).expires, Some(utc(2024, 1, 11, 0, 0)));
        assert_eq!(parse_whois("Expiry Date: sometime").expires, None);
    }

    #[test]
    fn whois_statuses_referrals_and_not_found() {
        let w = parse_whois("Domain Status: clientHold https://icann.org/epp#clientHold\nstate: REGISTERED, DELEGATED\n");
        assert_eq!(w.statuses, ["client hold", "registered", "delegated"]);
        let iana = "% IANA WHOIS server\ndomain:       DE\norganisation: DENIC eG\nrefer:        whois.denic.de\n\nwhois:        whois.denic.de\n";
        assert_eq!(
            parse_whois(iana).referral.as_deref(),
            Some("whois.denic.de")
        );
        assert!(parse_whois("No match for \"NOPE.COM\".\n>>> Last update <<<").not_found);
        assert!(parse_whois("Domain: nope.de\nStatus: free\n").statuses == ["free"]);
        assert!(!parse_whois(fixture("whois_com")).not_found);
    }

    #[test]
    fn whois_table() {
        assert_eq!(whois_server_for("de"), Some("whois.denic.de"));
        assert_eq!(whois_server_for("EU"), Some("whois.eu"));
        assert_eq!(whois_server_for("app"), None);
    }

    #[test]
    fn healthy_domain_has_no_finding_and_says_when_it_expires() {
        let v = findings(&rdap("com"), &spec(), utc(2026, 12, 1, 0, 0));
        assert!(v.findings.is_empty(), "{:?}", v.findings);
        assert!(
            v.status
                .starts_with("expires 2027-08-13 (in 255 days), registrar Example Registrar"),
            "{}",
            v.status
        );
        assert_eq!(v.facts["name"], "example.com");
        assert_eq!(v.facts["expires"], "2027-08-13T04:00:00Z");
    }

    #[test]
    fn expiry_thresholds() {
        let facts = rdap("active");
        let at = |now| findings(&facts, &spec(), now).findings;
        let expiry = utc(2024, 1, 11, 15, 28);
        assert!(at(expiry - TimeDelta::days(31)).is_empty());
        let warn = at(expiry - TimeDelta::days(10));
        assert_eq!(
            (warn.len(), warn[0].code.as_str(), warn[0].level),
            (1, "expiry", Level::Warning)
        );
        assert_eq!(
            warn[0].summary,
            "example.app: domain expires 2024-01-11 15:28 UTC (in 10 days) — renew it"
        );
        let crit = at(expiry - TimeDelta::days(3));
        assert_eq!(crit[0].level, Level::Critical);
        assert!(
            crit[0].summary.contains("(in 3 days) — renew it now"),
            "{}",
            crit[0].summary
        );
        let gone = at(expiry + TimeDelta::days(2));
        assert_eq!(
            gone[0].summary,
            "example.app: domain EXPIRED on 2024-01-11 — renew it now"
        );
        assert!(!gone[0].transient);
        assert_eq!(gone[0].details["source"], "rdap");
        assert_eq!(gone[0].details["nameservers"][0], "ns1.dns-host.example");
    }

    #[test]
    fn client_hold_is_critical_whatever_the_date() {
        let v = findings(&rdap("parked"), &spec(), utc(2024, 1, 20, 0, 0));
        assert_eq!(v.findings.len(), 1);
        let f = &v.findings[0];
        assert_eq!(
            (f.code.as_str(), f.level, f.transient),
            ("status", Level::Critical, false)
        );
        assert_eq!(f.summary, "example.app: domain on CLIENT HOLD at the registrar (expiry 2025-01-11) — renew it now");
        assert_eq!(f.details["statuses"][0], "client hold");
        assert!(v.status.contains("; status client hold"), "{}", v.status);
    }

    #[test]
    fn redemption_wins_over_pending_delete() {
        let v = findings(&rdap("redemption"), &spec(), utc(2024, 2, 26, 0, 0));
        let status = v.findings.iter().find(|f| f.code == "status").unwrap();
        assert!(
            status.summary.contains("in REDEMPTION PERIOD"),
            "{}",
            status.summary
        );
        assert!(status
            .summary
            .ends_with("— restore it at the registrar now"));
        assert!(v
            .findings
            .iter()
            .any(|f| f.code == "expiry" && f.level == Level::Critical));
        assert!(
            v.status.starts_with("expired 2024-01-11 (45 days ago)"),
            "{}",
            v.status
        );
    }

    #[test]
    fn pending_delete_and_inactive_summaries() {
        let mut facts = rdap("active");
        facts.statuses = vec!["pending delete".into()];
        let s = &findings(&facts, &spec(), utc(2023, 6, 1, 0, 0)).findings[0].summary;
        assert!(s.contains("PENDING DELETE"), "{s}");
        facts.statuses = vec!["inactive".into()];
        let s = &findings(&facts, &spec(), utc(2023, 6, 1, 0, 0)).findings[0].summary;
        assert!(s.contains("INACTIVE (no nameservers delegated)"), "{s}");
    }

    #[test]
    fn nameserver_mismatch_names_both_sets() {
        let mut spec = spec();
        spec.expect_nameservers = vec![
            "NS2.dns-host.example.".into(),
            "ns1.dns-host.example".into(),
        ];
        let v = findings(&rdap("parked"), &spec, utc(2024, 1, 20, 0, 0));
        let ns = v.findings.iter().find(|f| f.code == "nameservers").unwrap();
        assert_eq!(ns.level, Level::Critical);
        assert_eq!(
            ns.summary,
            "example.app: nameservers changed to ns1.parking.registrar.example, ns2.parking.registrar.example \
             (expected ns1.dns-host.example, ns2.dns-host.example) — parked or hijacked?"
        );
        assert!(findings(&rdap("renewed"), &spec, utc(2024, 1, 20, 0, 0))
            .findings
            .is_empty());
    }

    #[test]
    fn watcher_date_stands_in_when_the_registry_has_none() {
        let facts = parse_whois(fixture("whois_de")).into_facts("example.de", "whois x".into());
        let mut spec = spec();
        spec.expires = Some(utc(2024, 3, 1, 0, 0));
        let v = findings(&facts, &spec, utc(2024, 2, 20, 0, 0));
        assert_eq!(v.findings[0].level, Level::Warning);
        assert!(
            v.findings[0]
                .summary
                .contains("(in 10 days, date from the watcher's `expires`)"),
            "{}",
            v.findings[0].summary
        );
        assert_eq!(v.findings[0].details["expiry_from"], "watcher");
        assert!(v.status.starts_with("expires 2024-03-01"), "{}", v.status);
    }

    #[test]
    fn renewed_domain_is_healthy_with_a_note() {
        let facts = rdap("renewed");
        let v = findings(&facts, &spec(), utc(2024, 1, 12, 1, 0));
        assert!(v.findings.is_empty());
        assert!(v.status.starts_with("expires 2026-01-11"), "{}", v.status);
        assert_eq!(renewed_note(&facts), "renewed until 2026-01-11");
    }

    #[test]
    fn short_horizons_in_words() {
        assert_eq!(in_words(TimeDelta::hours(30)), "in 1 day");
        assert_eq!(in_words(TimeDelta::hours(5)), "in 5 hours");
        assert_eq!(in_words(TimeDelta::minutes(61)), "in 1 hour");
        assert_eq!(in_words(TimeDelta::minutes(5)), "in under an hour");
    }
}
