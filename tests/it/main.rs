//! One integration-test binary (faster to link than one per file). Each module
//! drives the real server or the real stores; `support` starts them.

mod binary;
mod catalog_diagnostics;
mod catalog_fuzz;
mod intake_errors;
mod intake_fixtures;
mod intake_http;
mod intake_proptest;
mod oncall_dst;
mod oncall_example;
mod oncall_props;
mod server;
mod store;
mod support;
