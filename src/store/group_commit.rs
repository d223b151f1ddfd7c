//! Group commit: many concurrent requests, one transaction, one fsync.
//!
//! A 202 from an intake endpoint promises the event is on disk. Committing
//! every request on its own would cap throughput at the disk's fsync rate, so
//! requests queue here and one writer task commits whatever has queued while
//! the previous transaction was being written. Under light load a batch is one
//! event and latency is one commit; under heavy load batches grow by themselves.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Ingest, IngestOutcome, Store, StoreError};

/// Most events committed in one transaction; bounds latency of the last in a batch.
pub const MAX_BATCH: usize = 512;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("the event could not be stored: {0}")]
    Store(String),
    #[error("the store is shutting down")]
    Closed,
}

struct Job {
    item: Ingest,
    reply: oneshot::Sender<Result<IngestOutcome, CommitError>>,
}

/// Handle used by request handlers; clone freely. When the last handle is
/// dropped the writer commits what is queued and stops.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    pub fn start(store: Arc<dyn Store>) -> (Self, JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(MAX_BATCH * 8);
        let writer = tokio::spawn(write_loop(store, rx));
        (Self { jobs }, writer)
    }

    /// Resolves once the event is committed (or definitely not).
    pub async fn submit(&self, item: Ingest) -> Result<IngestOutcome, CommitError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send(Job { item, reply })
            .await
            .map_err(|_| CommitError::Closed)?;
        outcome.await.map_err(|_| CommitError::Closed)?
    }
}

async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (items, replies): (Vec<_>, Vec<_>) = jobs.drain(..).map(|j| (j.item, j.reply)).unzip();
        match store.ingest(&items).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The requester may have gone (client hung up): the event is stored anyway.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) if items.len() > 1 => {
                // One bad event must not fail its neighbours: retry each alone.
                tracing::warn!(error = %err, batch = items.len(), "batch commit failed; retrying one by one");
                for (item, reply) in items.into_iter().zip(replies) {
                    let result = store
                        .ingest(std::slice::from_ref(&item))
                        .await
                        .map_err(|e| commit_error(&e))
                        .and_then(|mut o| o.pop().ok_or(CommitError::Closed));
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "event commit failed");
                for reply in replies {
                    let _ = reply.send(Err(commit_error(&err)));
                }
            }
        }
    }
}

fn commit_error(err: &StoreError) -> CommitError {
    CommitError::Store(err.to_string())
}
