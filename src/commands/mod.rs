//! Command logic behind `rouse check`, `rouse oncall` and `rouse watch`; the binary only
//! parses flags.

pub mod check;
pub mod oncall;
pub mod watch;
