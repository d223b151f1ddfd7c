//! Discord against a loopback webhook: `?wait=true` returns the message,
//! embeds carry the severity colour, 429 carries `retry_after` seconds in JSON.

use std::time::Duration;

use rouse::alert::AlertStatus;
use rouse::channel::discord::{Discord, DiscordConfig};
use rouse::channel::http::client;
use rouse::channel::{Channel, Outcome};
use rouse::config::Secret;
use serde_json::json;

use crate::peers::{notification, Canned, Capture};

fn discord(server: &Capture) -> Discord {
    let config = DiscordConfig {
        webhook_url: Secret::new(server.url("/api/webhooks/123/tok")),
        username: Some("Rouse".into()),
    };
    Discord::new(&config, client()).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn posts_an_embed_and_returns_the_message_id() {
    let server = Capture::start(vec![Canned::json(
        200,
        json!({"id": "1180000000000000001", "channel_id": "99", "content": "paging alice, bob"}),
    )])
    .await;
    let outcome = discord(&server)
        .send(&notification(AlertStatus::Triggered))
        .await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            provider_id: Some("1180000000000000001".into())
        }
    );
    let req = server.only();
    assert_eq!(req.path, "/api/webhooks/123/tok");
    assert_eq!(req.query.as_deref(), Some("wait=true"));
    let body = req.json();
    assert_eq!(body["username"], "Rouse");
    assert_eq!(body["content"], "paging alice, bob");
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    let embed = &body["embeds"][0];
    assert_eq!(embed["color"], 0xE01E5A);
    assert!(embed["title"]
        .as_str()
        .unwrap_or_default()
        .contains("CRITICAL #42 payments"));
    assert!(embed["description"]
        .as_str()
        .unwrap_or_default()
        .contains("[Acknowledge](https://rouse.example/ack/t0k3n)"));
    assert_eq!(embed["fields"][0]["name"], "Severity");
    assert_eq!(embed["timestamp"], "2023-11-14T22:13:20+00:00");
}

#[tokio::test]
async fn rate_limit_json_retry_after_is_honoured() {
    let server = Capture::start(vec![
        Canned::json(
            429,
            json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false}),
        ),
        Canned::json(404, json!({"message": "Unknown Webhook", "code": 10015})),
    ])
    .await;
    let d = discord(&server);
    let n = notification(AlertStatus::Triggered);
    assert!(matches!(
        d.send(&n).await,
        Outcome::Retry { after: Some(a), .. } if a == Duration::from_millis(1500)
    ));
    assert!(
        matches!(d.send(&n).await, Outcome::Failed { reason } if reason.contains("Unknown Webhook"))
    );
}

#[tokio::test]
async fn follow_up_is_a_green_embed() {
    let server = Capture::start(vec![Canned::new(204, "")]).await;
    let outcome = discord(&server)
        .follow_up(&notification(AlertStatus::Resolved), Some("1"))
        .await;
    assert_eq!(outcome, Outcome::Delivered { provider_id: None });
    let body = server.only().json();
    assert_eq!(body["embeds"][0]["color"], 0x2EB67D);
    assert_eq!(body["content"], "RESOLVED by alice, bob");
}
