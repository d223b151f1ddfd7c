//! Personal notification rules on the engine's virtual clock, on both stores:
//! a `channels: [personal]` step follows each person's own `notify` rules at
//! exactly their times, until someone acknowledges or the policy's next step
//! fires; people without rules get the step's fallback at once.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::alert::{Action, Event, IntakeKind, Severity, Urgency};
use rouse::catalog::live::LiveCatalog;
use rouse::channel::pushover::{Pushover, PushoverSettings};
use rouse::channel::twilio::{TwilioClient, TwilioConfig, TwilioSms, TwilioVoice};
use rouse::clock::{Clock, ManualClock};
use rouse::config::Secret;
use rouse::escalation::engine::{Channels, Engine};
use rouse::store::{Act, Ingest, Store, Via};

use crate::both_backends;
use crate::fake_push::FakePushover;
use crate::fake_twilio::FakeTwilio;
use crate::support::TestDb;

const SID: &str = "AC00000000000000000000000000000016";
const TOKEN: &str = "personal-auth-token";
const APP_TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
const ALICE: &str = "+4915100000001";
const BOB: &str = "+12125550002";
const CAROL: &str = "+12125550003";

/// Alice: push at once, a call after 1 minute and after 3, one more after
/// 15 (past the next step, so it never comes). Bob has no rules.
const CATALOG: &str = r##"
people:
  - id: alice
    name: Alice
    timezone: Europe/Berlin
    contact: { pushover: uQiRzpo4DXghDmr9QzzfQu27cmVRsG, voice: "+4915100000001" }
    notify:
      - { after: 0m, via: push }
      - { after: 1m, via: voice }
      - { after: 3m, via: voice }
      - { after: 15m, via: voice }
  - { id: bob, name: Bob, timezone: America/New_York, contact: { sms: "+12125550002", voice: "+12125550002" } }
  - { id: carol, name: Carol, timezone: America/New_York, contact: { sms: "+12125550003" } }
policies:
  - id: personal
    steps:
      - { delay: 0m, targets: [{ person: alice }, { person: bob }], channels: [personal], fallback: [sms, voice] }
      - { delay: 10m, targets: [{ person: carol }], channels: [sms] }
services:
  - id: payments
    policy: personal
    integrations: [{ name: am, key: personal-test-key-0123456789 }]
"##;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap()
}

struct Rig {
    store: Arc<dyn Store>,
    clock: ManualClock,
    engine: Engine,
    twilio: FakeTwilio,
    pushover: FakePushover,
    _rotations: tempfile::TempDir,
}

impl Rig {
    async fn new(db: &TestDb) -> Rig {
        let store = db.open().await;
        let rotations = tempfile::tempdir().unwrap();
        std::fs::write(rotations.path().join("oncall.yaml"), CATALOG).unwrap();
        let catalog = Arc::new(LiveCatalog::new(rotations.path(), Box::new(|_: &str| None)));
        catalog.reload(t0(), true);
        assert!(catalog.current().is_some(), "test catalog must load");
        let clock = ManualClock::new(t0());
        let twilio = FakeTwilio::start(SID, TOKEN).await;
        let pushover = FakePushover::start(APP_TOKEN).await;
        let mut config = TwilioConfig::new(SID, Secret::new(TOKEN), "+15005550006");
        config.base_url = twilio.base_url();
        let client = TwilioClient::new(config);
        let public = "http://127.0.0.1:9";
        let push = Pushover::new(
            &PushoverSettings {
                token: Some(Secret::new(APP_TOKEN)),
                base_url: Some(pushover.base_url()),
                retry: 60,
                expire: 3600,
                sound: None,
                poll_every: 10,
            },
            rouse::channel::http::client(),
        )
        .unwrap();
        let channels = Channels::console_only()
            .with(Arc::new(push))
            .with(Arc::new(TwilioSms::new(
                "twilio-sms",
                client.clone(),
                public,
            )))
            .with(Arc::new(TwilioVoice::new(
                "twilio-voice",
                client,
                public,
                Arc::new(|_| "token".to_owned()),
            )));
        let engine = Engine::new(
            store.clone(),
            catalog,
            Arc::new(channels),
            Arc::new(clock.clone()),
        );
        Rig {
            store,
            clock,
            engine,
            twilio,
            pushover,
            _rotations: rotations,
        }
    }

    async fn open(&self) -> i64 {
        let now = self.clock.now();
        let out = self
            .store
            .ingest(&[Ingest {
                encoded: None,
                service_id: "payments".to_owned(),
                actor: "test".to_owned(),
                policy_id: Some("personal".to_owned()),
                urgency: Urgency::High,
                dedup_key: "db".to_owned(),
                event: Event {
                    kind: IntakeKind::Native,
                    action: Action::Trigger,
                    dedup_key: Some("db".to_owned()),
                    summary: "db is down".to_owned(),
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

    /// Moves the virtual clock and runs the engine until nothing more is due now.
    async fn at(&self, minutes: i64, seconds: i64) {
        self.clock
            .set(t0() + TimeDelta::minutes(minutes) + TimeDelta::seconds(seconds));
        for _ in 0..10 {
            let (fired, sent) = self.engine.tick().await.unwrap();
            self.engine.idle().await;
            if fired == 0 && sent == 0 {
                break;
            }
        }
    }

    fn calls_to(&self, number: &str) -> usize {
        self.twilio
            .calls()
            .iter()
            .filter(|c| c.to == number)
            .count()
    }

    fn texts_to(&self, number: &str) -> usize {
        self.twilio
            .messages()
            .iter()
            .filter(|m| m.to == number)
            .count()
    }
}

async fn rules_fire_at_their_times_until_the_next_step(db: &TestDb) {
    let rig = Rig::new(db).await;
    rig.open().await;

    rig.at(0, 0).await;
    assert_eq!(rig.pushover.messages().len(), 1, "alice's push at 0");
    assert_eq!(rig.calls_to(ALICE), 0);
    // Bob has no rules: the fallback, at once.
    assert_eq!((rig.texts_to(BOB), rig.calls_to(BOB)), (1, 1));

    rig.at(0, 59).await;
    assert_eq!(rig.calls_to(ALICE), 0, "not before 1m");
    rig.at(1, 0).await;
    assert_eq!(rig.calls_to(ALICE), 1, "the call at 1m");
    rig.at(2, 59).await;
    assert_eq!(rig.calls_to(ALICE), 1, "not before 3m");
    rig.at(3, 0).await;
    assert_eq!(rig.calls_to(ALICE), 2, "the call at 3m");

    // The policy's next step at 10m ends alice's rules: no call at 15m.
    rig.at(10, 0).await;
    assert_eq!(rig.texts_to(CAROL), 1);
    rig.at(15, 0).await;
    rig.at(30, 0).await;
    assert_eq!(rig.calls_to(ALICE), 2, "rules stop at the next step");
    assert_eq!(rig.pushover.messages().len(), 1);
    assert_eq!((rig.texts_to(BOB), rig.calls_to(BOB)), (1, 1));
}
both_backends!(rules_fire_at_their_times_until_the_next_step);

async fn rules_stop_on_acknowledgement(db: &TestDb) {
    let rig = Rig::new(db).await;
    let alert = rig.open().await;
    rig.at(0, 0).await;
    rig.at(1, 0).await;
    assert_eq!(rig.calls_to(ALICE), 1);
    rig.store
        .act(&Act {
            alert_id: alert,
            action: Action::Acknowledge,
            actor: "alice".to_owned(),
            via: Via::Api,
            at: t0() + TimeDelta::seconds(90),
        })
        .await
        .unwrap();
    rig.at(3, 0).await;
    rig.at(10, 0).await;
    rig.at(15, 0).await;
    assert_eq!(rig.calls_to(ALICE), 1, "no call after the acknowledgement");
    // Acknowledged elsewhere: the emergency push stops repeating.
    let receipt = rig.pushover.messages()[0].receipt.clone().unwrap();
    assert_eq!(rig.pushover.cancels(), [receipt]);
    assert_eq!(rig.texts_to(CAROL), 0, "no next step either");
}
both_backends!(rules_stop_on_acknowledgement);
