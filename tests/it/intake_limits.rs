//! Per-field limits below the body limit, in every intake format: an
//! oversize field is rejected with its name; nothing of it is stored.

use rouse::alert::{
    MAX_DETAILS_BYTES, MAX_LABELS, MAX_LABEL_VALUE_CHARS, MAX_LINKS, MAX_LINK_HREF_CHARS,
    MAX_SOURCE_CHARS,
};
use rouse::intake::{alertmanager, grafana, native, pagerduty, IntakeError};
use serde_json::{json, Map, Value};

fn many_labels(n: usize) -> Value {
    Value::Object(
        (0..n)
            .map(|i| (format!("l{i}"), json!("v")))
            .collect::<Map<_, _>>(),
    )
}

fn many_links(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"href": format!("https://x/{i}")}))
            .collect(),
    )
}

fn big(n: usize) -> String {
    "x".repeat(n)
}

fn native_event(extra: Value) -> Vec<u8> {
    let mut body = json!({"action": "trigger", "summary": "s", "severity": "critical"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body.to_string().into_bytes()
}

fn pd_event(payload_extra: Value, top_extra: Value) -> Vec<u8> {
    let mut body = json!({"routing_key": "k", "event_action": "trigger",
        "payload": {"summary": "s", "source": "db-1", "severity": "critical"}});
    for (k, v) in payload_extra.as_object().unwrap() {
        body["payload"][k] = v.clone();
    }
    for (k, v) in top_extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body.to_string().into_bytes()
}

fn am_group(labels: Value, annotations: Value, generator_url: &str) -> Vec<u8> {
    json!({"version": "4", "status": "firing", "receiver": "rouse", "groupKey": "g",
           "alerts": [{"status": "firing", "fingerprint": "f1", "labels": labels,
                       "annotations": annotations, "startsAt": "2026-11-26T09:36:45Z",
                       "generatorURL": generator_url}]})
    .to_string()
    .into_bytes()
}

fn errors_of(result: Result<(), IntakeError>) -> Vec<String> {
    match result {
        Err(IntakeError::Invalid(errors)) => errors,
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn oversize_fields_are_rejected_naming_the_field() {
    let huge = big(900 * 1024);
    let details = json!({"blob": big(MAX_DETAILS_BYTES + 1)});
    let cases: Vec<(&str, Result<(), IntakeError>, &str)> = vec![
        (
            "native label value",
            native::parse(&native_event(json!({"labels": {"team": huge}}))).map(drop),
            "labels.team",
        ),
        (
            "native label count",
            native::parse(&native_event(json!({"labels": many_labels(15_000)}))).map(drop),
            "labels has 15000 entries",
        ),
        (
            "native links",
            native::parse(&native_event(json!({"links": many_links(20_000)}))).map(drop),
            "links has 20000 entries",
        ),
        (
            "native link href",
            native::parse(&native_event(
                json!({"links": [{"href": big(MAX_LINK_HREF_CHARS + 1)}]}),
            ))
            .map(drop),
            "links[0].href",
        ),
        (
            "native source",
            native::parse(&native_event(json!({"source": huge}))).map(drop),
            "source is longer",
        ),
        (
            "native details",
            native::parse(&native_event(json!({"details": details}))).map(drop),
            "details is larger",
        ),
        (
            "pagerduty source",
            pagerduty::parse(&pd_event(json!({"source": huge}), json!({}))).map(drop),
            "'payload.source'",
        ),
        (
            "pagerduty component",
            pagerduty::parse(&pd_event(json!({"component": huge}), json!({}))).map(drop),
            "payload.component",
        ),
        (
            "pagerduty links",
            pagerduty::parse(&pd_event(json!({}), json!({"links": many_links(20_000)}))).map(drop),
            "'links' has",
        ),
        (
            "pagerduty custom_details",
            pagerduty::parse(&pd_event(json!({"custom_details": details}), json!({}))).map(drop),
            "'payload.custom_details'",
        ),
        (
            "alertmanager label value",
            alertmanager::parse(&am_group(
                json!({"alertname": "A", "team": huge}),
                json!({}),
                "",
            ))
            .map(drop),
            "alerts[0].labels.team",
        ),
        (
            "alertmanager label count",
            alertmanager::parse(&am_group(many_labels(15_000), json!({}), "")).map(drop),
            "alerts[0].labels has",
        ),
        (
            "alertmanager source",
            alertmanager::parse(&am_group(
                json!({"instance": big(MAX_SOURCE_CHARS + 1)}),
                json!({}),
                "",
            ))
            .map(drop),
            "alerts[0] source",
        ),
        (
            "alertmanager annotations",
            alertmanager::parse(&am_group(
                json!({"alertname": "A"}),
                json!({"runbook": big(MAX_DETAILS_BYTES + 1)}),
                "",
            ))
            .map(drop),
            "alerts[0] details",
        ),
        (
            "alertmanager generatorURL",
            alertmanager::parse(&am_group(
                json!({"alertname": "A"}),
                json!({}),
                &big(MAX_LINK_HREF_CHARS + 1),
            ))
            .map(drop),
            "alerts[0] links[0].href",
        ),
        (
            "grafana label value",
            grafana::parse(&am_group(
                json!({"alertname": "A", "team": big(MAX_LABEL_VALUE_CHARS + 1)}),
                json!({}),
                "",
            ))
            .map(drop),
            "alerts[0].labels.team",
        ),
    ];
    for (what, result, field) in cases {
        let errors = errors_of(result);
        assert!(
            errors.iter().any(|e| e.contains(field)),
            "{what}: no error names {field:?}: {errors:?}"
        );
        assert!(
            errors.iter().all(|e| e.len() < 300),
            "{what}: errors echo the value: {errors:?}"
        );
    }
}

#[test]
fn values_at_the_limits_are_accepted() {
    let labels = Value::Object(
        (0..MAX_LABELS)
            .map(|i| (format!("l{i}"), json!(big(MAX_LABEL_VALUE_CHARS))))
            .collect(),
    );
    let body = native_event(json!({"labels": labels, "links": many_links(MAX_LINKS),
        "source": big(MAX_SOURCE_CHARS), "details": {"blob": big(MAX_DETAILS_BYTES - 20)}}));
    let event = native::parse(&body).expect("at the limits");
    assert_eq!(event.labels.len(), MAX_LABELS);
    assert_eq!(event.links.len(), MAX_LINKS);
}
