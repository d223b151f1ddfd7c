//! The configuration while serving: the last good [`Catalog`], swapped
//! atomically when the rotations folder changes, kept when a change is bad.
//!
//! A pager that exits because someone pushed a typo is the outage this project
//! exists to prevent, so a rejected edit is logged with its `file:line:column`
//! problems, shown on `/readyz` and counted in metrics, and the previous good
//! configuration keeps routing alerts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{load_dir, Catalog};
use crate::clock::Clock;

type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

pub struct LiveCatalog {
    dir: PathBuf,
    env: Box<Env>,
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    current: Option<Arc<Catalog>>,
    loaded_at: Option<DateTime<Utc>>,
    rejected: Option<Rejected>,
    /// Digest of the folder's files at the last attempt, good or bad, so an
    /// unchanged bad edit is not re-parsed and re-logged every poll.
    seen: Option<[u8; 32]>,
    /// The files of the configuration in use, as they were when it loaded.
    files: Vec<LoadedFile>,
}

/// One file of the configuration in use, for the status page.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedFile {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub at: DateTime<Utc>,
    pub problems: Vec<String>,
}

/// What `/readyz` shows about the configuration.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogStatus {
    pub ok: bool,
    pub dir: String,
    pub loaded_at: Option<DateTime<Utc>>,
    pub fingerprint: Option<String>,
    /// The newest rejected edit, while it is still what the folder holds.
    pub rejected: Option<Rejected>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    Applied,
    Rejected(Vec<String>),
}

impl LiveCatalog {
    pub fn new(dir: impl Into<PathBuf>, env: Box<Env>) -> Self {
        Self {
            dir: dir.into(),
            env,
            state: RwLock::new(State::default()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration alerts are routed with; `None` until one valid load.
    pub fn current(&self) -> Option<Arc<Catalog>> {
        self.read().current.clone()
    }

    pub fn status(&self) -> CatalogStatus {
        let state = self.read();
        CatalogStatus {
            ok: state.current.is_some() && state.rejected.is_none(),
            dir: self.dir.display().to_string(),
            loaded_at: state.loaded_at,
            fingerprint: state
                .current
                .as_ref()
                .map(|c| format!("{:016x}", c.fingerprint())),
            rejected: state.rejected.clone(),
        }
    }

    /// The files the configuration in use was loaded from, with their digests.
    pub fn loaded_files(&self) -> Vec<LoadedFile> {
        self.read().files.clone()
    }

    /// Re-reads the folder; applies a valid change, keeps the old catalog on a bad one.
    pub fn reload(&self, now: DateTime<Utc>, force: bool) -> Reload {
        let digest = folder_digest(&self.dir);
        if !force && digest.is_some() && self.read().seen == digest {
            return Reload::Unchanged;
        }
        let result = load_dir(&self.dir, &*self.env);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.seen = digest;
        match result {
            Ok(catalog) => {
                let changed = state
                    .current
                    .as_ref()
                    .is_none_or(|c| c.fingerprint() != catalog.fingerprint());
                let was_rejected = state.rejected.take().is_some();
                state.current = Some(Arc::new(catalog));
                state.loaded_at = Some(now);
                state.files = file_digests(&self.dir);
                metrics::gauge!("rouse_catalog_valid").set(1.0);
                if changed || was_rejected || force {
                    metrics::counter!("rouse_catalog_reloads_total", "result" => "applied")
                        .increment(1);
                    tracing::info!(dir = %self.dir.display(), "on-call configuration loaded");
                    Reload::Applied
                } else {
                    Reload::Unchanged
                }
            }
            Err(diagnostics) => {
                let problems: Vec<String> = diagnostics.0.iter().map(|d| d.to_string()).collect();
                metrics::counter!("rouse_catalog_reloads_total", "result" => "rejected")
                    .increment(1);
                metrics::gauge!("rouse_catalog_valid").set(0.0);
                tracing::error!(
                    dir = %self.dir.display(),
                    problems = %problems.join("\n"),
                    keeping_previous = state.current.is_some(),
                    "on-call configuration rejected"
                );
                state.rejected = Some(Rejected {
                    at: now,
                    problems: problems.clone(),
                });
                Reload::Rejected(problems)
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-written (all
        // fields are assigned whole), so a poisoned lock is still usable.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Polls the folder (and reloads at once on SIGHUP) until `stop`.
///
/// Polling rather than inotify: it works the same on bind mounts, network
/// file systems and the symlink swaps git-sync and Kubernetes ConfigMaps do.
pub async fn watch(
    live: Arc<LiveCatalog>,
    clock: Arc<dyn Clock>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut hangup = hangup_signal();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let force = tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => false,
            Some(()) = recv_hangup(&mut hangup) => {
                tracing::info!("SIGHUP received; reloading the on-call configuration");
                true
            }
        };
        let live = live.clone();
        let now = clock.now();
        // Reading and parsing files is blocking work; keep it off the reactor.
        let _ = tokio::task::spawn_blocking(move || live.reload(now, force)).await;
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

#[cfg(unix)]
async fn recv_hangup(hangup: &mut Hangup) -> Option<()> {
    match hangup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn recv_hangup(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}

/// Each YAML file's name, SHA-256 and size, by name.
fn file_digests(dir: &Path) -> Vec<LoadedFile> {
    let mut files: Vec<LoadedFile> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            let digest = Sha256::digest(&bytes);
            Some(LoadedFile {
                name: path.file_name()?.to_string_lossy().into_owned(),
                sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
                bytes: bytes.len() as u64,
            })
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

/// SHA-256 over the names and bytes of the folder's YAML files; `None` if unreadable.
fn folder_digest(dir: &Path) -> Option<[u8; 32]> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    names.sort();
    let mut hasher = Sha256::new();
    for path in names {
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update(std::fs::read(&path).ok()?);
    }
    Some(hasher.finalize().into())
}
