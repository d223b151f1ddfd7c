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

/// A command texted back to the Rouse number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsCommand {
    /// Acknowledge alert `n`; `None` means the most recent alert paged to the
    /// sender's number.
    Ack(Option<i64>),
    /// Resolve alert `n` (or the most recent one).
    Resolve(Option<i64>),
    /// Escalate alert `n` (or the most recent one) to the next person now.
    Escalate(Option<i64>),
}

/// Parses an SMS reply.
///
/// Grammar (case-insensitive; punctuation such as `#`, `.`, `!`, `:` and
/// extra whitespace are ignored): `VERB [NUMBER]`, where VERB is
///
/// * `ack`, `acknowledge`, `a`, `ok`, `1` → [`SmsCommand::Ack`]
/// * `resolve`, `res`, `r` → [`SmsCommand::Resolve`]
/// * `escalate`, `esc`, `e`, `2` → [`SmsCommand::Escalate`]
///
/// (`1`/`2` mirror the voice keypad.) The number may be glued to the verb
/// (`ack42`, `ACK#42`). Anything else, including trailing words (`ack 42
/// later`), several numbers, or a number too large, is `None`, so the caller
/// can answer with help rather than act on a guess. `STOP`/`HELP` never reach
/// here meaningfully: Twilio handles those opt-out keywords itself.
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
    let mut tokens: Vec<String> = Vec::new();
    for token in normalized.split_whitespace() {
        // Split "ack42" into "ack", "42".
        let split = token
            .find(|c: char| c.is_ascii_digit())
            .filter(|&i| i > 0 && token[..i].chars().all(|c| c.is_alphabetic()));
        match split {
            Some(i) => {
                tokens.push(token[..i].to_string());
                tokens.push(token[i..].to_string());
            }
            None => tokens.push(token.to_string()),
        }
    }
    let (verb, rest) = tokens.split_first()?;
    let make: fn(Option<i64>) -> SmsCommand = match verb.as_str() {
        "ack" | "acknowledge" | "a" | "ok" | "1" => SmsCommand::Ack,
        "resolve" | "res" | "r" => SmsCommand::Resolve,
        "escalate" | "esc" | "e" | "2" => SmsCommand::Escalate,
        _ => return None,
    };
    match rest {
        [] => Some(make(None)),
        [n] if n.chars().all(|c| c.is_ascii_digit()) => {
            n.parse::<i64>().ok().map(|n| make(Some(n)))
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
