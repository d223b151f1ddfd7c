//! Poison: an alert whose every page makes its channel panic. No provider
//! answer can make a real channel panic (every transport failure is an
//! `Outcome`), so this registers a real `Channel` that panics, in an engine
//! on PostgreSQL on a virtual clock. The panic is one failed attempt: it is
//! retried with backoff, recorded as failed, and the escalation falls
//! through to its next step at once — while the engine keeps paging another
//! alert in the same rounds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::alert::{Action, Event, IntakeKind, Severity, Urgency};
use rouse::catalog::live::LiveCatalog;
use rouse::channel::twilio::{TwilioClient, TwilioConfig, TwilioSms};
use rouse::channel::{Channel, ChannelKind, Notification, Outcome};
use rouse::clock::{Clock, ManualClock};
use rouse::config::Secret;
use rouse::escalation::engine::{Channels, Engine, MAX_ATTEMPTS};
use rouse::store::{DeliveryStatus, Ingest, Store};

use crate::fake_twilio::FakeTwilio;
use crate::support::TestDb;

const SID: &str = "AC00000000000000000000000000000b0b";
const TOKEN: &str = "poison-auth-token";
const ALICE: &str = "+4915100000001";

const CATALOG: &str = r##"
people:
  - { id: alice, name: Alice, timezone: UTC, contact: { sms: "+4915100000001" } }
policies:
  - id: poisoned
    steps:
      - { delay: 0m, targets: [{ chat: "#ops" }], channels: [chat] }
      - { delay: 1h, targets: [{ person: alice }], channels: [sms] }
  - id: plain
    steps:
      - { delay: 0m, targets: [{ person: alice }], channels: [sms] }
services:
  - { id: poison, policy: poisoned, integrations: [{ name: am, key: poison-test-key-0123456789 }] }
  - { id: plain, policy: plain, integrations: [{ name: am, key: plain-test-key-01234567890 }] }
"##;

/// A chat channel with a bug: every send panics.
struct Panicking {
    sends: AtomicUsize,
}

#[async_trait::async_trait]
impl Channel for Panicking {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Chat
    }
    fn name(&self) -> &str {
        "panicking-chat"
    }
    async fn send(&self, _: &Notification) -> Outcome {
        self.sends.fetch_add(1, Ordering::SeqCst);
        panic!("poison: this channel panics on every page");
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap()
}

async fn open(store: &dyn Store, now: DateTime<Utc>, service: &str, key: &str) -> i64 {
    let policy = if service == "poison" {
        "poisoned"
    } else {
        "plain"
    };
    let out = store
        .ingest(&[Ingest {
            service_id: service.to_owned(),
            actor: "test".to_owned(),
            policy_id: Some(policy.to_owned()),
            urgency: Urgency::High,
            dedup_key: key.to_owned(),
            event: Event {
                kind: IntakeKind::Native,
                action: Action::Trigger,
                dedup_key: Some(key.to_owned()),
                summary: format!("{key} is down"),
                severity: Severity::Critical,
                source: "db-1".to_owned(),
                labels: Default::default(),
                details: serde_json::json!({}),
                links: vec![],
                occurred_at: None,
            },
            received_at: now,
            storm_threshold: 10_000,
            first_step_due: Some(now),
        }])
        .await
        .unwrap();
    out[0].alert_id.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_channel_is_a_failed_attempt_and_the_engine_keeps_paging() {
    let Some(db) = TestDb::postgres("chaos::poison").await else {
        return;
    };
    let store = db.open().await;
    let rotations = tempfile::tempdir().unwrap();
    std::fs::write(rotations.path().join("oncall.yaml"), CATALOG).unwrap();
    let catalog = Arc::new(LiveCatalog::new(rotations.path(), Box::new(|_: &str| None)));
    catalog.reload(t0(), true);
    assert!(catalog.current().is_some(), "test catalog must load");
    let clock = ManualClock::new(t0());
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    let mut config = TwilioConfig::new(SID, Secret::new(TOKEN), "+15005550006");
    config.base_url = twilio.base_url();
    let poison = Arc::new(Panicking {
        sends: AtomicUsize::new(0),
    });
    let channels = Channels::console_only()
        .with(poison.clone())
        .with(Arc::new(TwilioSms::new(
            "twilio-sms",
            TwilioClient::new(config),
            "http://127.0.0.1:9",
        )));
    let engine = Engine::new(
        store.clone(),
        catalog,
        Arc::new(channels),
        Arc::new(clock.clone()),
    )
    .with_number_cap(1000);

    let poisoned = open(store.as_ref(), clock.now(), "poison", "poisoned").await;
    let mut plain = Vec::new();
    // Every round: another healthy alert, and the engine runs until idle,
    // then the clock moves past the longest backoff (5 min).
    for round in 0..=MAX_ATTEMPTS {
        plain.push(
            open(
                store.as_ref(),
                clock.now(),
                "plain",
                &format!("plain-{round}"),
            )
            .await,
        );
        for _ in 0..10 {
            let (fired, sent) = engine.tick().await.expect("a round survives the panic");
            engine.idle().await;
            if fired + sent == 0 {
                break;
            }
        }
        clock.advance(TimeDelta::minutes(6));
    }
    engine.tick().await.unwrap();
    engine.idle().await;

    assert_eq!(
        poison.sends.load(Ordering::SeqCst),
        MAX_ATTEMPTS as usize,
        "each attempt panicked once and was retried until the last"
    );
    let rows = store.notifications(poisoned).await.unwrap();
    let chat = rows
        .iter()
        .find(|r| r.channel == ChannelKind::Chat)
        .expect("the chat page");
    assert_eq!(chat.status, DeliveryStatus::Failed, "{rows:?}");
    // Fell through: the SMS step fired long before its hour.
    let sms = rows
        .iter()
        .find(|r| r.channel == ChannelKind::Sms)
        .unwrap_or_else(|| panic!("the escalation did not fall through: {rows:?}"));
    assert_eq!(sms.status, DeliveryStatus::Delivered, "{rows:?}");
    assert!(clock.now() - t0() < TimeDelta::hours(1));
    // And every healthy alert was paged meanwhile.
    let bodies: Vec<String> = twilio.messages().into_iter().map(|m| m.body).collect();
    for id in plain.iter().chain([&poisoned]) {
        assert!(
            bodies.iter().any(|b| b.contains(&format!("#{id} "))),
            "#{id} was not paged: {bodies:?}"
        );
    }
    assert!(twilio.messages().iter().all(|m| m.to == ALICE));
    store.close().await;
    db.drop_db().await;
}
