//! Alerts: the one internal event every intake produces, the alert lifecycle
//! (open → acknowledged → resolved, deduplication, storm folding) as pure
//! decisions, and the records the store keeps.

pub mod dedup;
pub mod event;
pub mod lifecycle;
pub mod model;
pub mod silence;

pub use dedup::DuplicateRun;
pub use event::{
    json_depth, truncate_summary, Action, Event, FieldNames, IntakeKind, Link, Severity,
    UnknownSeverity, MAX_DEDUP_KEY_CHARS, MAX_DETAILS_BYTES, MAX_DETAILS_DEPTH, MAX_LABELS,
    MAX_LABEL_KEY_CHARS, MAX_LABEL_VALUE_CHARS, MAX_LINKS, MAX_LINK_HREF_CHARS,
    MAX_LINK_TEXT_CHARS, MAX_SOURCE_CHARS, MAX_SUMMARY_CHARS, TRUNCATION_MARKER,
};
pub use lifecycle::{decide, Decision, OpenAlert};
pub use model::{Alert, AlertStatus, TimelineEntry, TimelineKind, Urgency};
