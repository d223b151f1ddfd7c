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

/// One request's events: committed together or not at all.
struct Job {
    items: Vec<Ingest>,
    reply: oneshot::Sender<Result<Vec<IngestOutcome>, CommitError>>,
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

    /// Resolves once the events are committed (or definitely not); outcomes
    /// are in the order of `items`.
    pub async fn submit(&self, items: Vec<Ingest>) -> Result<Vec<IngestOutcome>, CommitError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send(Job { items, reply })
            .await
            .map_err(|_| CommitError::Closed)?;
        outcome.await.map_err(|_| CommitError::Closed)?
    }
}

async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // Move the events into one batch (no copies) and remember whose they are.
        let mut batch: Vec<Ingest> = Vec::with_capacity(jobs.iter().map(|j| j.items.len()).sum());
        let mut owners = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            owners.push((job.items.len(), job.reply));
            batch.extend(job.items);
        }
        match store.ingest(&batch).await {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for (len, reply) in owners {
                    let mine: Vec<IngestOutcome> = outcomes.by_ref().take(len).collect();
                    // The requester may have gone (client hung up): the events are stored anyway.
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(err) if owners.len() > 1 => {
                // One bad request must not fail its neighbours: retry each alone.
                tracing::warn!(error = %err, requests = owners.len(), "batch commit failed; retrying one by one");
                let mut rest = batch.as_slice();
                for (len, reply) in owners {
                    let (mine, tail) = rest.split_at(len.min(rest.len()));
                    rest = tail;
                    let result = store.ingest(mine).await.map_err(|e| commit_error(&e));
                    if let Err(err) = &result {
                        tracing::error!(error = %err, "event commit failed");
                    }
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "event commit failed");
                for (_, reply) in owners {
                    let _ = reply.send(Err(commit_error(&err)));
                }
            }
        }
    }
}

fn commit_error(err: &StoreError) -> CommitError {
    CommitError::Store(err.to_string())
}
