//! Inbound acknowledgements: the tokens that bind a link or a call to one
//! alert, Slack's request signatures and button payloads, and (in
//! `crate::http`) the endpoints people and providers reach.

pub mod push;
pub mod slack;
pub mod token;
