//! Durability of the writer's commits, made explicit so it can be pipelined.
//!
//! The writer connection runs with `synchronous=NORMAL`: a commit appends its
//! frames to the write-ahead log and returns without waiting for the disk.
//! [`WalSync::sync`] then makes every commit that has returned durable with
//! one `fdatasync` of the log, which is exactly the sync `synchronous=FULL`
//! would have done inside the commit. (In WAL mode NORMAL still syncs the log
//! before each checkpoint, the database after it, and the log header when the
//! log is reused, so nothing acknowledged can be lost across a checkpoint.)
//!
//! What this buys is that the sync no longer has to sit inside the commit:
//! group commit (see [`crate::store::group_commit`]) writes the next batch
//! while the previous one is being synced, and one sync covers every commit
//! that returned before it started. Every other write syncs before returning.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use crate::store::StoreError;

pub(super) struct WalSync {
    /// The database's log, `<database>-wal`.
    wal: PathBuf,
    /// Commits that have returned.
    committed: AtomicU64,
    /// Of those, how many are known to be on disk.
    synced: AtomicU64,
    /// One sync at a time; a caller that waited for the lock usually finds
    /// its commit already covered by the sync it waited for.
    syncing: Mutex<()>,
}

impl WalSync {
    pub fn new(wal: PathBuf) -> Self {
        Self {
            wal,
            committed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            syncing: Mutex::new(()),
        }
    }

    /// Call after each commit (or auto-committed statement) returns.
    pub fn committed(&self) {
        self.committed.fetch_add(1, Ordering::AcqRel);
    }

    /// Returns once every commit noted by [`WalSync::committed`] before this
    /// call is on disk.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let mine = self.committed.load(Ordering::Acquire);
        if self.synced.load(Ordering::Acquire) >= mine {
            return Ok(());
        }
        let _turn = self.syncing.lock().await;
        if self.synced.load(Ordering::Acquire) >= mine {
            return Ok(());
        }
        // Everything noted up to here has been written to the log by now,
        // so this one sync covers it all, not only the caller's commit.
        let upto = self.committed.load(Ordering::Acquire);
        if crate::store::on_writer_thread() {
            // Group commit's syncer has a thread of its own for this: a
            // hop to the blocking pool and back would only add two wake-ups
            // to every acknowledgement's latency.
            sync_file(&self.wal)?;
        } else {
            let wal = self.wal.clone();
            tokio::task::spawn_blocking(move || sync_file(&wal))
                .await
                .map_err(|e| StoreError::Io(format!("sync task: {e}")))??;
        }
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }
}

/// Opened by path each time: SQLite deletes the log when its last connection
/// closes (after checkpointing it into the database and syncing that), and a
/// held descriptor would then point at a file nobody writes any more.
fn sync_file(path: &std::path::Path) -> Result<(), StoreError> {
    match std::fs::File::open(path) {
        Ok(file) => file
            .sync_data()
            .map_err(|e| StoreError::Io(format!("syncing {}: {e}", path.display()))),
        // No log: every commit is already in the database file.
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Io(format!("opening {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sync_covers_every_commit_noted_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let s = WalSync::new(wal);
        s.sync().await.unwrap();
        assert_eq!(s.synced.load(Ordering::Acquire), 0, "nothing to sync yet");
        s.committed();
        s.committed();
        s.sync().await.unwrap();
        assert_eq!(s.synced.load(Ordering::Acquire), 2);
        s.committed();
        assert_eq!(
            s.synced.load(Ordering::Acquire),
            2,
            "a later commit is not covered"
        );
        s.sync().await.unwrap();
        assert_eq!(s.synced.load(Ordering::Acquire), 3);
    }

    #[tokio::test]
    async fn a_missing_log_is_nothing_to_sync_but_other_errors_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let s = WalSync::new(dir.path().join("gone-wal"));
        s.committed();
        s.sync().await.unwrap();
        let s = WalSync::new(dir.path().join("not-a-dir").join("x-wal"));
        std::fs::write(dir.path().join("not-a-dir"), b"file").unwrap();
        s.committed();
        assert!(
            s.sync().await.is_err(),
            "a path through a file cannot be opened"
        );
        assert_eq!(
            s.synced.load(Ordering::Acquire),
            0,
            "a failed sync covers nothing"
        );
    }
}
