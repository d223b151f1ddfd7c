//! Every HTTP chat channel against a failing endpoint — 500, a TLS handshake
//! with a server that speaks plain HTTP, a server that never answers in time,
//! and nothing listening — returns Retry/Unknown, never panics.

use std::time::Duration;

use rouse::alert::AlertStatus;
use rouse::channel::{discord, matrix, mattermost, slack, teams};
use rouse::channel::{Channel, Outcome};
use rouse::config::Secret;

use crate::peers::{self, notification, Canned, Capture};

/// The five HTTP chat channels pointed at `base` (+ each one's path).
fn channels(base: &str) -> Vec<Box<dyn Channel>> {
    let http = peers::quick_client(Duration::from_millis(500));
    let s = |p: &str| Secret::new(format!("{base}{p}"));
    let ok = |e: rouse::channel::ConfigError| -> Box<dyn Channel> { panic!("{e}") };
    vec![
        slack::Slack::new(
            &slack::SlackConfig {
                webhook_url: Some(s("/hook")),
                bot_token: None,
                channel: None,
                api_url: None,
                signing_secret: None,
            },
            http.clone(),
        )
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .unwrap_or_else(ok),
        slack::Slack::new(
            &slack::SlackConfig {
                webhook_url: None,
                bot_token: Some(Secret::new("xoxb-1")),
                channel: None,
                api_url: Some(format!("{base}/api")),
                signing_secret: None,
            },
            http.clone(),
        )
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .unwrap_or_else(ok),
        teams::Teams::new(
            &teams::TeamsConfig {
                webhook_url: s("/t"),
            },
            http.clone(),
        )
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .unwrap_or_else(ok),
        discord::Discord::new(
            &discord::DiscordConfig {
                webhook_url: s("/d"),
                username: None,
            },
            http.clone(),
        )
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .unwrap_or_else(ok),
        mattermost::Mattermost::new(
            &mattermost::MattermostConfig {
                webhook_url: s("/m"),
                channel: None,
                username: None,
            },
            http.clone(),
        )
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .unwrap_or_else(ok),
        matrix::Matrix::new(
            &matrix::MatrixConfig {
                homeserver_url: base.to_owned(),
                access_token: Secret::new("syt_x"),
                room: None,
            },
            http,
        )
        .map(|c| Box::new(c) as Box<dyn Channel>)
        .unwrap_or_else(ok),
    ]
}

fn n() -> rouse::channel::Notification {
    let mut n = notification(AlertStatus::Triggered);
    // Matrix needs a room id; the others ignore the room.
    n.recipient = rouse::channel::Recipient::Room {
        address: "!room:localhost".into(),
    };
    n
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = Capture::start(vec![Canned::new(500, "oops")]).await;
    for ch in channels(&server.url("")) {
        let o = ch.send(&n()).await;
        assert!(peers::is_retry(&o), "{}: {o:?}", ch.name());
    }
}

#[tokio::test]
async fn tls_failures_are_retried() {
    let server = Capture::start(vec![Canned::new(200, "ok")]).await;
    for ch in channels(&server.tls_url("")) {
        let o = ch.send(&n()).await;
        assert!(peers::is_retry(&o), "{}: {o:?}", ch.name());
    }
}

#[tokio::test]
async fn timeouts_are_unknown() {
    let server = Capture::start(vec![Canned::new(200, "ok").delayed(Duration::from_secs(3))]).await;
    for ch in channels(&server.url("")) {
        let o = ch.send(&n()).await;
        assert!(matches!(o, Outcome::Unknown { .. }), "{}: {o:?}", ch.name());
    }
}

#[tokio::test]
async fn refused_connections_are_retried() {
    let base = peers::refused_url("");
    for ch in channels(&base) {
        let o = ch.send(&n()).await;
        assert!(peers::is_retry(&o), "{}: {o:?}", ch.name());
    }
}

#[tokio::test]
async fn garbage_answers_do_not_panic() {
    // A 200 that is not what the provider would send: never a panic, and the
    // Slack Web API (which must read `ok`) does not claim delivery.
    let server = Capture::start(vec![Canned::new(200, "<html>captive portal</html>")]).await;
    for ch in channels(&server.url("")) {
        let o = ch.send(&n()).await;
        assert!(!matches!(o, Outcome::Retry { .. }), "{}: {o:?}", ch.name());
    }
}
