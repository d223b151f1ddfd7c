//! Teams against a loopback workflow endpoint: 202 accepted, 429 with
//! Retry-After, and the connector's HTTP 200 whose body reports the real
//! failure ("Microsoft Teams endpoint returned HTTP error 429 …").

use std::time::Duration;

use rouse::alert::AlertStatus;
use rouse::channel::http::client;
use rouse::channel::teams::{Teams, TeamsConfig};
use rouse::channel::{Channel, Outcome};
use rouse::config::Secret;

use crate::peers::{notification, Canned, Capture};

fn teams(server: &Capture) -> Teams {
    let config = TeamsConfig {
        webhook_url: Secret::new(
            server.url("/workflows/abc/triggers/manual/paths/invoke?sig=s3cret"),
        ),
    };
    Teams::new(&config, client()).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn posts_an_adaptive_card_message() {
    let server = Capture::start(vec![Canned::new(202, "")]).await;
    let outcome = teams(&server)
        .send(&notification(AlertStatus::Triggered))
        .await;
    assert_eq!(outcome, Outcome::Delivered { provider_id: None });
    let req = server.only();
    assert_eq!(req.query.as_deref(), Some("sig=s3cret"));
    let body = req.json();
    assert_eq!(body["type"], "message");
    let att = &body["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &att["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(card["body"][0]["color"], "attention");
    assert!(card["body"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .contains("CRITICAL #42 payments"));
    let facts = card["body"][2]["facts"].to_string();
    assert!(facts.contains("Severity") && facts.contains("paging alice, bob"));
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(card["actions"][0]["title"], "Acknowledge");
    assert_eq!(card["actions"][0]["url"], "https://rouse.example/ack/t0k3n");
}

#[tokio::test]
async fn throttling_as_429_or_inside_a_200_is_retried() {
    let server = Capture::start(vec![
        Canned::new(429, "Too many requests").header("retry-after", "7"),
        Canned::new(
            200,
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi-production..",
        ),
        Canned::new(
            200,
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413 with ContextId tcid=1..",
        ),
        Canned::new(200, "1"),
    ])
    .await;
    let t = teams(&server);
    let n = notification(AlertStatus::Triggered);
    assert!(matches!(
        t.send(&n).await,
        Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7)
    ));
    assert!(matches!(
        t.send(&n).await,
        Outcome::Retry { reason, .. } if reason.contains("HTTP error 429")
    ));
    assert!(matches!(
        t.send(&n).await,
        Outcome::Failed { reason } if reason.contains("HTTP error 413")
    ));
    // The legacy connector answers "1" for success.
    assert!(matches!(t.send(&n).await, Outcome::Delivered { .. }));
}

#[tokio::test]
async fn follow_up_is_a_new_card_in_the_resolved_colour() {
    let server = Capture::start(vec![Canned::new(200, "")]).await;
    let outcome = teams(&server)
        .follow_up(&notification(AlertStatus::Resolved), None)
        .await;
    assert!(matches!(outcome, Outcome::Delivered { .. }));
    let card = server.only().json()["attachments"][0]["content"].clone();
    assert_eq!(card["body"][0]["color"], "good");
    assert!(card["body"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .contains("RESOLVED #42"));
    assert_eq!(
        card["actions"].as_array().map(Vec::len),
        Some(1),
        "only the link, no ack"
    );
}
