//! Escalation: following an open alert's policy step by step, to whoever is on
//! call at that moment, on louder channels, until a human acknowledges.
//!
//! [`plan`] decides (pure) and [`simulate`] replays its decisions on a virtual
//! clock; [`engine`] runs the decisions against the store's
//! durable timers and the channels, and never lets a provider failure stop it.

pub mod engine;
pub mod hold;
pub mod plan;
pub mod simulate;
mod sms;
pub mod test_page;
