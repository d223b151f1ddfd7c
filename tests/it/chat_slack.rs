//! Slack against a loopback server that answers as Slack documents: the
//! incoming webhook (`ok`, `400 invalid_payload`, `404 no_service`, 429 with
//! Retry-After) and the Web API (`{"ok":false,"error":…}` in a 200, HTTP 429),
//! with every recorded body validated by Slack's own SDK.

use std::time::Duration;

use rouse::alert::AlertStatus;
use rouse::channel::http::client;
use rouse::channel::slack::{Slack, SlackConfig};
use rouse::channel::{Channel, Outcome};
use rouse::config::Secret;
use serde_json::json;

use crate::peers::{self, notification, Canned, Capture};

fn webhook(url: String) -> Slack {
    let config = SlackConfig {
        webhook_url: Some(Secret::new(url)),
        bot_token: None,
        channel: None,
        api_url: None,
        signing_secret: None,
    };
    Slack::new(&config, client()).unwrap_or_else(|e| panic!("{e}"))
}

fn api(server: &Capture) -> Slack {
    let config = SlackConfig {
        webhook_url: None,
        bot_token: Some(Secret::new("xoxb-test-token")),
        channel: Some("C999".into()),
        api_url: Some(server.url("/api")),
        signing_secret: None,
    };
    Slack::new(&config, client()).unwrap_or_else(|e| panic!("{e}"))
}

fn posted_ok() -> Canned {
    Canned::json(
        200,
        json!({"ok": true, "channel": "C123", "ts": "1700000000.000100", "message": {"text": "x"}}),
    )
}

#[tokio::test]
async fn webhook_posts_text_and_blocks_and_reads_ok() {
    let server = Capture::start(vec![Canned::new(200, "ok")]).await;
    let slack = webhook(server.url("/services/T0/B0/x"));
    let outcome = slack.send(&notification(AlertStatus::Triggered)).await;
    assert_eq!(outcome, Outcome::Delivered { provider_id: None });

    let req = server.only();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/services/T0/B0/x");
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    let text = body["text"].as_str().unwrap_or_default();
    assert!(text.contains("CRITICAL #42 payments: disk full"), "{text}");
    // Slack's three control characters are escaped: no `<@everyone>` ping.
    assert!(text.contains("&lt;@everyone&gt; &amp; more"), "{text}");
    let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[1]["type"], "section");
    let fields = blocks[1]["fields"].to_string();
    assert!(fields.contains("CRITICAL") && fields.contains("paging alice, bob"));
    assert!(fields.contains("<https://rouse.example/ack/t0k3n|Acknowledge in Rouse>"));
    assert!(body["blocks"]
        .to_string()
        .contains("grafana.example/d/disk"));
    // Buttons need a Slack app to receive clicks: none on a plain webhook.
    assert!(blocks.iter().all(|b| b["type"] != "actions"));
    peers::validate_slack_blocks("webhook_posts_text_and_blocks_and_reads_ok", &body);
}

#[tokio::test]
async fn webhook_errors_map_to_outcomes() {
    let server = Capture::start(vec![
        Canned::new(400, "invalid_payload"),
        Canned::new(404, "no_service"),
        Canned::new(429, "rate_limited").header("retry-after", "30"),
        Canned::new(500, "rollup_error"),
    ])
    .await;
    let slack = webhook(server.url("/services/T0/B0/x"));
    let n = notification(AlertStatus::Triggered);
    assert!(
        matches!(slack.send(&n).await, Outcome::Failed { reason } if reason.contains("invalid_payload"))
    );
    assert!(
        matches!(slack.send(&n).await, Outcome::Failed { reason } if reason.contains("no_service"))
    );
    assert_eq!(
        slack.send(&n).await,
        Outcome::Retry {
            after: Some(Duration::from_secs(30)),
            reason: "HTTP 429 Too Many Requests: rate_limited".into()
        }
    );
    assert!(peers::is_retry(&slack.send(&n).await));
}

#[tokio::test]
async fn bot_token_posts_block_kit_with_buttons_and_returns_channel_ts() {
    let server = Capture::start(vec![posted_ok()]).await;
    let slack = api(&server);
    let outcome = slack.send(&notification(AlertStatus::Triggered)).await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            provider_id: Some("C123:1700000000.000100".into())
        }
    );
    let req = server.only();
    assert_eq!(req.path, "/api/chat.postMessage");
    assert_eq!(req.header("authorization"), Some("Bearer xoxb-test-token"));
    let body = req.json();
    // A room recipient names the channel; the configured one is for people.
    assert_eq!(body["channel"], "C123");
    assert!(body["text"].as_str().is_some_and(|t| !t.is_empty()));
    let actions = body["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
        .cloned()
        .unwrap_or_else(|| panic!("no actions block: {body:#}"));
    assert_eq!(actions["elements"][0]["action_id"], "rouse_ack");
    assert_eq!(actions["elements"][0]["value"], "42");
    assert_eq!(actions["elements"][0]["style"], "primary");
    assert_eq!(actions["elements"][1]["action_id"], "rouse_resolve");
    assert_eq!(actions["elements"][1]["value"], "42");
    peers::validate_slack_blocks(
        "bot_token_posts_block_kit_with_buttons_and_returns_channel_ts",
        &body,
    );
}

#[tokio::test]
async fn web_api_errors_in_a_200_and_http_429() {
    let server = Capture::start(vec![
        Canned::json(200, json!({"ok": false, "error": "ratelimited"})).header("retry-after", "5"),
        Canned::json(200, json!({"ok": false, "error": "channel_not_found"})),
        Canned::json(200, json!({"ok": false, "error": "invalid_auth"})),
        Canned::json(200, json!({"ok": false, "error": "not_in_channel"})),
        Canned::new(429, "").header("retry-after", "12"),
    ])
    .await;
    let slack = api(&server);
    let n = notification(AlertStatus::Triggered);
    assert_eq!(
        slack.send(&n).await,
        Outcome::Retry {
            after: Some(Duration::from_secs(5)),
            reason: "slack: ratelimited".into()
        }
    );
    for expected in ["channel_not_found", "invalid_auth", "not_in_channel"] {
        assert_eq!(
            slack.send(&n).await,
            Outcome::Failed {
                reason: format!("slack: {expected}")
            }
        );
    }
    assert!(matches!(
        slack.send(&n).await,
        Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(12)
    ));
}

#[tokio::test]
async fn follow_up_updates_the_message_in_place() {
    let server = Capture::start(vec![posted_ok()]).await;
    let slack = api(&server);
    let mut n = notification(AlertStatus::Acknowledged);
    n.paged = vec!["alice".into()];
    let outcome = slack.follow_up(&n, Some("C123:1700000000.000100")).await;
    assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    let req = server.only();
    assert_eq!(req.path, "/api/chat.update");
    let body = req.json();
    assert_eq!(body["channel"], "C123");
    assert_eq!(body["ts"], "1700000000.000100");
    let blocks = body["blocks"].to_string();
    assert!(blocks.contains("ACKNOWLEDGED by alice"), "{blocks}");
    // Acknowledged: no Acknowledge button any more, Resolve stays.
    assert!(!blocks.contains("rouse_ack") && blocks.contains("rouse_resolve"));
    peers::validate_slack_blocks("follow_up_updates_the_message_in_place", &body);
}

#[tokio::test]
async fn follow_up_posts_anew_when_the_message_is_gone_or_unknown() {
    let server = Capture::start(vec![
        Canned::json(200, json!({"ok": false, "error": "message_not_found"})),
        posted_ok(),
        posted_ok(),
    ])
    .await;
    let slack = api(&server);
    let n = notification(AlertStatus::Resolved);
    let outcome = slack.follow_up(&n, Some("C123:1.0")).await;
    assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    let outcome = slack.follow_up(&n, None).await;
    assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/api/chat.update",
            "/api/chat.postMessage",
            "/api/chat.postMessage"
        ]
    );
    let body = server.requests()[2].json();
    assert!(body["text"]
        .as_str()
        .unwrap_or_default()
        .contains("RESOLVED"));
    // Resolved: nothing left to click.
    assert!(!body["blocks"].to_string().contains("\"actions\""));
    peers::validate_slack_blocks(
        "follow_up_posts_anew_when_the_message_is_gone_or_unknown",
        &body,
    );
}

#[tokio::test]
async fn webhook_follow_up_is_a_new_message() {
    let server = Capture::start(vec![Canned::new(200, "ok")]).await;
    let slack = webhook(server.url("/hook"));
    let outcome = slack
        .follow_up(&notification(AlertStatus::Resolved), Some("C1:1.0"))
        .await;
    assert_eq!(outcome, Outcome::Delivered { provider_id: None });
    assert!(server.only().json()["text"]
        .as_str()
        .unwrap_or_default()
        .contains("RESOLVED #42"));
}

#[test]
fn the_validator_rejects_what_slack_rejects() {
    // Guards the guard: a button label over Slack's 75-character limit.
    let bad = json!({"blocks": [{"type": "actions", "elements": [{
        "type": "button", "action_id": "rouse_ack", "value": "42",
        "text": {"type": "plain_text", "text": "x".repeat(80)},
    }]}]});
    let Some((ok, message)) =
        peers::slack_sdk_verdict("the_validator_rejects_what_slack_rejects", &bad)
    else {
        return;
    };
    assert!(!ok, "slack_sdk accepted an over-long button: {message}");
}

#[test]
fn long_summaries_stay_within_block_kit_limits() {
    let mut n = notification(AlertStatus::Triggered);
    n.summary = "s".repeat(5000);
    n.service_id = "v".repeat(3000);
    let body = json!({"blocks": rouse::channel::slack::blocks(&n, true)});
    peers::validate_slack_blocks("long_summaries_stay_within_block_kit_limits", &body);
}
