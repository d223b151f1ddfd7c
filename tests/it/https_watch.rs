//! Rouse's own certificate is watched like any other: `rouse check` warns,
//! at the setting that names it, about every name Rouse is reached at over
//! HTTPS (`public_url`, `tls.acme.domains`) that no tls watcher checks.

use chrono::{TimeZone, Utc};
use rouse::commands::check::check_with_config;
use rouse::config::Config;

fn no_env(_: &str) -> Option<String> {
    None
}

const ONCALL: &str = crate::watch_runner::PEOPLE;

/// Domain watchers for both registrable domains, so only the certificate
/// lint speaks.
const DOMAINS: &str = "watchers:
  - id: example-app-domain
    kind: domain
    service: payments
    domain: example.app
  - id: example-net-domain
    kind: domain
    service: payments
    domain: example.net
";

const OWN_TLS: &str = "  - id: rouse-tls
    kind: tls
    service: payments
    host: pager.example.app
  - id: status-page
    kind: http
    service: payments
    url: https://status.example.net/
";

fn check(watchers: &str, settings: &str) -> (String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rotations = dir.path().join("rotations");
    std::fs::create_dir(&rotations).unwrap();
    std::fs::write(rotations.join("oncall.yaml"), ONCALL).unwrap();
    std::fs::write(rotations.join("watchers.yaml"), watchers).unwrap();
    let file = dir.path().join("rouse.yaml");
    std::fs::write(&file, settings).unwrap();
    let config = Config::load(Some(&file), &no_env).unwrap();
    let mut out = Vec::new();
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    assert!(check_with_config(&rotations, now, &no_env, &config, Some(&file), &mut out).unwrap());
    (String::from_utf8(out).unwrap(), file, dir)
}

fn warnings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("warning:")).collect()
}

const SETTINGS: &str = "public_url: https://pager.example.app\ntls:\n  acme:\n    domains: [pager.example.app, status.example.net]\n";

#[test]
fn every_https_name_without_a_tls_watcher_is_a_warning_at_its_setting() {
    let (text, file, _dir) = check(DOMAINS, SETTINGS);
    let found = warnings(&text);
    assert_eq!(found.len(), 2, "{text}");
    let at = file.display();
    assert_eq!(
        found[0],
        format!(
            "warning: {at}:1:21: Rouse's own certificate for pager.example.app (public_url) is checked by no tls watcher \
             — add {{id: pager.example.app-tls, kind: tls, service: payments, host: pager.example.app}}"
        )
    );
    assert!(
        found[1].starts_with(&format!(
            "warning: {at}:4:34: Rouse's own certificate for status.example.net (tls.acme.domains)"
        )),
        "{text}"
    );
}

#[test]
fn a_tls_or_https_watcher_on_the_name_silences_it() {
    let (text, _, _dir) = check(&format!("{DOMAINS}{OWN_TLS}"), SETTINGS);
    assert_eq!(warnings(&text), Vec::<&str>::new(), "{text}");
}

#[test]
fn plain_http_needs_no_certificate_watcher() {
    let (text, _, _dir) = check(DOMAINS, "public_url: http://pager.example.app\n");
    assert_eq!(warnings(&text), Vec::<&str>::new(), "{text}");
}
