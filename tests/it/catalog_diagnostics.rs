//! Every diagnostic kind, with its exact `file:line:column`, plus merging across files.

use rouse::catalog::{load_dir, load_files, Catalog};
use std::path::PathBuf;

fn no_env(_: &str) -> Option<String> {
    None
}

const PEOPLE: &str = "people:
  - id: alice
    name: Alice
    timezone: Europe/Berlin
  - id: bob
    name: Bob
    timezone: UTC
";

const REST: &str = "rotations:
  - id: r
    timezone: UTC
    participants: [alice, bob]
    shift: 1w
    handoff: \"09:00\"
    start: 2026-01-05
schedules:
  - id: s
    timezone: UTC
    layers:
      - rotation: r
policies:
  - id: p
    steps:
      - targets: [{schedule: s}]
        channels: [sms]
services:
  - id: svc
    policy: p
    integrations:
      - name: dev
        key: k1
";

fn load(files: &[(&str, &str)]) -> Result<Catalog, Vec<String>> {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    load_files(&files, &|k| (k == "SET").then(|| "from-env".to_string()))
        .map_err(|d| d.0.iter().map(ToString::to_string).collect())
}

fn errors(people: &str, rest: &str) -> Vec<String> {
    load(&[("a.yaml", people), ("b.yaml", rest)])
        .err()
        .unwrap_or_default()
}

#[test]
fn valid_files_merge() {
    let c = load(&[("a.yaml", PEOPLE), ("b.yaml", REST)]).unwrap();
    assert!(c.person("alice").is_some() && c.schedule("s").is_some() && c.policy("p").is_some());
    let (svc, name) = c.service_for_key("k1").unwrap();
    assert_eq!((svc.id.as_str(), name), ("svc", "dev"));
    assert!(c.service_for_key("nope").is_none());
    let c2 = load(&[("a.yaml", PEOPLE), ("b.yaml", REST)]).unwrap();
    assert_eq!(c.fingerprint(), c2.fingerprint());
    let c3 = load(&[
        ("a.yaml", PEOPLE),
        ("b.yaml", &format!("{REST}\n# changed\n")),
    ])
    .unwrap();
    assert_ne!(c.fingerprint(), c3.fingerprint());
}

#[test]
fn syntax_error() {
    assert_eq!(
        errors("people: [\n", REST).first().map(String::as_str),
        Some("a.yaml:1:9: unclosed bracket '['")
    );
}

#[test]
fn unknown_field() {
    let e = errors(
        &PEOPLE.replace("    name: Bob\n", "    name: Bob\n    nmae: x\n"),
        REST,
    );
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("a.yaml:7:5: unknown field `nmae`"),
        "{e:?}"
    );
}

#[test]
fn duplicate_key() {
    let e = errors(
        &PEOPLE.replace("    name: Bob\n", "    name: Bob\n    name: Rob\n"),
        REST,
    );
    // In our words: never the parser's hint to its programmers
    // ("set DuplicateKeyPolicy in Options").
    assert_eq!(e[0], "a.yaml:7:5: duplicate key `name`", "{e:?}");
}

#[test]
fn bad_zone() {
    assert_eq!(
        errors(&PEOPLE.replace("timezone: UTC", "timezone: Mars/Olympus"), REST),
        vec!["a.yaml:7:15: unknown time zone `Mars/Olympus`: expected an IANA name such as `Europe/Berlin`"]
    );
}

#[test]
fn unknown_person_and_dangling_references() {
    let rest = REST
        .replace("[alice, bob]", "[alice, zed]")
        .replace("rotation: r", "rotation: q")
        .replace("policy: p", "policy: nope");
    assert_eq!(
        errors(PEOPLE, &rest),
        vec![
            "b.yaml:4:27: unknown person `zed`",
            "b.yaml:12:19: unknown rotation `q`",
            "b.yaml:20:13: unknown policy `nope`",
        ]
    );
    let rest = REST.replace("{schedule: s}", "{schedule: t}");
    assert_eq!(
        errors(PEOPLE, &rest),
        vec!["b.yaml:16:30: unknown schedule `t`"]
    );
}

#[test]
fn duplicate_ids_across_files_name_both_places() {
    let e = load(&[
        ("a.yaml", PEOPLE),
        ("b.yaml", REST),
        (
            "c.yaml",
            "people:\n  - id: bob\n    name: B\n    timezone: UTC\n",
        ),
    ])
    .unwrap_err();
    assert_eq!(
        e,
        vec!["c.yaml:2:9: duplicate person id `bob` (first defined at a.yaml:5:9)"]
    );
}

#[test]
fn bad_duration_time_date_shift() {
    let rest = REST
        .replace("shift: 1w", "shift: 3x")
        .replace("handoff: \"09:00\"", "handoff: \"9:60\"")
        .replace("start: 2026-01-05", "start: 2026-02-30")
        .replace("      - targets", "      - delay: soon\n        targets");
    assert_eq!(
        errors(PEOPLE, &rest),
        vec![
            "b.yaml:5:12: invalid shift length `3x`: expected a positive number of hours, days or weeks (e.g. `12h`, `1d`, `1w`)",
            "b.yaml:6:14: invalid local time `9:60`: expected HH:MM (24-hour clock, e.g. `09:00`)",
            "b.yaml:7:12: invalid date `2026-02-30`: expected YYYY-MM-DD",
            "b.yaml:16:16: invalid duration `soon`: expected a number followed by s, m, h, d or w (e.g. `5m`, `12h`, `1w`)",
        ]
    );
}

#[test]
fn empty_participants_and_bad_channel() {
    let rest = REST
        .replace("[alice, bob]", "[]")
        .replace("[sms]", "[pigeon]");
    assert_eq!(
        errors(PEOPLE, &rest),
        vec![
            "b.yaml:4:19: participants must list at least one person",
            "b.yaml:17:20: unknown channel `pigeon`: expected chat, sms, voice, email or push (or personal)",
        ]
    );
}

#[test]
fn missing_env_var_and_key_env_resolution() {
    let rest = REST.replace("key: k1", "key_env: ROUSE_KEY_X");
    assert_eq!(
        errors(PEOPLE, &rest),
        vec!["b.yaml:23:18: environment variable `ROUSE_KEY_X` is not set (key of integration `dev`)"]
    );
    let c = load(&[
        ("a.yaml", PEOPLE),
        ("b.yaml", &REST.replace("key: k1", "key_env: SET")),
    ])
    .unwrap();
    assert_eq!(c.service_for_key("from-env").unwrap().1, "dev");
}

#[test]
fn target_needs_exactly_one_kind_and_override_order() {
    let rest = REST
        .replace("{schedule: s}", "{schedule: s, person: alice}")
        .replace("      - rotation: r\n", "      - rotation: r\n    overrides:\n      - {who: bob, from: 2026-01-02, until: 2026-01-01}\n");
    assert_eq!(
        errors(PEOPLE, &rest),
        vec![
            "b.yaml:14:45: override `until` must be after `from`",
            "b.yaml:18:19: a target needs exactly one of `schedule`, `rotation`, `person` or `chat`",
        ]
    );
}

#[test]
fn duplicate_integration_key_across_services() {
    let rest = format!(
        "{REST}  - id: svc2\n    policy: p\n    integrations:\n      - {{name: other, key: k1}}\n"
    );
    assert_eq!(
        errors(PEOPLE, &rest),
        vec!["b.yaml:27:28: integration key is already used at b.yaml:23:14"]
    );
}

#[test]
fn hostile_input_is_rejected_by_budget() {
    let deep = format!("people: {}{}", "[".repeat(100), "]".repeat(100));
    let e = errors(&deep, REST);
    assert!(e[0].starts_with("a.yaml:"), "{e:?}");
    let huge = format!(
        "people: []\n#{}\n",
        "x".repeat(rouse::catalog::MAX_FILE_BYTES)
    );
    assert_eq!(
        errors(&huge, REST)[0],
        "a.yaml: file is larger than 1048576 bytes"
    );
}

#[test]
fn load_dir_reads_sorted_yaml_files_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("2-rest.yml"), REST).unwrap();
    std::fs::write(dir.path().join("1-people.yaml"), PEOPLE).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
    let c = load_dir(dir.path(), &no_env).unwrap();
    assert_eq!(c.people().count(), 2);
    let empty = tempfile::tempdir().unwrap();
    let e = load_dir(empty.path(), &no_env).unwrap_err();
    assert!(e.to_string().ends_with(": no *.yaml or *.yml files found"));
}

#[test]
fn check_reports_coverage_gaps_as_warnings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), PEOPLE).unwrap();
    let rest = REST.replace(
        "    start: 2026-01-05\n",
        "    start: 2026-01-05\n    active: [{days: mon-fri, from: \"09:00\", to: \"17:00\"}]\n",
    );
    std::fs::write(dir.path().join("b.yaml"), rest).unwrap();
    let now = chrono::DateTime::parse_from_rfc3339("2026-02-02T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut out = Vec::new();
    assert!(rouse::commands::check::check(dir.path(), now, &no_env, &mut out).unwrap());
    let text = String::from_utf8(out).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(first, "warning: schedule `s` has nobody on call from 2026-02-02T00:00:00Z to 2026-02-02T09:00:00Z (2026-02-02 00:00 UTC to 2026-02-02 09:00 UTC)");
    println!("{text}");
    assert!(
        text.trim_end()
            .ends_with("; 21 coverage gaps in the next 28 days"),
        "{text}"
    );
    let mut out = Vec::new();
    std::fs::write(dir.path().join("c.yaml"), "people: 3\n").unwrap();
    assert!(!rouse::commands::check::check(dir.path(), now, &no_env, &mut out).unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("c.yaml:1:9: "), "{text}");
}

#[test]
fn bad_push_contacts_point_at_their_value() {
    let people = "people:
  - id: alice
    name: Alice
    timezone: Europe/Berlin
    contact: { pushover: short-key, ntfy: \"no/slashes\" }
  - id: bob
    name: Bob
    timezone: UTC
    contact:
      ntfy: { server: \"ftp://ntfy.example\", topic: bob }
";
    assert_eq!(
        errors(people, REST),
        vec![
            "a.yaml:5:26: invalid Pushover user key: expected 30 letters and digits",
            "a.yaml:5:43: invalid ntfy topic `no/slashes`: use letters, digits, `-` or `_` (at most 64)",
            "a.yaml:10:13: invalid ntfy server `ftp://ntfy.example`: expected an http(s) URL such as https://ntfy.sh",
        ]
    );
    let good = people
        .replace("short-key", "uQiRzpo4DXghDmr9QzzfQu27cmVRsG")
        .replace("\"no/slashes\"", "alice-pager")
        .replace("ftp://", "https://");
    let c = load(&[
        ("a.yaml", &good),
        ("b.yaml", &REST.replace("[sms]", "[push]")),
    ])
    .unwrap();
    let bob = c.person("bob").unwrap();
    assert_eq!(
        bob.contact.ntfy.as_deref(),
        Some("https://ntfy.example/bob")
    );
}

#[test]
fn breakthrough_after_must_stay_inside_three_minutes() {
    let rest = REST.replace("  - id: p\n", "  - id: p\n    breakthrough_after: 3m\n");
    assert_eq!(
        errors(PEOPLE, &rest),
        vec!["b.yaml:15:25: breakthrough_after must be 1s to 170s: the second call must come within 3 minutes of the first to ring through Do Not Disturb"]
    );
    let off = REST.replace("  - id: p\n", "  - id: p\n    breakthrough: false\n");
    let c = load(&[("a.yaml", PEOPLE), ("b.yaml", &off)]).unwrap();
    assert_eq!(c.policy("p").unwrap().breakthrough_after, None);
}

#[test]
fn personal_rules_name_known_channels_the_person_can_be_reached_on() {
    let people = "people:
  - id: alice
    name: Alice
    timezone: Europe/Berlin
    contact: { sms: \"+4915100000001\" }
    notify:
      - { after: 0m, via: pigeon }
      - { after: 1m, via: voice }
      - { after: soon, via: sms }
  - id: bob
    name: Bob
    timezone: UTC
";
    assert_eq!(
        errors(people, REST),
        vec![
            "a.yaml:7:27: unknown channel `pigeon`: expected push, sms, voice, email or chat",
            "a.yaml:8:27: notify via voice, but the person has no voice contact",
            "a.yaml:9:18: invalid duration `soon`: expected a number followed by s, m, h, d or w (e.g. `5m`, `12h`, `1w`)",
        ]
    );
    let mixed = REST.replace("[sms]", "[personal, sms]");
    assert_eq!(
        errors(PEOPLE, &mixed),
        vec!["b.yaml:17:19: `personal` stands alone: write `channels: [personal]` and put other channels in `fallback`"]
    );
    let stray = REST.replace("[sms]", "[sms]\n        fallback: [voice]");
    assert_eq!(
        errors(PEOPLE, &stray),
        vec!["b.yaml:18:19: `fallback` only applies to a step with `channels: [personal]`"]
    );
    let bad_fallback = REST.replace("[sms]", "[personal]\n        fallback: [pager]");
    assert_eq!(
        errors(PEOPLE, &bad_fallback),
        vec!["b.yaml:18:20: unknown channel `pager`: expected chat, sms, voice, email or push"]
    );
    let ok = load(&[
        ("a.yaml", PEOPLE),
        ("b.yaml", &REST.replace("[sms]", "[personal]")),
    ])
    .unwrap();
    let step = &ok.policy("p").unwrap().steps[0];
    assert!(step.personal);
    assert_eq!(step.channels, rouse::oncall::DEFAULT_FALLBACK);
}
