//! The Twilio client and channels against the fake Twilio over real HTTP.

use crate::fake_twilio;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fake_twilio::{CallScript, FakeTwilio, MessageScript, CODE_UNKNOWN_MESSAGE_PARAM};
use rouse::alert::{AlertStatus, Severity, Urgency};
use rouse::channel::twilio::{TwilioClient, TwilioConfig, TwilioSms, TwilioVoice, VoiceTokenFn};
use rouse::channel::{Channel, Notification, Outcome, Recipient};
use rouse::config::Secret;

pub const SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN: &str = "test_auth_token_0123456789abcdef";
pub const FROM: &str = "+15005550006";
pub const TO: &str = "+15558675310";

pub fn config(base_url: &str) -> TwilioConfig {
    let mut c = TwilioConfig::new(SID, Secret::new(TOKEN), FROM);
    c.base_url = base_url.to_string();
    c.timeout = Duration::from_secs(5);
    c
}

pub fn notification(to: &str) -> Notification {
    Notification {
        idempotency_key: "42/0/alice/sms/1".into(),
        alert_id: 42,
        service_id: "payments".into(),
        summary: "disk full on db-1".into(),
        severity: Severity::Critical,
        urgency: Urgency::High,
        status: AlertStatus::Triggered,
        links: vec![],
        ack_url: Some("https://pager.example.com/ack/abc".into()),
        reply_code: None,
        action_url: None,
        paged: vec!["alice".into()],
        recipient: Recipient::Person {
            id: "alice".into(),
            name: "Alice".into(),
            address: to.into(),
        },
        attempt: 1,
        created_at: Utc::now(),
    }
}

pub fn token_fn() -> VoiceTokenFn {
    Arc::new(|n: &Notification| format!("{}.{}.sig/+=", n.alert_id, n.attempt))
}

fn sms(base_url: &str) -> TwilioSms {
    TwilioSms::new(
        "twilio-sms",
        TwilioClient::new(config(base_url)),
        "https://pager.example.com/",
    )
}

fn voice(base_url: &str) -> TwilioVoice {
    TwilioVoice::new(
        "twilio-voice",
        TwilioClient::new(config(base_url)),
        "https://pager.example.com",
        token_fn(),
    )
}

#[tokio::test]
async fn sms_happy_path() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let outcome = sms(&fake.base_url()).send(&notification(TO)).await;
    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        outcome,
        Outcome::Delivered {
            provider_id: Some(messages[0].sid.clone())
        }
    );
    assert!(messages[0].sid.starts_with("SM") && messages[0].sid.len() == 34);
    let req = &fake.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.path,
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    );
    assert!(req
        .header("content-type")
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    assert!(req.header("authorization").unwrap().starts_with("Basic "));
    assert_eq!(req.param("To"), Some(TO));
    assert_eq!(req.param("From"), Some(FROM));
    assert_eq!(
        req.param("Body"),
        Some("[Rouse] #42 CRITICAL payments: disk full on db-1. Reply A to ack, R to resolve, E to escalate. https://pager.example.com/ack/abc")
    );
    assert_eq!(
        req.param("StatusCallback"),
        Some("https://pager.example.com/twilio/sms/status")
    );
}

#[tokio::test]
async fn call_sends_status_callback_events_as_repeated_keys() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let outcome = voice(&fake.base_url()).send(&notification(TO)).await;
    let calls = fake.calls();
    assert_eq!(
        outcome,
        Outcome::Delivered {
            provider_id: Some(calls[0].sid.clone())
        }
    );
    assert!(calls[0].sid.starts_with("CA") && calls[0].sid.len() == 34);
    let req = &fake.requests()[0];
    assert_eq!(req.path, format!("/2010-04-01/Accounts/{SID}/Calls.json"));
    assert_eq!(
        req.params("StatusCallbackEvent"),
        vec!["initiated", "ringing", "answered", "completed"]
    );
    assert_eq!(req.param("MachineDetection"), Some("Enable"));
    assert_eq!(req.param("Method"), Some("POST"));
    assert_eq!(req.param("StatusCallbackMethod"), Some("POST"));
    assert_eq!(
        req.param("StatusCallback"),
        Some("https://pager.example.com/twilio/status")
    );
    assert_eq!(req.param("Timeout"), Some("25"));
    // The caller's token is percent-encoded into the TwiML URL.
    assert_eq!(
        req.param("Url"),
        Some("https://pager.example.com/twilio/voice/42?n=42.1.sig%2F%2B%3D")
    );
    // And the fake can be asked for the call like the real API.
    let fetched = TwilioClient::new(config(&fake.base_url()))
        .fetch_call(&calls[0].sid)
        .await
        .unwrap();
    assert_eq!(fetched.status.as_deref(), Some("queued"));
}

#[tokio::test]
async fn voice_follow_ups_ring_nobody() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let mut n = notification(TO);
    n.status = AlertStatus::Resolved;
    assert_eq!(
        voice(&fake.base_url()).send(&n).await,
        Outcome::Delivered { provider_id: None }
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn unknown_parameter_is_a_400_with_twilio_error_json() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let response = reqwest::Client::new()
        .post(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages.json",
            fake.base_url()
        ))
        .basic_auth(SID, Some(TOKEN))
        .form(&[
            ("To", TO),
            ("From", FROM),
            ("Body", "x"),
            ("StatusCalback", "https://x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], CODE_UNKNOWN_MESSAGE_PARAM);
    assert_eq!(body["status"], 400);
    assert!(body["more_info"]
        .as_str()
        .unwrap()
        .starts_with("https://www.twilio.com/docs/errors/"));
    assert!(body["message"].as_str().unwrap().contains("StatusCalback"));

    // A bad enum on Calls likewise.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/2010-04-01/Accounts/{SID}/Calls.json",
            fake.base_url()
        ))
        .basic_auth(SID, Some(TOKEN))
        .form(&[
            ("To", TO),
            ("From", FROM),
            ("Url", "https://x/y"),
            ("MachineDetection", "Bogus"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn permanent_rejections_fail_with_the_code() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.script_message(
        TO,
        MessageScript::Rejected {
            status: 400,
            code: 21610,
        },
    );
    match sms(&fake.base_url()).send(&notification(TO)).await {
        Outcome::Failed { reason } => assert!(reason.contains("21610"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // An invalid number is rejected by the fake's own validation.
    match sms(&fake.base_url()).send(&notification("555-1234")).await {
        Outcome::Failed { reason } => assert!(
            reason.contains("21211") && reason.contains("HTTP 400"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    fake.script_call(
        TO,
        CallScript::Rejected {
            status: 400,
            code: 21215,
        },
    );
    assert!(
        matches!(voice(&fake.base_url()).send(&notification(TO)).await,
        Outcome::Failed { reason } if reason.contains("21215"))
    );
}

#[tokio::test]
async fn bad_token_fails_with_20003() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let mut c = config(&fake.base_url());
    c.auth_token = Secret::new("wrong");
    let channel = TwilioSms::new("sms", TwilioClient::new(c), "https://p");
    match channel.send(&notification(TO)).await {
        Outcome::Failed { reason } => {
            assert!(
                reason.contains("20003") && reason.contains("401"),
                "{reason}"
            );
            assert!(!reason.contains("wrong"));
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn rate_limited_twice_then_delivered() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.fail_next(2, 429, Some(2));
    let channel = sms(&fake.base_url());
    for _ in 0..2 {
        match channel.send(&notification(TO)).await {
            Outcome::Retry { after, reason } => {
                assert_eq!(after, Some(Duration::from_secs(2)));
                assert!(reason.contains("20429"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        channel.send(&notification(TO)).await,
        Outcome::Delivered {
            provider_id: Some(_)
        }
    ));
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn server_error_retries() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.fail_next(1, 500, None);
    assert!(matches!(
        voice(&fake.base_url()).send(&notification(TO)).await,
        Outcome::Retry { after: None, reason } if reason.contains("20500")
    ));
    assert!(matches!(
        voice(&fake.base_url()).send(&notification(TO)).await,
        Outcome::Delivered { .. }
    ));
}

#[tokio::test]
async fn connection_refused_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let outcome = sms(&format!("http://127.0.0.1:{port}"))
        .send(&notification(TO))
        .await;
    assert!(
        matches!(outcome, Outcome::Retry { after: None, .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn timeout_is_unknown() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.hang_next(1);
    let mut c = config(&fake.base_url());
    c.timeout = Duration::from_millis(300);
    let channel = TwilioVoice::new("v", TwilioClient::new(c), "https://p", token_fn());
    let outcome = channel.send(&notification(TO)).await;
    assert!(matches!(outcome, Outcome::Unknown { .. }), "{outcome:?}");
}

#[tokio::test]
async fn messaging_service_sender_uses_its_own_parameter() {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let mut c = config(&fake.base_url());
    c.from = "MG0123456789abcdef0123456789abcdef".into();
    let channel = TwilioSms::new("sms", TwilioClient::new(c), "https://p");
    assert!(matches!(
        channel.send(&notification(TO)).await,
        Outcome::Delivered { .. }
    ));
    let req = &fake.requests()[0];
    assert_eq!(
        req.param("MessagingServiceSid"),
        Some("MG0123456789abcdef0123456789abcdef")
    );
    assert_eq!(req.param("From"), None);
}

// ------------------------------------------------------------ Prism contract

/// Prism, found via `ROUSE_PRISM` or `tests/peers/node_modules/.bin/prism`
/// (installed by `tests/peers/install.sh`).
fn prism_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("ROUSE_PRISM") {
        let p = std::path::PathBuf::from(p);
        return p.exists().then_some(p);
    }
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/node_modules/.bin/prism");
    p.exists().then_some(p)
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every request the client makes goes through Prism in proxy mode with
/// `--errors`, validated against Twilio's own OpenAPI spec (frozen copy,
/// patched by `patch_spec_for_prism.py --strict`) before reaching the fake.
/// Prism answers 422 instead of forwarding when a request breaks the
/// contract, so "Delivered" proves the request was valid.
#[tokio::test]
async fn prism_validates_every_twilio_request() {
    let Some(prism) = prism_path() else {
        if std::env::var_os("CI").is_some() {
            panic!("prism not installed: run tests/peers/install.sh (or set ROUSE_PRISM)");
        }
        eprintln!("SKIPPED prism contract test: prism not found (run tests/peers/install.sh or set ROUSE_PRISM)");
        return;
    };
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let port = crate::peers::free_port();
    let spec = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/twilio/twilio_api_v2010.prism.json"
    );
    let log_path = std::env::temp_dir().join(format!("rouse-prism-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let _prism = KillOnDrop(
        std::process::Command::new(&prism)
            .args([
                "proxy",
                "--errors",
                spec,
                &fake.base_url(),
                "--port",
                &port.to_string(),
                "-h",
                "127.0.0.1",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "prism did not start:\n{}",
            log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let base = format!("http://127.0.0.1:{port}");

    let sms_outcome = sms(&base).send(&notification(TO)).await;
    assert!(
        matches!(
            sms_outcome,
            Outcome::Delivered {
                provider_id: Some(_)
            }
        ),
        "{sms_outcome:?}\n{}",
        log_text()
    );
    let call_outcome = voice(&base).send(&notification(TO)).await;
    assert!(
        matches!(
            call_outcome,
            Outcome::Delivered {
                provider_id: Some(_)
            }
        ),
        "{call_outcome:?}\n{}",
        log_text()
    );
    assert_eq!(
        fake.requests().len(),
        2,
        "both requests reached the fake through prism"
    );
    // Prism forwarded the repeated keys intact (the spec patch's purpose).
    assert_eq!(fake.requests()[1].params("StatusCallbackEvent").len(), 4);

    // Prove Prism really validates: a contract violation is answered by
    // Prism itself and never forwarded.
    let bad = reqwest::Client::new()
        .post(format!("{base}/2010-04-01/Accounts/{SID}/Calls.json"))
        .basic_auth(SID, Some(TOKEN))
        .form(&[
            ("To", TO),
            ("From", FROM),
            ("Url", "https://pager.example.com/twilio/voice/1"),
            ("MachineDetection", "Bogus"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "picked-up"),
        ])
        .send()
        .await
        .unwrap();
    let status = bad.status();
    let violations = bad
        .headers()
        .get("sl-violations")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    let body = bad.text().await.unwrap();
    eprintln!("prism rejected an invalid call: HTTP {status}\n  sl-violations: {violations}\n  body: {body}");
    assert!(status.is_client_error(), "{status} {body}");
    assert!(
        body.contains("MachineDetection") || violations.contains("MachineDetection"),
        "{body}"
    );
    assert_eq!(
        fake.requests().len(),
        2,
        "the invalid request was not forwarded"
    );
}
