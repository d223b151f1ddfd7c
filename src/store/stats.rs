//! What `/metrics` reads from the store when it is scraped: open alerts by
//! service and state (counted from the alerts themselves, so the figure is
//! right across restarts and replicas) and how busy the connection pools are.

use async_trait::async_trait;

use super::StoreError;

/// How many alerts of one service are open in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlerts {
    pub service_id: String,
    /// `triggered` or `acknowledged`.
    pub status: String,
    pub count: i64,
}

/// One connection pool's occupancy at this moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// `writer` and `reader` for SQLite, `main` for PostgreSQL.
    pub pool: &'static str,
    /// Connections open now (in use + idle).
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

#[async_trait]
pub trait StatsBook: Send + Sync {
    /// Open alerts grouped by service and state; only non-zero groups.
    async fn open_alerts(&self) -> Result<Vec<OpenAlerts>, StoreError>;

    /// Every pool the store holds, without touching the database.
    fn pools(&self) -> Vec<PoolStats>;
}

/// The query both backends run: it walks the `alerts_status (status, id)`
/// index over open alerts only, never the resolved history.
pub(crate) const OPEN_ALERTS_SQL: &str = "SELECT service_id, status, COUNT(*) AS n FROM alerts
     WHERE status IN ('triggered', 'acknowledged') GROUP BY service_id, status";

/// Times a store call into `rouse_db_query_duration_seconds{query}`.
pub async fn timed<T>(query: &'static str, call: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let result = call.await;
    metrics::histogram!("rouse_db_query_duration_seconds", "query" => query)
        .record(started.elapsed().as_secs_f64());
    result
}
