//! One integration-test binary (faster to link than one per file). Each module
//! drives the real server, the real stores or a real peer; `support` starts
//! the server, `fake_twilio` and `peers` stand in for providers.

mod ack_browser;
mod ack_links;
mod ack_paths;
mod binary;
mod catalog_diagnostics;
mod catalog_fuzz;
mod chat_config;
mod chat_discord;
mod chat_email;
mod chat_failures;
mod chat_matrix;
mod chat_mattermost;
mod chat_slack;
mod chat_teams;
mod escalation;
mod fake_twilio;
mod http_rejections;
mod inbound_replay;
mod intake_errors;
mod intake_fixtures;
mod intake_http;
mod intake_proptest;
mod oncall_dst;
mod oncall_example;
mod oncall_props;
mod outage_replay;
mod peers;
mod server;
mod shutdown_sends;
mod sqlite_lock;
mod store;
mod store_outage;
mod support;
mod tls_peer;
mod twilio_client;
mod twilio_flow;
mod twilio_pure;
mod twilio_routes;
mod watch_cli;
mod watch_config;
mod watch_domain;
mod watch_http;
mod watch_runner;
mod watch_tls;
