//! A send still in flight when the shutdown grace runs out is recorded as
//! `unknown` (the provider may have it) and never sent again by the next
//! server on the same database, as the README promises for unknown outcomes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rouse::channel::WebhookSettings;
use rouse::config::Secret;
use rouse::store::DeliveryStatus;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::both_backends;
use crate::support::{eventually, TestApp, TestDb, PAYMENTS_KEY};

/// Rooms only: one chat page per alert, nothing else to send.
const CATALOG: &str = r##"
people:
  - { id: alice, name: Alice, timezone: Europe/Berlin }
rotations:
  - { id: solo, timezone: Europe/Berlin, participants: [alice], shift: 1w, handoff: "09:00", start: 2026-01-05 }
schedules:
  - { id: primary, timezone: Europe/Berlin, layers: [{ rotation: solo }] }
policies:
  - id: room
    steps:
      - { delay: 0m, targets: [{ chat: "#ops" }], channels: [chat] }
services:
  - id: payments
    policy: room
    integrations: [{ name: prometheus, key: payments-test-key-0123456789 }]
"##;

/// A chat webhook that takes every request and never answers it.
struct Silent {
    url: String,
    requests: Arc<AtomicUsize>,
}

impl Silent {
    async fn start() -> Silent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    if socket.read(&mut buf).await.is_ok_and(|n| n > 0) {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                    // Hold the connection open, answering nothing.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(socket);
                });
            }
        });
        Silent { url, requests }
    }

    fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn spawn(db: &TestDb, hook: &str) -> TestApp {
    let hook = hook.to_owned();
    TestApp::spawn_with_catalog(db, CATALOG, move |c| {
        // Shorter than the provider's 10 s timeout: the send is cut off.
        c.shutdown_grace = Duration::from_secs(2);
        c.channels = Arc::new(rouse::channel::ChannelsConfig {
            webhook: Some(WebhookSettings {
                url: Secret::new(hook),
                secret: Some(Secret::new("shutdown-secret")),
            }),
            ..Default::default()
        });
    })
    .await
}

async fn trigger(app: &TestApp, key: &str) -> i64 {
    let (status, body) = app
        .post(
            "/v1/events",
            &[("x-rouse-key", PAYMENTS_KEY)],
            json!({"action": "trigger", "dedup_key": key, "summary": key, "severity": "critical"})
                .to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["alert_id"].as_i64().unwrap()
}

async fn a_send_cut_off_by_shutdown_is_unknown_and_not_resent(db: &TestDb) {
    let receiver = Silent::start().await;
    let app = spawn(db, &receiver.url).await;
    let id = trigger(&app, "cut-off").await;
    eventually("the page reaches the receiver", || async {
        receiver.count() == 1
    })
    .await;
    app.stop().await;

    let store = db.open().await;
    let rows = store.notifications(id).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status, DeliveryStatus::Unknown, "{rows:?}");
    store.close().await;

    // The next server on the same database pages for a new alert, and never
    // again for the one cut off.
    let app = spawn(db, &receiver.url).await;
    let later = trigger(&app, "after-restart").await;
    eventually("the new alert's page", || async { receiver.count() == 2 }).await;
    let shown = app.admin_get(&format!("/v1/alerts/{later}")).await.1;
    assert_eq!(shown["alert"]["id"], later);
    app.stop().await;
    assert_eq!(receiver.count(), 2, "the cut-off page was sent again");
    let store = db.open().await;
    assert_eq!(
        store.notifications(id).await.unwrap()[0].status,
        DeliveryStatus::Unknown
    );
    store.close().await;
}
both_backends!(a_send_cut_off_by_shutdown_is_unknown_and_not_resent);
