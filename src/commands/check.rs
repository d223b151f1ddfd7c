//! `rouse check DIR`: validate a rotations folder and warn about coverage gaps ahead,
//! about domains the configuration depends on that no `domain` watcher watches,
//! and, with the database's test pages, about people going on call whose
//! phones have not proven they wake them.

use crate::catalog::{load_dir, Catalog};
use crate::config::Config;
use crate::escalation::test_page::{self, TestPageResult};
use crate::oncall::coverage_gaps;
use crate::watch::domain::registrable_domain;
use crate::watch::spec::WatchKind;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// How far ahead `check` looks for coverage gaps.
pub const GAP_HORIZON_DAYS: i64 = 28;

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(crate) fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn local(t: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    t.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// Prints every error as `file:line:column: message` and returns false if there were any.
/// Coverage gaps are printed as `warning:` lines and do not make the check fail.
/// Checks against the built-in default settings; see [`check_with_config`].
pub fn check(
    dir: &Path,
    now: DateTime<Utc>,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    check_with_config(dir, now, env, &Config::default(), None, out)
}

/// [`check`] against the loaded settings: also warns about every domain the
/// configuration depends on (watched hosts, `public_url`, channel endpoints)
/// that no `domain` watcher covers. `config_file` is where `config` was read
/// from, to point the warnings at the right line.
pub fn check_with_config(
    dir: &Path,
    now: DateTime<Utc>,
    env: &dyn Fn(&str) -> Option<String>,
    config: &Config,
    config_file: Option<&Path>,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    check_with(dir, now, env, config, config_file, None, out)
}

/// [`check_with_config`], and with `test_pages` (from `--database-url`) a
/// `warning:` at each person on call in the next 14 days without an
/// acknowledged test page on one of their high-urgency methods in the last
/// 90 days.
pub fn check_with(
    dir: &Path,
    now: DateTime<Utc>,
    env: &dyn Fn(&str) -> Option<String>,
    config: &Config,
    config_file: Option<&Path>,
    test_pages: Option<&[TestPageResult]>,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let catalog = match load_dir(dir, env) {
        Ok(c) => c,
        Err(diags) => {
            for d in &diags.0 {
                writeln!(out, "{d}")?;
            }
            writeln!(
                out,
                "error: {}",
                plural(diags.0.len(), "problem", "problems")
            )?;
            return Ok(false);
        }
    };
    let until = now + TimeDelta::days(GAP_HORIZON_DAYS);
    let gaps = coverage_gaps(&catalog, now, until);
    for g in &gaps {
        let zone = catalog
            .schedule(&g.schedule_id)
            .map_or(chrono_tz::UTC, |s| s.zone);
        writeln!(
            out,
            "warning: schedule `{}` has nobody on call from {} to {} ({} to {})",
            g.schedule_id,
            utc(g.start),
            utc(g.end),
            local(g.start, zone),
            local(g.end, zone),
        )?;
    }
    let sources = Sources {
        env,
        file: config_file.and_then(|p| Some((p, std::fs::read_to_string(p).ok()?))),
    };
    for warning in uncovered_domains(&catalog, config, &sources) {
        writeln!(out, "{warning}")?;
    }
    for warning in unwatched_own_certificates(&catalog, config, &sources) {
        writeln!(out, "{warning}")?;
    }
    if let Some(results) = test_pages {
        for (person, method) in test_page::unproven(&catalog, results, now) {
            let place = catalog
                .person_place(&person)
                .map(|p| format!("{p}: "))
                .unwrap_or_default();
            writeln!(
                out,
                "warning: {place}person `{person}` is on call in the next {} days without an acknowledged {} test page in the last {} days; run `rouse test-page {person} --via {}`",
                test_page::ON_CALL_HORIZON.num_days(),
                method.as_str(),
                test_page::PROOF_MAX_AGE.num_days(),
                method.as_str(),
            )?;
        }
    } else {
        writeln!(
            out,
            "note: test pages not checked; with --database-url, people on call in the next {} days whose phones have not proven they wake them are warned about",
            test_page::ON_CALL_HORIZON.num_days()
        )?;
    }
    let gap_text = if gaps.is_empty() {
        "no coverage gaps".to_string()
    } else {
        plural(gaps.len(), "coverage gap", "coverage gaps")
    };
    writeln!(
        out,
        "ok: {}, {}, {}, {}, {}, {}; {} in the next {} days",
        plural(catalog.people().count(), "person", "people"),
        plural(catalog.rotations().count(), "rotation", "rotations"),
        plural(catalog.schedules().count(), "schedule", "schedules"),
        plural(catalog.policies().count(), "policy", "policies"),
        plural(catalog.services().count(), "service", "services"),
        plural(catalog.watchers().count(), "watcher", "watchers"),
        gap_text,
        GAP_HORIZON_DAYS,
    )?;
    Ok(true)
}

// ------------------------------------------------------------ domain coverage

/// A host the configuration depends on: if its domain lapses, the thing
/// named by `what` stops working (the lesson of a postmortem where it did).
struct Dependency {
    host: String,
    /// `tls watcher `shop-tls``, `public_url`, `channels.slack.webhook_url`.
    what: String,
    /// `file:line:column`, an environment variable's name, or `(default)`.
    place: String,
    /// The service a suggested domain watcher would page.
    service: Option<String>,
}

/// Where settings came from, to say where a host was configured.
struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<(&'a Path, String)>,
}

impl Sources<'_> {
    /// The environment variable (if it set the value), else the host's first
    /// occurrence in the config file, else the built-in default.
    fn place(&self, host: &str, env_name: Option<&str>) -> String {
        if let Some(name) = env_name {
            if (self.env)(name).as_deref().and_then(url_host).as_deref() == Some(host) {
                return name.to_owned();
            }
        }
        self.file
            .as_ref()
            .and_then(|(path, text)| {
                let (line, column) = find_host(text, host)?;
                Some(format!("{}:{line}:{column}", path.display()))
            })
            .unwrap_or_else(|| "(default)".to_owned())
    }
}

/// One `warning:` line per registrable domain that something depends on and
/// no domain watcher covers, in the order the dependencies are listed.
fn uncovered_domains(catalog: &Catalog, config: &Config, sources: &Sources<'_>) -> Vec<String> {
    let covered: BTreeSet<String> = catalog
        .watchers()
        .filter_map(|w| match &w.kind {
            WatchKind::Domain(d) => registrable_domain(&d.domain),
            _ => None,
        })
        .collect();
    let mut groups: Vec<(String, Vec<Dependency>)> = Vec::new();
    for dep in dependencies(catalog, config, sources) {
        let Some(reg) = registrable(&dep.host) else {
            continue;
        };
        if covered.contains(&reg) {
            continue;
        }
        match groups.iter_mut().find(|(r, _)| *r == reg) {
            Some((_, deps)) => deps.push(dep),
            None => groups.push((reg, vec![dep])),
        }
    }
    let only_service = match catalog.services().collect::<Vec<_>>()[..] {
        [one] => Some(one.id.clone()),
        _ => None,
    };
    groups
        .iter()
        .map(|(reg, deps)| warning_line(reg, deps, only_service.as_deref()))
        .collect()
}

/// Every host the watchers and the settings depend on.
fn dependencies(catalog: &Catalog, config: &Config, sources: &Sources<'_>) -> Vec<Dependency> {
    let mut deps = Vec::new();
    for w in catalog.watchers() {
        let host = match &w.kind {
            // The name the certificate is for (the host may be an address).
            WatchKind::Tls(t) => Some(t.server_name.clone()),
            WatchKind::Http(h) => url_host(&h.url),
            WatchKind::Pulse(p) => url_host(&p.url),
            _ => None,
        };
        if let Some(host) = host {
            deps.push(Dependency {
                host,
                what: format!("{} watcher `{}`", w.kind.name(), w.id),
                place: w.place.clone(),
                // Pulse watchers belong to no service.
                service: Some(w.service.clone()).filter(|s| !s.is_empty()),
            });
        }
    }
    // Ack links and provider callbacks all point at Rouse's own domain.
    if let Some(host) = url_host(&config.public_url) {
        let place = sources.place(&host, Some("ROUSE_PUBLIC_URL"));
        deps.push(setting(host, "public_url", place));
    }
    for (name, host) in config.channels.endpoint_hosts() {
        let place = sources.place(&host, None);
        deps.push(setting(host, name, place));
    }
    deps
}

fn setting(host: String, name: &str, place: String) -> Dependency {
    Dependency {
        host,
        what: name.to_owned(),
        place,
        service: None,
    }
}

/// The registrable domain worth a domain watcher: none for IPs, localhost
/// and names under suffixes nobody can register (`.internal`, `.local`).
fn registrable(host: &str) -> Option<String> {
    let reg = registrable_domain(host)?;
    psl::suffix(reg.as_bytes())
        .is_some_and(|s| s.is_known())
        .then_some(reg)
}

fn warning_line(reg: &str, deps: &[Dependency], only_service: Option<&str>) -> String {
    let first = &deps[0];
    let mut what = first.what.clone();
    if deps.len() > 1 {
        let rest: Vec<String> = deps[1..]
            .iter()
            .map(|d| format!("{} ({})", d.what, d.host))
            .collect();
        what = format!("{what}; also {}", rest.join(", "));
    }
    let service = deps
        .iter()
        .find_map(|d| d.service.as_deref())
        .or(only_service)
        .unwrap_or("<service>");
    format!(
        "warning: {}: {} ({what}) depends on the domain {reg} that no domain watcher watches \
         — add {{id: {reg}-domain, kind: domain, service: {service}, domain: {reg}}}",
        first.place, first.host,
    )
}

// ------------------------------------------------------- Rouse's own certificate

/// One `warning:` per name Rouse is reached at over HTTPS (an `https://`
/// `public_url`, each `tls.acme.domains` entry) whose certificate no `tls`
/// watcher (nor an `http` watcher on an `https://` URL) checks. Rouse's own
/// certificate is watched like any other: a renewal that silently stopped
/// (a dead certbot timer, an ACME account the CA disabled) breaks every ack
/// link and provider callback at once, and nothing else would notice.
fn unwatched_own_certificates(
    catalog: &Catalog,
    config: &Config,
    sources: &Sources<'_>,
) -> Vec<String> {
    let watched: BTreeSet<String> = catalog
        .watchers()
        .filter_map(|w| match &w.kind {
            WatchKind::Tls(t) => Some(t.server_name.to_ascii_lowercase()),
            WatchKind::Http(h) if h.url.starts_with("https://") => url_host(&h.url),
            _ => None,
        })
        .collect();
    let mut names: Vec<(String, &str, String)> = Vec::new();
    if config.public_url.starts_with("https://") {
        if let Some(host) = url_host(&config.public_url) {
            let place = sources.place(&host, Some("ROUSE_PUBLIC_URL"));
            names.push((host, "public_url", place));
        }
    }
    for domain in &config.tls.acme_domains {
        let place = sources.place(domain, Some("ROUSE_TLS_ACME_DOMAINS"));
        names.push((domain.to_ascii_lowercase(), "tls.acme.domains", place));
    }
    let service = match catalog.services().collect::<Vec<_>>()[..] {
        [one] => one.id.clone(),
        _ => "<service>".to_owned(),
    };
    let mut seen = BTreeSet::new();
    names
        .into_iter()
        .filter(|(host, _, _)| !watched.contains(host) && seen.insert(host.clone()))
        .map(|(host, what, place)| {
            format!(
                "warning: {place}: Rouse's own certificate for {host} ({what}) is checked by no tls watcher \
                 — add {{id: {host}-tls, kind: tls, service: {service}, host: {host}}}"
            )
        })
        .collect()
}

/// Only the host of a URL: paths and queries of webhook URLs are secrets.
fn url_host(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
}

/// 1-based line and column (in characters) of the first occurrence of `host`
/// in `text` that is a whole host name (not the tail of a longer one).
fn find_host(text: &str, host: &str) -> Option<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let needle = host.to_ascii_lowercase();
    let label = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let start = lower.match_indices(&needle).map(|(i, _)| i).find(|&i| {
        let before = lower[..i].chars().next_back();
        let mut after = lower[i + needle.len()..].chars();
        let next = after.next();
        // `example.net` is not found in `pager.example.net` nor in `example.net.evil.com`.
        let longer =
            next.is_some_and(label) || (next == Some('.') && after.next().is_some_and(label));
        !before.is_some_and(|c| label(c) || c == '.') && !longer
    })?;
    let line_start = lower[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = lower[..start].matches('\n').count() + 1;
    Some((line, lower[line_start..start].chars().count() + 1))
}
