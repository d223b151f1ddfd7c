//! The server as a whole: health, readiness, clean stop.

use crate::both_backends;
use crate::support::{TestApp, TestDb};

async fn health_and_readiness(db: &TestDb) {
    let app = TestApp::spawn(db, |_| {}).await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["database"]["ok"], true, "{body}");
    app.stop().await;
}
both_backends!(health_and_readiness);

#[tokio::test]
async fn unknown_paths_are_404() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let r = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}
