//! Property tests: no input makes a parser panic, and every accepted event
//! upholds the `Event` invariants (summary, dedup key and details limits).

use proptest::prelude::*;
use rouse::alert::{json_depth, Event, MAX_DEDUP_KEY_CHARS, MAX_DETAILS_DEPTH, MAX_SUMMARY_CHARS};
use rouse::intake::{alertmanager, grafana, native, pagerduty, IntakeError};
use serde_json::{Map, Value};

fn check(event: &Event) {
    assert!(event.summary.chars().count() <= MAX_SUMMARY_CHARS);
    if let Some(k) = &event.dedup_key {
        assert!(!k.trim().is_empty());
        assert!(k.chars().count() <= MAX_DEDUP_KEY_CHARS);
    }
    assert!(json_depth(&event.details) <= MAX_DETAILS_DEPTH);
}

fn run_all(body: &[u8]) {
    if let Ok(e) = native::parse(body) {
        check(&e);
    }
    if let Ok((key, e)) = pagerduty::parse(body) {
        assert!(!key.trim().is_empty());
        check(&e);
    }
    for events in [alertmanager::parse(body), grafana::parse(body)]
        .into_iter()
        .flat_map(Result::ok)
    {
        assert!(!events.is_empty());
        events.iter().for_each(check);
    }
    // Errors must always carry at least one reason.
    for err in [
        native::parse(body).err(),
        pagerduty::parse(body).err(),
        alertmanager::parse(body).err(),
        grafana::parse(body).err(),
    ]
    .into_iter()
    .flatten()
    {
        if let IntakeError::Invalid(reasons) = err {
            assert!(!reasons.is_empty());
        }
    }
}

/// Field names the parsers look at, so generated objects hit real code paths.
const KEYS: &[&str] = &[
    "action",
    "dedup_key",
    "summary",
    "severity",
    "source",
    "labels",
    "details",
    "links",
    "timestamp",
    "href",
    "text",
    "routing_key",
    "event_action",
    "payload",
    "custom_details",
    "component",
    "group",
    "class",
    "client",
    "client_url",
    "images",
    "src",
    "alt",
    "version",
    "groupKey",
    "truncatedAlerts",
    "status",
    "receiver",
    "groupLabels",
    "externalURL",
    "alerts",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
    "values",
    "orgId",
    "silenceURL",
    "dashboardURL",
    "panelURL",
    "imageURL",
    "valueString",
    "title",
    "state",
];

/// Strings the parsers give meaning to, mixed with arbitrary ones.
const WORDS: &[&str] = &[
    "trigger",
    "acknowledge",
    "resolve",
    "critical",
    "error",
    "warning",
    "info",
    "page",
    "firing",
    "resolved",
    "4",
    "1",
    "",
    " ",
    "2026-11-26T09:36:45Z",
    "0001-01-01T00:00:00Z",
    "https://example.com/x",
];

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{0,8}",
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        2 => any::<String>(),
        1 => "[é€🚨a]{1020,1030}",
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        arb_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(arb_key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn arb_string_map() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(arb_key(), arb_string(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k, Value::from(v))).collect()))
}

/// Objects shaped like each format's envelope, with arbitrary contents, so
/// validation (not just deserialization) gets exercised.
fn arb_envelope() -> impl Strategy<Value = Value> {
    let alert = (
        proptest::sample::select(&["firing", "resolved", "bogus"][..]),
        arb_string_map(),
        arb_string_map(),
        proptest::option::of("[a-f0-9]{0,16}"),
        arb_json(),
    )
        .prop_map(|(status, labels, annotations, fp, values)| {
            serde_json::json!({
                "status": status, "labels": labels, "annotations": annotations,
                "fingerprint": fp, "values": values, "startsAt": "2026-11-26T09:36:45Z",
            })
        });
    prop_oneof![
        (
            proptest::sample::select(&["trigger", "acknowledge", "resolve", "x"][..]),
            proptest::option::of(arb_string()),
            arb_string(),
            proptest::option::of(arb_json()),
            any::<bool>(),
        )
            .prop_map(|(action, key, summary, details, pd)| if pd {
                serde_json::json!({
                    "routing_key": "k", "event_action": action, "dedup_key": key,
                    "payload": {"summary": summary, "source": "s", "severity": "info",
                                "custom_details": details},
                })
            } else {
                serde_json::json!({
                    "action": action, "dedup_key": key, "summary": summary,
                    "severity": "critical", "details": details.filter(Value::is_object),
                })
            }),
        (
            proptest::sample::select(&["1", "4"][..]),
            proptest::collection::vec(alert, 0..4),
            any::<u8>(),
        )
            .prop_map(|(version, alerts, truncated)| {
                serde_json::json!({"version": version, "alerts": alerts,
                                   "truncatedAlerts": truncated, "externalURL": "http://am"})
            }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        run_all(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        run_all(value.to_string().as_bytes());
    }

    #[test]
    fn envelope_shaped_json_upholds_invariants(value in arb_envelope()) {
        run_all(value.to_string().as_bytes());
    }

    #[test]
    fn truncate_summary_is_bounded_and_prefix_preserving(s in any::<String>(), pad in 0usize..1100) {
        let input = format!("{}{s}", "x".repeat(pad));
        let out = rouse::alert::truncate_summary(&input);
        prop_assert!(out.chars().count() <= MAX_SUMMARY_CHARS);
        if input.chars().count() <= MAX_SUMMARY_CHARS {
            prop_assert_eq!(out, input);
        } else {
            let body = out.strip_suffix(rouse::alert::TRUNCATION_MARKER);
            prop_assert!(body.is_some_and(|b| input.starts_with(b)));
        }
    }
}

/// Guards the generators: if envelopes stopped producing accepted events,
/// the invariant property above would silently test nothing.
#[test]
fn envelopes_are_sometimes_accepted() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut native_ok, mut pd_ok, mut am_ok) = (0, 0, 0);
    for _ in 0..300 {
        let Ok(tree) = arb_envelope().new_tree(&mut runner) else {
            continue;
        };
        let body = tree.current().to_string();
        native_ok += usize::from(native::parse(body.as_bytes()).is_ok());
        pd_ok += usize::from(pagerduty::parse(body.as_bytes()).is_ok());
        am_ok += usize::from(alertmanager::parse(body.as_bytes()).is_ok());
    }
    assert!(
        native_ok > 0 && pd_ok > 0 && am_ok > 0,
        "{native_ok} {pd_ok} {am_ok}"
    );
}
