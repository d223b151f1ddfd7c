//! The on-call domain: people, rotations, schedules, escalation policies and services, and
//! the exact answer to "who is on call at instant T". Pure: no I/O, no clock, no env.

pub mod gaps;
pub mod maintenance;
pub mod person;
pub mod policy;
pub mod rotation;
pub mod schedule;
pub mod service;
pub mod time;

pub use gaps::{coverage_gaps, Gap};
pub use person::{Contact, NotifyRule, Person, QuietHours};
pub use policy::{
    Channel, EscalationPolicy, Repeat, Step, Target, DEFAULT_BREAKTHROUGH_AFTER, DEFAULT_FALLBACK,
    MAX_BREAKTHROUGH_AFTER,
};
pub use rotation::{Rotation, Segment};
pub use schedule::{Layer, OnCall, Override, Schedule, Shift, Source};
pub use service::{Integration, Route, RoutingRule, Service, Urgency};
pub use time::{ActiveWindow, LocalTime, ParseError, ShiftLength, Weekdays};
