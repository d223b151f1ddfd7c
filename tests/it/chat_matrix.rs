//! Matrix against a real Synapse (one per test process, see `peers`): Rouse
//! posts as @pager, @oncall reads the room back; a retried send is deduped by
//! txnId; a follow-up edit arrives as `m.replace`; aliases resolve. Rate
//! limits (`M_LIMIT_EXCEEDED`) are checked against a loopback server, since
//! the test Synapse is configured not to limit.

use std::time::Duration;

use rouse::alert::AlertStatus;
use rouse::channel::http::client;
use rouse::channel::matrix::{Matrix, MatrixConfig};
use rouse::channel::{Channel, Notification, Outcome, Recipient};
use rouse::config::Secret;
use serde_json::{json, Value};

use crate::peers::{self, notification, Canned, Capture};

async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> Value {
    let mut req = reqwest::Client::new().request(method, &url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

async fn login(base: &str, user: &str) -> String {
    let v = call(
        reqwest::Method::POST,
        format!("{base}/_matrix/client/v3/login"),
        None,
        Some(json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": format!("{user}pass")})),
    )
    .await;
    v["access_token"].as_str().unwrap_or_default().to_owned()
}

struct Room {
    base: String,
    id: String,
    pager: String,
    oncall: String,
}

/// A fresh private room made by @pager, joined by @oncall.
async fn room(base: &str, alias: Option<&str>) -> Room {
    let pager = login(base, "pager").await;
    let oncall = login(base, "oncall").await;
    let mut body =
        json!({"name": "incidents", "preset": "private_chat", "invite": ["@oncall:localhost"]});
    if let Some(a) = alias {
        body["room_alias_name"] = json!(a);
    }
    let v = call(
        reqwest::Method::POST,
        format!("{base}/_matrix/client/v3/createRoom"),
        Some(&pager),
        Some(body),
    )
    .await;
    let id = v["room_id"].as_str().unwrap_or_default().to_owned();
    call(
        reqwest::Method::POST,
        format!(
            "{base}/_matrix/client/v3/join/{}",
            rouse::channel::matrix::encode_segment(&id)
        ),
        Some(&oncall),
        Some(json!({})),
    )
    .await;
    Room {
        base: base.to_owned(),
        id,
        pager,
        oncall,
    }
}

impl Room {
    fn channel(&self, configured_room: Option<&str>) -> Matrix {
        let config = MatrixConfig {
            homeserver_url: self.base.clone(),
            access_token: Secret::new(self.pager.clone()),
            room: configured_room.map(str::to_owned),
        };
        Matrix::new(&config, client()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn notification(&self, status: AlertStatus) -> Notification {
        let mut n = notification(status);
        n.recipient = Recipient::Room {
            address: self.id.clone(),
        };
        n
    }

    /// What @oncall sees: the room's m.room.message events, oldest first.
    async fn messages(&self) -> Vec<Value> {
        let v = call(
            reqwest::Method::GET,
            format!(
                "{}/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
                self.base,
                rouse::channel::matrix::encode_segment(&self.id)
            ),
            Some(&self.oncall),
            None,
        )
        .await;
        let mut events: Vec<Value> = v["chunk"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["type"] == "m.room.message")
            .collect();
        events.reverse();
        events
    }
}

fn event_id(o: &Outcome) -> String {
    match o {
        Outcome::Delivered {
            provider_id: Some(id),
        } => id.clone(),
        other => panic!("expected an event id, got {other:?}"),
    }
}

#[tokio::test]
async fn page_arrives_once_even_when_retried() {
    let Some(syn) = peers::synapse("page_arrives_once_even_when_retried") else {
        return;
    };
    let room = room(&syn.base, None).await;
    let matrix = room.channel(None);
    let n = room.notification(AlertStatus::Triggered);
    let first = event_id(&matrix.send(&n).await);
    // Same notification again (a retry after a lost answer): same txnId.
    let again = event_id(&matrix.send(&n).await);
    assert_eq!(first, again, "the homeserver deduplicated by txnId");

    let msgs = room.messages().await;
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    let content = &msgs[0]["content"];
    assert_eq!(msgs[0]["sender"], "@pager:localhost");
    assert_eq!(content["msgtype"], "m.text");
    assert_eq!(content["format"], "org.matrix.custom.html");
    let body = content["body"].as_str().unwrap_or_default();
    assert!(body.contains("CRITICAL #42 payments: disk full"), "{body}");
    assert!(body.contains("paging alice, bob"), "{body}");
    let html = content["formatted_body"].as_str().unwrap_or_default();
    assert!(
        html.contains("<a href=\"https://rouse.example/ack/t0k3n\">"),
        "{html}"
    );
    assert!(html.contains("&lt;@everyone&gt;"), "{html}");

    // A different notification (next attempt) is a different message.
    let mut next = n.clone();
    next.idempotency_key = "42/1/alice/chat/2".into();
    next.attempt = 2;
    assert_ne!(event_id(&matrix.send(&next).await), first);
    assert_eq!(room.messages().await.len(), 2);
}

#[tokio::test]
async fn follow_up_edits_the_page_in_place() {
    let Some(syn) = peers::synapse("follow_up_edits_the_page_in_place") else {
        return;
    };
    let room = room(&syn.base, None).await;
    let matrix = room.channel(None);
    let page = event_id(
        &matrix
            .send(&room.notification(AlertStatus::Triggered))
            .await,
    );
    let mut ack = room.notification(AlertStatus::Acknowledged);
    ack.paged = vec!["alice".into()];
    let edit = event_id(&matrix.follow_up(&ack, Some(&page)).await);
    // Retried follow-up: deduplicated too.
    assert_eq!(event_id(&matrix.follow_up(&ack, Some(&page)).await), edit);

    let msgs = room.messages().await;
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    let c = &msgs[1]["content"];
    assert_eq!(c["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(c["m.relates_to"]["event_id"], page.as_str());
    let new_body = c["m.new_content"]["body"].as_str().unwrap_or_default();
    assert!(new_body.contains("ACKNOWLEDGED by alice"), "{new_body}");
    assert!(c["body"].as_str().unwrap_or_default().starts_with("* "));

    // The server relates the edit to the page.
    let rel = call(
        reqwest::Method::GET,
        format!(
            "{}/_matrix/client/v1/rooms/{}/relations/{}/m.replace",
            room.base,
            rouse::channel::matrix::encode_segment(&room.id),
            rouse::channel::matrix::encode_segment(&page)
        ),
        Some(&room.oncall),
        None,
    )
    .await;
    assert_eq!(rel["chunk"][0]["event_id"], edit.as_str(), "{rel}");

    // Without the first event id, a new message says what changed.
    let resolved = room.notification(AlertStatus::Resolved);
    let new = event_id(&matrix.follow_up(&resolved, None).await);
    let msgs = room.messages().await;
    assert_eq!(msgs.last().map(|m| m["event_id"].clone()), Some(json!(new)));
    assert!(msgs[2]["content"].get("m.relates_to").is_none());
    assert!(msgs[2]["content"]["body"]
        .as_str()
        .unwrap_or_default()
        .contains("RESOLVED #42"));
}

#[tokio::test]
async fn aliases_resolve_and_unknown_rooms_fail() {
    let Some(syn) = peers::synapse("aliases_resolve_and_unknown_rooms_fail") else {
        return;
    };
    let alias_local = format!("incidents-{}", peers::free_port());
    let room = room(&syn.base, Some(&alias_local)).await;
    let alias = format!("#{alias_local}:localhost");
    let matrix = room.channel(Some(&alias));
    let mut n = notification(AlertStatus::Triggered);
    n.recipient = Recipient::Person {
        id: "alice".into(),
        name: "Alice".into(),
        address: "@alice:localhost".into(),
    };
    let o = matrix.send(&n).await;
    assert!(matches!(o, Outcome::Delivered { .. }), "{o:?}");
    assert_eq!(room.messages().await.len(), 1);

    let missing = room.channel(Some("#no-such-room:localhost"));
    assert!(matches!(missing.send(&n).await, Outcome::Failed { .. }));
    // A room the bot is not in: M_FORBIDDEN, Failed.
    let mut n = room.notification(AlertStatus::Triggered);
    n.recipient = Recipient::Room {
        address: "!notjoined:localhost".into(),
    };
    let o = matrix.send(&n).await;
    assert!(matches!(o, Outcome::Failed { .. }), "{o:?}");
    // A wrong token: M_UNKNOWN_TOKEN, Failed.
    let bad = Matrix::new(
        &MatrixConfig {
            homeserver_url: room.base.clone(),
            access_token: Secret::new("syt_wrong"),
            room: Some(room.id.clone()),
        },
        client(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let o = bad.send(&room.notification(AlertStatus::Triggered)).await;
    assert!(
        matches!(&o, Outcome::Failed { reason } if reason.contains("M_UNKNOWN_TOKEN")),
        "{o:?}"
    );
}

#[tokio::test]
async fn limit_exceeded_is_retried_after_the_given_time() {
    let server = Capture::start(vec![Canned::json(
        429,
        json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": 2000}),
    )])
    .await;
    let matrix = Matrix::new(
        &MatrixConfig {
            homeserver_url: server.url(""),
            access_token: Secret::new("syt_token"),
            room: None,
        },
        client(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut n = notification(AlertStatus::Triggered);
    n.recipient = Recipient::Room {
        address: "!abc:localhost".into(),
    };
    assert!(matches!(
        matrix.send(&n).await,
        Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(2)
    ));
    let req = server.only();
    assert_eq!(req.method, "PUT");
    assert_eq!(
        req.path,
        "/_matrix/client/v3/rooms/%21abc%3Alocalhost/send/m.room.message/rouse-42~2f1~2falice~2fchat~2f1-page"
    );
    assert_eq!(req.header("authorization"), Some("Bearer syt_token"));
}
