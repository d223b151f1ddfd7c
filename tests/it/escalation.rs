//! The escalation engine on a virtual clock, on both stores, with real
//! channels talking HTTP to a fake Twilio and a chat capture server.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::alert::{Action, AlertStatus, Event, IntakeKind, Severity, TimelineKind, Urgency};
use rouse::catalog::live::LiveCatalog;
use rouse::channel::twilio::{TwilioClient, TwilioConfig, TwilioSms, TwilioVoice};
use rouse::channel::webhook::Webhook;
use rouse::channel::{Channel, ChannelKind, Recipient};
use rouse::clock::{Clock, ManualClock};
use rouse::config::Secret;
use rouse::escalation::engine::{Channels, Engine};
use rouse::store::{Act, DeliveryStatus, Ingest, Store};

use crate::both_backends;
use crate::fake_twilio::{FakeTwilio, MessageScript};
use crate::peers::{Canned, Capture};
use crate::support::TestDb;

const SID: &str = "AC00000000000000000000000000000001";
const TOKEN: &str = "fake-twilio-auth-token";
const ALICE: &str = "+4915100000001";
const BOB: &str = "+12125550002";

const CATALOG: &str = r##"
people:
  - { id: alice, name: Alice, timezone: Europe/Berlin, contact: { sms: "+4915100000001", voice: "+4915100000001" } }
  - { id: bob, name: Bob, timezone: America/New_York, contact: { sms: "+12125550002", voice: "+12125550002" } }
rotations:
  - { id: daily, timezone: Europe/Berlin, participants: [alice, bob], shift: 1d, handoff: "09:00", start: 2026-11-02 }
schedules:
  - { id: primary, timezone: Europe/Berlin, layers: [{ rotation: daily }] }
policies:
  - id: wake-up
    voice_repeat_every: 5m
    steps:
      - { delay: 0m, targets: [{ chat: "#ops" }], channels: [chat] }
      - { delay: 5m, targets: [{ schedule: primary }], channels: [sms] }
      - { delay: 10m, targets: [{ schedule: primary }], channels: [voice] }
services:
  - id: payments
    policy: wake-up
    integrations: [{ name: am, key: engine-test-key-0123456789 }]
"##;

/// 2026-11-02 12:00 UTC: alice's day (handoffs at 09:00 Berlin = 08:00 UTC).
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap()
}

struct Rig {
    store: Arc<dyn Store>,
    clock: ManualClock,
    engine: Engine,
    twilio: FakeTwilio,
    _rotations: tempfile::TempDir,
}

impl Rig {
    async fn new(db: &TestDb, chat: Arc<dyn Channel>) -> Rig {
        Self::new_with(db, chat, |e| e).await
    }

    async fn new_with(
        db: &TestDb,
        chat: Arc<dyn Channel>,
        tune: impl FnOnce(Engine) -> Engine,
    ) -> Rig {
        let store = db.open().await;
        let rotations = tempfile::tempdir().unwrap();
        std::fs::write(rotations.path().join("oncall.yaml"), CATALOG).unwrap();
        let catalog = Arc::new(LiveCatalog::new(rotations.path(), Box::new(|_: &str| None)));
        let clock = ManualClock::new(t0());
        catalog.reload(t0(), true);
        assert!(catalog.current().is_some(), "test catalog must load");
        let twilio = FakeTwilio::start(SID, TOKEN).await;
        let mut config = TwilioConfig::new(SID, Secret::new(TOKEN), "+15005550006");
        config.base_url = twilio.base_url();
        let client = TwilioClient::new(config);
        let public = "http://127.0.0.1:9";
        let channels = Channels::console_only()
            .with(chat)
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
        let engine = tune(Engine::new(
            store.clone(),
            catalog,
            Arc::new(channels),
            Arc::new(clock.clone()),
        ));
        Rig {
            store,
            clock,
            engine,
            twilio,
            _rotations: rotations,
        }
    }

    async fn open(&self, key: &str) -> i64 {
        let now = self.clock.now();
        let out = self
            .store
            .ingest(&[Ingest {
                encoded: None,
                service_id: "payments".to_owned(),
                actor: "test".to_owned(),
                policy_id: Some("wake-up".to_owned()),
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

    async fn kinds(&self, alert: i64) -> Vec<TimelineKind> {
        self.store
            .timeline(alert)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

fn webhook(url: String) -> Arc<dyn Channel> {
    Arc::new(Webhook::new(
        "webhook",
        url,
        Secret::new("chat-secret"),
        rouse::channel::http::client(),
    ))
}

async fn chat_then_sms_then_voice_until_acknowledged(db: &TestDb) {
    let chat = Capture::start(vec![Canned::new(200, "ok")]).await;
    let rig = Rig::new(db, webhook(chat.url("/hook"))).await;
    let alert = rig.open("db-down").await;

    rig.at(0, 0).await;
    assert_eq!(chat.requests().len(), 1, "the chat step fires at once");
    let body = chat.only().json();
    assert_eq!(body["alert_id"], alert);
    assert_eq!(body["to"], "#ops");
    assert!(chat
        .only()
        .header("x-rouse-signature")
        .unwrap()
        .starts_with("v1="));
    assert!(rig.twilio.messages().is_empty());

    rig.at(4, 59).await;
    assert!(
        rig.twilio.messages().is_empty(),
        "the SMS step waits its 5 minutes"
    );
    rig.at(5, 0).await;
    let messages = rig.twilio.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ALICE);
    assert!(
        messages[0].body.contains("db-down is down"),
        "{}",
        messages[0].body
    );

    rig.at(15, 0).await;
    assert_eq!(
        rig.twilio.calls().len(),
        1,
        "voice 10 minutes after the SMS"
    );
    // Nobody acknowledges: the call repeats every 5 minutes.
    rig.at(20, 0).await;
    rig.at(25, 0).await;
    let calls = rig.twilio.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c.to == ALICE));
    assert_eq!(calls[0].machine_detection.as_deref(), Some("Enable"));

    rig.store
        .act(&Act {
            alert_id: alert,
            action: Action::Acknowledge,
            actor: "alice".to_owned(),
            via: rouse::store::Via::Api,
            at: t0() + TimeDelta::minutes(26),
        })
        .await
        .unwrap();
    rig.at(30, 0).await;
    rig.at(60, 0).await;
    assert_eq!(
        rig.twilio.calls().len(),
        3,
        "acknowledging stops the calls at once"
    );
    // The chat room is told, so it never keeps showing "firing".
    let posts = chat.requests();
    assert_eq!(posts.len(), 2, "the page and one follow-up");
    let follow_up = posts[1].json();
    assert_eq!(follow_up["type"], "alert.acknowledged");
    assert_eq!(follow_up["paged"], serde_json::json!(["alice"]));

    let kinds = rig.kinds(alert).await;
    let fired = kinds
        .iter()
        .filter(|k| **k == TimelineKind::StepFired)
        .count();
    assert_eq!(fired, 5, "{kinds:?}");
    let delivered = rig
        .store
        .notifications(alert)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.status == DeliveryStatus::Delivered)
        .count();
    assert_eq!(delivered, 6, "five pages and the chat follow-up");
    assert_eq!(
        rig.store.next_due().await.unwrap(),
        None,
        "nothing left to do"
    );
}
both_backends!(chat_then_sms_then_voice_until_acknowledged);

async fn a_handoff_between_steps_pages_the_new_person(db: &TestDb) {
    let chat = Capture::start(vec![Canned::new(200, "ok")]).await;
    let rig = Rig::new(db, webhook(chat.url("/hook"))).await;
    // 2026-11-03 07:58 UTC: alice until 08:00 UTC, then bob.
    let start = Utc.with_ymd_and_hms(2026, 11, 3, 7, 58, 0).unwrap();
    let minutes = (start - t0()).num_minutes();
    rig.clock.set(start);
    let _alert = rig.open("handoff").await;
    rig.at(minutes, 0).await;
    rig.at(minutes + 5, 0).await;
    let messages = rig.twilio.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].to, BOB,
        "the SMS goes to whoever is on call when it fires"
    );
}
both_backends!(a_handoff_between_steps_pages_the_new_person);

async fn a_restart_resumes_where_it_was(db: &TestDb) {
    let chat = Capture::start(vec![Canned::new(200, "ok")]).await;
    let first = Rig::new(db, webhook(chat.url("/hook"))).await;
    let alert = first.open("restart").await;
    first.at(0, 0).await;
    assert_eq!(chat.requests().len(), 1);
    drop(first);

    // A new process on the same database.
    let second = Rig::new(db, webhook(chat.url("/hook"))).await;
    second.at(5, 0).await;
    assert_eq!(chat.requests().len(), 1, "the chat step is not repeated");
    assert_eq!(
        second.twilio.messages().len(),
        1,
        "the SMS step fires on time"
    );
    let kinds = second.kinds(alert).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == TimelineKind::StepFired)
            .count(),
        2
    );
}
both_backends!(a_restart_resumes_where_it_was);

async fn claims_are_leased_and_completions_fenced(db: &TestDb) {
    let chat = Capture::start(vec![Canned::new(200, "ok")]).await;
    let rig = Rig::new(db, webhook(chat.url("/hook"))).await;
    let alert = rig.open("fenced").await;
    let lease = Duration::from_secs(60);
    let a = rig
        .store
        .claim_escalations(t0(), "replica-a", lease, 10)
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].alert_id, alert);
    let b = rig
        .store
        .claim_escalations(t0(), "replica-b", lease, 10)
        .await
        .unwrap();
    assert!(b.is_empty(), "a leased escalation is not claimed twice");
    // Replica A stalls past its lease; B takes over.
    let later = t0() + TimeDelta::seconds(61);
    let b = rig
        .store
        .claim_escalations(later, "replica-b", lease, 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert!(b[0].token > a[0].token);
    let record = rouse::store::StepRecord {
        at: later,
        deliveries: vec![],
        notes: vec![(TimelineKind::StepFired, "test".to_owned())],
        next: None,
    };
    assert!(
        !rig.store.record_step(&a[0], &record).await.unwrap(),
        "the stale claim is fenced out"
    );
    assert!(rig.store.record_step(&b[0], &record).await.unwrap());
}
both_backends!(claims_are_leased_and_completions_fenced);

async fn a_rejected_sms_falls_through_to_voice_at_once(db: &TestDb) {
    let chat = Capture::start(vec![Canned::new(200, "ok")]).await;
    let rig = Rig::new(db, webhook(chat.url("/hook"))).await;
    rig.twilio.script_message(
        ALICE,
        MessageScript::Rejected {
            status: 400,
            code: 21211,
        },
    );
    let alert = rig.open("bad-number").await;
    rig.at(0, 0).await;
    rig.at(5, 0).await;
    assert_eq!(
        rig.twilio.calls().len(),
        1,
        "no waiting 10 minutes after a failed SMS"
    );
    let notes = rig.store.notifications(alert).await.unwrap();
    let sms = notes
        .iter()
        .find(|n| n.channel == rouse::channel::ChannelKind::Sms)
        .unwrap();
    assert_eq!(sms.status, DeliveryStatus::Failed);
    assert!(
        sms.last_error.as_deref().unwrap_or("").contains("21211"),
        "{sms:?}"
    );
}
both_backends!(a_rejected_sms_falls_through_to_voice_at_once);

async fn a_number_cap_holds_calls_back_and_says_so(db: &TestDb) {
    let chat = Capture::start(vec![Canned::new(200, "ok")]).await;
    let rig = Rig::new_with(db, webhook(chat.url("/hook")), |e| e.with_number_cap(3)).await;
    let alert = rig.open("capped").await;
    // SMS at 5m, calls at 15m, 20m (cap: 3 pages to alice's number per hour)…
    for m in [0, 5, 15, 20, 25, 30] {
        rig.at(m, 0).await;
    }
    assert_eq!(rig.twilio.messages().len() + rig.twilio.calls().len(), 3);
    let timeline = rig.store.timeline(alert).await.unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e.message.contains("held back, 3 pages to this number")),
        "{timeline:#?}"
    );
    // …and the held call goes out when the oldest page leaves the hour.
    rig.at(65, 1).await;
    assert!(
        rig.twilio.calls().len() >= 3,
        "the held call was sent later"
    );
}
both_backends!(a_number_cap_holds_calls_back_and_says_so);

async fn alerts_for_one_person_at_once_are_one_sms(db: &TestDb) {
    let chat = Capture::start(vec![Canned::new(200, "ok")]).await;
    let rig = Rig::new(db, webhook(chat.url("/hook"))).await;
    let ids = [
        rig.open("a").await,
        rig.open("b").await,
        rig.open("c").await,
    ];
    rig.at(0, 0).await;
    rig.at(5, 0).await;
    let messages = rig.twilio.messages();
    assert_eq!(messages.len(), 1, "one SMS for three alerts");
    let body = &messages[0].body;
    assert!(body.starts_with("[Rouse] 3 alerts: "), "{body}");
    for id in ids {
        assert!(body.contains(&format!("#{id} ")), "{body}");
        let timeline = rig.store.timeline(id).await.unwrap();
        assert!(
            timeline
                .iter()
                .any(|e| e.message.contains("one message for")),
            "{timeline:#?}"
        );
    }
    assert!(body.chars().count() <= 320);
}
both_backends!(alerts_for_one_person_at_once_are_one_sms);

/// The outage this product exists for: the chat endpoint presents a
/// certificate for another host name. Every alert must still reach SMS on time.
#[tokio::test]
async fn a_chat_endpoint_with_the_wrong_certificate_never_stops_the_escalation() {
    let db = TestDb::sqlite();
    let tls = WrongNameServer::start().await;
    let chat: Arc<dyn Channel> = Arc::new(Webhook::new(
        "webhook",
        format!("https://127.0.0.1:{}/hook", tls.port),
        Secret::new("chat-secret"),
        rouse::channel::http::client_with_root(tls.ca.clone()),
    ));
    let rig = Rig::new(&db, chat).await;
    let mut alerts = Vec::new();
    for i in 0..20 {
        alerts.push(rig.open(&format!("storm-{i}")).await);
    }
    // Walk the clock in 10-second steps through the chat retries.
    for s in (0..=300).step_by(10) {
        rig.at(s / 60, s % 60).await;
    }
    assert!(
        tls.handshakes() >= 20,
        "every alert tried the chat endpoint"
    );
    // Every alert reached SMS by its 5-minute step; a person hit by many
    // alerts at once gets them bundled, so count per alert, not per message.
    assert!(!rig.twilio.messages().is_empty());
    for alert in &alerts {
        let notes = rig.store.notifications(*alert).await.unwrap();
        let sms = notes
            .iter()
            .find(|n| n.channel == rouse::channel::ChannelKind::Sms)
            .unwrap_or_else(|| panic!("alert {alert} never reached SMS"));
        assert_eq!(sms.status, DeliveryStatus::Delivered, "{sms:?}");
    }
    for alert in &alerts {
        let notes = rig.store.notifications(*alert).await.unwrap();
        let chat = notes
            .iter()
            .find(|n| n.channel == rouse::channel::ChannelKind::Chat)
            .unwrap();
        assert_eq!(chat.status, DeliveryStatus::Failed, "{chat:?}");
        let error = chat.last_error.as_deref().unwrap_or("");
        assert!(
            error.contains("certificate") || error.contains("NotValidForName"),
            "{error}"
        );
        let timeline = rig.store.timeline(*alert).await.unwrap();
        assert!(timeline
            .iter()
            .any(|e| e.kind == TimelineKind::Notified && e.message.contains("retrying")));
        let alert = rig.store.alert(*alert).await.unwrap().unwrap();
        assert_eq!(alert.status, AlertStatus::Triggered);
    }
}

/// A TLS server whose certificate is valid (signed by a CA the client trusts)
/// but issued for `wrong.example`, not the address the client dials.
struct WrongNameServer {
    port: u16,
    ca: reqwest::Certificate,
    handshakes: Arc<std::sync::atomic::AtomicUsize>,
}

impl WrongNameServer {
    async fn start() -> WrongNameServer {
        use tokio_rustls::rustls;
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["wrong.example".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = handshakes.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let acceptor = acceptor.clone();
                // The client aborts the handshake when it sees the name; nothing to serve.
                tokio::spawn(async move {
                    let _ = acceptor.accept(stream).await;
                });
            }
        });
        WrongNameServer {
            port,
            ca: reqwest::Certificate::from_der(ca_cert.der()).unwrap(),
            handshakes,
        }
    }

    fn handshakes(&self) -> usize {
        self.handshakes.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An acknowledgement that lands while a page is being sent: the send is
/// recorded as what it was (delivered), and because the room now shows a
/// firing alert that is already acknowledged, a follow-up is queued for it.
async fn an_ack_racing_a_send_still_updates_the_room(db: &TestDb) {
    let chat = Capture::start(vec![Canned::new(200, "ok")]).await;
    let rig = Rig::new(db, webhook(chat.url("/hook"))).await;
    let alert = rig.open("race").await;
    let lease = Duration::from_secs(60);
    let steps = rig
        .store
        .claim_escalations(t0(), "replica-a", lease, 10)
        .await
        .unwrap();
    let page = rouse::store::NewNotification {
        idempotency_key: "race/0/ops/chat".to_owned(),
        channel: ChannelKind::Chat,
        target: "#ops".to_owned(),
        recipient: Recipient::Room {
            address: "#ops".to_owned(),
        },
        delay: TimeDelta::zero(),
    };
    let record = rouse::store::StepRecord {
        at: t0(),
        deliveries: vec![page],
        notes: vec![(TimelineKind::StepFired, "test".to_owned())],
        next: None,
    };
    assert!(rig.store.record_step(&steps[0], &record).await.unwrap());
    let sending = rig
        .store
        .claim_notifications(t0(), "replica-a", lease, 10)
        .await
        .unwrap();
    assert_eq!(sending.len(), 1);
    // The ack commits while the send is in flight.
    rig.store
        .act(&Act {
            alert_id: alert,
            action: Action::Acknowledge,
            actor: "alice".to_owned(),
            via: rouse::store::Via::Api,
            at: t0() + TimeDelta::seconds(1),
        })
        .await
        .unwrap();
    let delivered = rouse::store::DeliveryRecord {
        at: t0() + TimeDelta::seconds(2),
        status: DeliveryStatus::Delivered,
        provider_id: Some("msg-1".to_owned()),
        error: None,
        retry_at: None,
        fall_through: false,
        count_attempt: true,
        message: "chat to #ops: delivered".to_owned(),
    };
    assert!(
        rig.store
            .record_delivery(&sending[0], &delivered)
            .await
            .unwrap(),
        "the send that went out is recorded as delivered"
    );
    let rows = rig.store.notifications(alert).await.unwrap();
    let follow_up = rows
        .iter()
        .find(|r| r.idempotency_key == "race/0/ops/chat/acknowledged")
        .unwrap_or_else(|| panic!("no follow-up queued: {rows:#?}"));
    assert_eq!(follow_up.status, DeliveryStatus::Pending);
}
both_backends!(an_ack_racing_a_send_still_updates_the_room);
