//! `/api/openapi.json`: a valid OpenAPI 3.1 document that lists every route
//! the server answers, and only those.

use crate::support::{TestApp, TestDb};

/// Methods an OpenAPI path item can hold.
const METHODS: [&str; 6] = ["get", "put", "post", "delete", "patch", "head"];

#[tokio::test]
async fn the_document_matches_the_router() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let r = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: serde_json::Value = r.json().await.unwrap();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    for scheme in [
        "admin_token",
        "integration_key",
        "genie_key",
        "twilio_signature",
    ] {
        assert!(schemes.contains_key(scheme), "no {scheme} scheme");
    }

    // Every documented operation is one the router serves: a request with
    // made-up parameters reaches the handler (its own 4xx or success), never
    // the router's "no such endpoint" or "method not allowed".
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            operations += 1;
            let op = &item[*method];
            assert!(
                op["responses"]
                    .as_object()
                    .is_some_and(|r| r.contains_key("default")),
                "{method} {path} has no error answer described"
            );
            let request = app
                .http
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !(status == 404 && body.contains("no such endpoint")),
                "{method} {path} is documented but not routed"
            );
        }
    }

    // And every route the router serves is in the document: the full list,
    // so a route added to the router without `routes!` (undocumented) or
    // removed from it fails here.
    let mut documented: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<String> = ROUTES.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(documented, expected);
    assert_eq!(operations, ROUTES.len());
    app.stop().await;
}

/// Every route of the router: each answers something other than the
/// fallback (checked below), and the document lists exactly these.
const ROUTES: &[&str] = &[
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /api/openapi.json",
    "GET /contact.vcf",
    "POST /v1/events",
    "POST /v2/enqueue",
    "POST /integrations/alertmanager/{key}",
    "POST /integrations/grafana/{key}",
    "POST /v1/heartbeat/{key}",
    "POST /v2/alerts",
    "POST /v2/alerts/{identifier}/close",
    "POST /v2/alerts/{identifier}/acknowledge",
    "PUT /v2/alerts/{identifier}/message",
    "PUT /v2/alerts/{identifier}/description",
    "GET /v2/heartbeats/{name}/ping",
    "POST /v2/heartbeats/{name}/ping",
    "GET /v1/alerts",
    "GET /v1/alerts/{id}",
    "POST /v1/alerts/{id}/acknowledge",
    "POST /v1/alerts/{id}/resolve",
    "GET /v1/watchers",
    "GET /v1/silences",
    "POST /v1/silences",
    "DELETE /v1/silences/{id}",
    "POST /v1/simulate",
    "POST /v1/people/{id}/test-page",
    "GET /v1/people/{id}/test-pages",
    "GET /ack/{alert}",
    "POST /ack/{alert}",
    "POST /twilio/voice/{alert}",
    "POST /twilio/voice/{alert}/gather",
    "POST /twilio/status",
    "POST /twilio/sms/status",
    "POST /twilio/sms",
    "POST /slack/interactions",
    "POST /pushover/callback/{notification}/{secret}",
    "POST /ntfy/ack/{alert}",
    "GET /v1/feeds",
    "POST /v1/feeds",
    "DELETE /v1/feeds/{id}",
    "GET /feeds/{file}",
];

/// A route the router does not have is the fallback's 404, and a known path
/// with another method is 405: the probes above can tell them apart.
#[tokio::test]
async fn the_fallbacks_are_what_the_probe_looks_for() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let r = app
        .http
        .get(app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("no such endpoint"));
    let r = app.http.delete(app.url("/v1/events")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    app.stop().await;
}
