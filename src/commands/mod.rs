//! Command logic behind `rouse check`, `rouse oncall`, `rouse simulate`, `rouse watch` and
//! `rouse test-page`; the binary only parses flags.

pub mod check;
pub mod oncall;
pub mod simulate;
pub mod test_page;
pub mod watch;
