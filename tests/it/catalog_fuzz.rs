//! Arbitrary input must never panic the loader.

use proptest::prelude::*;
use rouse::catalog::load_files;
use std::path::PathBuf;

fn env(_: &str) -> Option<String> {
    None
}

const TOKENS: &[&str] = &[
    "people:",
    "rotations:",
    "schedules:",
    "policies:",
    "services:",
    "\n",
    "  ",
    "- ",
    "id: a",
    "id: b",
    "name: x",
    "timezone: UTC",
    "timezone: Mars/Base",
    "participants: [a, b]",
    "participants: []",
    "shift: 1w",
    "shift: 0h",
    "shift: 99999999d",
    "handoff: \"09:00\"",
    "handoff: 25:00",
    "start: 2026-01-05",
    "start: 99999-01-01",
    "active: [{days: mon-fri, from: \"09:00\", to: \"17:00\"}]",
    "layers:",
    "- rotation: a",
    "overrides:",
    "- {who: a, from: 2026-01-01, until: 2025-01-01}",
    "steps:",
    "- delay: 5m",
    "targets: [{schedule: s}]",
    "channels: [chat]",
    "repeat: until_ack",
    "policy: p",
    "integrations: [{name: n, key_env: X}]",
    "&a [*a, *a]",
    "*a",
    "{",
    "}",
    "[",
    "]",
    ": :",
    "'",
    "\"",
    "!!binary",
    "---",
    "<<: *a",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,300}") {
        let _ = load_files(&[(PathBuf::from("x.yaml"), s)], &env);
    }

    #[test]
    fn yaml_like_text_never_panics(parts in proptest::collection::vec(0..TOKENS.len(), 0..60)) {
        let s: String = parts.iter().map(|&i| TOKENS[i]).collect::<Vec<_>>().join("");
        let _ = load_files(&[(PathBuf::from("a.yaml"), s.clone()), (PathBuf::from("b.yaml"), s)], &env);
    }
}
