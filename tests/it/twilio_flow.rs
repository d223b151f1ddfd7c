//! End to end through the fake: a page is sent, the fake plays its script and
//! POSTs signed callbacks / TwiML fetches / key presses to a stand-in of the
//! engine's routes (`fake_twilio::app`), which verifies every signature.

use crate::fake_twilio;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fake_twilio::app::{AppEvent, TestApp, SPOKEN_SUMMARY};
use fake_twilio::{CallScript, CallbackKind, FakeTwilio, MessageScript};
use rouse::alert::{AlertStatus, Severity, Urgency};
use rouse::channel::twilio::callbacks::{CallStatus, MessageStatus, Reached};
use rouse::channel::twilio::signature;
use rouse::channel::twilio::twiml::GatherAction;
use rouse::channel::twilio::{TwilioClient, TwilioConfig, TwilioSms, TwilioVoice};
use rouse::channel::{Channel, Notification, Outcome, Recipient};
use rouse::config::Secret;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "flow_token";
const TO: &str = "+15558675310";

fn config(base_url: &str) -> TwilioConfig {
    let mut c = TwilioConfig::new(SID, Secret::new(TOKEN), "+15005550006");
    c.base_url = base_url.to_string();
    c.timeout = Duration::from_secs(5);
    c
}

fn notification() -> Notification {
    Notification {
        idempotency_key: "7/0/bob/voice/1".into(),
        alert_id: 7,
        service_id: "payments".into(),
        summary: "disk full".into(),
        severity: Severity::Critical,
        urgency: Urgency::High,
        status: AlertStatus::Triggered,
        links: vec![],
        ack_url: None,
        reply_code: None,
        action_url: None,
        paged: vec![],
        recipient: Recipient::Person {
            id: "bob".into(),
            name: "Bob".into(),
            address: TO.into(),
        },
        attempt: 1,
        created_at: Utc::now(),
    }
}

async fn place_call(fake: &FakeTwilio, app: &TestApp) -> String {
    let voice = TwilioVoice::new(
        "twilio-voice",
        TwilioClient::new(config(&fake.base_url())),
        &app.public_url,
        Arc::new(|_: &Notification| "tok-1".to_string()),
    );
    match voice.send(&notification()).await {
        Outcome::Delivered {
            provider_id: Some(sid),
        } => sid,
        other => panic!("{other:?}"),
    }
}

fn statuses(events: &[AppEvent]) -> Vec<(CallStatus, Reached)> {
    events
        .iter()
        .filter_map(|e| match e {
            AppEvent::CallStatus {
                status, reached, ..
            } => Some((*status, reached.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn human_answers_and_presses_1() {
    let (fake, app) = (
        FakeTwilio::start(SID, TOKEN).await,
        TestApp::start(TOKEN).await,
    );
    fake.script_call(
        TO,
        CallScript::Human {
            press: Some("1".into()),
        },
    );
    let sid = place_call(&fake, &app).await;
    let exchanges = fake.run_call(&sid).await;

    assert!(
        exchanges
            .iter()
            .all(|x| x.response_status.is_some_and(|s| s < 300)),
        "{exchanges:#?}"
    );
    let twiml = exchanges
        .iter()
        .find(|x| x.kind == CallbackKind::TwimlFetch)
        .unwrap();
    assert!(twiml.response_body.contains("<Gather numDigits=\"1\""));
    assert!(twiml
        .response_body
        .contains("disk full on db-1 &amp; &lt;db-2&gt;"));
    assert_eq!(twiml.param("AnsweredBy"), Some("human"));
    let gather = exchanges
        .iter()
        .find(|x| x.kind == CallbackKind::Gather)
        .unwrap();
    assert_eq!(
        gather.url,
        format!("{}/twilio/voice/7/gather?n=tok-1", app.public_url)
    );
    assert!(gather.response_body.contains("Acknowledged. Thank you."));

    let events = app.events();
    assert!(events.contains(&AppEvent::Twiml {
        alert_id: 7,
        token: "tok-1".into(),
        machine: false
    }));
    assert!(events.contains(&AppEvent::Gather {
        alert_id: 7,
        action: GatherAction::Acknowledge
    }));
    let st = statuses(&events);
    assert_eq!(
        st.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![
            CallStatus::Initiated,
            CallStatus::Ringing,
            CallStatus::InProgress,
            CallStatus::Completed
        ]
    );
    assert_eq!(st.last().unwrap().1, Reached::Human);
    let seq: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AppEvent::CallStatus { sequence, .. } => *sequence,
            _ => None,
        })
        .collect();
    assert_eq!(seq, vec![0, 1, 2, 3]);
    let _ = SPOKEN_SUMMARY;
}

#[tokio::test]
async fn human_presses_2_escalates_and_9_reprompts() {
    let (fake, app) = (
        FakeTwilio::start(SID, TOKEN).await,
        TestApp::start(TOKEN).await,
    );
    fake.script_call(
        TO,
        CallScript::Human {
            press: Some("2".into()),
        },
    );
    let sid = place_call(&fake, &app).await;
    fake.run_call(&sid).await;
    fake.script_call(
        TO,
        CallScript::Human {
            press: Some("9".into()),
        },
    );
    let sid = place_call(&fake, &app).await;
    let ex = fake.run_call(&sid).await;
    let gather = ex.iter().find(|x| x.kind == CallbackKind::Gather).unwrap();
    assert!(gather.response_body.contains("did not get that"));
    let events = app.events();
    assert!(events.contains(&AppEvent::Gather {
        alert_id: 7,
        action: GatherAction::Escalate
    }));
    assert!(events.contains(&AppEvent::Gather {
        alert_id: 7,
        action: GatherAction::Reprompt
    }));
}

#[tokio::test]
async fn voicemail_never_counts_as_reached() {
    let (fake, app) = (
        FakeTwilio::start(SID, TOKEN).await,
        TestApp::start(TOKEN).await,
    );
    fake.script_call(TO, CallScript::Machine);
    let sid = place_call(&fake, &app).await;
    let ex = fake.run_call(&sid).await;
    let twiml = ex
        .iter()
        .find(|x| x.kind == CallbackKind::TwimlFetch)
        .unwrap();
    assert!(twiml.response_body.contains("<Hangup/>") && !twiml.response_body.contains("Gather"));
    let st = statuses(&app.events());
    assert!(st.iter().all(|(_, r)| *r != Reached::Human));
    assert_eq!(
        st.last().unwrap(),
        &(CallStatus::Completed, Reached::Machine)
    );
    assert_eq!(
        fake.calls()[0].answered_by.as_deref(),
        Some("machine_end_beep")
    );
}

#[tokio::test]
async fn no_answer_busy_failed_are_not_reached() {
    let (fake, app) = (
        FakeTwilio::start(SID, TOKEN).await,
        TestApp::start(TOKEN).await,
    );
    for (script, status) in [
        (CallScript::NoAnswer, CallStatus::NoAnswer),
        (CallScript::Busy, CallStatus::Busy),
        (CallScript::Failed, CallStatus::Failed),
    ] {
        fake.script_call(TO, script);
        let sid = place_call(&fake, &app).await;
        let ex = fake.run_call(&sid).await;
        let last = ex.last().unwrap();
        assert_eq!(last.param("CallStatus"), Some(status.as_str()));
        assert_eq!(last.param("CallDuration"), Some("0"));
        assert!(ex.iter().all(|x| x.kind == CallbackKind::Status));
    }
    let st = statuses(&app.events());
    let finals: Vec<_> = st.iter().filter(|(s, _)| s.is_final()).cloned().collect();
    assert_eq!(finals.len(), 3);
    assert!(finals
        .iter()
        .all(|(s, r)| *r == Reached::NotReached(s.to_string())));
}

#[tokio::test]
async fn sms_status_callbacks() {
    let (fake, app) = (
        FakeTwilio::start(SID, TOKEN).await,
        TestApp::start(TOKEN).await,
    );
    let sms = TwilioSms::new(
        "sms",
        TwilioClient::new(config(&fake.base_url())),
        &app.public_url,
    );
    let other = "+15558675311";
    fake.script_message(other, MessageScript::Undelivered { error_code: 30003 });
    let Outcome::Delivered {
        provider_id: Some(ok_sid),
    } = sms.send(&notification()).await
    else {
        panic!()
    };
    let mut n = notification();
    n.recipient = Recipient::Person {
        id: "c".into(),
        name: "C".into(),
        address: other.into(),
    };
    let Outcome::Delivered {
        provider_id: Some(bad_sid),
    } = sms.send(&n).await
    else {
        panic!()
    };
    fake.run_message(&ok_sid).await;
    fake.run_message(&bad_sid).await;
    let events = app.events();
    assert!(events.contains(&AppEvent::SmsStatus {
        sid: ok_sid.clone(),
        status: MessageStatus::Delivered,
        failed: false,
        error_code: None
    }));
    assert!(events.contains(&AppEvent::SmsStatus {
        sid: bad_sid.clone(),
        status: MessageStatus::Undelivered,
        failed: true,
        error_code: Some("30003".into())
    }));
    assert!(!events
        .iter()
        .any(|e| matches!(e, AppEvent::BadSignature { .. })));
    assert_eq!(fake.messages()[1].status, "undelivered");
}

#[tokio::test]
async fn callback_signatures_verify_and_tampering_fails() {
    let (fake, app) = (
        FakeTwilio::start(SID, TOKEN).await,
        TestApp::start(TOKEN).await,
    );
    fake.script_call(
        TO,
        CallScript::Human {
            press: Some("1".into()),
        },
    );
    let sid = place_call(&fake, &app).await;
    let ex = fake.run_call(&sid).await;
    let token = Secret::new(TOKEN);
    for x in &ex {
        assert!(
            signature::verify(&x.url, &x.params, &token, &x.signature),
            "{x:?}"
        );
        assert_eq!(signature::compute(&x.url, &x.params, &token), x.signature);
        let mut tampered = x.params.clone();
        tampered[0].1.push('x');
        assert!(!signature::verify(&x.url, &tampered, &token, &x.signature));
        assert!(!signature::verify(
            &format!("{}&n=2", x.url),
            &x.params,
            &token,
            &x.signature
        ));
        assert!(!signature::verify(
            &x.url,
            &x.params,
            &Secret::new("other"),
            &x.signature
        ));
    }
    // A forged callback (wrong token) is refused by the app.
    let forged = fake_twilio::twilio_signature(
        "not-the-token",
        &format!("{}/twilio/status", app.public_url),
        &[],
    );
    let r = reqwest::Client::new()
        .post(format!("{}/twilio/status", app.public_url))
        .header("X-Twilio-Signature", forged)
        .form(&[("CallSid", sid.as_str()), ("CallStatus", "completed")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(app
        .events()
        .iter()
        .any(|e| matches!(e, AppEvent::BadSignature { .. })));
}
