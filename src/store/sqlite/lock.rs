//! One server per SQLite file: an exclusive lock on a file beside the
//! database, held while `rouse serve` (or `rouse migrate`) runs.

use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;

/// Held by the one process serving a SQLite file, for as long as it runs.
/// SQLite itself would let a second server open the file, and the two would
/// then each think they are the only writer (group commit, predicted ids) and
/// both page for every alert. Dropping it releases the lock.
#[derive(Debug)]
pub struct ServeLock {
    _file: std::fs::File,
}

/// Why [`ServeLock::take`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another rouse is already serving {url} (lock held on {}); use PostgreSQL for several replicas", .lock.display())]
    Held {
        url: String,
        lock: std::path::PathBuf,
    },
    #[error("cannot lock {}: {source}", .lock.display())]
    Io {
        lock: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl ServeLock {
    /// Takes the exclusive lock on `rouse.db.lock` beside the database of
    /// `url` without waiting; `None` for an in-memory database. A lock file,
    /// not the database file itself: SQLite takes its own locks on that one.
    pub fn take(url: &str, display: &str) -> Result<Option<ServeLock>, LockError> {
        let Ok(options) = SqliteConnectOptions::from_str(url) else {
            // The store's own open reports the bad URL.
            return Ok(None);
        };
        let db = options.get_filename();
        if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" || url.contains("mode=memory")
        {
            return Ok(None);
        }
        let mut lock = db.as_os_str().to_owned();
        lock.push(".lock");
        let lock = std::path::PathBuf::from(lock);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|source| LockError::Io {
                lock: lock.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ServeLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held {
                url: display.to_owned(),
                lock,
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io { lock, source }),
        }
    }
}
