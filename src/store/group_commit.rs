//! Group commit: many concurrent writers, one transaction, one fsync.
//!
//! A 202 from an intake endpoint promises the event is on disk. Committing
//! every request on its own would cap throughput at the disk's fsync rate, so
//! requests queue here and one writer task commits whatever has queued while
//! the previous transaction was being written. Under light load a batch is one
//! request and latency is one commit; under heavy load batches grow by
//! themselves. The escalation engine records notification outcomes the same way.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{DeliveryRecord, Ingest, IngestOutcome, NotificationClaim, Store, StoreError};

/// Most requests committed in one transaction; bounds latency of the last in a batch.
pub const MAX_BATCH: usize = 512;
/// Yields to let concurrent requests join a commit (see `write_loop`).
const COALESCE_ROUNDS: usize = 4;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("the event could not be stored: {0}")]
    Store(String),
    #[error("the store is shutting down")]
    Closed,
}

type Write<T, R> =
    for<'a> fn(
        &'a dyn Store,
        &'a [T],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<R>, StoreError>> + Send + 'a>>;

/// One request's items: committed together or not at all.
struct Job<T, R> {
    items: Vec<T>,
    reply: oneshot::Sender<Result<Vec<R>, CommitError>>,
}

/// Handle used by producers; clone freely. When the last handle is dropped
/// the writer commits what is queued and stops.
pub struct Batcher<T, R> {
    jobs: mpsc::Sender<Job<T, R>>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

/// Intake events: `store.ingest`.
pub type GroupCommit = Batcher<Ingest, IngestOutcome>;
/// Notification outcomes: `store.record_deliveries`.
pub type DeliveryCommit = Batcher<(NotificationClaim, DeliveryRecord), bool>;

impl GroupCommit {
    pub fn start(store: Arc<dyn Store>) -> (Self, JoinHandle<()>) {
        Batcher::with_writer(store, "ingest", |s, batch| s.ingest(batch))
    }
}

impl DeliveryCommit {
    pub fn start(store: Arc<dyn Store>) -> (Self, JoinHandle<()>) {
        Batcher::with_writer(store, "deliveries", |s, batch| s.record_deliveries(batch))
    }
}

impl<T: Send + Sync + 'static, R: Send + 'static> Batcher<T, R> {
    fn with_writer(
        store: Arc<dyn Store>,
        name: &'static str,
        write: Write<T, R>,
    ) -> (Self, JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(MAX_BATCH * 8);
        let writer = tokio::spawn(write_loop(store, name, rx, write));
        (Self { jobs }, writer)
    }

    /// Resolves once the items are committed (or definitely not); results
    /// are in the order of `items`.
    pub async fn submit(&self, items: Vec<T>) -> Result<Vec<R>, CommitError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .send(Job { items, reply })
            .await
            .map_err(|_| CommitError::Closed)?;
        outcome.await.map_err(|_| CommitError::Closed)?
    }
}

async fn write_loop<T: Send + Sync, R: Send>(
    store: Arc<dyn Store>,
    name: &'static str,
    mut rx: mpsc::Receiver<Job<T, R>>,
    write: Write<T, R>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // Under load, requests come in two cohorts that take turns on the
        // writer: the ones answered by the last commit are being parsed again
        // while the others commit. A yield lets the runtime poll its sockets
        // and run those handlers, so they can join this commit instead of
        // waiting for the next one. Idle, the first yield brings nothing and
        // costs microseconds; the rounds are bounded either way.
        for _ in 0..COALESCE_ROUNDS {
            let before = jobs.len();
            if before >= MAX_BATCH {
                break;
            }
            tokio::task::yield_now().await;
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            if jobs.len() == before {
                break;
            }
        }
        // Move the items into one batch (no copies) and remember whose they are.
        let mut batch: Vec<T> = Vec::with_capacity(jobs.iter().map(|j| j.items.len()).sum());
        let mut owners = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            owners.push((job.items.len(), job.reply));
            batch.extend(job.items);
        }
        // Items per commit is what group commit buys: watch it under load.
        metrics::counter!("rouse_group_commits_total", "writer" => name).increment(1);
        metrics::counter!("rouse_group_commit_items_total", "writer" => name)
            .increment(batch.len() as u64);
        match write(store.as_ref(), &batch).await {
            Ok(results) => {
                let mut results = results.into_iter();
                for (len, reply) in owners {
                    let mine: Vec<R> = results.by_ref().take(len).collect();
                    // The requester may have gone (client hung up): the items are stored anyway.
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
                    let result = write(store.as_ref(), mine)
                        .await
                        .map_err(|e| commit_error(&e));
                    if let Err(err) = &result {
                        tracing::error!(error = %err, "commit failed");
                    }
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "commit failed");
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
