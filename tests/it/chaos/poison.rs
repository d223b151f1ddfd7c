//! Poison: an alert whose every page fails, each in another way — a chat
//! channel that panics, SMS to a Twilio endpoint whose TLS handshake fails,
//! a call answered by a malformed error page (`502` with HTML). No provider
//! answer can make a real channel panic (every transport failure is an
//! `Outcome`), so the panic comes from a real `Channel` that panics. The
//! engine runs on PostgreSQL on a virtual clock. Each failure is retried
//! with backoff, recorded as failed, and the escalation falls through to its
//! next step at once — while the engine keeps paging another alert in the
//! same rounds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::alert::{Action, Event, IntakeKind, Severity, Urgency};
use rouse::catalog::live::LiveCatalog;
use rouse::channel::twilio::{TwilioClient, TwilioConfig, TwilioSms, TwilioVoice};
use rouse::channel::{Channel, ChannelKind, Notification, Outcome};
use rouse::clock::{Clock, ManualClock};
use rouse::config::Secret;
use rouse::escalation::engine::{Channels, Engine, MAX_ATTEMPTS};
use rouse::store::{DeliveryStatus, Ingest, Store};

use crate::peers::{Canned, Capture};
use crate::support::TestDb;

const SID: &str = "AC00000000000000000000000000000b0b";
const TOKEN: &str = "poison-auth-token";

const CATALOG: &str = r##"
people:
  - { id: alice, name: Alice, timezone: UTC, contact: { sms: "+4915100000001", voice: "+4915100000001", email: alice@example.org } }
policies:
  - id: poisoned
    steps:
      - { delay: 0m, targets: [{ chat: "#ops" }], channels: [chat] }
      - { delay: 1h, targets: [{ person: alice }], channels: [sms] }
      - { delay: 1h, targets: [{ person: alice }], channels: [voice] }
  - id: plain
    steps:
      - { delay: 0m, targets: [{ person: alice }], channels: [email] }
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
            encoded: None,
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
    // Plain HTTP behind an https:// URL: every TLS handshake fails.
    let no_tls = Capture::start(vec![Canned::new(201, "{}")]).await;
    let mut sms = TwilioConfig::new(SID, Secret::new(TOKEN), "+15005550006");
    sms.base_url = no_tls.tls_url("");
    // A proxy's error page where Twilio's JSON error should be.
    let malformed = Capture::start(vec![Canned::new(502, "<html>Bad Gateway</html>")]).await;
    let mut voice = TwilioConfig::new(SID, Secret::new(TOKEN), "+15005550006");
    voice.base_url = malformed.url("");
    let poison = Arc::new(Panicking {
        sends: AtomicUsize::new(0),
    });
    // Email is not configured: the console "sends" it, which always works.
    let channels = Channels::console_only()
        .with(poison.clone())
        .with(Arc::new(TwilioSms::new(
            "twilio-sms",
            TwilioClient::new(sms),
            "http://127.0.0.1:9",
        )))
        .with(Arc::new(TwilioVoice::new(
            "twilio-voice",
            TwilioClient::new(voice),
            "http://127.0.0.1:9",
            Arc::new(|_| "token".to_owned()),
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
    // Three channels fail MAX_ATTEMPTS times each, one after the other.
    for round in 0..=3 * MAX_ATTEMPTS {
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
    for kind in [ChannelKind::Chat, ChannelKind::Sms, ChannelKind::Voice] {
        let row = rows.iter().find(|r| r.channel == kind).unwrap_or_else(|| {
            panic!("no {kind:?} page: the escalation did not fall through: {rows:?}")
        });
        assert_eq!(row.status, DeliveryStatus::Failed, "{kind:?}: {rows:?}");
        assert_eq!(row.attempt, MAX_ATTEMPTS, "{kind:?}: {rows:?}");
    }
    assert_eq!(no_tls.requests().len(), 0, "no TLS handshake can succeed");
    assert_eq!(malformed.requests().len(), MAX_ATTEMPTS as usize);
    // Fell through each time: three steps an hour apart were done in less.
    assert!(clock.now() - t0() < TimeDelta::hours(2));
    // And every healthy alert was paged meanwhile.
    for id in &plain {
        let rows = store.notifications(*id).await.unwrap();
        assert!(
            rows.iter().any(|r| r.status == DeliveryStatus::Delivered),
            "#{id} was not paged: {rows:?}"
        );
    }
    store.close().await;
    db.drop_db().await;
}
