//! Command logic behind `rouse check`, `rouse oncall`, `rouse simulate`, `rouse watch`,
//! `rouse test-page` and `rouse hash-password`; the binary only parses flags.

pub mod check;
pub mod hash_password;
pub mod oncall;
pub mod simulate;
pub mod test_page;
pub mod watch;
