//! Rouse: an escalating pager and alert router.
//!
//! Monitoring systems POST alerts; Rouse deduplicates them, finds who is on
//! call from YAML rotations, and escalates until a human acknowledges. This
//! crate is the whole service; `main.rs` only parses the command line and
//! calls [`run`] or one of the [`commands`].

#![forbid(unsafe_code)]

pub mod ack;
pub mod alert;
pub mod catalog;
pub mod channel;
pub mod clock;
pub mod commands;
pub mod config;
pub mod escalation;
pub mod feed;
pub mod http;
pub mod intake;
pub mod oncall;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod watch;
pub mod web;
pub mod yaml;

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::catalog::live::{self, LiveCatalog, Reload};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::escalation::engine::Engine;
use crate::http::throttle::Throttle;
use crate::http::AppState;
use crate::store::group_commit::GroupCommit;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot open the database {url}: {source}")]
    Database {
        url: String,
        source: store::StoreError,
    },
    #[error("cannot apply database migrations: {0}")]
    Migrate(store::StoreError),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("invalid configuration: {0}")]
    Channels(channel::ConfigError),
    #[error("{0}")]
    Locked(#[from] store::sqlite::LockError),
    #[error("cannot serve HTTPS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// How long the TwiML URL of a call stays valid: long enough for a call that
/// rings and is answered, short enough that a leaked URL soon dies.
const VOICE_TOKEN_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// The link signer, with the previous key during a rotation's grace period.
fn signer(config: &Config, now: chrono::DateTime<chrono::Utc>) -> ack::token::Signer {
    let signer = ack::token::Signer::new(config.signing_key.clone());
    let Some(previous) = config.previous_signing_key.clone() else {
        return signer;
    };
    // Links live a day, so a day after a restart nothing signed with the
    // old key is still valid anyway.
    let until = config
        .previous_signing_key_until
        .unwrap_or(now + http::ACK_LINK_LIFETIME);
    if until < now {
        tracing::warn!(%until, "previous_signing_key's grace period is over; remove it from the configuration");
    } else {
        tracing::info!(%until, "accepting links signed with the previous signing key until then");
    }
    signer.with_previous(previous, until)
}

/// Runs the server on `listener` until `shutdown` resolves, then stops taking
/// new work, lets in-flight requests and queued commits finish (up to the
/// configured grace period) and returns.
///
/// Tests call this with a listener on port 0 and their own shutdown future.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    run_with_clock(config, listener, shutdown, Arc::new(SystemClock)).await
}

pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Arc<dyn Clock>,
) -> Result<(), RunError> {
    let config = Arc::new(config);
    // Install the metrics recorder before anything counts.
    telemetry::metrics();
    let _serving = serve_lock(&config)?;
    let store = open_migrated(&config).await?;

    let stop = CancellationToken::new();
    let catalog = Arc::new(LiveCatalog::new(
        config.rotations_dir.clone(),
        Box::new(|name: &str| std::env::var(name).ok()),
    ));
    if let Reload::Rejected(_) = catalog.reload(clock.now(), true) {
        // Not fatal: a pager that refuses to start over a typo is down when it
        // is needed most. Intake answers 503 (senders retry) until a fix lands.
        tracing::error!(dir = %config.rotations_dir.display(), "starting without a valid on-call configuration");
    }
    tokio::spawn(live::watch(
        catalog.clone(),
        clock.clone(),
        config.rotations_poll,
        stop.clone(),
    ));

    let throttle = Arc::new(Throttle::new(&config.intake));
    tokio::spawn(shrink_periodically(throttle.clone(), stop.clone()));

    if !config.signing_key_configured {
        tracing::warn!("ROUSE_SIGNING_KEY is not set: using a random key, so ack links and call URLs stop working after a restart and differ between replicas");
    }
    let signer = signer(&config, clock.now());
    let voice_signer = signer.clone();
    let voice_clock = clock.clone();
    let voice_token: channel::twilio::VoiceTokenFn = Arc::new(move |n: &channel::Notification| {
        voice_signer.sign(
            ack::token::Purpose::Voice,
            n.alert_id,
            escalation::engine::person_id(&n.recipient),
            voice_clock.now() + VOICE_TOKEN_LIFETIME,
        )
    });
    let channels = channel::registry::build(&config.channels, &config.public_url, voice_token)
        .map_err(RunError::Channels)?;
    let channels = Arc::new(channels);
    let engine = Arc::new(
        Engine::new(store.clone(), catalog.clone(), channels, clock.clone())
            .with_number_cap(config.pages_per_number_per_hour)
            .with_poll(config.engine_poll)
            .with_ack_links(escalation::engine::AckLinks {
                public_url: config.public_url.clone(),
                signer: signer.clone(),
                lifetime: http::ACK_LINK_LIFETIME,
            }),
    );
    let engine_task = tokio::spawn(engine.clone().run(stop.clone()));
    if store.backend() == store::Backend::Postgres {
        // Other replicas' commits wake this engine at once (polling stays).
        tokio::spawn(store::postgres::notify::listen(
            config.database_url.expose().to_owned(),
            engine.waker(),
            stop.clone(),
        ));
    }
    match watch::runner::Probes::from_config(&config.watch) {
        Ok(probes) => {
            let runner = Arc::new(watch::runner::Runner::new(
                store.clone(),
                catalog.clone(),
                clock.clone(),
                Arc::new(probes),
                config.watch.concurrency,
                u64::from(config.intake.storm_threshold),
                engine.waker(),
            ));
            tokio::spawn(runner.run(stop.clone()));
        }
        // Not fatal: paging for what others send matters more than watching.
        Err(e) => tracing::error!(error = %e, "watchers are off: cannot set up their probes"),
    }
    if let Some(pushover) = &config.channels.pushover {
        // Already validated when the channels were built.
        let (token, base) = pushover.validated().map_err(RunError::Channels)?;
        let poller = ack::push::ReceiptPoller {
            store: store.clone(),
            catalog: catalog.clone(),
            client: channel::pushover::PushoverClient::new(token, &base, channel::http::client()),
            clock: clock.clone(),
            every: chrono::TimeDelta::seconds(i64::from(pushover.poll_every)),
            engine_wake: engine.waker(),
        };
        tokio::spawn(poller.run(stop.clone()));
    }

    let (commits, writer) = GroupCommit::start(store.clone());
    let state = AppState::new(http::Shared {
        config: config.clone(),
        store: store.clone(),
        commits,
        catalog,
        throttle,
        clock,
        engine_wake: engine.waker(),
        signer,
        sms_help: http::sms_help_limiter(),
        http: channel::http::client(),
    });

    let tls_config = serve_tls(&config, stop.clone())?;
    let addr = listener.local_addr().map_err(RunError::Serve)?;
    let scheme = if tls_config.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, scheme, database = %config.database_display(), "rouse is listening");

    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });

    let router = http::router(state);
    let serve: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
        match tls_config {
            None => Box::pin(
                axum::serve(listener, router)
                    .with_graceful_shutdown(stop.clone().cancelled_owned())
                    .into_future(),
            ),
            Some(tls_config) => {
                let listener = tls::TlsListener::new(listener, tls_config, stop.clone())
                    .map_err(RunError::Serve)?;
                Box::pin(
                    axum::serve(listener, router)
                        .with_graceful_shutdown(stop.clone().cancelled_owned())
                        .into_future(),
                )
            }
        };
    let grace = config.shutdown_grace;
    if grace < config.channels.longest_timeout() {
        tracing::warn!(?grace, provider_timeout = ?config.channels.longest_timeout(), "shutdown_grace is shorter than a provider's timeout: sends still waiting at the end of the grace are recorded as unknown and not resent");
    }
    let cutter = engine.clone();
    let stopping = stop.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        tokio::time::sleep(cut_off_after(grace)).await;
        cutter.cut_off_sends();
    });
    let drained = async {
        serve.await.map_err(RunError::Serve)?;
        // The router (and with it every GroupCommit handle) is gone: the writer
        // commits what is queued and ends; the engine finishes its sends.
        let _ = writer.await;
        let _ = engine_task.await;
        Ok::<(), RunError>(())
    };
    tokio::pin!(drained);
    tokio::select! {
        result = &mut drained => result?,
        () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "shutdown grace period over; abandoning unfinished requests");
        }
    }
    store.close().await;
    tracing::info!("rouse stopped");
    Ok(())
}

/// The TLS configuration to serve with, or `None` for plain HTTP; starts
/// whatever keeps the certificate current (the file poller or ACME).
fn serve_tls(
    config: &Config,
    stop: CancellationToken,
) -> Result<Option<Arc<rustls::ServerConfig>>, RunError> {
    if let Some(acme) = config.tls.acme() {
        tracing::info!(domains = ?acme.domains, directory = %acme.directory_url, "serving HTTPS with a certificate from ACME");
        let store = tls::acme::start(&acme, stop)?;
        return Ok(Some(tls::server_config(store, true)));
    }
    let Some(files) = config.tls.files() else {
        return Ok(None);
    };
    // A certificate that does not load at start-up is fatal: serving plain
    // HTTP where HTTPS was asked for would send credentials in the clear.
    let loaded = files.load()?;
    tracing::info!(cert = %files.cert.display(), until = ?tls::files::not_after(&loaded.key), "serving HTTPS");
    let store = Arc::new(tls::CertStore::with(loaded.key.clone()));
    tokio::spawn(tls::files::watch(
        files,
        store.clone(),
        loaded,
        config.tls.reload_poll,
        stop,
    ));
    Ok(Some(tls::server_config(store, false)))
}

/// When, after SIGTERM, sends still waiting on a provider are cut off and
/// recorded as unknown: before the grace ends, leaving its last quarter (at
/// most 5 s) to write that down, so none is left leased for the next server
/// to send again.
fn cut_off_after(grace: std::time::Duration) -> std::time::Duration {
    grace.saturating_sub((grace / 4).min(std::time::Duration::from_secs(5)))
}

async fn shrink_periodically(throttle: Arc<Throttle>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => throttle.shrink(),
        }
    }
}

/// Opens the configured database and brings its schema up to date.
async fn open_migrated(config: &Config) -> Result<Arc<dyn store::Store>, RunError> {
    let store = store::open(
        config.database_url.expose(),
        config.database_max_connections,
    )
    .await
    .map_err(|source| RunError::Database {
        url: config.database_display(),
        source,
    })?;
    store.migrate().await.map_err(RunError::Migrate)?;
    Ok(store)
}

/// One server per SQLite file (see [`store::sqlite::ServeLock`]); nothing to
/// hold for PostgreSQL, which replicas share.
fn serve_lock(config: &Config) -> Result<Option<store::sqlite::ServeLock>, RunError> {
    let url = config.database_url.expose();
    if !url.starts_with("sqlite:") {
        return Ok(None);
    }
    Ok(store::sqlite::ServeLock::take(
        url,
        &config.database_display(),
    )?)
}

/// `rouse migrate`: applies migrations and exits. It takes the serving lock
/// too: a server migrates its database itself at start-up, and changing the
/// schema under a running one is never what was meant.
pub async fn migrate(config: &Config) -> Result<(), RunError> {
    let _lock = serve_lock(config)?;
    let store = open_migrated(config).await?;
    store.close().await;
    tracing::info!(database = %config.database_display(), "migrations applied");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT), whichever comes first.
///
/// The handlers are installed when this is called, not when the future is
/// first polled, so a SIGTERM that arrives right after start-up is never
/// missed (it would otherwise kill the process with the default action).
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let (mut term, mut int) = match (term, int) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(err), _) | (_, Err(err)) => {
                tracing::error!(error = %err, "cannot install signal handlers; stop with SIGKILL");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = int.recv() => tracing::info!("Ctrl-C received; shutting down"),
        }
    }
}

#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
