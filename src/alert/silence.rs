//! Silences: at run time, Alertmanager-style, someone says "do not page for
//! alerts like these until then". A silenced alert is stored and its
//! timeline says who silenced it and why; if it is still open when the
//! silence ends, it starts paging from its first step.
//!
//! Matchers compare an alert's labels, plus the implicit labels `service`
//! and `severity`: `=`, `!=`, `=~`, `!~`. Regular expressions are anchored
//! (`=~ "db-.*"` matches the whole value, as in Alertmanager), size-limited
//! and compiled once. Matching stays cheap with many silences: silences are
//! indexed by one of their equality matchers, so an alert is compared only
//! with the silences that could match it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest a regular expression may be, and the compiled size allowed.
pub const MAX_REGEX_CHARS: usize = 1024;
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
pub const MAX_MATCHERS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

/// One matcher as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatcherSpec {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

/// A matcher ready to use (its regex compiled).
#[derive(Debug, Clone)]
pub struct Matcher {
    pub spec: MatcherSpec,
    regex: Option<regex::Regex>,
}

impl Matcher {
    pub fn new(spec: MatcherSpec) -> Result<Matcher, String> {
        if spec.name.is_empty() || spec.name.len() > 128 {
            return Err("a matcher's name must be 1 to 128 characters".to_owned());
        }
        let regex = match spec.op {
            MatchOp::Regex | MatchOp::NotRegex => {
                if spec.value.chars().count() > MAX_REGEX_CHARS {
                    return Err(format!(
                        "the regular expression for {} is longer than {MAX_REGEX_CHARS} characters",
                        spec.name
                    ));
                }
                let anchored = format!("^(?:{})$", spec.value);
                let compiled = regex::RegexBuilder::new(&anchored)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("invalid regular expression for {}: {e}", spec.name))?;
                Some(compiled)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher { spec, regex })
    }

    fn matches(&self, value: Option<&str>) -> bool {
        // An absent label is the empty string, as in Alertmanager.
        let value = value.unwrap_or("");
        match (self.spec.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.spec.value,
            (MatchOp::NotEqual, _) => value != self.spec.value,
            (MatchOp::Regex, Some(r)) => r.is_match(value),
            (MatchOp::NotRegex, Some(r)) => !r.is_match(value),
            (_, None) => false,
        }
    }
}

/// A silence as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<MatcherSpec>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub comment: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Silence {
    pub fn active_at(&self, t: DateTime<Utc>) -> bool {
        self.starts_at <= t && t < self.ends_at
    }

    /// The timeline's words: `silenced by #12: deploying db-1, by alice`.
    pub fn describe(&self) -> String {
        format!(
            "silenced by #{}: {}, by {}",
            self.id, self.comment, self.created_by
        )
    }
}

/// What an alert is matched on: its labels plus `service` and `severity`.
pub struct Subject<'a> {
    pub service: &'a str,
    pub severity: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

impl Subject<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match self.labels.get(name) {
            Some(v) => Some(v.as_str()),
            None if name == "service" => Some(self.service),
            None if name == "severity" => Some(self.severity),
            None => None,
        }
    }
}

/// The silences in force, compiled and indexed for matching.
#[derive(Debug, Default)]
pub struct SilenceSet {
    silences: Vec<(Silence, Vec<Matcher>)>,
    /// (label, value) of one equality matcher → silences that need it.
    by_equality: HashMap<(String, String), Vec<usize>>,
    /// Silences with no equality matcher: checked against every alert.
    others: Vec<usize>,
}

impl SilenceSet {
    /// Compiles `silences`; one that no longer compiles (it did when it was
    /// created) is left out rather than silencing everything or nothing.
    pub fn new(silences: Vec<Silence>) -> SilenceSet {
        let mut set = SilenceSet::default();
        for silence in silences {
            let Ok(matchers) = silence
                .matchers
                .iter()
                .cloned()
                .map(Matcher::new)
                .collect::<Result<Vec<_>, _>>()
            else {
                tracing::warn!(
                    silence = silence.id,
                    "silence skipped: a matcher does not compile"
                );
                continue;
            };
            let i = set.silences.len();
            match matchers.iter().find(|m| m.spec.op == MatchOp::Equal) {
                Some(m) => set
                    .by_equality
                    .entry((m.spec.name.clone(), m.spec.value.clone()))
                    .or_default()
                    .push(i),
                None => set.others.push(i),
            }
            set.silences.push((silence, matchers));
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.silences.is_empty()
    }

    /// The silence in force at `t` that covers `subject` and ends last.
    pub fn matching(&self, subject: &Subject<'_>, t: DateTime<Utc>) -> Option<&Silence> {
        let mut candidates: Vec<usize> = self.others.clone();
        for (name, value) in subject.labels.iter() {
            if let Some(ids) = self.by_equality.get(&(name.clone(), value.clone())) {
                candidates.extend(ids);
            }
        }
        for (name, value) in [("service", subject.service), ("severity", subject.severity)] {
            if let Some(ids) = self.by_equality.get(&(name.to_owned(), value.to_owned())) {
                candidates.extend(ids);
            }
        }
        candidates
            .into_iter()
            .filter_map(|i| self.silences.get(i))
            .filter(|(s, matchers)| {
                s.active_at(t)
                    && matchers
                        .iter()
                        .all(|m| m.matches(subject.get(&m.spec.name)))
            })
            .map(|(s, _)| s)
            .max_by_key(|s| s.ends_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn m(name: &str, op: MatchOp, value: &str) -> MatcherSpec {
        MatcherSpec {
            name: name.into(),
            op,
            value: value.into(),
        }
    }

    fn silence(id: i64, matchers: Vec<MatcherSpec>) -> Silence {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Silence {
            id,
            matchers,
            starts_at: t,
            ends_at: t + TimeDelta::hours(1),
            comment: "deploying db-1".into(),
            created_by: "alice".into(),
            created_at: t,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_operator_and_the_implicit_labels() {
        let set = SilenceSet::new(vec![silence(
            1,
            vec![
                m("service", MatchOp::Equal, "payments"),
                m("instance", MatchOp::Regex, "db-[0-9]+"),
                m("env", MatchOp::NotEqual, "prod"),
                m("severity", MatchOp::NotRegex, "info|warning"),
            ],
        )]);
        let t = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        let l = labels(&[("instance", "db-12"), ("env", "staging")]);
        let subject = |service, severity, labels| Subject {
            service,
            severity,
            labels,
        };
        assert_eq!(
            set.matching(&subject("payments", "critical", &l), t)
                .unwrap()
                .id,
            1
        );
        assert!(set
            .matching(&subject("search", "critical", &l), t)
            .is_none());
        assert!(set
            .matching(&subject("payments", "warning", &l), t)
            .is_none());
        // Anchored: "db-12x" is not "db-[0-9]+".
        let partial = labels(&[("instance", "db-12x"), ("env", "staging")]);
        assert!(set
            .matching(&subject("payments", "critical", &partial), t)
            .is_none());
        // Not active before or after its window.
        assert!(set
            .matching(
                &subject("payments", "critical", &l),
                t + TimeDelta::hours(2)
            )
            .is_none());
    }

    #[test]
    fn bad_regexes_are_refused_with_a_reason() {
        let err = Matcher::new(m("a", MatchOp::Regex, "(")).unwrap_err();
        assert!(err.starts_with("invalid regular expression for a"), "{err}");
        assert!(Matcher::new(m("a", MatchOp::Regex, &"a".repeat(2000))).is_err());
        // A pattern that compiles too large is refused, not built.
        assert!(Matcher::new(m("a", MatchOp::Regex, "(((a{100}){100}){100})")).is_err());
    }

    #[test]
    fn many_silences_are_found_through_the_index() {
        let many: Vec<Silence> = (0..10_000)
            .map(|i| silence(i, vec![m("instance", MatchOp::Equal, &format!("host-{i}"))]))
            .collect();
        let set = SilenceSet::new(many);
        assert!(set.others.is_empty(), "every silence is indexed");
        let t = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        let l = labels(&[("instance", "host-4242")]);
        let s = Subject {
            service: "x",
            severity: "critical",
            labels: &l,
        };
        assert_eq!(set.matching(&s, t).unwrap().id, 4242);
    }
}
