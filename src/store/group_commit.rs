//! Group commit: many concurrent writers, one transaction, one fsync.
//!
//! A 202 from an intake endpoint promises the event is on disk. Committing
//! every request on its own would cap throughput at the disk's fsync rate, so
//! requests queue here and one writer task commits whatever has queued while
//! the previous transaction was being written. Under light load a batch is one
//! request and latency is one commit; under heavy load batches grow by
//! themselves. The escalation engine records notification outcomes the same way.
//!
//! Writing and syncing are two stages: the writer commits a batch, hands it
//! to the syncer and goes on with the next batch, while the syncer makes it
//! durable ([`Store::sync`]) and only then answers its requesters. One sync
//! covers every batch committed before it started, so under load the disk's
//! flush and the next batch's statements run at the same time.

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
/// Committed batches that may wait for a sync before the writer waits too.
const SYNC_QUEUE: usize = 8;
/// After this long without a batch the writer tells the store
/// ([`Store::idle`]). Under load batches follow each other within
/// milliseconds; a tenth of a second is a quiet spell, and short enough
/// that nothing is left open long enough for anyone to notice.
pub const IDLE_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("the event could not be stored: {0}")]
    Store(String),
    #[error("the store is shutting down")]
    Closed,
    /// The database cannot be reached ([`StoreError::is_unavailable`]).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

type Write<T, R> =
    for<'a> fn(
        &'a dyn Store,
        &'a [T],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<R>, StoreError>> + Send + 'a>>;

type Reply<R> = oneshot::Sender<Result<Vec<R>, CommitError>>;

/// One requester's reply and what to send it once the batch is durable.
type Answer<R> = (Reply<R>, Result<Vec<R>, CommitError>);

/// [`Store::sync`], as a closure so the stage can be tested on its own.
type SyncFn =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> + Send + Sync>;

/// A committed batch on its way to the syncer: each requester's reply and
/// result, and the items themselves.
struct Written<T, R> {
    replies: Vec<Answer<R>>,
    /// Dropped by the syncer once it has answered: the items were allocated
    /// by the HTTP workers, and freeing thousands of them (each event's
    /// labels and details) on the writer's thread, the one serial stage,
    /// took 8% of its time with 100-alert webhooks (perf).
    items: Vec<T>,
}

/// One request's items: committed together or not at all.
struct Job<T, R> {
    items: Vec<T>,
    reply: Reply<R>,
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
        let (written, to_sync) = mpsc::channel(SYNC_QUEUE);
        // The writer and the syncer each get a thread and a runtime of their
        // own. A batch is several round trips to the database driver, and on
        // the shared runtime each answer queued behind every HTTP
        // connection's task before the writer could send the next statement:
        // under load that waiting, not the database, set the pace of every
        // commit. And apart from each other, because a store may write
        // synchronously on the writer's thread (SQLite's direct writer): a
        // syncer sharing it could neither start a sync nor answer the
        // requesters of a synced batch until the batch after it was written.
        // Each thread's own view of the store: a connection opened on its
        // runtime must stay its own (see `Store::for_own_thread`).
        let syncing = store.clone().for_own_thread();
        let store = store.for_own_thread();
        let syncer = tokio::task::spawn_blocking(move || {
            // Only syncs run here: a store may block this thread on the disk.
            let _marked = super::mark_writer_thread();
            let Some(runtime) = own_runtime(name) else {
                // Dropping `to_sync` fails the writer's hand-offs: `Closed`.
                return;
            };
            let view = syncing.clone();
            let sync: SyncFn = Box::new(move || {
                let store = syncing.clone();
                Box::pin(async move { store.sync().await })
            });
            runtime.block_on(async move {
                sync_loop(sync, name, to_sync).await;
                view.release().await;
            });
        });
        let writer = tokio::task::spawn_blocking(move || {
            // Nothing else runs here, so a store may write synchronously on
            // this thread (SQLite's direct writer does).
            let _marked = super::mark_writer_thread();
            let Some(runtime) = own_runtime(name) else {
                // Dropping `rx` makes every submit fail with `Closed`.
                return;
            };
            runtime.block_on(async move {
                write_loop(store.clone(), name, rx, write, written).await;
                store.release().await;
                // The writer's end of the queue is gone: the syncer answers
                // what is left and stops.
                if let Err(err) = syncer.await {
                    tracing::error!(error = %err, writer = name, "group commit syncer failed");
                }
            });
        });
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

/// A current-thread runtime for one of group commit's threads.
fn own_runtime(name: &'static str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(err) => {
            tracing::error!(error = %err, writer = name, "could not start a group commit thread");
            None
        }
    }
}

async fn write_loop<T: Send + Sync, R: Send>(
    store: Arc<dyn Store>,
    name: &'static str,
    mut rx: mpsc::Receiver<Job<T, R>>,
    write: Write<T, R>,
    written: mpsc::Sender<Written<T, R>>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    loop {
        // `recv_many` is cancel safe: a timeout loses no job.
        let received =
            match tokio::time::timeout(IDLE_AFTER, rx.recv_many(&mut jobs, MAX_BATCH)).await {
                Ok(received) => received,
                Err(_) => {
                    store.idle().await;
                    rx.recv_many(&mut jobs, MAX_BATCH).await
                }
            };
        if received == 0 {
            break;
        }
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
        metrics::histogram!("rouse_group_commit_batch_items", "writer" => name)
            .record(batch.len() as f64);
        let mut done = Vec::with_capacity(owners.len());
        match super::stats::timed(name, write(store.as_ref(), &batch)).await {
            Ok(results) => {
                let mut results = results.into_iter();
                for (len, reply) in owners {
                    done.push((reply, Ok(results.by_ref().take(len).collect())));
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
                    done.push((reply, result));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "commit failed");
                for (_, reply) in owners {
                    done.push((reply, Err(commit_error(&err))));
                }
            }
        }
        let done = Written {
            replies: done,
            items: batch,
        };
        if let Err(mpsc::error::SendError(done)) = written.send(done).await {
            // Only if the syncer died: nobody can say these are durable.
            for (reply, _) in done.replies {
                let _ = reply.send(Err(CommitError::Closed));
            }
        }
    }
}

/// Makes committed batches durable, then answers their requesters.
async fn sync_loop<T: Send, R: Send>(
    sync: SyncFn,
    name: &'static str,
    mut batches: mpsc::Receiver<Written<T, R>>,
) {
    let mut ready = Vec::with_capacity(SYNC_QUEUE);
    while batches.recv_many(&mut ready, SYNC_QUEUE).await > 0 {
        let anything_written = ready
            .iter()
            .flat_map(|w| &w.replies)
            .any(|(_, result)| result.is_ok());
        let synced = if anything_written {
            // With the commit's own time (`rouse_db_query_duration_seconds`),
            // what a durable answer waits for.
            let started = std::time::Instant::now();
            let synced = sync().await;
            metrics::histogram!("rouse_group_commit_sync_seconds", "writer" => name)
                .record(started.elapsed().as_secs_f64());
            synced
        } else {
            Ok(())
        };
        if let Err(err) = &synced {
            tracing::error!(error = %err, writer = name, "committed batches could not be synced to disk");
        }
        let mut items = Vec::with_capacity(ready.len());
        for written in ready.drain(..) {
            for (reply, result) in written.replies {
                let result = match (&synced, result) {
                    (Ok(()), result) => result,
                    (Err(err), Ok(_)) => Err(commit_error(err)),
                    (Err(_), Err(err)) => Err(err),
                };
                // The requester may have gone (client hung up): the items are stored anyway.
                let _ = reply.send(result);
            }
            items.push(written.items);
        }
        // Everyone is answered; only now the items are freed (see `Written`).
        drop(items);
    }
}

fn commit_error(err: &StoreError) -> CommitError {
    if err.is_unavailable() {
        return CommitError::Unavailable(err.to_string());
    }
    CommitError::Store(err.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Semaphore;

    use super::*;

    /// A sync stage on its own task, and the handles a test drives it by.
    struct Stage {
        queue: mpsc::Sender<Written<u32, u32>>,
        done: JoinHandle<()>,
        /// Each sync waits for a permit of this.
        gate: Arc<Semaphore>,
        /// Syncs that have started.
        started: Arc<AtomicUsize>,
    }

    /// A stage whose gate starts with `permits`; its syncs fail if `fail`.
    fn stage(permits: usize, fail: bool) -> Stage {
        let gate = Arc::new(Semaphore::new(permits));
        let started = Arc::new(AtomicUsize::new(0));
        let (sync_gate, sync_started) = (gate.clone(), started.clone());
        let sync: SyncFn = Box::new(move || {
            let (gate, started) = (sync_gate.clone(), sync_started.clone());
            Box::pin(async move {
                started.fetch_add(1, Ordering::SeqCst);
                let _permit = gate.acquire().await.map_err(|_| StoreError::Closed)?;
                if fail {
                    Err(StoreError::Io("disk full".to_owned()))
                } else {
                    Ok(())
                }
            })
        });
        let (queue, to_sync) = mpsc::channel(SYNC_QUEUE);
        let done = tokio::spawn(sync_loop(sync, "test", to_sync));
        Stage {
            queue,
            done,
            gate,
            started,
        }
    }

    fn written(results: Vec<Result<Vec<u32>, CommitError>>) -> (Written<u32, u32>, Vec<ReplyRx>) {
        let mut batch = Vec::new();
        let mut replies = Vec::new();
        for result in results {
            let (tx, rx) = oneshot::channel();
            batch.push((tx, result));
            replies.push(rx);
        }
        let written = Written {
            replies: batch,
            items: Vec::new(),
        };
        (written, replies)
    }

    type ReplyRx = oneshot::Receiver<Result<Vec<u32>, CommitError>>;

    #[tokio::test]
    async fn nobody_hears_of_a_commit_before_it_is_synced() {
        let Stage {
            queue,
            done,
            gate,
            started,
        } = stage(0, false);
        let (batch, mut replies) = written(vec![Ok(vec![1]), Ok(vec![2, 3])]);
        queue.send(batch).await.unwrap();
        while started.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        for reply in &mut replies {
            assert!(
                reply.try_recv().is_err(),
                "answered while the sync was still running"
            );
        }
        gate.add_permits(1);
        assert_eq!(replies.remove(0).await.unwrap().unwrap(), vec![1]);
        assert_eq!(replies.remove(0).await.unwrap().unwrap(), vec![2, 3]);
        drop(queue);
        done.await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_every_commit_it_covered() {
        let Stage { queue, done, .. } = stage(10, true);
        let (batch, replies) = written(vec![Ok(vec![1]), Err(CommitError::Closed)]);
        queue.send(batch).await.unwrap();
        drop(queue);
        done.await.unwrap();
        let mut replies = replies.into_iter();
        match replies.next().unwrap().await.unwrap() {
            Err(CommitError::Store(message)) => assert!(message.contains("disk full"), "{message}"),
            other => panic!("a commit that could not be synced was reported as {other:?}"),
        }
        assert!(matches!(
            replies.next().unwrap().await.unwrap(),
            Err(CommitError::Closed)
        ));
    }

    #[tokio::test]
    async fn nothing_committed_needs_no_sync() {
        let Stage {
            queue,
            done,
            started,
            ..
        } = stage(0, false);
        let (batch, replies) = written(vec![Err(CommitError::Closed)]);
        queue.send(batch).await.unwrap();
        drop(queue);
        done.await.unwrap();
        assert!(replies.into_iter().next().unwrap().await.unwrap().is_err());
        assert_eq!(started.load(Ordering::SeqCst), 0);
    }
}
