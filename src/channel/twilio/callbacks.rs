//! Pure parsing of what Twilio POSTs back to Rouse: call and message status
//! callbacks, answering-machine detection results, and inbound SMS replies.
//!
//! No I/O here: the HTTP routes verify the signature (see
//! [`super::signature`]), decode the form with [`parse_form`], and hand the
//! values to these functions.

use std::fmt;
use std::str::FromStr;

/// An unrecognised value in a callback; Twilio adds values over time, so
/// callers should log and ignore it rather than fail the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} value {value:?}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// The exact value Twilio sends.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim() {
                    $($wire => Ok($name::$variant),)+
                    other => Err(UnknownValue { kind: $kind, value: other.chars().take(64).collect() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `CallStatus` in voice callbacks and the Call resource.
    CallStatus, "CallStatus", {
        Queued => "queued",
        Initiated => "initiated",
        Ringing => "ringing",
        InProgress => "in-progress",
        Completed => "completed",
        Busy => "busy",
        NoAnswer => "no-answer",
        Failed => "failed",
        Canceled => "canceled",
    }
);

wire_enum!(
    /// `AnsweredBy` from answering-machine detection (`MachineDetection=Enable`
    /// reports at the first greeting, so `machine_start` is the usual machine value).
    AnsweredBy, "AnsweredBy", {
        Human => "human",
        MachineStart => "machine_start",
        MachineEndBeep => "machine_end_beep",
        MachineEndSilence => "machine_end_silence",
        MachineEndOther => "machine_end_other",
        Fax => "fax",
        Unknown => "unknown",
    }
);

wire_enum!(
    /// `MessageStatus` in SMS status callbacks.
    MessageStatus, "MessageStatus", {
        Accepted => "accepted",
        Queued => "queued",
        Sending => "sending",
        Sent => "sent",
        Delivered => "delivered",
        Undelivered => "undelivered",
        Failed => "failed",
        Read => "read",
        Receiving => "receiving",
        Received => "received",
        Scheduled => "scheduled",
        Canceled => "canceled",
        PartiallyDelivered => "partially_delivered",
    }
);

impl CallStatus {
    /// No further status change will follow.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Completed
                | CallStatus::Busy
                | CallStatus::NoAnswer
                | CallStatus::Failed
                | CallStatus::Canceled
        )
    }
}

impl AnsweredBy {
    /// Voicemail, fax, or a machine detected at any point.
    pub fn is_machine(self) -> bool {
        matches!(
            self,
            AnsweredBy::MachineStart
                | AnsweredBy::MachineEndBeep
                | AnsweredBy::MachineEndSilence
                | AnsweredBy::MachineEndOther
                | AnsweredBy::Fax
        )
    }
}

/// Whether a call got through to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reached {
    Human,
    /// Voicemail or fax picked up: never counts as reaching someone.
    Machine,
    /// Not (or not yet) answered by a human; the reason is for the timeline.
    NotReached(String),
}

/// Decides from a call's status and AMD result whether a human answered.
///
/// Conservative on purpose: only `AnsweredBy=human` counts. `unknown` (AMD
/// could not decide) and a missing `AnsweredBy` (AMD not run) are
/// `NotReached`, because a voicemail must never stop an escalation. The page
/// stops only on an explicit acknowledgement anyway; this feeds the timeline
/// and decides whether to fall through to the next channel at once.
pub fn call_reached_human(status: CallStatus, answered_by: Option<AnsweredBy>) -> Reached {
    match status {
        CallStatus::InProgress | CallStatus::Completed => match answered_by {
            Some(AnsweredBy::Human) => Reached::Human,
            Some(a) if a.is_machine() => Reached::Machine,
            Some(_) => Reached::NotReached("answered, but AMD could not confirm a human".into()),
            None => Reached::NotReached("answered, but no answering-machine result".into()),
        },
        CallStatus::Queued | CallStatus::Initiated | CallStatus::Ringing => {
            Reached::NotReached(format!("call still {status}"))
        }
        CallStatus::Busy | CallStatus::NoAnswer | CallStatus::Failed | CallStatus::Canceled => {
            Reached::NotReached(status.to_string())
        }
    }
}

/// `undelivered` and `failed` are final: fall through to the next channel at
/// once instead of waiting for an acknowledgement that cannot come.
pub fn sms_failed(status: MessageStatus) -> bool {
    matches!(status, MessageStatus::Undelivered | MessageStatus::Failed)
}

/// What a reply asks to do to one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsVerb {
    Acknowledge,
    Resolve,
    /// Hand the page to the next step now.
    Escalate,
}

/// A command texted back to the Rouse number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsCommand {
    /// `4a`: act on the alert this number knows by code 4; a bare `a` acts
    /// on the newest alert paged to the number (`code: None`).
    Act {
        verb: SmsVerb,
        code: Option<u32>,
    },
    /// `ack all`: every unacknowledged alert paged to the number.
    AckAll,
    /// An opt-out keyword: the carrier and Twilio stop delivering texts.
    Stop,
    /// An opt-in keyword: texts may flow again.
    Start,
    Help,
}

/// Twilio's default opt-out and opt-in keywords (whole message, any case).
const STOP_WORDS: &[&str] = &[
    "stop",
    "stopall",
    "unsubscribe",
    "cancel",
    "end",
    "quit",
    "optout",
    "revoke",
];
const START_WORDS: &[&str] = &["start", "yes", "unstop"];

/// Parses an SMS reply.
///
/// Case-insensitive; quotes, punctuation and extra spaces are ignored, so
/// `4a`, `4 A`, `"4a"`, `4ack`, `ack 4` and `A4.` all mean "acknowledge the
/// alert this number knows as 4". Verbs: `a`/`ack`/`acknowledge`/`ok`,
/// `r`/`res`/`resolve`, `e`/`esc`/`escalate`; a verb alone acts on the newest
/// alert; `ack all` acknowledges them all. `STOP` and the other opt-out
/// keywords, `START`/`YES`/`UNSTOP` and `HELP`/`INFO` are recognised when
/// they are the whole message. Anything else (a bare number, two numbers,
/// trailing words, a code too large) is `None`: the caller answers with
/// help instead of acting on a guess.
pub fn parse_sms_reply(body: &str) -> Option<SmsCommand> {
    let normalized: String = body
        .chars()
        .take(160)
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    let mut tokens: Vec<&str> = Vec::new();
    for word in normalized.split_whitespace() {
        // Split where letters meet digits: "4a" -> "4" "a", "ack42" -> "ack" "42".
        let mut start = 0;
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        for pair in chars.windows(2) {
            let ((_, a), (i, b)) = (pair[0], pair[1]);
            if a.is_ascii_digit() != b.is_ascii_digit() {
                tokens.push(&word[start..i]);
                start = i;
            }
        }
        tokens.push(&word[start..]);
    }
    let verb = |t: &str| match t {
        "a" | "ack" | "acknowledge" | "ok" => Some(SmsVerb::Acknowledge),
        "r" | "res" | "resolve" => Some(SmsVerb::Resolve),
        "e" | "esc" | "escalate" => Some(SmsVerb::Escalate),
        _ => None,
    };
    let code = |t: &str| {
        t.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse::<u32>().ok())
            .flatten()
    };
    match tokens.as_slice() {
        [one] if STOP_WORDS.contains(one) => Some(SmsCommand::Stop),
        [one] if START_WORDS.contains(one) => Some(SmsCommand::Start),
        ["help" | "info"] => Some(SmsCommand::Help),
        ["ackall"] => Some(SmsCommand::AckAll),
        [v, "all"] if verb(v) == Some(SmsVerb::Acknowledge) => Some(SmsCommand::AckAll),
        [v] => verb(v).map(|verb| SmsCommand::Act { verb, code: None }),
        [a, b] => {
            let (verb, code) = match (verb(a), verb(b)) {
                (Some(v), None) => (v, code(b)?),
                (None, Some(v)) => (v, code(a)?),
                _ => return None,
            };
            Some(SmsCommand::Act {
                verb,
                code: Some(code),
            })
        }
        _ => None,
    }
}

/// Decodes an `application/x-www-form-urlencoded` body into pairs, keeping
/// order and repeated keys (signature checks need every value). `+` is a
/// space; invalid percent escapes are kept literally and invalid UTF-8 is
/// replaced, so hostile input never errors or panics.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut kv = part.splitn(2, |&b| b == b'=');
            let k = kv.next().unwrap_or_default();
            let v = kv.next().unwrap_or_default();
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The first value of `key`, if present.
pub fn form_get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                input.get(i + 1).and_then(hex),
                input.get(i + 2).and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
