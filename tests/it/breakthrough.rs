//! Breakthrough calling end to end, on a virtual clock and both stores: a
//! page call rings out (the fake Twilio reports `no-answer`), and the same
//! number is called again `breakthrough_after` later from the same caller id
//! — well before the policy's own repeat — so a phone in Do Not Disturb lets
//! the second call ring. Answered calls get none; the per-number cap still
//! holds; `breakthrough: false` turns it off.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::channel::{ChannelsConfig, TwilioSettings};
use rouse::clock::ManualClock;
use rouse::config::Secret;
use serde_json::{json, Value};

use crate::both_backends;
use crate::fake_twilio::{CallScript, FakeCall, FakeTwilio};
use crate::support::{eventually, TestApp, TestDb};

const SID: &str = "AC00000000000000000000000000000015";
const TOKEN: &str = "breakthrough-auth-token";
const TWILIO_NUMBER: &str = "+15005550006";
const ALICE: &str = "+4915100000001";
const KEY: &str = "breakthrough-key-0123456789";

/// One voice step; the policy itself would call again only after 10 minutes.
const CATALOG: &str = r##"
people:
  - { id: alice, name: Alice, timezone: Europe/Berlin, contact: { voice: "+4915100000001" } }
rotations:
  - { id: solo, timezone: Europe/Berlin, participants: [alice], shift: 1w, handoff: "09:00", start: 2026-11-02 }
schedules:
  - { id: primary, timezone: Europe/Berlin, layers: [{ rotation: solo }] }
policies:
  - id: wake-up
    voice_repeat_every: 10m
    breakthrough_after: 90s
    steps:
      - { delay: 0m, targets: [{ schedule: primary }], channels: [voice] }
services:
  - id: payments
    policy: wake-up
    integrations: [{ name: am, key: breakthrough-key-0123456789 }]
"##;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 3, 0, 0).unwrap()
}

struct Rig {
    app: TestApp,
    clock: ManualClock,
    twilio: FakeTwilio,
}

impl Rig {
    async fn start(db: &TestDb, catalog: &str, cap: u32) -> Rig {
        let twilio = FakeTwilio::start(SID, TOKEN).await;
        let clock = ManualClock::new(t0());
        let base = twilio.base_url();
        let app = TestApp::spawn_with_clock(db, catalog, Arc::new(clock.clone()), move |c| {
            c.signing_key = Secret::new("breakthrough-signing-key-0123456789ab");
            c.pages_per_number_per_hour = cap;
            c.channels = Arc::new(ChannelsConfig {
                twilio: Some(TwilioSettings {
                    account_sid: SID.to_owned(),
                    auth_token: Some(Secret::new(TOKEN)),
                    from: TWILIO_NUMBER.to_owned(),
                    base_url: Some(base),
                }),
                ..Default::default()
            });
        })
        .await;
        Rig { app, clock, twilio }
    }

    async fn trigger(&self) -> i64 {
        let (status, body) = self
            .app
            .post(
                "/v1/events",
                &[("x-rouse-key", KEY)],
                json!({"action": "trigger", "dedup_key": "db", "summary": "db is down",
                       "severity": "critical"})
                .to_string(),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["alert_id"].as_i64().unwrap()
    }

    async fn calls(&self, n: usize) -> Vec<FakeCall> {
        eventually(&format!("{n} call(s)"), || async {
            self.twilio.calls().len() >= n
        })
        .await;
        self.twilio.calls()
    }

    /// Plays a call's script once Rouse has recorded the call as placed, as
    /// Twilio's callbacks come after its answer to the create request.
    async fn run_call(&self, id: i64, sid: &str) {
        let placed = format!("({sid})");
        eventually("the call is recorded", || async {
            self.timeline(id).await.iter().any(|m| m.contains(&placed))
        })
        .await;
        self.twilio.run_call(sid).await;
    }

    async fn timeline(&self, id: i64) -> Vec<String> {
        let shown: Value = self.app.admin_get(&format!("/v1/alerts/{id}")).await.1;
        shown["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["message"].as_str().map(str::to_owned))
            .collect()
    }
}

async fn an_unanswered_call_is_repeated_after_breakthrough_after(db: &TestDb) {
    let rig = Rig::start(db, CATALOG, 20).await;
    rig.twilio.script_call(ALICE, CallScript::NoAnswer);
    let id = rig.trigger().await;
    let first = rig.calls(1).await.remove(0);
    // The call rings out 30 s after it was placed.
    rig.clock.advance(TimeDelta::seconds(30));
    rig.run_call(id, &first.sid).await;
    let note = format!(
        "call {}: no-answer; calling the same number again at 03:02:00 UTC from the same caller id",
        first.sid
    );
    eventually("the breakthrough call is queued", || async {
        rig.timeline(id).await.iter().any(|m| m.starts_with(&note))
    })
    .await;
    assert_eq!(rig.twilio.calls().len(), 1, "not before breakthrough_after");
    // 03:02:00, 90 s after the first call ended and long before the
    // policy's own repeat at 03:10.
    rig.clock.advance(TimeDelta::seconds(90));
    let calls = rig.calls(2).await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].to, ALICE);
    assert_eq!(calls[1].from, calls[0].from, "the same caller id");
    assert_eq!(calls[1].from, TWILIO_NUMBER);
    // The breakthrough call rings out too: no third breakthrough, the
    // escalation moves on as it always did.
    rig.run_call(id, &calls[1].sid).await;
    let escalating = format!("call {}: no-answer; escalating", calls[1].sid);
    eventually(
        "the breakthrough call's end moves the escalation on",
        || async { rig.timeline(id).await.contains(&escalating) },
    )
    .await;
    let breakthroughs = rig
        .timeline(id)
        .await
        .iter()
        .filter(|m| m.contains("calling the same number again"))
        .count();
    assert_eq!(breakthroughs, 1);
    // A repeated status callback for the first call changes nothing.
    rig.run_call(id, &first.sid).await;
    let again = rig
        .timeline(id)
        .await
        .iter()
        .filter(|m| m.contains("calling the same number again"))
        .count();
    assert_eq!(again, 1);
    rig.app.stop().await;
}
both_backends!(an_unanswered_call_is_repeated_after_breakthrough_after);

async fn an_answered_call_gets_no_breakthrough(db: &TestDb) {
    let rig = Rig::start(db, CATALOG, 20).await;
    rig.twilio
        .script_call(ALICE, CallScript::Human { press: None });
    let id = rig.trigger().await;
    let first = rig.calls(1).await.remove(0);
    rig.run_call(id, &first.sid).await;
    let answered = format!("call {}: answered by a person", first.sid);
    eventually("the answer is noted", || async {
        rig.timeline(id).await.contains(&answered)
    })
    .await;
    assert!(!rig
        .timeline(id)
        .await
        .iter()
        .any(|m| m.contains("calling the same number again")));
    rig.app.stop().await;
}
both_backends!(an_answered_call_gets_no_breakthrough);

async fn the_per_number_cap_holds_the_breakthrough_call_back(db: &TestDb) {
    let rig = Rig::start(db, CATALOG, 1).await;
    rig.twilio.script_call(ALICE, CallScript::NoAnswer);
    let id = rig.trigger().await;
    let first = rig.calls(1).await.remove(0);
    rig.run_call(id, &first.sid).await;
    rig.clock.advance(TimeDelta::seconds(90));
    eventually("the breakthrough call is held back by the cap", || async {
        rig.timeline(id)
            .await
            .iter()
            .any(|m| m.contains("held back, 1 pages to this number in the last hour is the cap"))
    })
    .await;
    assert_eq!(rig.twilio.calls().len(), 1);
    rig.app.stop().await;
}
both_backends!(the_per_number_cap_holds_the_breakthrough_call_back);

async fn breakthrough_false_turns_it_off(db: &TestDb) {
    let catalog = CATALOG.replace("breakthrough_after: 90s", "breakthrough: false");
    let rig = Rig::start(db, &catalog, 20).await;
    rig.twilio.script_call(ALICE, CallScript::NoAnswer);
    let id = rig.trigger().await;
    let first = rig.calls(1).await.remove(0);
    rig.run_call(id, &first.sid).await;
    let escalating = format!("call {}: no-answer; escalating", first.sid);
    eventually("the escalation moves on at once", || async {
        rig.timeline(id).await.contains(&escalating)
    })
    .await;
    assert!(!rig
        .timeline(id)
        .await
        .iter()
        .any(|m| m.contains("calling the same number again")));
    rig.app.stop().await;
}
both_backends!(breakthrough_false_turns_it_off);

async fn voicemail_gets_a_breakthrough_call_too(db: &TestDb) {
    let rig = Rig::start(db, CATALOG, 20).await;
    rig.twilio.script_call(ALICE, CallScript::Machine);
    let id = rig.trigger().await;
    let first = rig.calls(1).await.remove(0);
    rig.run_call(id, &first.sid).await;
    let note = format!(
        "call {}: voicemail answered, not a person; calling the same number again at 03:01:30 UTC",
        first.sid
    );
    eventually("the breakthrough call is queued", || async {
        rig.timeline(id).await.iter().any(|m| m.starts_with(&note))
    })
    .await;
    rig.clock.advance(TimeDelta::seconds(90));
    assert_eq!(rig.calls(2).await[1].to, ALICE);
    rig.app.stop().await;
}
both_backends!(voicemail_gets_a_breakthrough_call_too);
