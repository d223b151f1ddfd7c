//! Wake-ups between replicas: `LISTEN rouse_wake`.
//!
//! The database's triggers (migration `20261201000060_wake_notify`) send
//! `NOTIFY rouse_wake` with every commit that makes escalation work due, on
//! whichever replica made it. Each replica holds one listening connection and
//! wakes its own engine on every notification, so a step another replica
//! scheduled is fired at once instead of at the next poll.
//!
//! A notification is only a hint: the engine still asks the database what is
//! due, and still polls. So a lost connection loses nothing; after any
//! reconnect the engine is woken once more for what it may have missed.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The channel the triggers notify on.
pub const CHANNEL: &str = "rouse_wake";

/// Waits between attempts to reach the database again, doubling up to this.
const RETRY_MAX: Duration = Duration::from_secs(30);
const RETRY_FIRST: Duration = Duration::from_millis(250);

/// Listens until `stop`, waking `engine` on every notification and after
/// every reconnect. Never returns early: a database that is away is tried
/// again with backoff, while polling carries the engine meanwhile.
pub async fn listen(url: String, engine: Arc<Notify>, stop: CancellationToken) {
    let mut wait = RETRY_FIRST;
    while !stop.is_cancelled() {
        let listener = tokio::select! {
            () = stop.cancelled() => return,
            listener = subscribe(&url) => listener,
        };
        match listener {
            Ok(mut listener) => {
                tracing::info!(
                    channel = CHANNEL,
                    "listening for wake-ups from other replicas"
                );
                wait = RETRY_FIRST;
                // Whatever was notified while we were not listening.
                engine.notify_one();
                if let Err(err) = relay(&mut listener, &engine, &stop).await {
                    tracing::warn!(error = %err, "lost the wake-up connection; reconnecting (polling meanwhile)");
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?wait, "cannot listen for wake-ups; polling meanwhile");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(RETRY_MAX);
    }
}

async fn subscribe(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Passes notifications on until the connection fails for good (an error
/// the listener could not reconnect from) or `stop`.
async fn relay(
    listener: &mut PgListener,
    engine: &Notify,
    stop: &CancellationToken,
) -> Result<(), sqlx::Error> {
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            next = listener.try_recv() => next?,
        };
        match next {
            Some(_) => engine.notify_one(),
            // The connection dropped and sqlx reconnected (it listens again
            // by itself); anything notified in between was missed.
            None => {
                tracing::info!("wake-up connection re-established");
                engine.notify_one();
            }
        }
    }
}
