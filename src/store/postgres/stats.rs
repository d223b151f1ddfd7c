//! [`StatsBook`] on PostgreSQL: one pool, shared by reads and writes.

use async_trait::async_trait;
use sqlx::Row;

use super::PostgresStore;
use crate::store::stats::{OpenAlerts, PoolStats, StatsBook, OPEN_ALERTS_SQL};
use crate::store::StoreError;

#[async_trait]
impl StatsBook for PostgresStore {
    async fn open_alerts(&self) -> Result<Vec<OpenAlerts>, StoreError> {
        let rows = sqlx::query(OPEN_ALERTS_SQL).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(OpenAlerts {
                    service_id: row.try_get("service_id")?,
                    status: row.try_get("status")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }

    fn pools(&self) -> Vec<PoolStats> {
        vec![PoolStats {
            pool: "main",
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }]
    }
}
