//! Reads a folder of rotation YAML files into one validated, immutable [`Catalog`], or
//! reports every problem found as `file:line:column: message`.

mod build;
pub mod live;
mod maintenance;
mod watchers;
mod yaml;

use crate::oncall::maintenance::MaintenanceWindow;
use crate::oncall::{EscalationPolicy, Person, Rotation, Schedule, Service};
use crate::watch::spec::{WatchKind, WatchdogSpec, WatcherSpec};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use build::{MAX_FILES, MAX_FILE_BYTES};

/// One problem in the configuration. `line == 0` means the problem concerns the file as a
/// whole (unreadable, too large) and is displayed as `file: message`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// All problems found, ordered by file, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The validated configuration. Every reference inside it resolves.
#[derive(Debug, Clone)]
pub struct Catalog {
    people: BTreeMap<String, Person>,
    rotations: BTreeMap<String, Arc<Rotation>>,
    schedules: BTreeMap<String, Schedule>,
    policies: BTreeMap<String, EscalationPolicy>,
    services: BTreeMap<String, Service>,
    /// Integration key -> (service id, integration index).
    /// SHA-256 of integration key -> (service id, integration index). Keyed by
    /// digest so a lookup's timing depends on the digest, never on how much of
    /// a guessed key matches a real one.
    keys: HashMap<[u8; 32], (String, usize)>,
    watchers: BTreeMap<String, WatcherSpec>,
    maintenance: Vec<MaintenanceWindow>,
    /// Services with a watchdog watcher: intake asks for every event, and
    /// most services have none.
    watchdog_services: BTreeSet<String>,
    fingerprint: u64,
    /// Where each person is defined, for warnings that point at them.
    person_places: BTreeMap<String, Place>,
    /// Person id -> their web UI password hash (PHC string, already parsed once).
    logins: BTreeMap<String, crate::config::Secret>,
}

/// A place in the rotation files: file, line, column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

impl Catalog {
    pub fn maintenance_windows(&self) -> &[MaintenanceWindow] {
        &self.maintenance
    }

    /// When the maintenance covering `service_id` at `t` ends, and why.
    pub fn maintenance_at(
        &self,
        service_id: &str,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Option<(chrono::DateTime<chrono::Utc>, &str)> {
        crate::oncall::maintenance::in_maintenance(&self.maintenance, service_id, t)
    }

    pub fn watchers(&self) -> impl Iterator<Item = &WatcherSpec> {
        self.watchers.values()
    }

    pub fn watcher(&self, id: &str) -> Option<&WatcherSpec> {
        self.watchers.get(id)
    }

    /// The ids of the service's watchdog watchers whose matchers `labels`
    /// satisfy: intake records such an event as their ping.
    pub fn watchdog_hits(
        &self,
        service_id: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<String> {
        if !self.watchdog_services.contains(service_id) {
            return Vec::new();
        }
        self.watchdogs(service_id)
            .filter(|(_, d)| d.matches(labels))
            .map(|(id, _)| id.to_owned())
            .collect()
    }

    /// The watchdog watchers of one service, with their ids: intake records
    /// a matching event as the watchdog's ping instead of opening an alert.
    pub fn watchdogs<'a>(
        &'a self,
        service_id: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a WatchdogSpec)> + 'a {
        self.watchers.values().filter_map(move |w| match &w.kind {
            WatchKind::Watchdog(d) if w.service == service_id => Some((w.id.as_str(), d)),
            _ => None,
        })
    }

    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.get(id)
    }

    /// The service and integration name owning exactly this key.
    pub fn service_for_key(&self, key: &str) -> Option<(&Service, &str)> {
        let (sid, i) = self.keys.get(&key_digest(key))?;
        let service = self.services.get(sid)?;
        Some((service, service.integrations.get(*i)?.name.as_str()))
    }

    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    pub fn policy(&self, id: &str) -> Option<&EscalationPolicy> {
        self.policies.get(id)
    }

    pub fn policies(&self) -> impl Iterator<Item = &EscalationPolicy> {
        self.policies.values()
    }

    pub fn schedule(&self, id: &str) -> Option<&Schedule> {
        self.schedules.get(id)
    }

    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.values()
    }

    pub fn rotation(&self, id: &str) -> Option<&Rotation> {
        self.rotations.get(id).map(Arc::as_ref)
    }

    pub fn rotations(&self) -> impl Iterator<Item = &Rotation> {
        self.rotations.values().map(Arc::as_ref)
    }

    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.get(id)
    }

    /// The person's web UI password hash, when they may log in with one.
    /// A [`crate::config::Secret`] so `Debug` of the catalog never prints it.
    pub fn password_hash(&self, person_id: &str) -> Option<&crate::config::Secret> {
        self.logins.get(person_id)
    }

    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.people.values()
    }

    /// Where the person `id` is defined (`people.yaml:3:9`).
    pub fn person_place(&self, id: &str) -> Option<&Place> {
        self.person_places.get(id)
    }

    /// FNV-1a over every file's path and content, in load order: equal catalogs loaded from
    /// equal files have equal fingerprints, across runs and builds.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Ids of schedules that some escalation policy targets directly, sorted.
    pub fn paged_schedule_ids(&self) -> Vec<String> {
        let ids: BTreeSet<&String> = self
            .policies
            .values()
            .flat_map(|p| p.steps.iter())
            .flat_map(|s| s.targets.iter())
            .filter_map(|t| match t {
                crate::oncall::Target::Schedule(id) => Some(id),
                _ => None,
            })
            .collect();
        ids.into_iter().cloned().collect()
    }
}

/// Loads every `*.yaml` / `*.yml` file directly inside `dir`, sorted by file name.
/// `env` resolves `key_env` integration keys (pass `&|k| std::env::var(k).ok()`).
pub fn load_dir(dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Catalog, Diagnostics> {
    let whole = |file: &Path, message: String| Diagnostic {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Diagnostics(vec![whole(dir, format!("cannot read directory: {e}"))]))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if paths.is_empty() {
        return Err(Diagnostics(vec![whole(
            dir,
            "no *.yaml or *.yml files found".into(),
        )]));
    }
    if paths.len() > MAX_FILES {
        return Err(Diagnostics(vec![whole(
            dir,
            format!("more than {MAX_FILES} files"),
        )]));
    }
    let mut files = Vec::with_capacity(paths.len());
    let mut problems = Vec::new();
    for p in paths {
        match std::fs::metadata(&p) {
            Ok(m) if m.len() > MAX_FILE_BYTES as u64 => {
                problems.push(whole(
                    &p,
                    format!("file is larger than {MAX_FILE_BYTES} bytes"),
                ));
                continue;
            }
            Err(e) => {
                problems.push(whole(&p, format!("cannot read file: {e}")));
                continue;
            }
            Ok(_) => {}
        }
        match std::fs::read_to_string(&p) {
            Ok(text) => files.push((p, text)),
            Err(e) => problems.push(whole(&p, format!("cannot read file: {e}"))),
        }
    }
    match load_files(&files, env) {
        Ok(c) if problems.is_empty() => Ok(c),
        Ok(_) => Err(Diagnostics(problems)),
        Err(Diagnostics(mut more)) => {
            problems.append(&mut more);
            problems.sort();
            Err(Diagnostics(problems))
        }
    }
}

/// Validates in-memory files (path, content) in the given order. Pure apart from `env`.
pub fn load_files(
    files: &[(PathBuf, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Catalog, Diagnostics> {
    build::build(files, env)
}

pub(crate) struct Parts {
    pub people: BTreeMap<String, Person>,
    pub rotations: BTreeMap<String, Arc<Rotation>>,
    pub schedules: BTreeMap<String, Schedule>,
    pub policies: BTreeMap<String, EscalationPolicy>,
    pub services: BTreeMap<String, Service>,
    pub keys: HashMap<[u8; 32], (String, usize)>,
    pub watchers: BTreeMap<String, WatcherSpec>,
    pub maintenance: Vec<MaintenanceWindow>,
    pub fingerprint: u64,
    pub person_places: BTreeMap<String, Place>,
    pub logins: BTreeMap<String, crate::config::Secret>,
}

impl From<Parts> for Catalog {
    fn from(p: Parts) -> Self {
        Catalog {
            people: p.people,
            rotations: p.rotations,
            schedules: p.schedules,
            policies: p.policies,
            services: p.services,
            keys: p.keys,
            watchdog_services: p
                .watchers
                .values()
                .filter(|w| matches!(w.kind, WatchKind::Watchdog(_)))
                .map(|w| w.service.clone())
                .collect(),
            watchers: p.watchers,
            maintenance: p.maintenance,
            fingerprint: p.fingerprint,
            person_places: p.person_places,
            logins: p.logins,
        }
    }
}

/// How integration keys are held in memory and looked up.
pub(crate) fn key_digest(key: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes()).into()
}
