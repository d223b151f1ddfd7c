//! [`StatsBook`] on SQLite: the reader pool counts, both pools report.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::store::stats::{OpenAlerts, PoolStats, StatsBook, OPEN_ALERTS_SQL};
use crate::store::StoreError;

#[async_trait]
impl StatsBook for SqliteStore {
    async fn open_alerts(&self) -> Result<Vec<OpenAlerts>, StoreError> {
        let rows = sqlx::query(OPEN_ALERTS_SQL).fetch_all(&self.reader).await?;
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
        [("writer", &self.writer), ("reader", &self.reader)]
            .into_iter()
            .map(|(pool, p)| PoolStats {
                pool,
                size: p.size(),
                idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
                max: p.options().get_max_connections(),
            })
            .collect()
    }
}
