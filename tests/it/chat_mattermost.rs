//! Mattermost against a loopback incoming webhook answering `ok`, with the
//! Slack-style attachment shape Mattermost documents.

use rouse::alert::AlertStatus;
use rouse::channel::http::client;
use rouse::channel::mattermost::{Mattermost, MattermostConfig};
use rouse::channel::{Channel, Outcome};
use rouse::config::Secret;

use crate::peers::{notification, Canned, Capture};

fn mattermost(server: &Capture) -> Mattermost {
    let config = MattermostConfig {
        webhook_url: Secret::new(server.url("/hooks/xxx-generatedkey-xxx")),
        channel: None,
        username: Some("rouse".into()),
    };
    Mattermost::new(&config, client()).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn posts_an_attachment_and_reads_ok() {
    let server = Capture::start(vec![
        Canned::new(200, "ok").header("content-type", "text/plain")
    ])
    .await;
    let outcome = mattermost(&server)
        .send(&notification(AlertStatus::Triggered))
        .await;
    assert_eq!(outcome, Outcome::Delivered { provider_id: None });
    let body = server.only().json();
    assert_eq!(body["channel"], "C123");
    assert_eq!(body["username"], "rouse");
    let a = &body["attachments"][0];
    assert_eq!(a["color"], "#E01E5A");
    assert!(a["fallback"]
        .as_str()
        .unwrap_or_default()
        .contains("CRITICAL #42"));
    assert!(a["title"]
        .as_str()
        .unwrap_or_default()
        .contains("CRITICAL #42 payments"));
    assert_eq!(a["title_link"], "https://rouse.example/ack/t0k3n");
    assert_eq!(a["fields"][0]["title"], "Severity");
    assert_eq!(a["fields"][0]["short"], true);
    assert_eq!(a["fields"][0]["value"], "CRITICAL");
}

#[tokio::test]
async fn errors_and_follow_up() {
    let server = Capture::start(vec![
        Canned::new(400, "{\"id\":\"web.incoming_webhook.parse.app_error\"}"),
        Canned::new(200, "ok"),
    ])
    .await;
    let m = mattermost(&server);
    assert!(matches!(
        m.send(&notification(AlertStatus::Triggered)).await,
        Outcome::Failed { .. }
    ));
    let mut n = notification(AlertStatus::Acknowledged);
    n.paged = vec!["alice".into()];
    assert!(matches!(
        m.follow_up(&n, None).await,
        Outcome::Delivered { .. }
    ));
    let body = server.requests()[1].json();
    assert_eq!(body["attachments"][0]["color"], "#36C5F0");
    assert!(body["text"]
        .as_str()
        .unwrap_or_default()
        .contains("ACKNOWLEDGED by alice"));
}
