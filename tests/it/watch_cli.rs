//! `rouse check`'s domain coverage lint and `rouse watch --once`, called as
//! library functions and as the real binary: which hosts need a domain
//! watcher and where they were configured, what each watcher's single run
//! reports, and the exit codes operators script against.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::commands::check::check_with_config;
use rouse::commands::watch::{watch, WatchArgs};
use rouse::config::{Config, Secret};
use serde_json::Value;

use crate::peers::free_port;

/// The small organisation the runner tests use.
const ONCALL: &str = crate::watch_runner::PEOPLE;

fn no_env(_: &str) -> Option<String> {
    None
}

/// A rotations folder: the on-call basics in one file, the watchers in another.
fn catalog(watchers: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("oncall.yaml"), ONCALL).unwrap();
    std::fs::write(dir.path().join("watchers.yaml"), watchers).unwrap();
    dir
}

/// `file:line:column` of the watcher whose `- id:` line names `id`.
fn place_of(dir: &Path, id: &str) -> String {
    let file = dir.join("watchers.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let (n, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim_start() == format!("- id: {id}"))
        .unwrap();
    let column = line.find("id:").unwrap() + 1;
    format!("{}:{}:{column}", file.display(), n + 1)
}

fn run_check(dir: &Path, config: &Config, file: Option<&Path>) -> (bool, String) {
    let mut out = Vec::new();
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let ok = check_with_config(dir, now, &no_env, config, file, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    (ok, text)
}

fn warnings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("warning:")).collect()
}

const SHOP_TLS: &str = r#"
watchers:
  - id: shop-tls
    kind: tls
    service: payments
    host: shop.example.app
  - id: storefront-api
    kind: http
    service: payments
    url: https://api.example.app/health?token=sekrit
"#;

const EXAMPLE_APP_DOMAIN: &str = r#"
  - id: example-app-domain
    kind: domain
    service: payments
    domain: example.app
"#;

#[test]
fn the_example_folder_checks_clean_with_no_domain_warnings() {
    // Its http watcher is on 127.0.0.1 and the default public_url too; its
    // tls watcher's www.example.com is covered by example-com-domain.
    let (ok, text) = run_check(Path::new("rotations"), &Config::default(), None);
    assert!(ok, "{text}");
    assert_eq!(warnings(&text), Vec::<&str>::new());
    assert!(text.contains(", 1 service, 5 watchers; "), "{text}");
}

#[test]
fn a_tls_host_without_a_domain_watcher_is_one_warning_at_the_watcher() {
    let dir = catalog(SHOP_TLS);
    let (ok, text) = run_check(dir.path(), &Config::default(), None);
    assert!(ok, "a lint never fails the check: {text}");
    let found = warnings(&text);
    assert_eq!(found.len(), 1, "one line per registrable domain: {text}");
    let expected = format!(
        "warning: {}: shop.example.app (tls watcher `shop-tls`; also http watcher `storefront-api` (api.example.app)) \
         depends on the domain example.app that no domain watcher watches \
         — add {{id: example.app-domain, kind: domain, service: payments, domain: example.app}}",
        place_of(dir.path(), "shop-tls")
    );
    assert_eq!(found[0], expected);
    assert!(
        !text.contains("sekrit") && !text.contains("/health"),
        "{text}"
    );
    assert!(text.contains(", 2 watchers; "), "{text}");
}

#[test]
fn a_domain_watcher_for_the_registrable_domain_silences_the_warning() {
    let dir = catalog(&format!("{SHOP_TLS}{EXAMPLE_APP_DOMAIN}"));
    let (ok, text) = run_check(dir.path(), &Config::default(), None);
    assert!(ok, "{text}");
    assert_eq!(warnings(&text), Vec::<&str>::new());
}

#[test]
fn settings_in_the_config_file_are_pointed_at_by_line_and_secrets_stay_out() {
    let dir = catalog(
        EXAMPLE_APP_DOMAIN
            .replace("\n  -", "watchers:\n  -")
            .as_str(),
    );
    let config_dir = tempfile::tempdir().unwrap();
    let file = config_dir.path().join("rouse.yaml");
    std::fs::write(
        &file,
        "# Rouse\nlisten: 127.0.0.1:8080\npublic_url: https://pager.example.net\n\
         channels:\n  slack:\n    webhook_url: https://hooks.slack.com/services/T0/B0/sekrit\n",
    )
    .unwrap();
    let config = Config::load(Some(&file), &no_env).unwrap();
    let (ok, text) = run_check(dir.path(), &config, Some(&file));
    assert!(ok, "{text}");
    let found = warnings(&text);
    // The third: Rouse's own certificate (https public_url) has no tls watcher.
    assert_eq!(found.len(), 3, "{text}");
    let at = file.display();
    assert!(
        found[0].starts_with(&format!(
            "warning: {at}:3:21: pager.example.net (public_url) depends on the domain example.net "
        )),
        "{text}"
    );
    assert!(
        found[1].starts_with(&format!(
            "warning: {at}:6:26: hooks.slack.com (channels.slack.webhook_url) depends on the domain slack.com "
        )),
        "{text}"
    );
    assert!(
        !text.contains("sekrit") && !text.contains("/services"),
        "{text}"
    );
}

#[test]
fn a_public_url_from_the_environment_is_named_by_its_variable() {
    let dir = catalog(
        EXAMPLE_APP_DOMAIN
            .replace("\n  -", "watchers:\n  -")
            .as_str(),
    );
    let env =
        |name: &str| (name == "ROUSE_PUBLIC_URL").then(|| "https://pager.example.org/".into());
    let config = Config::load(None, &env).unwrap();
    let mut out = Vec::new();
    let now = Utc::now();
    assert!(check_with_config(dir.path(), now, &env, &config, None, &mut out).unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("warning: ROUSE_PUBLIC_URL: pager.example.org (public_url) depends on the domain example.org "),
        "{text}"
    );
}

// ---------------------------------------------------------------- rouse watch

/// A configuration whose database and RDAP cache live in `dir`.
fn watch_config(dir: &Path) -> Config {
    let mut config = Config {
        database_url: Secret::new(format!("sqlite://{}", dir.join("rouse.db").display())),
        ..Config::default()
    };
    config.watch.bootstrap_cache = dir.join("rdap-bootstrap.json");
    config
}

async fn ping(config: &Config, name: &str, at: DateTime<Utc>) {
    let store = rouse::store::open(config.database_url.expose(), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.record_heartbeat("payments", name, at).await.unwrap();
    store.close().await;
}

async fn run_watch(dir: &Path, config: &Config, json: bool) -> (u8, String) {
    let args = WatchArgs {
        dir: dir.to_path_buf(),
        once: true,
        json,
    };
    let mut out = Vec::new();
    let code = watch(&args, config, &no_env, Utc::now(), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    (code, text)
}

fn by_id<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["watchers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id)
        .unwrap_or_else(|| panic!("no watcher {id} in {doc:#}"))
}

fn heartbeats_and_tls(port: u16) -> String {
    format!(
        r#"
watchers:
  - id: backup
    kind: heartbeat
    service: payments
    interval: 1h
    grace: 10m
  - id: report
    kind: heartbeat
    service: payments
    interval: 1d
    grace: 1h
  - id: shop-tls
    kind: tls
    service: payments
    host: 127.0.0.1
    port: {port}
    server_name: shop.example.app
    timeout: 3s
"#
    )
}

#[tokio::test]
async fn once_json_reports_pinged_waiting_and_unreachable_and_exits_1() {
    let dir = catalog(&heartbeats_and_tls(free_port()));
    let config = watch_config(dir.path());
    ping(&config, "backup", Utc::now() - TimeDelta::minutes(5)).await;
    let (code, text) = run_watch(dir.path(), &config, true).await;
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(
        doc["checked_at"].as_str().unwrap().ends_with('Z'),
        "{doc:#}"
    );
    let backup = by_id(&doc, "backup");
    assert_eq!(backup["result"], "ok", "{doc:#}");
    assert_eq!(backup["kind"], "heartbeat");
    assert!(backup["status"].as_str().unwrap().starts_with("last ping "));
    assert!(!backup["facts"]["last_ping_at"].is_null());
    let report = by_id(&doc, "report");
    assert_eq!(report["result"], "waiting", "{doc:#}");
    assert_eq!(report["findings"], serde_json::json!([]));
    let tls = by_id(&doc, "shop-tls");
    assert_eq!(tls["result"], "critical", "{doc:#}");
    assert_eq!(tls["findings"][0]["code"], "unreachable");
    assert_eq!(tls["findings"][0]["level"], "critical");
    assert!(tls["findings"][0]["summary"].is_string());
    assert!(tls["findings"][0]["details"].is_object());
    assert_eq!(code, 1, "a critical finding exits 1");
}

#[tokio::test]
async fn only_a_pinged_heartbeat_exits_0() {
    let dir = catalog(
        "watchers:\n  - id: backup\n    kind: heartbeat\n    service: payments\n    interval: 1h\n    grace: 10m\n",
    );
    let config = watch_config(dir.path());
    ping(&config, "backup", Utc::now() - TimeDelta::minutes(1)).await;
    let (code, text) = run_watch(dir.path(), &config, false).await;
    assert_eq!(code, 0, "{text}");
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("backup  heartbeat  heartbeat backup  ok  last ping "),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("1 watcher: 1 ok"));
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_skips_only_the_silence_watchers() {
    let dir = catalog(&heartbeats_and_tls(free_port()));
    let mut config = watch_config(dir.path());
    config.database_url = Secret::new("sqlite:///nonexistent-rouse-dir/rouse.db");
    let (code, text) = run_watch(dir.path(), &config, true).await;
    let doc: Value = serde_json::from_str(&text).unwrap();
    for id in ["backup", "report"] {
        let w = by_id(&doc, id);
        assert_eq!(w["result"], "skipped", "{doc:#}");
        assert!(
            w["status"].as_str().unwrap().contains("database"),
            "{doc:#}"
        );
    }
    assert_eq!(by_id(&doc, "shop-tls")["result"], "critical");
    assert_eq!(code, 1);
}

#[tokio::test]
async fn a_configuration_error_prints_its_place_and_exits_2() {
    let dir = catalog("watchers:\n  - id: odd\n    kind: carrier-pigeon\n    service: payments\n");
    let config = watch_config(dir.path());
    let (code, text) = run_watch(dir.path(), &config, true).await;
    assert_eq!(code, 2, "{text}");
    let file = dir.path().join("watchers.yaml");
    assert!(
        text.contains(&format!("{}:3:11: unknown watcher kind", file.display())),
        "{text}"
    );
}

// ------------------------------------------------------------------ the binary

fn rouse(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rouse"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ROUSE_") {
            cmd.env_remove(key);
        }
    }
    // The default database and RDAP cache are relative: keep them in the temp dir.
    cmd.current_dir(dir);
    cmd
}

fn folder(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_path_buf()
}

#[test]
fn the_binary_prints_a_line_per_watcher_and_exits_by_what_it_found() {
    let dir = catalog(&heartbeats_and_tls(free_port()));
    let out = rouse(dir.path())
        .args(["watch", folder(&dir).to_str().unwrap(), "--once"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("backup ") && lines[0].contains(" waiting "),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("report ") && lines[1].contains(" waiting "),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("shop-tls ") && lines[2].contains(" critical "),
        "{stdout}"
    );
    assert!(lines[3].starts_with("    critical: 127.0.0.1:"), "{stdout}");
    assert_eq!(lines.last(), Some(&"3 watchers: 2 waiting, 1 critical"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        dir.path().join("rouse.db").exists(),
        "the configured database was used"
    );
}

#[test]
fn the_binary_exits_2_on_a_bad_watcher_and_without_once() {
    let dir = catalog("watchers:\n  - id: odd\n    kind: carrier-pigeon\n    service: payments\n");
    let out = rouse(dir.path())
        .args(["watch", folder(&dir).to_str().unwrap(), "--once"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("watchers.yaml:3:11: unknown watcher kind"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(2));
    let out = rouse(dir.path()).args(["watch"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rouse serve") && stdout.contains("--once"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1);
    assert_eq!(out.status.code(), Some(2));
}
