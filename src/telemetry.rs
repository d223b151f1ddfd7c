//! Logging setup. Logs go to stderr, as text for people or JSON for collectors;
//! the level comes from `RUST_LOG` (default `info`). Colour only on a terminal.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call (as in tests) is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Colour codes only for a person at a terminal: a pipe or a file (a log
/// collector, `2> rouse.log`) would keep them as noise. `NO_COLOR` set to
/// anything but the empty string turns colour off (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// The process-wide Prometheus recorder, installed on first use so that tests
/// running several servers in one process share it instead of failing.
pub fn metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just renders nothing.
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
            }
            handle
        })
        .clone()
}

/// Seconds from a millisecond (a loopback commit) to a minute (a provider
/// that hangs until the send deadline).
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Items per group commit, in powers of two up to the largest batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

fn recorder() -> metrics_exporter_prometheus::PrometheusRecorder {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    // Without buckets the exporter renders distributions as summaries, which
    // cannot be aggregated across replicas; every distribution here is a
    // histogram. The bucket lists are constants, so this cannot fail.
    let with_buckets = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("rouse_group_commit_batch_items".into()),
                BATCH_BUCKETS,
            )
        });
    with_buckets
        .unwrap_or_else(|_| PrometheusBuilder::new())
        .build_recorder()
}

/// `# HELP` for every series Rouse exports (`promtool check metrics` wants
/// one), in one place so the list reads as the catalogue of what is measured.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "rouse_events_total",
        "Events accepted, by intake format and outcome."
    );
    describe_counter!(
        "rouse_intake_rejected_total",
        "Requests refused at intake, by reason."
    );
    describe_counter!("rouse_heartbeats_total", "Heartbeat pings recorded.");
    describe_gauge!("rouse_alerts_open", "Open alerts by service and state (triggered, acknowledged), counted in the store when scraped.");
    describe_gauge!(
        "rouse_catalog_valid",
        "1 when the last on-call configuration load succeeded, 0 while an edit is rejected."
    );
    describe_counter!(
        "rouse_catalog_reloads_total",
        "On-call configuration loads; result=rejected counts reload failures."
    );
    describe_counter!("rouse_escalation_steps_total", "Escalation steps fired.");
    describe_histogram!(
        "rouse_escalation_step_lateness_seconds",
        Unit::Seconds,
        "How long after its due time an escalation step fired."
    );
    describe_counter!(
        "rouse_pages_suppressed_total",
        "Escalation steps held back, by what held them (maintenance, silence)."
    );
    describe_counter!(
        "rouse_notifications_total",
        "Notification sends by channel and outcome."
    );
    describe_histogram!(
        "rouse_notification_delivery_duration_seconds",
        Unit::Seconds,
        "How long a provider took to answer a send, by channel."
    );
    describe_histogram!(
        "rouse_delivery_unrecorded_seconds",
        Unit::Seconds,
        "From a provider accepting a page to the database recording it: the window in which a replica's death sends the page twice."
    );
    describe_counter!(
        "rouse_notifications_held_total",
        "Notifications held back by a per-number cap, by channel."
    );
    describe_counter!("rouse_sms_replies_total", "Inbound SMS replies by outcome.");
    describe_counter!(
        "rouse_slack_presses_total",
        "Slack button presses by outcome."
    );
    describe_counter!(
        "rouse_inbound_repeats_total",
        "Provider webhooks answered from the replay store, by provider."
    );
    describe_counter!("rouse_group_commits_total", "Group commits, by writer.");
    describe_counter!(
        "rouse_group_commit_items_total",
        "Items written by group commits, by writer."
    );
    describe_histogram!(
        "rouse_group_commit_batch_items",
        Unit::Count,
        "Items per group commit, by writer."
    );
    describe_histogram!(
        "rouse_group_commit_sync_seconds",
        Unit::Seconds,
        "Time to make committed batches durable (the log's fsync on SQLite), by writer."
    );
    describe_histogram!(
        "rouse_db_query_duration_seconds",
        Unit::Seconds,
        "Database call latency, by query."
    );
    describe_gauge!(
        "rouse_db_pool_connections",
        "Open database connections (in use and idle), by pool."
    );
    describe_gauge!(
        "rouse_db_pool_idle_connections",
        "Idle database connections, by pool."
    );
    describe_gauge!(
        "rouse_db_pool_max_connections",
        "The most connections a pool may open, by pool."
    );
    describe_counter!(
        "rouse_pulse_failures_total",
        "Rounds in which the watcher runner could not reach the store."
    );
    describe_counter!(
        "rouse_watcher_panics_total",
        "Watcher probes that panicked (caught)."
    );
    describe_gauge!(
        "rouse_watcher_duration_seconds",
        Unit::Seconds,
        "How long the watcher's last run took."
    );
    describe_gauge!(
        "rouse_watcher_last_success_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the watcher's last successful run."
    );
    describe_gauge!(
        "rouse_watcher_result",
        "The watcher's last result: 0 ok, 1 could not check, 2 warning, 3 critical."
    );
    describe_gauge!("rouse_watcher_findings", "Open findings of the watcher.");
    describe_counter!("rouse_watcher_runs_total", "Watcher runs by result.");
    // Failures and rejections exist from the start at 0, so a rate() or an
    // alert on them has a series before the first one happens.
    metrics::counter!("rouse_catalog_reloads_total", "result" => "rejected").increment(0);
}

/// What `/metrics` answers: the counters kept in memory plus what is read
/// from the store at scrape time (open alerts, pool occupancy), so those
/// figures are right after a restart and agree between replicas.
pub async fn scrape(store: &dyn crate::store::Store, services: &[String]) -> String {
    record_pools(store);
    match crate::store::stats::timed("open_alerts", store.open_alerts()).await {
        Ok(rows) => record_open_alerts(services, &rows),
        // The rest still renders; the stale gauges say less than an error
        // line would, so say it in the log.
        Err(err) => tracing::warn!(error = %err, "metrics: cannot count open alerts"),
    }
    let handle = metrics();
    handle.run_upkeep();
    handle.render()
}

fn record_pools(store: &dyn crate::store::Store) {
    for pool in store.pools() {
        metrics::gauge!("rouse_db_pool_connections", "pool" => pool.pool).set(f64::from(pool.size));
        metrics::gauge!("rouse_db_pool_idle_connections", "pool" => pool.pool)
            .set(f64::from(pool.idle));
        metrics::gauge!("rouse_db_pool_max_connections", "pool" => pool.pool)
            .set(f64::from(pool.max));
    }
}

/// Sets `rouse_alerts_open` for every configured service and every pair seen
/// before: a service whose last alert closed must drop to 0, not keep its
/// last figure.
fn record_open_alerts(services: &[String], rows: &[crate::store::stats::OpenAlerts]) {
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<(String, String)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    for service in services {
        for status in ["triggered", "acknowledged"] {
            seen.insert((service.clone(), status.to_owned()));
        }
    }
    let mut counts = std::collections::BTreeMap::new();
    for row in rows {
        seen.insert((row.service_id.clone(), row.status.clone()));
        counts.insert((row.service_id.clone(), row.status.clone()), row.count);
    }
    for key in seen.iter() {
        let n = counts.get(key).copied().unwrap_or(0);
        metrics::gauge!("rouse_alerts_open", "service" => key.0.clone(), "state" => key.1.clone())
            .set(n as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(super::colour(true, None));
        assert!(super::colour(true, Some(OsStr::new(""))));
        assert!(!super::colour(true, Some(OsStr::new("1"))));
        assert!(!super::colour(false, None));
    }
}
