//! Command logic behind `rouse check` and `rouse oncall`; the binary only parses flags.

pub mod check;
pub mod oncall;
