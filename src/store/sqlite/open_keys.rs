//! The key of every open alert, held in memory by the direct writer.
//!
//! On SQLite one process serves a database (the serving lock, `lock.rs`),
//! and in it only the direct writer writes `alerts`. So the writer can know
//! which keys are open without asking SQLite, and the partial unique index
//! that answered it (`alerts_open_key`, dropped by migration
//! 20261203000020) is gone: it cost every new alert a lookup and an insert
//! at a random leaf of a text index, about a fifth of a new alert's
//! instructions, and one dirty 4 KiB page in the log per new alert.
//!
//! What keeps the map true:
//! - it is loaded inside the writer's first intake batch, under the write
//!   lock, from the table itself (an acknowledgement before that loads
//!   nothing: the batch will read its write);
//! - a batch or an acknowledgement takes it out and puts it back only after
//!   its commit, updated: one that fails or panics anywhere drops it, and
//!   the next batch loads it again from what was committed;
//! - a hit is only where to look: the writer reads that row by id anyway,
//!   and one deleted or resolved by hand behind it counts as no open alert.
//!
//! What it cannot see is an open alert inserted by hand behind a running
//! server; the next start loads it.

use std::collections::HashMap;

use rusqlite::Connection;

use super::super::StoreError;

/// Open alerts' ids by service, then key: looked up with two `&str`s, no
/// allocation.
#[derive(Debug, Default)]
pub(super) struct OpenKeys {
    by_service: HashMap<String, HashMap<String, i64>>,
}

impl OpenKeys {
    /// Every open alert's key, read from `alerts` (through `alerts_status`).
    pub fn load(db: &Connection) -> Result<Self, StoreError> {
        let mut keys = Self::default();
        let mut rows = db.prepare_cached(
            "SELECT id, service_id, dedup_key FROM alerts
              WHERE status IN ('triggered', 'acknowledged')",
        )?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let service: String = row.get(1)?;
            let key: String = row.get(2)?;
            keys.by_service
                .entry(service)
                .or_default()
                .insert(key, row.get(0)?);
        }
        Ok(keys)
    }

    pub fn get(&self, service: &str, key: &str) -> Option<i64> {
        self.by_service.get(service)?.get(key).copied()
    }

    pub fn open(&mut self, service: &str, key: &str, id: i64) {
        match self.by_service.get_mut(service) {
            Some(keys) => {
                keys.insert(key.to_owned(), id);
            }
            None => {
                self.by_service
                    .insert(service.to_owned(), HashMap::from([(key.to_owned(), id)]));
            }
        }
    }

    /// Forgets the key if it still names alert `id` (a later alert of the
    /// same key keeps it).
    pub fn close(&mut self, service: &str, key: &str, id: i64) {
        if let Some(keys) = self.by_service.get_mut(service) {
            if keys.get(key) == Some(&id) {
                keys.remove(key);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_service.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_closes_only_for_the_alert_it_names() {
        let mut keys = OpenKeys::default();
        keys.open("payments", "disk", 1);
        keys.open("payments", "cpu", 2);
        keys.open("search", "disk", 3);
        assert_eq!(keys.get("payments", "disk"), Some(1));
        assert_eq!(keys.get("search", "disk"), Some(3));
        assert_eq!(keys.get("search", "cpu"), None);
        keys.open("payments", "disk", 4);
        keys.close("payments", "disk", 1);
        assert_eq!(
            keys.get("payments", "disk"),
            Some(4),
            "a later alert keeps its key"
        );
        keys.close("payments", "disk", 4);
        assert_eq!(keys.get("payments", "disk"), None);
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn it_loads_the_open_alerts_only() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE alerts (id INTEGER PRIMARY KEY, service_id TEXT, dedup_key TEXT, status TEXT);
             INSERT INTO alerts VALUES (1, 'payments', 'disk', 'resolved'),
                                       (2, 'payments', 'disk', 'triggered'),
                                       (3, 'payments', 'cpu', 'acknowledged'),
                                       (4, 'search', 'cpu', 'resolved');",
        )
        .unwrap();
        let keys = OpenKeys::load(&db).unwrap();
        assert_eq!(keys.get("payments", "disk"), Some(2));
        assert_eq!(keys.get("payments", "cpu"), Some(3));
        assert_eq!(keys.get("search", "cpu"), None);
        assert_eq!(keys.len(), 2);
    }
}
