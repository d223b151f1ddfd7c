//! Pure parts: signature known-answer vectors, TwiML well-formedness
//! (property test), callback enums and the SMS reply grammar.

use std::collections::BTreeMap;

use proptest::prelude::*;
use quick_xml::events::Event;
use rouse::channel::twilio::callbacks::{
    call_reached_human, parse_form, parse_sms_reply, sms_failed, AnsweredBy, CallStatus,
    MessageStatus, Reached, SmsCommand, SmsVerb,
};
use rouse::channel::twilio::{signature, twiml};
use rouse::config::Secret;

#[derive(serde::Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}
#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    auth_token: String,
    url: String,
    params: BTreeMap<String, String>,
    signature: String,
}

#[test]
fn signature_known_answer_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/twilio/signature_vectors.json"
    );
    let v: Vectors = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(v.vectors.len() >= 6);
    for vec in v.vectors {
        let token = Secret::new(vec.auth_token);
        let params: Vec<(String, String)> = vec.params.into_iter().collect();
        assert_eq!(
            signature::compute(&vec.url, &params, &token),
            vec.signature,
            "{}",
            vec.name
        );
        assert!(
            signature::verify(&vec.url, &params, &token, &vec.signature),
            "{}",
            vec.name
        );
        // Order of the form does not matter; reversing it must still verify.
        let reversed: Vec<_> = params.iter().rev().cloned().collect();
        assert!(
            signature::verify(&vec.url, &reversed, &token, &vec.signature),
            "{}",
            vec.name
        );
        if let Some((k, _)) = params.first() {
            let mut tampered = params.clone();
            tampered[0] = (k.clone(), "tampered".into());
            assert!(
                !signature::verify(&vec.url, &tampered, &token, &vec.signature),
                "{}",
                vec.name
            );
        }
    }
}

#[test]
fn signature_port_quirk() {
    let token = Secret::new("test_auth_token");
    let params = vec![("Body".to_string(), "ACK 42".to_string())];
    // Twilio signed with :443, our configured URL has none — and vice versa.
    let with_port = signature::compute("https://pager.example.com:443/twilio/sms", &params, &token);
    assert!(signature::verify(
        "https://pager.example.com/twilio/sms",
        &params,
        &token,
        &with_port
    ));
    let without = signature::compute("https://pager.example.com/twilio/sms", &params, &token);
    assert!(signature::verify(
        "https://pager.example.com:443/twilio/sms",
        &params,
        &token,
        &without
    ));
    assert!(!signature::verify(
        "https://pager.example.com/twilio/sms",
        &params,
        &token,
        "bm9wZQ=="
    ));
}

/// All text content of the document, and whether it parsed.
fn texts(xml: &str) -> Result<Vec<String>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut depth = 0i32;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth -= 1,
            Event::Text(t) => out.push(t.unescape().map_err(|e| e.to_string())?.into_owned()),
            Event::CData(_) => return Err("unexpected CDATA".into()),
            Event::Eof => break,
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced".into());
        }
    }
    if depth != 0 {
        return Err("unclosed element".into());
    }
    Ok(out)
}

fn gather_actions(xml: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    while let Ok(ev) = reader.read_event() {
        match ev {
            Event::Start(e) if e.name().as_ref() == b"Gather" => {
                let a = e.try_get_attribute("action").unwrap().unwrap();
                out.push(a.unescape_value().unwrap().into_owned());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn twiml_is_well_formed_and_round_trips(
        summary in prop_oneof![
            any::<String>(),
            "[<>&\"' \\]\\u{0}-\\u{1f}\\u{fffe}\\u{ffff}a-z]{0,40}",
            Just("<]]>&\"'</Say><Dial>+15550000000</Dial>".to_string()),
        ],
        alert_id in any::<i64>(),
        action_tail in "[a-z0-9&<>\"'=?/%]{0,20}",
    ) {
        let action = format!("https://p.example/twilio/voice/1/gather?n={action_tail}");
        let xml = twiml::voice_page(alert_id, &summary, &action);
        let text = texts(&xml).map_err(|e| TestCaseError::fail(format!("{e}: {xml}")))?;
        let spoken = text.concat();
        let cleaned = twiml::clean_text(&summary);
        let expected: String = if cleaned.chars().count() > 300 {
            cleaned.chars().take(299).collect()
        } else {
            cleaned
        };
        prop_assert!(spoken.contains(&expected), "{spoken:?} lacks {expected:?}");
        prop_assert_eq!(gather_actions(&xml), vec![action.clone(), action.clone()]);
        for digits in ["1", "2", "", "*", &summary] {
            let (_, xml) = twiml::gather_result(digits, &action);
            prop_assert!(texts(&xml).is_ok(), "{}", xml);
        }
    }
}

#[test]
fn machine_hangup_is_valid() {
    assert_eq!(
        texts(&twiml::machine_hangup()).unwrap(),
        Vec::<String>::new()
    );
    assert!(texts(&twiml::say_and_hangup("a < b"))
        .unwrap()
        .concat()
        .contains("a < b"));
}

#[test]
fn call_status_values() {
    for s in [
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "no-answer",
        "failed",
        "canceled",
    ] {
        assert_eq!(s.parse::<CallStatus>().unwrap().as_str(), s);
    }
    for s in [
        "human",
        "machine_start",
        "machine_end_beep",
        "machine_end_silence",
        "machine_end_other",
        "fax",
        "unknown",
    ] {
        assert_eq!(s.parse::<AnsweredBy>().unwrap().as_str(), s);
    }
    for s in [
        "accepted",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "read",
        "receiving",
        "received",
        "scheduled",
        "canceled",
    ] {
        assert_eq!(s.parse::<MessageStatus>().unwrap().as_str(), s);
    }
    assert!("In-Progress".parse::<CallStatus>().is_err());
    assert!("bogus".parse::<AnsweredBy>().is_err());
}

#[test]
fn reached_human_only_for_human() {
    use AnsweredBy::*;
    assert_eq!(
        call_reached_human(CallStatus::Completed, Some(Human)),
        Reached::Human
    );
    assert_eq!(
        call_reached_human(CallStatus::InProgress, Some(Human)),
        Reached::Human
    );
    for m in [
        MachineStart,
        MachineEndBeep,
        MachineEndSilence,
        MachineEndOther,
        Fax,
    ] {
        assert_eq!(
            call_reached_human(CallStatus::Completed, Some(m)),
            Reached::Machine
        );
    }
    assert!(matches!(
        call_reached_human(CallStatus::Completed, Some(Unknown)),
        Reached::NotReached(_)
    ));
    assert!(matches!(
        call_reached_human(CallStatus::Completed, None),
        Reached::NotReached(_)
    ));
    assert_eq!(
        call_reached_human(CallStatus::Busy, None),
        Reached::NotReached("busy".into())
    );
    assert_eq!(
        call_reached_human(CallStatus::NoAnswer, Some(Human)),
        Reached::NotReached("no-answer".into())
    );
    assert!(sms_failed(MessageStatus::Undelivered) && sms_failed(MessageStatus::Failed));
    assert!(!sms_failed(MessageStatus::Sent) && !sms_failed(MessageStatus::Delivered));
}

#[test]
fn sms_reply_grammar() {
    use SmsCommand::*;
    let act = |verb, code| Some(Act { verb, code });
    let (ack, res, esc) = (SmsVerb::Acknowledge, SmsVerb::Resolve, SmsVerb::Escalate);
    let table: &[(&str, Option<SmsCommand>)] = &[
        ("4a", act(ack, Some(4))),
        ("4A", act(ack, Some(4))),
        (" 4 a ", act(ack, Some(4))),
        ("\"4a\"", act(ack, Some(4))),
        ("'4a'", act(ack, Some(4))),
        ("\u{201c}4a\u{201d}", act(ack, Some(4))),
        ("4ack", act(ack, Some(4))),
        ("ACK 4", act(ack, Some(4))),
        ("a4.", act(ack, Some(4))),
        ("ack#12!", act(ack, Some(12))),
        ("12r", act(res, Some(12))),
        ("resolve 3", act(res, Some(3))),
        ("7e", act(esc, Some(7))),
        ("esc 7", act(esc, Some(7))),
        ("a", act(ack, None)),
        ("  Ack.  ", act(ack, None)),
        ("ok", act(ack, None)),
        ("r", act(res, None)),
        ("escalate", act(esc, None)),
        ("ack all", Some(AckAll)),
        ("ACK ALL", Some(AckAll)),
        ("a all", Some(AckAll)),
        ("ackall", Some(AckAll)),
        ("STOP", Some(Stop)),
        (" stop ", Some(Stop)),
        ("Unsubscribe", Some(Stop)),
        ("START", Some(Start)),
        ("unstop", Some(Start)),
        ("help", Some(Help)),
        ("stop paging me at night", None),
        ("4", None),
        ("4 5", None),
        ("4a 5", None),
        ("ack 4 later", None),
        ("4x", None),
        ("ack 99999999999999999999999", None),
        ("thanks", None),
        ("", None),
        ("acknowledged", None),
        ("1", None),
    ];
    for (body, expected) in table {
        assert_eq!(parse_sms_reply(body), *expected, "{body:?}");
    }
}

#[test]
fn form_decoding_keeps_repeats_and_survives_garbage() {
    assert_eq!(
        parse_form(b"A=1&E=x+y&E=%E2%9C%93&bad=%zz%&&=v&k"),
        vec![
            ("A".into(), "1".into()),
            ("E".into(), "x y".into()),
            ("E".into(), "\u{2713}".into()),
            ("bad".into(), "%zz%".into()),
            ("".into(), "v".into()),
            ("k".into(), "".into()),
        ]
    );
}

proptest! {
    #[test]
    fn parsers_never_panic(s in any::<String>(), b in any::<Vec<u8>>()) {
        let _ = parse_sms_reply(&s);
        let _ = parse_form(&b);
        let _ = s.parse::<CallStatus>();
    }
}
