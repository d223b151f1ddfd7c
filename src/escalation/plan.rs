//! What an escalation step does, decided without I/O: who is paged on which
//! channel right now, and when the next step is due.
//!
//! Rules (the README states them for admins):
//! - steps fire in order, each `delay` after the previous one fired;
//! - targets are resolved when the step fires, so a handoff between two steps
//!   pages the new person;
//! - a step that reaches nobody is skipped at once (noted in the timeline) and
//!   the next step fires without waiting out its delay;
//! - after the last step, another pass starts `voice_repeat_every` later (5
//!   minutes if unset) while `repeat` allows; once passes are used up, the last
//!   step's voice calls repeat every `voice_repeat_every` until someone
//!   acknowledges — the "wake me up" guarantee;
//! - for low-urgency alerts, SMS, voice and push wait while a person is in
//!   their quiet hours (chat and email still go out);
//! - an unanswered page call is followed by one breakthrough call to the same
//!   number `breakthrough_after` later ([`breakthrough_at`]).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::{TimelineKind, Urgency};
use crate::catalog::Catalog;
use crate::channel::{ChannelKind, Recipient};
use crate::oncall::{Channel, EscalationPolicy, Person, Repeat, Step, Target};

/// Gap between passes when the policy sets no `voice_repeat_every`.
pub const DEFAULT_REPEAT_GAP: TimeDelta = TimeDelta::minutes(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Steps,
    VoiceRepeat,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Steps => "steps",
            Phase::VoiceRepeat => "voice_repeat",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "steps" => Some(Phase::Steps),
            "voice_repeat" => Some(Phase::VoiceRepeat),
            _ => None,
        }
    }
}

/// Where an escalation stands: the step that fires next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub pass: u32,
    pub step: usize,
    pub phase: Phase,
}

impl Cursor {
    pub const START: Cursor = Cursor {
        pass: 0,
        step: 0,
        phase: Phase::Steps,
    };
}

/// One notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: ChannelKind,
    /// How the recipient was found, for the timeline: `schedule:primary`.
    pub target: String,
    pub recipient: Recipient,
    /// How long after the step fired it goes out (a personal rule's `after`).
    pub delay: TimeDelta,
    /// The personal rule it comes from (its index in the person's `notify`);
    /// such pages stop when the policy's next step fires.
    pub rule: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: TimelineKind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    pub deliveries: Vec<Delivery>,
    pub notes: Vec<Note>,
    /// The next step and when it is due; `None` when the policy is exhausted.
    pub next: Option<(Cursor, DateTime<Utc>)>,
}

/// When the first step of a new alert is due.
pub fn first_due(policy: &EscalationPolicy, opened_at: DateTime<Utc>) -> DateTime<Utc> {
    let delay = policy.steps.first().map_or(TimeDelta::zero(), |s| s.delay);
    opened_at + delay
}

/// Fires the step at `cursor`.
pub fn fire(
    policy: &EscalationPolicy,
    cursor: Cursor,
    catalog: &Catalog,
    now: DateTime<Utc>,
    urgency: Urgency,
) -> StepPlan {
    let last = policy.steps.len().saturating_sub(1);
    let Some(step) = policy.steps.get(cursor.step.min(last)) else {
        return StepPlan {
            deliveries: Vec::new(),
            notes: vec![note(
                TimelineKind::EscalationEnded,
                format!("policy {} has no steps; nobody can be paged", policy.id),
            )],
            next: None,
        };
    };
    let voice_only = cursor.phase == Phase::VoiceRepeat;
    let mut notes = Vec::new();
    let deliveries = resolve(step, catalog, now, urgency, voice_only, &mut notes);
    let label = match cursor.phase {
        Phase::Steps => format!(
            "step {} of {} (pass {})",
            cursor.step + 1,
            policy.steps.len(),
            cursor.pass + 1
        ),
        Phase::VoiceRepeat => "repeated voice call".to_owned(),
    };
    if deliveries.is_empty() {
        notes.insert(
            0,
            note(
                TimelineKind::StepSkipped,
                format!("{label}: nobody to notify, moving on at once"),
            ),
        );
    } else {
        let who: Vec<String> = deliveries
            .iter()
            .map(|d| {
                let later = if d.delay > TimeDelta::zero() {
                    format!(" after {}", crate::oncall::time::format_duration(d.delay))
                } else {
                    String::new()
                };
                format!("{} by {}{later}", d.recipient.label(), d.channel.as_str())
            })
            .collect();
        notes.insert(
            0,
            note(
                TimelineKind::StepFired,
                format!("{label}: notifying {}", who.join(", ")),
            ),
        );
    }
    // An empty step is not waited out: the next one fires now.
    let base = now;
    let wait = |delay: TimeDelta| {
        if deliveries.is_empty() {
            TimeDelta::zero()
        } else {
            delay
        }
    };
    let repeat_gap = policy.voice_repeat_every.unwrap_or(DEFAULT_REPEAT_GAP);
    let next = match cursor.phase {
        Phase::Steps if cursor.step < last => policy.steps.get(cursor.step + 1).map(|s| {
            (
                Cursor {
                    step: cursor.step + 1,
                    ..cursor
                },
                base + wait(s.delay),
            )
        }),
        Phase::Steps if more_passes(policy.repeat, cursor.pass) => Some((
            Cursor {
                pass: cursor.pass + 1,
                step: 0,
                phase: Phase::Steps,
            },
            base + repeat_gap,
        )),
        _ => match policy.voice_repeat_every {
            Some(every) if step.channels.contains(&Channel::Voice) => Some((
                Cursor {
                    pass: cursor.pass,
                    step: last,
                    phase: Phase::VoiceRepeat,
                },
                base + every,
            )),
            _ => None,
        },
    };
    if next.is_none() {
        notes.push(note(
            TimelineKind::EscalationEnded,
            "escalation policy exhausted; nobody will be notified again unless the alert fires anew"
                .to_owned(),
        ));
    }
    StepPlan {
        deliveries,
        notes,
        next,
    }
}

/// How a call ended, as far as waking someone goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// Rang out, busy, or voicemail: the phone may be in Do Not Disturb.
    Unanswered,
    /// Answered by a person, or failed in a way another call cannot fix.
    Other,
}

/// When to call the same number again after a call that ended at
/// `ended_at`, if at all: phones let a second call from the same number
/// within three minutes ring through Do Not Disturb (iOS "Repeated Calls",
/// Android's repeat callers), so an unanswered page call is followed by one
/// more, `breakthrough_after` later. A breakthrough call gets none of its
/// own; when it too goes unanswered, the escalation moves on.
pub fn breakthrough_at(
    policy: &EscalationPolicy,
    end: CallEnd,
    was_breakthrough: bool,
    ended_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match (end, was_breakthrough, policy.breakthrough_after) {
        (CallEnd::Unanswered, false, Some(after)) => Some(ended_at + after),
        _ => None,
    }
}

fn more_passes(repeat: Repeat, pass: u32) -> bool {
    match repeat {
        Repeat::UntilAck => true,
        Repeat::Times(n) => pass < n,
    }
}

fn resolve(
    step: &Step,
    catalog: &Catalog,
    now: DateTime<Utc>,
    urgency: Urgency,
    voice_only: bool,
    notes: &mut Vec<Note>,
) -> Vec<Delivery> {
    let mut out: Vec<Delivery> = Vec::new();
    let channels: Vec<Channel> = step
        .channels
        .iter()
        .copied()
        .filter(|c| !voice_only || *c == Channel::Voice)
        .collect();
    for target in &step.targets {
        let (label, person) = match target {
            Target::Chat(room) => {
                if channels.contains(&Channel::Chat) {
                    push_unique(
                        &mut out,
                        Delivery {
                            channel: ChannelKind::Chat,
                            target: format!("chat:{room}"),
                            recipient: Recipient::Room {
                                address: room.clone(),
                            },
                            delay: TimeDelta::zero(),
                            rule: None,
                        },
                    );
                }
                continue;
            }
            Target::Schedule(id) => {
                let who = catalog
                    .schedule(id)
                    .and_then(|s| s.on_call_at(now))
                    .map(|o| o.person_id);
                if who.is_none() {
                    notes.push(note(
                        TimelineKind::StepSkipped,
                        format!("schedule {id}: nobody is on call"),
                    ));
                }
                (format!("schedule:{id}"), who)
            }
            Target::Rotation(id) => {
                let who = catalog
                    .rotation(id)
                    .and_then(|r| r.segment_at(now).who.map(str::to_owned));
                if who.is_none() {
                    notes.push(note(
                        TimelineKind::StepSkipped,
                        format!("rotation {id}: nobody is on call"),
                    ));
                }
                (format!("rotation:{id}"), who)
            }
            Target::Person(id) => (format!("person:{id}"), Some(id.clone())),
        };
        let Some(person) = person.and_then(|id| catalog.person(&id)) else {
            continue;
        };
        // A personal step follows the person's own rules; without rules
        // the step's channels (its fallback) apply, at once.
        let rules: Vec<(Option<usize>, Channel, TimeDelta)> =
            if step.personal && !person.notify.is_empty() {
                person
                    .notify
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| !voice_only || r.via == Channel::Voice)
                    .map(|(i, r)| (Some(i), r.via, r.after))
                    .collect()
            } else {
                channels
                    .iter()
                    .map(|c| (None, *c, TimeDelta::zero()))
                    .collect()
            };
        for (rule, channel, delay) in rules {
            let addresses = addresses(person, channel);
            if addresses.is_empty() {
                notes.push(note(
                    TimelineKind::StepSkipped,
                    format!("{}: no {channel} contact", person.id),
                ));
                continue;
            }
            // Push rings through Do Not Disturb: as loud as a call at night.
            let loud = matches!(channel, Channel::Sms | Channel::Voice | Channel::Push);
            if loud && urgency == Urgency::Low && person.in_quiet_hours(now + delay) {
                notes.push(note(
                    TimelineKind::StepSkipped,
                    format!(
                        "{}: quiet hours, no {channel} for a low-urgency alert",
                        person.id
                    ),
                ));
                continue;
            }
            for (kind, address) in addresses {
                push_unique(
                    &mut out,
                    Delivery {
                        channel: kind,
                        target: label.clone(),
                        recipient: Recipient::Person {
                            id: person.id.clone(),
                            name: person.name.clone(),
                            address,
                        },
                        delay,
                        rule,
                    },
                );
            }
        }
    }
    out
}

/// One notification per (channel, address, personal rule) and step, even
/// if two targets resolve to the same person.
fn push_unique(out: &mut Vec<Delivery>, delivery: Delivery) {
    if !out.iter().any(|d| {
        d.channel == delivery.channel
            && d.recipient.address() == delivery.recipient.address()
            && d.rule == delivery.rule
    }) {
        out.push(delivery);
    }
}

/// Where `channel` reaches `person`: one address, or for `push` each push
/// app the person has (Pushover and ntfy both, if both are set).
pub fn addresses(person: &Person, channel: Channel) -> Vec<(ChannelKind, String)> {
    let c = &person.contact;
    let one = |kind: ChannelKind, a: &Option<String>| a.clone().map(|a| (kind, a));
    match channel {
        Channel::Sms => one(ChannelKind::Sms, &c.sms).into_iter().collect(),
        Channel::Voice => one(ChannelKind::Voice, &c.voice).into_iter().collect(),
        Channel::Email => one(ChannelKind::Email, &c.email).into_iter().collect(),
        Channel::Chat => one(
            ChannelKind::Chat,
            &c.slack.clone().or_else(|| c.matrix.clone()),
        )
        .into_iter()
        .collect(),
        Channel::Push => [
            one(ChannelKind::Pushover, &c.pushover),
            one(ChannelKind::Ntfy, &c.ntfy),
        ]
        .into_iter()
        .flatten()
        .collect(),
    }
}

fn note(kind: TimelineKind, message: String) -> Note {
    Note { kind, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::path::PathBuf;

    const CATALOG: &str = r##"
people:
  - { id: alice, name: Alice, timezone: Europe/Berlin, contact: { sms: "+4915100000001", voice: "+4915100000001", slack: U1 } }
  - { id: bob, name: Bob, timezone: Europe/Berlin, contact: { sms: "+4915100000002" },
      quiet_hours: { from: "22:00", to: "07:00" } }
rotations:
  - { id: daily, timezone: Europe/Berlin, participants: [alice, bob], shift: 1d, handoff: "09:00", start: 2026-11-02 }
schedules:
  - { id: primary, timezone: Europe/Berlin, layers: [{ rotation: daily }] }
policies:
  - id: loud
    repeat: 1
    voice_repeat_every: 3m
    steps:
      - { delay: 0m, targets: [{ schedule: primary }, { chat: "#ops" }], channels: [chat] }
      - { delay: 5m, targets: [{ schedule: primary }], channels: [sms] }
      - { delay: 10m, targets: [{ schedule: primary }], channels: [voice] }
services:
  - id: svc
    policy: loud
    integrations: [{ name: t, key: k }]
"##;

    fn catalog() -> Catalog {
        crate::catalog::load_files(&[(PathBuf::from("t.yaml"), CATALOG.to_owned())], &|_| None)
            .expect("valid test catalog")
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // 2026-11-02 is alice's day (handoff 09:00 Berlin = 08:00 UTC), the 3rd is bob's.
        Utc.with_ymd_and_hms(2026, 11, 2, h, m, 0)
            .single()
            .expect("valid instant")
    }

    #[test]
    fn steps_fire_in_order_then_a_second_pass_then_voice_repeats() {
        let c = catalog();
        let p = c.policy("loud").expect("policy");
        let t = at(12, 0);
        let first = fire(p, Cursor::START, &c, t, Urgency::High);
        let who: Vec<(ChannelKind, &str)> = first
            .deliveries
            .iter()
            .map(|d| (d.channel, d.recipient.address()))
            .collect();
        assert_eq!(
            who,
            [(ChannelKind::Chat, "U1"), (ChannelKind::Chat, "#ops")]
        );
        let (cursor, due) = first.next.expect("a second step");
        assert_eq!((cursor.step, due), (1, t + TimeDelta::minutes(5)));
        let (cursor, due) = fire(p, cursor, &c, due, Urgency::High).next.expect("third");
        assert_eq!((cursor.step, due), (2, t + TimeDelta::minutes(15)));
        let voice = fire(p, cursor, &c, due, Urgency::High);
        assert_eq!(voice.deliveries[0].channel, ChannelKind::Voice);
        // repeat: 1 → one more pass, after voice_repeat_every.
        let (cursor, due2) = voice.next.expect("second pass");
        assert_eq!(
            cursor,
            Cursor {
                pass: 1,
                step: 0,
                phase: Phase::Steps
            }
        );
        assert_eq!(due2, due + TimeDelta::minutes(3));
        let mut cursor = cursor;
        let mut t = due2;
        for _ in 0..3 {
            let (c2, t2) = fire(p, cursor, &c, t, Urgency::High).next.expect("next");
            cursor = c2;
            t = t2;
        }
        // Passes used up: the voice call repeats every 3 minutes, forever.
        assert_eq!(cursor.phase, Phase::VoiceRepeat);
        for _ in 0..5 {
            let plan = fire(p, cursor, &c, t, Urgency::High);
            assert_eq!(plan.deliveries.len(), 1);
            assert_eq!(plan.deliveries[0].channel, ChannelKind::Voice);
            let (c2, t2) = plan.next.expect("voice repeats until acknowledged");
            assert_eq!(t2, t + TimeDelta::minutes(3));
            cursor = c2;
            t = t2;
        }
    }

    #[test]
    fn targets_are_resolved_when_the_step_fires() {
        let c = catalog();
        let p = c.policy("loud").expect("policy");
        let sms = Cursor {
            pass: 0,
            step: 1,
            phase: Phase::Steps,
        };
        // 07:55 UTC on the 3rd is still alice (handoff 08:00 UTC); 08:05 is bob.
        let before = fire(
            p,
            sms,
            &c,
            Utc.with_ymd_and_hms(2026, 11, 3, 7, 55, 0).unwrap(),
            Urgency::High,
        );
        let after = fire(
            p,
            sms,
            &c,
            Utc.with_ymd_and_hms(2026, 11, 3, 8, 5, 0).unwrap(),
            Urgency::High,
        );
        assert_eq!(before.deliveries[0].recipient.address(), "+4915100000001");
        assert_eq!(after.deliveries[0].recipient.address(), "+4915100000002");
    }

    #[test]
    fn a_step_that_reaches_nobody_is_skipped_at_once() {
        let c = catalog();
        let p = c.policy("loud").expect("policy");
        // Bob is on call on the 3rd and has no voice number.
        let t = Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0).unwrap();
        let voice = Cursor {
            pass: 1,
            step: 2,
            phase: Phase::Steps,
        };
        let plan = fire(p, voice, &c, t, Urgency::High);
        assert!(plan.deliveries.is_empty());
        assert_eq!(plan.notes[0].kind, TimelineKind::StepSkipped);
        assert!(plan
            .notes
            .iter()
            .any(|n| n.message == "bob: no voice contact"));
        // Before the first step was skipped the wait would be 5m; skipped: now.
        let sms_for_nobody = fire(
            p,
            Cursor {
                pass: 0,
                step: 0,
                phase: Phase::Steps,
            },
            &c,
            t,
            Urgency::High,
        );
        assert_eq!(
            sms_for_nobody.next.map(|(_, due)| due),
            Some(t + TimeDelta::minutes(5))
        );
    }

    #[test]
    fn low_urgency_respects_quiet_hours_for_sms_and_voice() {
        let c = catalog();
        let p = c.policy("loud").expect("policy");
        let night = Utc.with_ymd_and_hms(2026, 11, 3, 23, 30, 0).unwrap(); // 00:30 Berlin, bob
        let sms = Cursor {
            pass: 0,
            step: 1,
            phase: Phase::Steps,
        };
        assert!(fire(p, sms, &c, night, Urgency::Low).deliveries.is_empty());
        assert_eq!(fire(p, sms, &c, night, Urgency::High).deliveries.len(), 1);
    }

    #[test]
    fn push_reaches_every_push_app_a_person_has() {
        const PUSH: &str = r##"
people:
  - { id: alice, name: Alice, timezone: Europe/Berlin,
      contact: { pushover: uQiRzpo4DXghDmr9QzzfQu27cmVRsG, ntfy: { server: "https://ntfy.example", topic: alice } },
      quiet_hours: { from: "22:00", to: "07:00" } }
  - { id: bob, name: Bob, timezone: Europe/Berlin, contact: { ntfy: bob-pager } }
  - { id: carol, name: Carol, timezone: Europe/Berlin, contact: { sms: "+4915100000003" } }
policies:
  - id: p
    steps:
      - { targets: [{ person: alice }, { person: bob }, { person: carol }], channels: [push] }
services:
  - { id: svc, policy: p, integrations: [{ name: t, key: k }] }
"##;
        let c =
            crate::catalog::load_files(&[(PathBuf::from("t.yaml"), PUSH.to_owned())], &|_| None)
                .expect("valid push catalog");
        let p = c.policy("p").expect("policy");
        let noon = at(12, 0);
        let plan = fire(p, Cursor::START, &c, noon, Urgency::High);
        let who: Vec<(ChannelKind, &str)> = plan
            .deliveries
            .iter()
            .map(|d| (d.channel, d.recipient.address()))
            .collect();
        assert_eq!(
            who,
            [
                (ChannelKind::Pushover, "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"),
                (ChannelKind::Ntfy, "https://ntfy.example/alice"),
                (ChannelKind::Ntfy, "bob-pager"),
            ]
        );
        assert!(plan
            .notes
            .iter()
            .any(|n| n.message == "carol: no push contact"));
        // Push rings through Do Not Disturb: not for a low-urgency alert at night.
        let night = Utc.with_ymd_and_hms(2026, 11, 2, 23, 0, 0).unwrap();
        let low = fire(p, Cursor::START, &c, night, Urgency::Low);
        assert_eq!(low.deliveries.len(), 1, "only bob, who has no quiet hours");
    }

    #[test]
    fn an_unanswered_call_is_followed_by_one_breakthrough_call() {
        let c = catalog();
        let p = c.policy("loud").expect("policy");
        let t = at(12, 0);
        assert_eq!(p.breakthrough_after, Some(TimeDelta::seconds(60)));
        assert_eq!(
            breakthrough_at(p, CallEnd::Unanswered, false, t),
            Some(t + TimeDelta::seconds(60))
        );
        assert_eq!(breakthrough_at(p, CallEnd::Unanswered, true, t), None);
        assert_eq!(breakthrough_at(p, CallEnd::Other, false, t), None);
        let off = EscalationPolicy {
            breakthrough_after: None,
            ..p.clone()
        };
        assert_eq!(breakthrough_at(&off, CallEnd::Unanswered, false, t), None);
    }
}
