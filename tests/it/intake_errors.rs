//! Rejections, with the exact messages senders will see.

use rouse::alert::{truncate_summary, Action, MAX_SUMMARY_CHARS, TRUNCATION_MARKER};
use rouse::intake::{alertmanager, grafana, native, pagerduty, IntakeError};
use serde_json::json;

type Parser = fn(&[u8]) -> Result<(), IntakeError>;

/// All four parsers behind one signature, for checks that apply to each.
const PARSERS: [(&str, Parser); 4] = [
    ("native", |b| native::parse(b).map(drop)),
    ("pagerduty", |b| pagerduty::parse(b).map(drop)),
    ("alertmanager", |b| alertmanager::parse(b).map(drop)),
    ("grafana", |b| grafana::parse(b).map(drop)),
];

fn native_err(body: &str) -> String {
    match native::parse(body.as_bytes()) {
        Ok(e) => panic!("expected an error, got {e:?}"),
        Err(e) => e.to_string(),
    }
}

fn pd_err(body: &str) -> String {
    match pagerduty::parse(body.as_bytes()) {
        Ok(e) => panic!("expected an error, got {e:?}"),
        Err(e) => e.to_string(),
    }
}

fn am_err(body: &str) -> String {
    match alertmanager::parse(body.as_bytes()) {
        Ok(e) => panic!("expected an error, got {e:?}"),
        Err(e) => e.to_string(),
    }
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> serde_json::Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    v
}

// ---- malformed input, for every parser ----

#[test]
fn invalid_utf8_is_named_as_such() {
    let body = b"{\"summary\": \"caf\xc3\x28\"}";
    for (name, parse) in PARSERS {
        match parse(body) {
            Err(e @ IntakeError::InvalidUtf8) => {
                assert_eq!(e.to_string(), "body is not valid UTF-8", "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn malformed_json_reports_line_and_column() {
    for (name, parse) in PARSERS {
        let err = parse(b"{\"action\": \"trigger\",\n \"summary\": }").map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("body is not valid JSON: expected value at line 2 column 13".to_owned()),
            "{name}"
        );
        let err = parse(b"").map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("body is not valid JSON: EOF while parsing a value at line 1 column 0".to_owned()),
            "{name}"
        );
    }
}

#[test]
fn hundred_thousand_open_brackets_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(100_000);
    let closed = nested_arrays(100_000);
    for (name, parse) in PARSERS {
        // A non-object top level is only syntax-checked, by serde_json's
        // iterative skipper, so it cannot recurse: unclosed → Json error,
        // closed → rejected as not an object.
        assert!(
            matches!(parse(deep.as_bytes()), Err(IntakeError::Json(_))),
            "{name}"
        );
        assert!(
            matches!(parse(closed.as_bytes()), Err(IntakeError::Invalid(_))),
            "{name}"
        );
        // Unknown fields are skipped the same way (native rejects them).
        let body = format!(r#"{{"vendor_extra":{closed}}}"#);
        assert!(parse(body.as_bytes()).is_err(), "{name}");
    }
    // Inside a field that accepts any JSON, serde_json's recursion limit (128) trips.
    let recursion = |r: Result<(), IntakeError>| match r {
        Err(IntakeError::Json(msg)) => msg.starts_with("recursion limit exceeded"),
        _ => false,
    };
    let body = format!(
        r#"{{"action":"trigger","summary":"s","severity":"info","details":{{"x":{closed}}}}}"#
    );
    assert!(recursion(PARSERS[0].1(body.as_bytes())));
    let body = format!(
        r#"{{"routing_key":"k","event_action":"trigger","payload":{{"custom_details":{closed}}}}}"#
    );
    assert!(recursion(PARSERS[1].1(body.as_bytes())));
    let body = format!(r#"{{"version":"1","alerts":[{{"values":{closed}}}]}}"#);
    assert!(recursion(PARSERS[3].1(body.as_bytes())));
}

#[test]
fn non_object_bodies_are_rejected() {
    assert_eq!(
        native_err(r#"["trigger", null, "s", "critical"]"#),
        "invalid event: body must be a JSON object"
    );
    assert_eq!(pd_err("42"), "invalid event: 'event' must be a JSON object");
    assert!(am_err("[]").contains("Prometheus' alert list"));
}

// ---- native ----

const VALID_NATIVE: &str = r#"{"action":"trigger","summary":"Disk full","severity":"critical"}"#;

#[test]
fn native_minimal_trigger() {
    let e = native::parse(VALID_NATIVE.as_bytes()).expect("valid");
    assert_eq!(e.action, Action::Trigger);
    assert_eq!(e.dedup_key, None);
    assert_eq!(e.details, json!({}));
}

#[test]
fn native_wrong_type() {
    assert_eq!(
        native_err(r#"{"action":"trigger","summary":5,"severity":"critical"}"#),
        "body is not valid JSON: invalid type: integer `5`, expected a string at line 1 column 31"
    );
    assert_eq!(
        native_err(r#"{"action":"trigger","summary":"s","severity":"info","labels":{"n":1}}"#),
        "body is not valid JSON: invalid type: integer `1`, expected a string at line 1 column 67"
    );
}

#[test]
fn native_unknown_field_is_rejected() {
    assert_eq!(
        native_err(r#"{"action":"trigger","sumary":"typo","severity":"critical"}"#),
        "body is not valid JSON: unknown field `sumary`, expected one of `action`, `dedup_key`, \
         `summary`, `severity`, `source`, `labels`, `details`, `links`, `timestamp` at line 1 column 28"
    );
}

#[test]
fn native_missing_fields_are_all_listed() {
    assert_eq!(native_err("{}"), "invalid event: action is required");
    assert_eq!(
        native_err(r#"{"action":"trigger","links":[{"text":"no href"}]}"#),
        "invalid event: summary is required for trigger; severity is required for trigger; \
         links[0].href is required"
    );
    assert_eq!(
        native_err(r#"{"action":"resolve"}"#),
        "invalid event: dedup_key is required for resolve"
    );
    assert_eq!(
        native_err(r#"{"action":"acknowledge","dedup_key":"  "}"#),
        "invalid event: dedup_key is required for acknowledge"
    );
}

#[test]
fn native_unknown_action_and_severity() {
    assert_eq!(
        native_err(r#"{"action":"fire","summary":"s","severity":"page"}"#),
        "invalid event: action must be one of trigger, acknowledge, resolve; \
         severity must be one of critical, error, warning, info"
    );
}

#[test]
fn native_bad_timestamp() {
    assert_eq!(
        native_err(
            r#"{"action":"trigger","summary":"s","severity":"info","timestamp":"26/11/2026"}"#
        ),
        "invalid event: timestamp is not a valid RFC 3339 date-time"
    );
}

#[test]
fn native_dedup_key_length_counts_chars() {
    let body = |key: &str| {
        json!({"action": "resolve", "dedup_key": key})
            .to_string()
            .into_bytes()
    };
    let ok = "é".repeat(255); // 510 bytes but 255 chars
    assert_eq!(
        native::parse(&body(&ok)).ok().and_then(|e| e.dedup_key),
        Some(ok)
    );
    match native::parse(&body(&"k".repeat(256))) {
        Err(e) => assert_eq!(
            e.to_string(),
            "invalid event: dedup_key is longer than 255 characters"
        ),
        Ok(e) => panic!("{e:?}"),
    }
}

#[test]
fn native_details_depth_limit() {
    let body = |depth: usize| {
        json!({"action": "trigger", "summary": "s", "severity": "info",
               "details": {"x": nested_objects(depth)}})
        .to_string()
        .into_bytes()
    };
    // details object + 31 nested objects = depth 32: allowed.
    assert!(native::parse(&body(31)).is_ok());
    match native::parse(&body(32)) {
        Err(e) => assert_eq!(
            e.to_string(),
            "invalid event: details is nested deeper than 32 levels"
        ),
        Ok(e) => panic!("{e:?}"),
    }
}

#[test]
fn oversized_summary_is_truncated_on_a_char_boundary() {
    // Mixed 1-, 2-, 3- and 4-byte chars so a byte-based cut would split one.
    let long: String = "aé€🚨".repeat(1000);
    let body = json!({"action": "trigger", "summary": long, "severity": "info"}).to_string();
    let e = native::parse(body.as_bytes()).expect("valid");
    assert_eq!(e.summary.chars().count(), MAX_SUMMARY_CHARS);
    assert!(e.summary.ends_with(TRUNCATION_MARKER));
    let kept = MAX_SUMMARY_CHARS - TRUNCATION_MARKER.chars().count();
    let expected_prefix: String = long.chars().take(kept).collect();
    assert!(e.summary.starts_with(&expected_prefix));
}

#[test]
fn truncate_summary_boundaries() {
    let exact = "é".repeat(MAX_SUMMARY_CHARS);
    assert_eq!(truncate_summary(&exact), exact);
    let over = "é".repeat(MAX_SUMMARY_CHARS + 1);
    let cut = truncate_summary(&over);
    assert_eq!(cut.chars().count(), MAX_SUMMARY_CHARS);
    assert!(cut.ends_with("…[truncated]"));
    assert_eq!(truncate_summary(""), "");
}

// ---- PagerDuty ----

#[test]
fn pagerduty_missing_fields_are_all_listed() {
    assert_eq!(
        pd_err("{}"),
        "invalid event: 'routing_key' is missing or blank; 'event_action' is missing or blank"
    );
    assert_eq!(
        pd_err(r#"{"routing_key":"k","event_action":"trigger"}"#),
        "invalid event: 'payload' is missing"
    );
    assert_eq!(
        pd_err(r#"{"routing_key":"k","event_action":"trigger","payload":{"summary":" "}}"#),
        "invalid event: 'payload.summary' is missing or blank; 'payload.source' is missing or \
         blank; 'payload.severity' is missing or blank"
    );
    assert_eq!(
        pd_err(r#"{"routing_key":"k","event_action":"acknowledge"}"#),
        "invalid event: 'dedup_key' is missing or blank"
    );
}

#[test]
fn pagerduty_invalid_values() {
    let long_key = "k".repeat(256);
    assert_eq!(
        pd_err(&format!(
            r#"{{"routing_key":"k","event_action":"trigger","dedup_key":"{long_key}",
               "payload":{{"summary":"s","source":"h","severity":"Critical","timestamp":"now"}}}}"#
        )),
        "invalid event: 'dedup_key' is too long (maximum is 255 characters); \
         'payload.severity' is invalid (must be one of: critical, error, warning, info); \
         'payload.timestamp' is invalid (must be ISO 8601)"
    );
    assert_eq!(
        pd_err(r#"{"routing_key":"k","event_action":"escalate"}"#),
        "invalid event: 'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"
    );
}

#[test]
fn pagerduty_wrong_type() {
    assert_eq!(
        pd_err(r#"{"routing_key":"k","event_action":"trigger","payload":{"summary":5}}"#),
        "body is not valid JSON: invalid type: integer `5`, expected a string at line 1 column 66"
    );
}

#[test]
fn pagerduty_full_trigger() {
    let body = json!({
        "routing_key": "rk",
        "event_action": "trigger",
        "payload": {
            "summary": "CPU high", "source": "web-1", "severity": "error",
            "timestamp": "2015-07-17T08:42:58.315+0000",
            "component": "nginx", "group": "prod", "class": "cpu",
            "custom_details": "free text is allowed"
        },
        "links": [{"href": "https://example.com/runbook", "text": "Runbook"}],
        "images": [{"src": "https://example.com/graph.png", "alt": "graph"}],
        "extra_vendor_field": true
    });
    let (rk, e) = pagerduty::parse(body.to_string().as_bytes()).expect("valid");
    assert_eq!(rk, "rk");
    assert_eq!(e.dedup_key, None);
    assert_eq!(e.labels.len(), 3);
    assert_eq!(e.labels.get("component").map(String::as_str), Some("nginx"));
    assert_eq!(
        e.occurred_at.map(|t| t.to_rfc3339()),
        Some("2015-07-17T08:42:58.315+00:00".into())
    );
    assert_eq!(
        e.details.get("custom_details"),
        Some(&json!("free text is allowed"))
    );
    assert_eq!(e.details.pointer("/images/0/alt"), Some(&json!("graph")));
    assert_eq!(e.links.len(), 1);
}

#[test]
fn pagerduty_custom_details_depth_limit() {
    let body = |depth: usize| {
        json!({"routing_key": "k", "event_action": "trigger",
               "payload": {"summary": "s", "source": "h", "severity": "info",
                           "custom_details": nested_objects(depth)}})
        .to_string()
        .into_bytes()
    };
    assert!(pagerduty::parse(&body(31)).is_ok());
    match pagerduty::parse(&body(32)) {
        Err(e) => assert_eq!(
            e.to_string(),
            "invalid event: 'payload.custom_details' is nested too deeply (maximum depth is 31)"
        ),
        Ok(e) => panic!("{e:?}"),
    }
}

// ---- Alertmanager / Grafana ----

#[test]
fn alertmanager_errors_carry_alert_index_paths() {
    let body = json!({
        "version": "4",
        "alerts": [
            {"status": "firing", "fingerprint": "a"},
            {"status": "pending", "labels": {}},
            {"status": "firing", "fingerprint": "k".repeat(256), "startsAt": "soon"},
            {"fingerprint": "d"}
        ]
    });
    assert_eq!(
        am_err(&body.to_string()),
        "invalid event: alerts[1].status must be \"firing\" or \"resolved\"; \
         alerts[1].fingerprint is required; alerts[2].fingerprint is longer than 255 characters; \
         alerts[2].startsAt is not a valid RFC 3339 timestamp; alerts[3].status is required"
    );
}

#[test]
fn alertmanager_version_and_alerts_are_required() {
    assert_eq!(
        am_err("{}"),
        "invalid event: version is required (expected \"4\"); alerts is required"
    );
    assert_eq!(
        am_err(r#"{"version":"3","alerts":[]}"#),
        "invalid event: version must be \"4\"; alerts must not be empty"
    );
    match grafana::parse(br#"{"version":"4","alerts":[{"status":"firing","fingerprint":"f"}]}"#) {
        Err(e) => assert_eq!(e.to_string(), "invalid event: version must be \"1\""),
        Ok(e) => panic!("{e:?}"),
    }
}

#[test]
fn alertmanager_severity_mapping_and_summary_fallbacks() {
    let alert = |labels: serde_json::Value| json!({"status": "firing", "fingerprint": "f", "labels": labels});
    let body = json!({"version": "4", "alerts": [
        alert(json!({"alertname": "A", "instance": "h:1", "severity": "PAGE"})),
        alert(json!({"alertname": "B", "job": "node", "severity": "sev1"})),
        alert(json!({})),
    ]});
    let events = alertmanager::parse(body.to_string().as_bytes()).expect("valid");
    let got: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e.summary.as_str(), e.severity.as_str(), e.source.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("A (h:1)", "critical", "h:1"),
            ("B", "warning", "node"),
            ("Alertmanager alert f", "warning", ""),
        ]
    );
}

#[test]
fn grafana_wrong_type_inside_flattened_alert_is_a_json_error() {
    let body = br#"{"version":"1","alerts":[{"status":"firing","fingerprint":5}]}"#;
    match grafana::parse(body) {
        Err(IntakeError::Json(msg)) => {
            assert!(
                msg.starts_with("invalid type: integer `5`, expected a string"),
                "{msg}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn grafana_values_depth_limit() {
    let body = json!({"version": "1", "alerts": [
        {"status": "firing", "fingerprint": "f", "values": nested_objects(40)}
    ]});
    match grafana::parse(body.to_string().as_bytes()) {
        Err(e) => assert_eq!(
            e.to_string(),
            "invalid event: alerts[0] details are nested deeper than 32 levels"
        ),
        Ok(e) => panic!("{e:?}"),
    }
}
