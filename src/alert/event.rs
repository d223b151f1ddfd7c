//! The internal event every intake adapter produces.
//!
//! Adapters translate foreign wire formats (native, PagerDuty, Alertmanager,
//! Grafana) into this one shape so dedup and escalation never need to know
//! where an alert came from. An `Event` that exists has already been
//! validated: summary within [`MAX_SUMMARY_CHARS`], dedup key within
//! [`MAX_DEDUP_KEY_CHARS`], details no deeper than [`MAX_DETAILS_DEPTH`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// PagerDuty's limit; longer summaries are truncated, not rejected, because
/// dropping a page over a long title is worse than a shortened title.
pub const MAX_SUMMARY_CHARS: usize = 1024;
/// PagerDuty's limit; longer keys are rejected because truncating could make
/// two distinct alerts collide.
pub const MAX_DEDUP_KEY_CHARS: usize = 255;
/// Maximum nesting of [`Event::details`]; see [`json_depth`] for how depth is counted.
pub const MAX_DETAILS_DEPTH: usize = 32;

/// Per-field limits, well below the 1 MiB body limit, so one event cannot
/// fill the database or a page with one huge value. Values over a limit are
/// rejected with the field named (truncating a label, a link or a source
/// would change what it means), except the summary, which is truncated like
/// PagerDuty does. PagerDuty documents the summary (1024 characters), the
/// dedup key (255) and the whole event (512 KB); the rest are Rouse's.
pub const MAX_LABELS: usize = 128;
/// Characters in a label's name.
pub const MAX_LABEL_KEY_CHARS: usize = 128;
/// Characters in a label's value.
pub const MAX_LABEL_VALUE_CHARS: usize = 1024;
pub const MAX_LINKS: usize = 32;
/// Characters in a link's `href`.
pub const MAX_LINK_HREF_CHARS: usize = 2048;
/// Characters in a link's `text`.
pub const MAX_LINK_TEXT_CHARS: usize = 256;
/// Characters in the `source`.
pub const MAX_SOURCE_CHARS: usize = 255;
/// Bytes of the details as stored (compact JSON): PagerDuty's limit for a whole event.
pub const MAX_DETAILS_BYTES: usize = 512 * 1024;

/// How one wire format names the fields [`Event::limit_errors`] checks.
#[derive(Debug, Clone, Copy)]
pub struct FieldNames<'a> {
    pub labels: &'a str,
    pub links: &'a str,
    pub source: &'a str,
    pub details: &'a str,
}

/// Appended to truncated summaries so responders know text is missing.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// What the sender wants done with the alert identified by `dedup_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
        }
    }

    /// Exact, lowercase wire names only: action typos must never be guessed at.
    pub fn from_wire(s: &str) -> Option<Action> {
        match s {
            "trigger" => Some(Action::Trigger),
            "acknowledge" => Some(Action::Acknowledge),
            "resolve" => Some(Action::Resolve),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity, in PagerDuty's four levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// The four canonical names, exact and lowercase, as PagerDuty accepts
    /// them. Used for APIs with a documented enum (native, PagerDuty) so
    /// senders get an error instead of a silently re-interpreted severity.
    pub fn from_wire(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|sev| sev.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected critical, error, warning or info)")]
pub struct UnknownSeverity(pub String);

/// Lenient parsing for free-form sources such as Prometheus `severity`
/// labels: case-insensitive, surrounding whitespace ignored, plus a short
/// list of aliases that are unambiguous in common alerting conventions:
///
/// | severity | accepted                                      |
/// |----------|-----------------------------------------------|
/// | critical | critical, crit, page, fatal, emergency, emerg |
/// | error    | error, err, high, major                       |
/// | warning  | warning, warn, medium, minor                  |
/// | info     | info, informational, information, notice, low |
///
/// `page` is Prometheus' documented example for "wake someone up". Numeric
/// schemes (P1, sev2, …) are deliberately not mapped: their direction
/// differs between organisations.
impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "critical" | "crit" | "page" | "fatal" | "emergency" | "emerg" => {
                Ok(Severity::Critical)
            }
            "error" | "err" | "high" | "major" => Ok(Severity::Error),
            "warning" | "warn" | "medium" | "minor" => Ok(Severity::Warning),
            "info" | "informational" | "information" | "notice" | "low" => Ok(Severity::Info),
            _ => Err(UnknownSeverity(s.to_owned())),
        }
    }
}

/// Which adapter produced the event; shown as the "source" in the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntakeKind {
    Native,
    #[serde(rename = "pagerduty")]
    PagerDuty,
    Alertmanager,
    Grafana,
    /// Opsgenie's Alert API, for `opsgenie_configs` receivers.
    Opsgenie,
    /// Rouse's own watchers (`watch/`): expiring domains, certificates, ...
    Watch,
}

impl IntakeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IntakeKind::Native => "native",
            IntakeKind::PagerDuty => "pagerduty",
            IntakeKind::Alertmanager => "alertmanager",
            IntakeKind::Grafana => "grafana",
            IntakeKind::Opsgenie => "opsgenie",
            IntakeKind::Watch => "watch",
        }
    }
}

impl fmt::Display for IntakeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    pub text: Option<String>,
}

impl Link {
    pub fn new(href: impl Into<String>, text: impl Into<String>) -> Link {
        Link {
            href: href.into(),
            text: Some(text.into()),
        }
    }
}

/// One validated alert event.
///
/// For `Acknowledge`/`Resolve`, `summary` and `severity` are only what the
/// sender happened to include (native/PagerDuty default them to `""` and
/// `Info`); the store should not overwrite an open alert's values with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: IntakeKind,
    pub action: Action,
    /// `None` means a trigger always opens a new alert; the server generates a key.
    pub dedup_key: Option<String>,
    /// Already truncated to [`MAX_SUMMARY_CHARS`].
    pub summary: String,
    pub severity: Severity,
    /// The host/system that raised it (`""` if unknown).
    pub source: String,
    pub labels: BTreeMap<String, String>,
    /// Free-form; at most [`MAX_DETAILS_DEPTH`] deep.
    pub details: serde_json::Value,
    pub links: Vec<Link>,
    pub occurred_at: Option<DateTime<Utc>>,
}

impl Event {
    /// Every per-field limit this event breaks, each naming its field the
    /// way the sender's format does (`names`).
    pub fn limit_errors(&self, names: FieldNames<'_>) -> Vec<String> {
        let mut errors = Vec::new();
        let chars = |s: &str| s.chars().count();
        if self.labels.len() > MAX_LABELS {
            errors.push(format!(
                "{} has {} entries; at most {MAX_LABELS} are allowed",
                names.labels,
                self.labels.len()
            ));
        }
        // One error per kind of problem, not one per label: 15,000 of them
        // would make the answer as large as the request.
        if let Some(key) = self.labels.keys().find(|k| chars(k) > MAX_LABEL_KEY_CHARS) {
            errors.push(format!(
                "{} has a name longer than {MAX_LABEL_KEY_CHARS} characters ({}…)",
                names.labels,
                key.chars().take(32).collect::<String>()
            ));
        }
        if let Some((key, _)) = self
            .labels
            .iter()
            .find(|(k, v)| chars(v) > MAX_LABEL_VALUE_CHARS && chars(k) <= MAX_LABEL_KEY_CHARS)
        {
            errors.push(format!(
                "{}.{key} is longer than {MAX_LABEL_VALUE_CHARS} characters",
                names.labels
            ));
        }
        if self.links.len() > MAX_LINKS {
            errors.push(format!(
                "{} has {} entries; at most {MAX_LINKS} are allowed",
                names.links,
                self.links.len()
            ));
        }
        if let Some(i) = self
            .links
            .iter()
            .position(|l| chars(&l.href) > MAX_LINK_HREF_CHARS)
        {
            errors.push(format!(
                "{}[{i}].href is longer than {MAX_LINK_HREF_CHARS} characters",
                names.links
            ));
        }
        if let Some(i) = self.links.iter().position(|l| {
            l.text
                .as_deref()
                .is_some_and(|t| chars(t) > MAX_LINK_TEXT_CHARS)
        }) {
            errors.push(format!(
                "{}[{i}].text is longer than {MAX_LINK_TEXT_CHARS} characters",
                names.links
            ));
        }
        if chars(&self.source) > MAX_SOURCE_CHARS {
            errors.push(format!(
                "{} is longer than {MAX_SOURCE_CHARS} characters",
                names.source
            ));
        }
        if json_bytes(&self.details) > MAX_DETAILS_BYTES {
            errors.push(format!(
                "{} is larger than {} KiB",
                names.details,
                MAX_DETAILS_BYTES / 1024
            ));
        }
        errors
    }

    /// The content an open alert shows after this event refreshed it, when
    /// `earlier` is what it showed before: each field this event leaves
    /// empty keeps the earlier value. Senders often repeat a trigger with
    /// less than the first one carried (a re-sent webhook without its
    /// runbook link), and a page must not lose a link because of it.
    pub fn keeping_earlier(mut self, earlier: &Event) -> Event {
        if self.summary.is_empty() {
            self.summary.clone_from(&earlier.summary);
        }
        if self.source.is_empty() {
            self.source.clone_from(&earlier.source);
        }
        if self.labels.is_empty() {
            self.labels.clone_from(&earlier.labels);
        }
        if is_empty_json(&self.details) {
            self.details.clone_from(&earlier.details);
        }
        if self.links.is_empty() {
            self.links.clone_from(&earlier.links);
        }
        self
    }
}

/// The size of `value` as compact JSON, counted without building the text.
fn json_bytes(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; a value that cannot be written has no size.
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

/// `null`, `{}` and `[]`: details that say nothing, so a refresh keeps the
/// stored ones (see [`Event::keeping_earlier`]).
pub fn is_empty_json(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Object(map) => map.is_empty(),
        serde_json::Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Cuts `s` to at most [`MAX_SUMMARY_CHARS`] characters, ending with
/// [`TRUNCATION_MARKER`] when anything was removed. Counts chars, never bytes,
/// so multi-byte characters are never split.
pub fn truncate_summary(s: &str) -> String {
    if s.chars().count() <= MAX_SUMMARY_CHARS {
        return s.to_owned();
    }
    let keep = MAX_SUMMARY_CHARS.saturating_sub(TRUNCATION_MARKER.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(TRUNCATION_MARKER);
    out
}

/// Nesting depth of a JSON value: scalars are 0, an empty or flat array or
/// object is 1, each further level of containers adds 1.
///
/// Iterative on purpose: it must not be the thing that overflows the stack
/// on hostile input, whatever limits the JSON parser has.
pub fn json_depth(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    let mut max = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(items) => {
                max = max.max(depth);
                stack.extend(items.iter().map(|c| (c, depth + 1)));
            }
            Value::Object(map) => {
                max = max.max(depth);
                stack.extend(map.values().map(|c| (c, depth + 1)));
            }
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn severity_aliases() {
        assert_eq!("PAGE".parse::<Severity>(), Ok(Severity::Critical));
        assert_eq!(" Warning ".parse::<Severity>(), Ok(Severity::Warning));
        assert_eq!("high".parse::<Severity>(), Ok(Severity::Error));
        assert!("P1".parse::<Severity>().is_err());
        assert_eq!(Severity::from_wire("critical"), Some(Severity::Critical));
        assert_eq!(Severity::from_wire("Critical"), None);
    }

    #[test]
    fn a_refresh_keeps_what_it_leaves_empty() {
        let first = Event {
            kind: IntakeKind::Native,
            action: Action::Trigger,
            dedup_key: Some("k".to_owned()),
            summary: "disk full".to_owned(),
            severity: Severity::Critical,
            source: "db-1".to_owned(),
            labels: [("team".to_owned(), "db".to_owned())].into(),
            details: json!({"runbook": "https://wiki/disk"}),
            links: vec![Link::new("https://wiki/disk", "runbook")],
            occurred_at: None,
        };
        let bare = Event {
            summary: "disk still full".to_owned(),
            severity: Severity::Error,
            source: String::new(),
            labels: BTreeMap::new(),
            details: json!({}),
            links: Vec::new(),
            ..first.clone()
        };
        let kept = bare.clone().keeping_earlier(&first);
        assert_eq!(kept.summary, "disk still full");
        assert_eq!(kept.severity, Severity::Error);
        assert_eq!(kept.source, "db-1");
        assert_eq!(kept.labels, first.labels);
        assert_eq!(kept.details, first.details);
        assert_eq!(kept.links, first.links);
        let newer = Event {
            details: json!({"free": 0}),
            ..bare
        };
        assert_eq!(newer.keeping_earlier(&first).details, json!({"free": 0}));
    }

    #[test]
    fn depth_counting() {
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!({})), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": []}]})), 4);
    }

    #[test]
    fn serde_names() {
        assert_eq!(
            serde_json::to_string(&IntakeKind::PagerDuty).ok(),
            Some("\"pagerduty\"".to_owned())
        );
        assert_eq!(
            serde_json::to_string(&Action::Acknowledge).ok(),
            Some("\"acknowledge\"".to_owned())
        );
    }
}
