//! Test pages, decided without I/O: which of a person's high-urgency methods
//! a test page goes through, what it says, and who is about to be on call
//! without proof that their phone wakes them.
//!
//! A test page is an alert of its own per method (service
//! [`SERVICE`], no escalation), so each method is acknowledged by its own
//! path — an SMS reply, a key press, the push app — and the result is known
//! per person and method: acknowledged by that very person, or not.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::catalog::Catalog;
use crate::channel::ChannelKind;
use crate::oncall::{Channel, Person};

/// The service test-page alerts belong to (not in any configuration).
pub const SERVICE: &str = "rouse-test-page";
/// How far ahead `rouse check` looks for people going on call.
pub const ON_CALL_HORIZON: TimeDelta = TimeDelta::days(14);
/// How old an acknowledged test page may be and still count.
pub const PROOF_MAX_AGE: TimeDelta = TimeDelta::days(90);

/// A high-urgency way of paging someone: what has to work at 3 a.m.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Push,
    Sms,
    Voice,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Push, Method::Sms, Method::Voice];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Push => "push",
            Method::Sms => "sms",
            Method::Voice => "voice",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub fn channel(self) -> Channel {
        match self {
            Method::Push => Channel::Push,
            Method::Sms => Channel::Sms,
            Method::Voice => Channel::Voice,
        }
    }
}

/// The methods `person` can be paged by at high urgency.
pub fn high_urgency_methods(person: &Person) -> Vec<Method> {
    Method::ALL
        .into_iter()
        .filter(|m| person.contact.reaches(m.channel()))
        .collect()
}

/// The methods a test page asked for `via` (`push`, `sms`, `voice`, `all`)
/// goes through, or why it cannot.
pub fn methods(person: &Person, via: &str) -> Result<Vec<Method>, String> {
    let all = high_urgency_methods(person);
    match via.trim() {
        "all" if all.is_empty() => Err(format!(
            "{} has no push, sms or voice contact to test",
            person.id
        )),
        "all" => Ok(all),
        other => match Method::parse(other) {
            Some(m) if all.contains(&m) => Ok(vec![m]),
            Some(m) => Err(format!("{} has no {} contact", person.id, m.as_str())),
            None => Err(format!(
                "unknown method `{other}`: expected push, sms, voice or all"
            )),
        },
    }
}

/// Where one method's test page goes: each (channel, address).
pub fn addresses(person: &Person, method: Method) -> Vec<(ChannelKind, String)> {
    super::plan::addresses(person, method.channel())
}

/// What the test page says: unmistakably not an incident.
pub fn summary(person: &Person, method: Method) -> String {
    format!(
        "TEST PAGE for {} by {}: not an incident. Acknowledge it to prove this way of paging you works.",
        person.name,
        method.as_str()
    )
}

/// A test page as stored, with what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestPageResult {
    pub alert_id: i64,
    pub person_id: String,
    pub method: Method,
    pub sent_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

impl TestPageResult {
    /// Acknowledged by the person it was for: their own phone woke them.
    pub fn proves(&self, person_id: &str, now: DateTime<Utc>) -> bool {
        self.person_id == person_id
            && self.acknowledged_by.as_deref() == Some(person_id)
            && self
                .acknowledged_at
                .is_some_and(|at| now - at <= PROOF_MAX_AGE)
    }
}

/// People on call in the next [`ON_CALL_HORIZON`] (any schedule or rotation).
pub fn on_call_soon(catalog: &Catalog, now: DateTime<Utc>) -> Vec<String> {
    let until = now + ON_CALL_HORIZON;
    let mut ids: Vec<String> = Vec::new();
    for s in catalog.schedules() {
        ids.extend(s.shifts(now, until).into_iter().filter_map(|s| s.person_id));
    }
    // Rotations outside any schedule can be paged directly; sampled hourly,
    // the finest active window a rotation file can express in practice.
    for r in catalog.rotations() {
        let mut t = now;
        while t < until {
            ids.extend(r.segment_at(t).who.map(str::to_owned));
            t += TimeDelta::hours(1);
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Who is on call soon without an acknowledged test page, per method they
/// can be paged by, in person order.
pub fn unproven(
    catalog: &Catalog,
    results: &[TestPageResult],
    now: DateTime<Utc>,
) -> Vec<(String, Method)> {
    let mut out = Vec::new();
    for id in on_call_soon(catalog, now) {
        let Some(person) = catalog.person(&id) else {
            continue;
        };
        for method in high_urgency_methods(person) {
            let proven = results
                .iter()
                .any(|r| r.method == method && r.proves(&id, now));
            if !proven {
                out.push((id.clone(), method));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::path::PathBuf;

    const CATALOG: &str = r##"
people:
  - { id: alice, name: Alice, timezone: UTC, contact: { sms: "+4915100000001", voice: "+4915100000001" } }
  - { id: bob, name: Bob, timezone: UTC, contact: { email: bob@example.com } }
  - { id: carol, name: Carol, timezone: UTC, contact: { voice: "+4915100000003" } }
rotations:
  - { id: r, timezone: UTC, participants: [alice, bob], shift: 1d, handoff: "09:00", start: 2026-11-02 }
"##;

    fn catalog() -> Catalog {
        crate::catalog::load_files(&[(PathBuf::from("t.yaml"), CATALOG.to_owned())], &|_| None)
            .expect("valid test catalog")
    }

    fn result(method: Method, acked_days_ago: Option<i64>, by: &str) -> TestPageResult {
        let now = Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap();
        TestPageResult {
            alert_id: 1,
            person_id: "alice".into(),
            method,
            sent_at: now - TimeDelta::days(100),
            acknowledged_at: acked_days_ago.map(|d| now - TimeDelta::days(d)),
            acknowledged_by: acked_days_ago.map(|_| by.to_owned()),
        }
    }

    #[test]
    fn test_pages_go_by_the_methods_a_person_has() {
        let c = catalog();
        let alice = c.person("alice").unwrap();
        assert_eq!(methods(alice, "all").unwrap(), [Method::Sms, Method::Voice]);
        assert_eq!(methods(alice, "voice").unwrap(), [Method::Voice]);
        assert_eq!(
            methods(alice, "push").unwrap_err(),
            "alice has no push contact"
        );
        assert!(methods(alice, "pigeon").is_err());
        assert!(methods(c.person("bob").unwrap(), "all").is_err());
        assert!(summary(alice, Method::Sms).starts_with("TEST PAGE for Alice by sms"));
    }

    #[test]
    fn only_a_recent_acknowledgement_by_the_person_proves_a_method() {
        let c = catalog();
        let now = Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap();
        // carol is in no rotation: never warned about.
        assert_eq!(on_call_soon(&c, now), ["alice", "bob"]);
        let none = unproven(&c, &[], now);
        assert_eq!(
            none,
            [
                ("alice".to_owned(), Method::Sms),
                ("alice".to_owned(), Method::Voice)
            ]
        );
        let results = [
            result(Method::Sms, Some(3), "alice"),
            result(Method::Voice, Some(91), "alice"),
        ];
        assert_eq!(
            unproven(&c, &results, now),
            [("alice".to_owned(), Method::Voice)]
        );
        let by_someone_else = [result(Method::Sms, Some(3), "bob")];
        assert!(unproven(&c, &by_someone_else, now).contains(&("alice".to_owned(), Method::Sms)));
    }
}
