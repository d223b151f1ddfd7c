//! The `watchers:` section: defaults per kind, every validation error with
//! its exact `file:line:column`, and a rejected edit that keeps the last
//! good watchers running.

use std::path::PathBuf;

use chrono::TimeDelta;
use rouse::catalog::live::{LiveCatalog, Reload};
use rouse::catalog::load_files;
use rouse::watch::schedule::When;
use rouse::watch::spec::WatchKind;

const BASE: &str = "people:
  - id: alice
    name: Alice
    timezone: Europe/Berlin
rotations:
  - id: r
    timezone: UTC
    participants: [alice]
    shift: 1w
    handoff: \"09:00\"
    start: 2026-01-05
schedules:
  - id: s
    timezone: UTC
    layers: [{rotation: r}]
policies:
  - id: p
    steps:
      - targets: [{schedule: s}]
        channels: [sms]
services:
  - id: shop
    policy: p
";

fn load(watchers: &str) -> Result<rouse::catalog::Catalog, String> {
    let files = vec![
        (PathBuf::from("base.yaml"), BASE.to_owned()),
        (PathBuf::from("watch.yaml"), watchers.to_owned()),
    ];
    load_files(&files, &|_| None).map_err(|d| d.to_string())
}

#[test]
fn every_kind_gets_its_defaults() {
    let catalog = load(
        "watchers:
  - {id: d, kind: domain, service: shop, domain: www.example.app}
  - {id: t, kind: tls, service: shop, host: shop.example.app}
  - {id: h, kind: http, service: shop, url: https://shop.example.app/healthz}
  - {id: b, kind: heartbeat, service: shop, interval: 1h}
  - {id: w, kind: watchdog, service: shop, match: {alertname: Watchdog}, interval: 5m}
  - {id: p, kind: pulse, url: https://hc-ping.example/abc}
",
    )
    .unwrap();
    let w = |id: &str| catalog.watcher(id).unwrap().clone();
    assert_eq!(w("d").when, When::Every(TimeDelta::days(1)));
    assert_eq!(w("d").failures_before_alert, 3);
    let WatchKind::Domain(d) = w("d").kind else {
        panic!()
    };
    assert_eq!(
        (d.warn, d.critical),
        (TimeDelta::days(30), TimeDelta::days(7))
    );
    assert_eq!(w("t").when, When::Every(TimeDelta::hours(1)));
    let WatchKind::Tls(t) = w("t").kind else {
        panic!()
    };
    assert_eq!((t.port, t.server_name.as_str()), (443, "shop.example.app"));
    assert_eq!(w("h").when, When::Every(TimeDelta::minutes(1)));
    let WatchKind::Http(h) = w("h").kind else {
        panic!()
    };
    assert_eq!(
        (h.method.as_str(), h.expect_status, h.follow_redirects),
        ("GET", (200, 299), true)
    );
    let WatchKind::Heartbeat(b) = w("b").kind else {
        panic!()
    };
    assert_eq!((b.name.as_str(), b.grace), ("b", TimeDelta::minutes(12)));
    assert_eq!(w("p").service, "", "a pulse pages nobody");
    assert_eq!(catalog.watchdogs("shop").count(), 1);
}

#[test]
fn cron_is_read_in_its_zone() {
    let catalog = load(
        "watchers:
  - {id: d, kind: domain, service: shop, domain: example.app, cron: \"0 7 * * *\", timezone: Europe/Berlin}
",
    )
    .unwrap();
    let when = &catalog.watcher("d").unwrap().when;
    let after = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z")
        .unwrap()
        .to_utc();
    assert_eq!(
        when.next_after(after).to_rfc3339(),
        "2026-07-01T05:00:00+00:00"
    );
}

#[test]
fn each_mistake_is_reported_where_it_is() {
    let err = load(
        "watchers:
  - id: a
    kind: domian
    service: shop
  - id: b
    kind: tls
    service: shop
    host: shop.example.app
    url: https://x.example
  - id: c
    kind: domain
    service: nowhere
    domain: example.app
  - id: d
    kind: domain
    service: shop
    domain: example.app
    cron: \"0 7 * * *\"
  - id: e
    kind: http
    service: shop
    url: ftp://example.app/
    expect_status: \"299-200\"
  - id: f
    kind: domain
    service: shop
    domain: example.app
    warn: 3d
    critical: 7d
  - id: g
    kind: heartbeat
    service: shop
  - id: a
    kind: pulse
    url: https://hc.example/x
  - id: h
    kind: tls
    service: shop
    host: shop.example.app
    every: 1s
",
    )
    .unwrap_err();
    let expected = [
        "watch.yaml:3:11: unknown watcher kind `domian`: expected domain, tls, http, heartbeat, watchdog or pulse",
        "watch.yaml:9:10: `url` does not apply to a tls watcher",
        "watch.yaml:12:14: unknown service `nowhere`",
        "watch.yaml:18:11: `cron` needs `timezone`",
        "watch.yaml:22:10: `url` must be an http:// or https:// URL, got `ftp://example.app/`",
        "watch.yaml:23:20: `expect_status` must be a status",
        "watch.yaml:29:15: `critical` must not be longer than `warn`",
        "watch.yaml:30:5: a heartbeat watcher needs `interval`",
        "watch.yaml:33:9: duplicate watcher id `a` (first defined at watch.yaml:2:9)",
        "watch.yaml:40:12: `every` must be at least 10s",
    ];
    for line in expected {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
}

#[test]
fn a_rejected_edit_keeps_the_last_good_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let write = |watchers: &str| {
        std::fs::write(dir.path().join("oncall.yaml"), format!("{BASE}{watchers}")).unwrap();
    };
    write("watchers:\n  - {id: d, kind: domain, service: shop, domain: example.app}\n");
    let live = LiveCatalog::new(dir.path(), Box::new(|_: &str| None));
    let now = chrono::Utc::now();
    assert!(matches!(live.reload(now, true), Reload::Applied));
    write("watchers:\n  - {id: d, kind: domain, service: shop, domian: example.app}\n");
    let rejected = live.reload(now, true);
    let Reload::Rejected(diags) = rejected else {
        panic!("{rejected:?}")
    };
    assert!(
        diags.iter().any(|d| d.contains("oncall.yaml:")),
        "{diags:?}"
    );
    let current = live.current().unwrap();
    assert!(
        current.watcher("d").is_some(),
        "the last good watcher keeps running"
    );
}
