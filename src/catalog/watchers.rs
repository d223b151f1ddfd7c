//! The `watchers:` section: its YAML shape and its validation into
//! [`WatcherSpec`]s. One flat shape for every kind (so each field keeps its
//! location), and a field that does not belong to the watcher's kind is an
//! error rather than silently ignored.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::TimeDelta;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::build::{at, Ctx, Place};
use super::yaml::Text;
use crate::oncall::time::{parse_date, parse_duration, parse_instant};
use crate::watch::schedule::When;
use crate::watch::spec::{
    CertPolicy, DomainSpec, HeartbeatSpec, HttpSpec, PulseSpec, TlsSpec, WatchKind, WatchdogSpec,
    WatcherSpec,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatcherYaml {
    pub id: Text,
    pub kind: Text,
    #[serde(default)]
    pub service: Option<Text>,
    #[serde(default)]
    pub every: Option<Text>,
    #[serde(default)]
    pub cron: Option<Text>,
    #[serde(default)]
    pub timezone: Option<Text>,
    #[serde(default)]
    pub timeout: Option<Text>,
    #[serde(default)]
    pub failures_before_alert: Option<Spanned<u32>>,
    #[serde(default)]
    pub successes_before_resolve: Option<Spanned<u32>>,
    // domain
    #[serde(default)]
    pub domain: Option<Text>,
    #[serde(default)]
    pub rdap_url: Option<Text>,
    #[serde(default)]
    pub whois: Option<Text>,
    #[serde(default)]
    pub expect_nameservers: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub expires: Option<Text>,
    // domain, tls, http
    #[serde(default)]
    pub warn: Option<Text>,
    #[serde(default)]
    pub critical: Option<Text>,
    // tls, http
    #[serde(default)]
    pub ca_file: Option<Text>,
    // tls
    #[serde(default)]
    pub host: Option<Text>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub server_name: Option<Text>,
    // http, pulse
    #[serde(default)]
    pub url: Option<Text>,
    #[serde(default)]
    pub method: Option<Text>,
    // http
    #[serde(default)]
    pub expect_status: Option<Text>,
    #[serde(default)]
    pub body_contains: Option<Text>,
    #[serde(default)]
    pub follow_redirects: Option<Spanned<bool>>,
    // heartbeat, watchdog
    #[serde(default)]
    pub name: Option<Text>,
    #[serde(default)]
    pub interval: Option<Text>,
    #[serde(default)]
    pub grace: Option<Text>,
    #[serde(default, rename = "match")]
    pub matchers: Option<Spanned<BTreeMap<String, String>>>,
}

/// Per-kind defaults: how often, how long one run may take, and how many
/// runs a blip must last before it pages.
struct Defaults {
    every: TimeDelta,
    timeout: Duration,
    failures_before_alert: u32,
    successes_before_resolve: u32,
}

fn defaults(kind: &str) -> Option<Defaults> {
    let d = |every: TimeDelta, timeout: u64, failures, successes| Defaults {
        every,
        timeout: Duration::from_secs(timeout),
        failures_before_alert: failures,
        successes_before_resolve: successes,
    };
    Some(match kind {
        // Registries rate-limit; daily is plenty when the warning comes a
        // month ahead. Three failed days before "cannot check".
        "domain" => d(TimeDelta::days(1), 60, 3, 1),
        "tls" => d(TimeDelta::hours(1), 20, 2, 1),
        "http" => d(TimeDelta::minutes(1), 10, 3, 2),
        // Silence checks also run at each exact deadline; this is only how
        // often they look in between.
        "heartbeat" | "watchdog" => d(TimeDelta::seconds(30), 10, 1, 1),
        "pulse" => d(TimeDelta::minutes(1), 10, 1, 1),
        _ => return None,
    })
}

/// The fields each kind takes beyond the common ones.
fn allowed(kind: &str) -> &'static [&'static str] {
    match kind {
        "domain" => &[
            "domain",
            "rdap_url",
            "whois",
            "expect_nameservers",
            "expires",
            "warn",
            "critical",
        ],
        "tls" => &["host", "port", "server_name", "ca_file", "warn", "critical"],
        "http" => &[
            "url",
            "method",
            "expect_status",
            "body_contains",
            "follow_redirects",
            "ca_file",
            "warn",
            "critical",
        ],
        "heartbeat" => &["name", "interval", "grace"],
        "watchdog" => &["match", "interval", "grace"],
        "pulse" => &["url", "method"],
        _ => &[],
    }
}

impl WatcherYaml {
    /// The kind-specific fields that are set, with their places.
    fn set_fields(&self, f: usize) -> Vec<(&'static str, Place)> {
        let mut out = Vec::new();
        let mut text = |name, v: &Option<Text>| {
            if let Some(t) = v {
                out.push((name, at(f, t)));
            }
        };
        text("domain", &self.domain);
        text("rdap_url", &self.rdap_url);
        text("whois", &self.whois);
        text("expires", &self.expires);
        text("warn", &self.warn);
        text("critical", &self.critical);
        text("ca_file", &self.ca_file);
        text("host", &self.host);
        text("server_name", &self.server_name);
        text("url", &self.url);
        text("method", &self.method);
        text("expect_status", &self.expect_status);
        text("body_contains", &self.body_contains);
        text("name", &self.name);
        text("interval", &self.interval);
        text("grace", &self.grace);
        if let Some(v) = &self.expect_nameservers {
            out.push(("expect_nameservers", at(f, v)));
        }
        if let Some(v) = &self.port {
            out.push(("port", at(f, v)));
        }
        if let Some(v) = &self.follow_redirects {
            out.push(("follow_redirects", at(f, v)));
        }
        if let Some(v) = &self.matchers {
            out.push(("match", at(f, v)));
        }
        out
    }
}

pub(super) fn build_watcher(
    cx: &mut Ctx<'_>,
    services: &std::collections::HashMap<String, Place>,
    f: usize,
    w: &Spanned<WatcherYaml>,
) -> Option<WatcherSpec> {
    let y = &w.value;
    let kind = y.kind.value.trim();
    let Some(def) = defaults(kind) else {
        cx.err(
            at(f, &y.kind),
            format!(
                "unknown watcher kind `{kind}`: expected domain, tls, http, heartbeat, watchdog or pulse"
            ),
        );
        return None;
    };
    let mut ok = true;
    for (field, place) in y.set_fields(f) {
        if !allowed(kind).contains(&field) {
            cx.err(
                place,
                format!("`{field}` does not apply to a {kind} watcher"),
            );
            ok = false;
        }
    }
    let service = match (&y.service, kind) {
        (Some(s), _) => {
            ok &= cx.reference(services, "service", f, s);
            s.value.clone()
        }
        // Pulse pings out and never pages, so it belongs to no service.
        (None, "pulse") => String::new(),
        (None, _) => {
            cx.err(
                at(f, w),
                format!("a {kind} watcher needs `service` (whose policy it pages)"),
            );
            ok = false;
            String::new()
        }
    };
    let when = schedule(cx, f, y, def.every);
    let timeout = match &y.timeout {
        Some(t) => positive(cx, f, t, "timeout").and_then(|d| d.to_std().ok()),
        None => Some(def.timeout),
    };
    let failures = count(
        cx,
        f,
        &y.failures_before_alert,
        def.failures_before_alert,
        "failures_before_alert",
    );
    let successes = count(
        cx,
        f,
        &y.successes_before_resolve,
        def.successes_before_resolve,
        "successes_before_resolve",
    );
    let kind_spec = match kind {
        "domain" => domain(cx, f, w),
        "tls" => tls(cx, f, w),
        "http" => http(cx, f, w),
        "heartbeat" => heartbeat(cx, f, w),
        "watchdog" => watchdog(cx, f, w),
        _ => pulse(cx, f, w),
    };
    let (when, timeout, failures, successes, kind_spec) =
        (when?, timeout?, failures?, successes?, kind_spec?);
    ok.then(|| WatcherSpec {
        id: y.id.value.clone(),
        service,
        when,
        kind: kind_spec,
        failures_before_alert: failures,
        successes_before_resolve: successes,
        timeout,
        place: cx.describe(at(f, w)),
    })
}

fn schedule(cx: &mut Ctx<'_>, f: usize, y: &WatcherYaml, default: TimeDelta) -> Option<When> {
    match (&y.every, &y.cron) {
        (Some(_), Some(c)) => {
            cx.err(at(f, c), "give either `every` or `cron`, not both");
            None
        }
        (Some(e), None) => {
            let d = positive(cx, f, e, "every")?;
            cx.parse(f, e, |_| When::every(d))
        }
        (None, Some(c)) => {
            let Some(tz) = &y.timezone else {
                cx.err(at(f, c), "`cron` needs `timezone` (the zone its hours are read in), e.g. `timezone: Europe/Berlin`");
                return None;
            };
            let zone = cx.zone(f, tz)?;
            cx.parse(f, c, |s| When::cron(s, zone))
        }
        (None, None) => {
            if let Some(tz) = &y.timezone {
                cx.err(at(f, tz), "`timezone` applies only with `cron`");
                return None;
            }
            When::every(default).ok()
        }
    }
}

fn positive(cx: &mut Ctx<'_>, f: usize, t: &Text, what: &str) -> Option<TimeDelta> {
    let d = cx.parse(f, t, parse_duration)?;
    if d <= TimeDelta::zero() {
        cx.err(at(f, t), format!("`{what}` must be longer than 0"));
        return None;
    }
    Some(d)
}

fn count(
    cx: &mut Ctx<'_>,
    f: usize,
    v: &Option<Spanned<u32>>,
    default: u32,
    what: &str,
) -> Option<u32> {
    match v {
        None => Some(default),
        Some(n) if (1..=1000).contains(&n.value) => Some(n.value),
        Some(n) => {
            cx.err(at(f, n), format!("`{what}` must be between 1 and 1000"));
            None
        }
    }
}

/// A field the kind cannot do without.
fn required<'a>(
    cx: &mut Ctx<'_>,
    f: usize,
    w: &Spanned<WatcherYaml>,
    v: &'a Option<Text>,
    field: &str,
) -> Option<&'a Text> {
    if v.is_none() {
        cx.err(
            at(f, w),
            format!("a {} watcher needs `{field}`", w.value.kind.value.trim()),
        );
    }
    v.as_ref()
}

fn thresholds(
    cx: &mut Ctx<'_>,
    f: usize,
    y: &WatcherYaml,
    warn: i64,
    critical: i64,
) -> Option<(TimeDelta, TimeDelta)> {
    let warn = match &y.warn {
        Some(t) => positive(cx, f, t, "warn")?,
        None => TimeDelta::days(warn),
    };
    let critical = match &y.critical {
        Some(t) => positive(cx, f, t, "critical")?,
        None => TimeDelta::days(critical),
    };
    if critical > warn {
        let place = y.critical.as_ref().or(y.warn.as_ref());
        if let Some(p) = place {
            cx.err(at(f, p), "`critical` must not be longer than `warn`");
        }
        return None;
    }
    Some((warn, critical))
}

fn hostname(cx: &mut Ctx<'_>, f: usize, t: &Text, what: &str) -> Option<String> {
    let h = t.value.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        cx.err(
            at(f, t),
            format!(
                "`{what}` must be a host name such as example.com, got `{}`",
                t.value
            ),
        );
        return None;
    }
    Some(h)
}

fn http_url(cx: &mut Ctx<'_>, f: usize, t: &Text, what: &str) -> Option<String> {
    match reqwest::Url::parse(t.value.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Some(u.to_string())
        }
        _ => {
            cx.err(
                at(f, t),
                format!(
                    "`{what}` must be an http:// or https:// URL, got `{}`",
                    t.value
                ),
            );
            None
        }
    }
}

fn domain(cx: &mut Ctx<'_>, f: usize, w: &Spanned<WatcherYaml>) -> Option<WatchKind> {
    let y = &w.value;
    let name = required(cx, f, w, &y.domain, "domain")?;
    let name = hostname(cx, f, name, "domain")?;
    let (warn, critical) = thresholds(cx, f, y, 30, 7)?;
    let rdap_url = match &y.rdap_url {
        Some(t) => {
            let mut u = http_url(cx, f, t, "rdap_url")?;
            if !u.ends_with('/') {
                u.push('/');
            }
            Some(u)
        }
        None => None,
    };
    let expires = match &y.expires {
        Some(t) => Some(cx.parse(f, t, |s| {
            parse_date(s)
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
                .or_else(|_| parse_instant(s, chrono_tz::UTC))
        })?),
        None => None,
    };
    let expect_nameservers = match &y.expect_nameservers {
        Some(list) => {
            let mut out = Vec::new();
            for t in &list.value {
                out.push(hostname(cx, f, t, "expect_nameservers")?);
            }
            out
        }
        None => Vec::new(),
    };
    Some(WatchKind::Domain(DomainSpec {
        domain: name,
        warn,
        critical,
        rdap_url,
        whois: y.whois.as_ref().map(|t| t.value.trim().to_owned()),
        expect_nameservers,
        expires,
    }))
}

fn cert_policy(cx: &mut Ctx<'_>, f: usize, y: &WatcherYaml) -> Option<CertPolicy> {
    let (warn, critical) = thresholds(cx, f, y, 21, 7)?;
    // Relative to the YAML file that names it, so the folder can move.
    let ca_file = y.ca_file.as_ref().map(|t| {
        let p = Path::new(t.value.trim());
        match cx.file_dir(f) {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    });
    Some(CertPolicy {
        warn,
        critical,
        ca_file,
    })
}

fn tls(cx: &mut Ctx<'_>, f: usize, w: &Spanned<WatcherYaml>) -> Option<WatchKind> {
    let y = &w.value;
    let host = required(cx, f, w, &y.host, "host")?;
    let host = hostname(cx, f, host, "host")?;
    let server_name = match &y.server_name {
        Some(t) => hostname(cx, f, t, "server_name")?,
        None => host.clone(),
    };
    let port = match &y.port {
        Some(p) if p.value == 0 => {
            cx.err(at(f, p), "`port` must be 1 to 65535");
            return None;
        }
        Some(p) => p.value,
        None => 443,
    };
    Some(WatchKind::Tls(TlsSpec {
        host,
        port,
        server_name,
        cert: cert_policy(cx, f, y)?,
    }))
}

fn method(cx: &mut Ctx<'_>, f: usize, m: &Option<Text>, allowed: &[&str]) -> Option<String> {
    let Some(t) = m else {
        return Some("GET".to_owned());
    };
    let upper = t.value.trim().to_ascii_uppercase();
    if !allowed.contains(&upper.as_str()) {
        cx.err(
            at(f, t),
            format!("`method` must be one of {}", allowed.join(", ")),
        );
        return None;
    }
    Some(upper)
}

fn http(cx: &mut Ctx<'_>, f: usize, w: &Spanned<WatcherYaml>) -> Option<WatchKind> {
    let y = &w.value;
    // Every field is checked before giving up, so one run of `rouse check`
    // shows all of a watcher's mistakes.
    let url = required(cx, f, w, &y.url, "url").and_then(|u| http_url(cx, f, u, "url"));
    let method = method(cx, f, &y.method, &["GET", "HEAD", "POST"]);
    let follow_redirects = y.follow_redirects.as_ref().is_none_or(|b| b.value);
    let expect_status = match &y.expect_status {
        Some(t) => cx.parse(f, t, parse_status_range),
        None if follow_redirects => Some((200, 299)),
        None => Some((200, 399)),
    };
    let cert = cert_policy(cx, f, y);
    Some(WatchKind::Http(HttpSpec {
        url: url?,
        method: method?,
        expect_status: expect_status?,
        body_contains: y.body_contains.as_ref().map(|t| t.value.clone()),
        follow_redirects,
        cert: cert?,
    }))
}

/// `200` or `200-299`.
fn parse_status_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || {
        format!("`expect_status` must be a status such as \"200\" or a range such as \"200-299\", got `{s}`")
    };
    let (lo, hi) = match s.trim().split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

fn interval_grace(
    cx: &mut Ctx<'_>,
    f: usize,
    w: &Spanned<WatcherYaml>,
) -> Option<(TimeDelta, TimeDelta)> {
    let y = &w.value;
    let interval = required(cx, f, w, &y.interval, "interval")?;
    let interval = positive(cx, f, interval, "interval")?;
    let grace = match &y.grace {
        Some(t) => cx.parse(f, t, parse_duration)?,
        // A late cron job or a slow scrape is not an outage.
        None => (interval / 5).max(TimeDelta::minutes(1)),
    };
    Some((interval, grace))
}

fn heartbeat(cx: &mut Ctx<'_>, f: usize, w: &Spanned<WatcherYaml>) -> Option<WatchKind> {
    let (interval, grace) = interval_grace(cx, f, w)?;
    let name = match &w.value.name {
        Some(t) if t.value.is_empty() || t.value.chars().count() > 128 => {
            cx.err(at(f, t), "`name` must be 1 to 128 characters");
            return None;
        }
        Some(t) => t.value.clone(),
        None => w.value.id.value.clone(),
    };
    Some(WatchKind::Heartbeat(HeartbeatSpec {
        name,
        interval,
        grace,
    }))
}

fn watchdog(cx: &mut Ctx<'_>, f: usize, w: &Spanned<WatcherYaml>) -> Option<WatchKind> {
    let (interval, grace) = interval_grace(cx, f, w)?;
    let matchers = match &w.value.matchers {
        Some(m) if !m.value.is_empty() => m.value.clone(),
        Some(m) => {
            cx.err(
                at(f, m),
                "`match` needs at least one label, e.g. `{alertname: Watchdog}`",
            );
            return None;
        }
        None => {
            cx.err(
                at(f, w),
                "a watchdog watcher needs `match` (e.g. `{alertname: Watchdog}`)",
            );
            return None;
        }
    };
    Some(WatchKind::Watchdog(WatchdogSpec {
        matchers,
        interval,
        grace,
    }))
}

fn pulse(cx: &mut Ctx<'_>, f: usize, w: &Spanned<WatcherYaml>) -> Option<WatchKind> {
    let y = &w.value;
    let url = required(cx, f, w, &y.url, "url")?;
    let url = http_url(cx, f, url, "url")?;
    let method = method(cx, f, &y.method, &["GET", "POST"])?;
    Some(WatchKind::Pulse(PulseSpec { url, method }))
}

#[cfg(test)]
mod tests {
    use super::parse_status_range;

    #[test]
    fn status_ranges() {
        assert_eq!(parse_status_range("200"), Ok((200, 200)));
        assert_eq!(parse_status_range("200-299"), Ok((200, 299)));
        assert!(parse_status_range("299-200").is_err());
        assert!(parse_status_range("abc").is_err());
        assert!(parse_status_range("700").is_err());
    }
}
