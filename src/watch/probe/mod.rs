//! The probes: the only code in `watch/` that touches the network. Each
//! returns a [`super::CheckResult`] and never panics or hangs on what a peer
//! sends; the runner adds an outer timeout and catches panics all the same.

pub mod http;
pub mod rdap;
pub mod tls;
pub mod whois;
