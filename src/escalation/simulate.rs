//! "Who would be woken, when, and how": an alert arriving at an instant is
//! walked through its route and policy on a virtual clock, assuming nobody
//! acknowledges. The same pure functions the engine runs ([`plan::fire`],
//! the maintenance windows, the silences, the per-number caps) decide every
//! step, so the answer is what the engine would do, not a re-telling of it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::hold::{self, hold_at};
use super::plan::{self, Cursor, Phase};
use crate::alert::silence::{SilenceSet, Subject};
use crate::alert::{Severity, TimelineKind, Urgency};
use crate::catalog::Catalog;
use crate::channel::{ChannelKind, Recipient};

/// What to simulate.
pub struct Question<'a> {
    pub service_id: &'a str,
    pub at: DateTime<Utc>,
    pub severity: Severity,
    pub labels: &'a BTreeMap<String, String>,
    /// How far past `at` to follow the escalation.
    pub horizon: TimeDelta,
    /// Silences to apply (empty offline).
    pub silences: &'a SilenceSet,
    /// `pages_per_number_per_hour`.
    pub number_cap_per_hour: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    pub service: String,
    pub policy: String,
    pub urgency: Urgency,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub pages: Vec<SimPage>,
    pub notes: Vec<SimNote>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimPage {
    pub at: DateTime<Utc>,
    /// `step 2`, `pass 2 step 1`, `voice repeat`.
    pub step: String,
    pub channel: ChannelKind,
    pub target: String,
    pub recipient: String,
    pub address: String,
    /// The recipient's local time, for people: `22:05 EST`.
    pub local_time: Option<String>,
    /// Why it would not go out, if a cap would hold it back.
    pub held: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimNote {
    pub at: DateTime<Utc>,
    pub message: String,
}

/// Rounds of the policy followed at most: `until_ack` policies never end.
const MAX_ROUNDS: usize = 2_000;

pub fn simulate(catalog: &Catalog, q: &Question<'_>) -> Result<Simulation, String> {
    let service = catalog
        .service(q.service_id)
        .ok_or_else(|| format!("unknown service `{}`", q.service_id))?;
    let route = service.route(q.labels, q.severity.as_str());
    let policy = catalog
        .policy(&route.policy_id)
        .ok_or_else(|| format!("policy `{}` is not in the configuration", route.policy_id))?;
    let until = q.at + q.horizon;
    let mut sim = Simulation {
        service: service.id.clone(),
        policy: policy.id.clone(),
        urgency: route.urgency,
        at: q.at,
        until,
        pages: Vec::new(),
        notes: Vec::new(),
    };
    let subject = Subject {
        service: &service.id,
        severity: q.severity.as_str(),
        labels: q.labels,
    };
    let mut sent: HashMap<String, Vec<(DateTime<Utc>, ChannelKind)>> = HashMap::new();
    let mut cursor = Cursor::START;
    let mut due = plan::first_due(policy, q.at);
    for _ in 0..MAX_ROUNDS {
        if due > until {
            break;
        }
        if let Some((end, why)) = hold_at(catalog, q.silences, &subject, due) {
            sim.notes.push(SimNote {
                at: due,
                message: format!("{}: nobody is paged until {}", why.describe(), stamp(end)),
            });
            cursor = Cursor::START;
            due = end;
            continue;
        }
        let step = plan::fire(policy, cursor, catalog, due, route.urgency);
        // "notifying …" is what the pages say; keep the skips and holds.
        for note in step
            .notes
            .iter()
            .filter(|n| n.kind != TimelineKind::StepFired)
        {
            sim.notes.push(SimNote {
                at: due,
                message: note.message.clone(),
            });
        }
        for d in step.deliveries {
            let at = due + d.delay;
            if at > until {
                continue;
            }
            let held = cap(
                catalog,
                &mut sent,
                &d.recipient,
                d.channel,
                at,
                q.number_cap_per_hour,
            );
            if let (ChannelKind::Voice, Some(after), None) =
                (d.channel, policy.breakthrough_after, &held)
            {
                sim.notes.push(SimNote {
                    at,
                    message: format!(
                        "if {} does not answer, a breakthrough call to the same number follows {} after the call ends",
                        d.recipient.label(),
                        crate::oncall::time::format_duration(after)
                    ),
                });
            }
            sim.pages.push(SimPage {
                at,
                step: label(cursor),
                channel: d.channel,
                target: d.target,
                recipient: d.recipient.label().to_owned(),
                address: d.recipient.address().to_owned(),
                local_time: local_time(catalog, &d.recipient, at),
                held,
            });
        }
        let Some((next, next_due)) = step.next else {
            sim.notes.push(SimNote {
                at: due,
                message: "the policy has nothing more to do".to_owned(),
            });
            break;
        };
        cursor = next;
        due = next_due;
    }
    sim.pages.sort_by_key(|p| p.at);
    Ok(sim)
}

/// The engine's hourly caps ([`hold::caps`]), counted over the simulated
/// pages: the reason a page would be held back, if one would.
fn cap(
    catalog: &Catalog,
    sent: &mut HashMap<String, Vec<(DateTime<Utc>, ChannelKind)>>,
    recipient: &Recipient,
    channel: ChannelKind,
    at: DateTime<Utc>,
    per_number: u32,
) -> Option<String> {
    let caps = hold::caps(channel, recipient, per_number, Some(catalog));
    if caps.is_empty() {
        return None;
    }
    let hour_ago = at - TimeDelta::hours(1);
    let pages = sent.entry(recipient.address().to_owned()).or_default();
    pages.retain(|(t, _)| *t > hour_ago);
    for c in &caps {
        let counted: Vec<DateTime<Utc>> = pages
            .iter()
            .filter(|(_, ch)| c.channels.contains(ch))
            .map(|(t, _)| *t)
            .collect();
        if hold::cap_free_at(&counted, c).is_some_and(|free| free > at) {
            return Some(format!(
                "held back: {} {} in the last hour",
                c.per_hour, c.what
            ));
        }
    }
    pages.push((at, channel));
    None
}

fn label(cursor: Cursor) -> String {
    match (cursor.phase, cursor.pass) {
        (Phase::VoiceRepeat, _) => "voice repeat".to_owned(),
        (Phase::Steps, 0) => format!("step {}", cursor.step + 1),
        (Phase::Steps, pass) => format!("pass {} step {}", pass + 1, cursor.step + 1),
    }
}

fn local_time(catalog: &Catalog, recipient: &Recipient, at: DateTime<Utc>) -> Option<String> {
    let Recipient::Person { id, .. } = recipient else {
        return None;
    };
    let zone = catalog.person(id)?.zone;
    Some(at.with_timezone(&zone).format("%H:%M %Z").to_string())
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The simulation as the text `rouse simulate` prints: one line per page.
pub fn render(sim: &Simulation) -> String {
    let mut out = format!(
        "{} → policy {} ({} urgency), {} to {}, if nobody acknowledges:\n",
        sim.service,
        sim.policy,
        sim.urgency.as_str(),
        stamp(sim.at),
        stamp(sim.until)
    );
    let mut lines: Vec<(DateTime<Utc>, String)> = sim
        .pages
        .iter()
        .map(|p| {
            let who = match &p.local_time {
                Some(local) => format!("{} {} ({local})", p.recipient, p.address),
                None => p.recipient.clone(),
            };
            let held = p
                .held
                .as_ref()
                .map(|h| format!("  [{h}]"))
                .unwrap_or_default();
            (
                p.at,
                format!(
                    "{}  {:<14}  {:<6} {who}{held}",
                    stamp(p.at),
                    p.step,
                    p.channel.as_str()
                ),
            )
        })
        .collect();
    lines.extend(sim.notes.iter().map(|n| {
        (
            n.at,
            format!("{}  {:<14}  {}", stamp(n.at), "note", n.message),
        )
    }));
    lines.sort_by_key(|(t, _)| *t);
    for (_, line) in lines {
        out.push_str(&line);
        out.push('\n');
    }
    if sim.pages.is_empty() {
        out.push_str("nobody would be paged\n");
    }
    out
}
