//! Signed ack links: every page carries one; GET only shows a button (link
//! previewers fetch links), POST acknowledges; a link works for its alert only.

use std::sync::Arc;

use rouse::channel::WebhookSettings;
use rouse::config::Secret;
use serde_json::{json, Value};

use crate::peers::{Canned, Capture};
use crate::support::{eventually, TestApp, TestDb, ADMIN_TOKEN, PAYMENTS_KEY, TEST_CATALOG};

#[tokio::test]
async fn an_ack_link_acknowledges_on_post_and_never_on_get() {
    let db = TestDb::sqlite();
    let chat = Capture::start(vec![Canned::new(200, "ok")]).await;
    let hook = chat.url("/hook");
    // The test catalog, with a chat room added to the first step.
    let catalog = TEST_CATALOG.replace(
        "targets: [{ schedule: primary }]\n        channels: [sms]",
        "targets: [{ schedule: primary }, { chat: \"#ops\" }]\n        channels: [sms, chat]",
    );
    assert_ne!(catalog, TEST_CATALOG, "the test catalog changed shape");
    let app = TestApp::spawn_with_catalog(&db, &catalog, move |c| {
        c.channels = Arc::new(rouse::channel::ChannelsConfig {
            webhook: Some(WebhookSettings {
                url: Secret::new(hook),
                secret: Some(Secret::new("chat-secret")),
            }),
            ..Default::default()
        });
    })
    .await;
    let (_, body) = app
        .post(
            "/v1/events",
            &[("x-rouse-key", PAYMENTS_KEY)],
            json!({"action": "trigger", "summary": "link test", "severity": "critical"})
                .to_string(),
        )
        .await;
    let id = body["alert_id"].as_i64().unwrap();
    eventually("the chat page arrives", || async {
        !chat.requests().is_empty()
    })
    .await;
    let page = chat.requests().remove(0).json();
    let link = page["ack_url"].as_str().unwrap().to_owned();
    assert!(
        link.starts_with(&format!("{}/ack/{id}?t=", app.base)),
        "{link}"
    );
    let status = || async {
        let r = app
            .http
            .get(app.url(&format!("/v1/alerts/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["alert"].clone()
    };

    // A previewer fetching the link changes nothing.
    let r = app.http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("<form method=\"post\""), "{html}");
    assert!(html.contains("link test"), "{html}");
    assert_eq!(status().await["status"], "triggered");

    // The link is bound to its alert.
    let other = link.replace(&format!("/ack/{id}?"), &format!("/ack/{}?", id + 1));
    let r = app.http.post(&other).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = app.http.post(format!("{link}0")).send().await.unwrap();
    assert_eq!(r.status(), 403, "a tampered token is refused");

    let r = app.http.post(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("acknowledged"));
    let alert = status().await;
    assert_eq!(alert["status"], "acknowledged");
    // A room's link names nobody in particular.
    assert_eq!(alert["acknowledged_by"], "someone with the chat link");
    app.stop().await;
}
