//! Every request an extractor refuses (a bad path segment, a missing or
//! repeated query parameter) is answered in the one JSON error shape, with a
//! reason and a 4xx, never axum's plain text.

use crate::support::{TestApp, TestDb, ADMIN_TOKEN, PAYMENTS_KEY};

async fn json_rejection(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    bearer: bool,
) -> (u16, serde_json::Value) {
    let mut request = app.http.request(method, app.url(path));
    if bearer {
        request = request.bearer_auth(ADMIN_TOKEN);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("body");
    assert!(
        content_type.starts_with("application/json"),
        "{path}: {status} {content_type:?} {text:?}"
    );
    let body: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text:?}"));
    assert_eq!(body["status"], "error", "{path}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{path}: no reason: {body}"
    );
    (status, body)
}

#[tokio::test]
async fn extractor_rejections_are_json_with_a_reason() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    let (status, body) = json_rejection(&app, get.clone(), "/v1/alerts/abc", true).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("abc"), "{body}");

    let (status, body) = json_rejection(&app, get, "/ack/1", false).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains('t'), "{body}");

    let (status, _) = json_rejection(
        &app,
        post.clone(),
        "/integrations/alertmanager/%FF%00",
        false,
    )
    .await;
    assert_eq!(status, 400);

    let path = format!("/v1/heartbeat/{PAYMENTS_KEY}?name=a&name=b");
    let (status, body) = json_rejection(&app, post, &path, false).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("name"), "{body}");
    app.stop().await;
}
