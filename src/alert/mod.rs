//! Alerts: the one internal event every intake produces, the alert lifecycle
//! (open → acknowledged → resolved, deduplication, storm folding) as pure
//! decisions, and the records the store keeps.

pub mod event;
pub mod lifecycle;
pub mod model;
pub mod silence;

pub use event::{
    json_depth, truncate_summary, Action, Event, IntakeKind, Link, Severity, UnknownSeverity,
    MAX_DEDUP_KEY_CHARS, MAX_DETAILS_DEPTH, MAX_SUMMARY_CHARS, TRUNCATION_MARKER,
};
pub use lifecycle::{decide, Decision, OpenAlert};
pub use model::{Alert, AlertStatus, TimelineEntry, TimelineKind, Urgency};
