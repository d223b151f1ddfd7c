//! Runtime configuration: built-in defaults, then an optional YAML file, then
//! `ROUSE_`-prefixed environment variables, validated once at start-up.
//!
//! Every setting has one name in the file (`listen`, `intake.max_body_bytes`)
//! and one in the environment (`ROUSE_LISTEN`, `ROUSE_INTAKE_MAX_BODY_BYTES`);
//! the table in `SETTINGS` is the single place both are declared, so the README,
//! the error messages and the loader cannot drift apart.
//!
//! Secrets (tokens, database passwords) are wrapped in [`Secret`], whose `Debug`
//! and `Display` never show the value, so a `tracing::debug!(?config)` is safe.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A value that must never reach a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The only way to read the value: the call site shows where a secret is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Limits that protect the intake endpoints from storms and hostile clients.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Largest request body accepted by any endpoint, in bytes.
    pub max_body_bytes: usize,
    /// Sustained events per second allowed per integration key.
    pub rate_per_key: u32,
    /// Burst allowance on top of the sustained rate.
    pub burst_per_key: u32,
    /// Open alerts per service after which new distinct alerts are folded into one storm alert.
    pub storm_threshold: u32,
}

/// Settings for Rouse's own watchers (`watchers:` in the on-call YAML says what to watch).
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Checks running at once, across all watchers.
    pub concurrency: usize,
    /// The IANA RDAP bootstrap file for DNS (RFC 9224), fetched at most weekly.
    pub rdap_bootstrap_url: String,
    /// Where the fetched bootstrap is kept with its age, so a restart does
    /// not fetch it again.
    pub bootstrap_cache: PathBuf,
}

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// May carry a password, hence a secret; [`Config::database_display`] shows it redacted.
    pub database_url: Secret,
    pub database_max_connections: u32,
    pub rotations_dir: PathBuf,
    /// How often the rotations folder is checked for edits (SIGHUP reloads at once).
    pub rotations_poll: Duration,
    /// Base URL people reach Rouse at, used to build ack links and provider callbacks.
    pub public_url: String,
    /// Bearer token for the alert API; `None` disables the admin endpoints.
    pub admin_token: Option<Secret>,
    /// How long in-flight requests and workers get to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How often the engine asks the database for due work when nothing woke
    /// it: the fallback behind intake's and (on PostgreSQL) other replicas'
    /// wake-ups.
    pub engine_poll: Duration,
    pub log_format: LogFormat,
    pub intake: IntakeConfig,
    pub watch: WatchConfig,
    /// Key that signs ack links and voice-call URLs. Replicas must share it;
    /// when unset a random one is made at start (links die with the process).
    pub signing_key: Secret,
    /// Whether `signing_key` came from the configuration (for a start-up warning).
    pub signing_key_configured: bool,
    /// The key before a rotation: links it signed keep working until
    /// `previous_signing_key_until` (default: start-up + the ack link lifetime).
    pub previous_signing_key: Option<Secret>,
    pub previous_signing_key_until: Option<chrono::DateTime<chrono::Utc>>,
    /// SMS and calls to one phone number per hour, whoever they are for.
    pub pages_per_number_per_hour: u32,
    /// Outbound channels (`channels:` in the file); unset ones use the console.
    pub channels: std::sync::Arc<crate::channel::ChannelsConfig>,
    /// HTTPS on the listener (`tls:`); off by default.
    pub tls: TlsConfig,
    /// The web UI's login (`ui.*`): see [`UiConfig`].
    pub ui: UiConfig,
}

/// Web UI sessions and login limits.
#[derive(Debug, Clone)]
pub struct UiConfig {
    /// A session unused this long is over; the next request must log in again.
    pub session_idle: Duration,
    /// Failed logins allowed per login name within [`UiConfig::failure_window`].
    pub login_failures: u32,
    pub failure_window: Duration,
    /// OpenID Connect login (`ui.oidc.*`); off unless an issuer is set.
    pub oidc: OidcConfig,
}

/// OpenID Connect login for the web UI: the provider and Rouse's client there.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer URL; discovery reads `{issuer}/.well-known/openid-configuration`.
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    /// Unset for a public client (PKCE alone).
    pub client_secret: Option<Secret>,
    /// The ID-token claim that names the person: `email` matches a person's
    /// email, `sub` and `preferred_username` match their id.
    pub claim: OidcClaim,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
}

impl OidcConfig {
    pub fn enabled(&self) -> bool {
        self.issuer.is_some()
    }
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            client_id: None,
            client_secret: None,
            claim: OidcClaim::Email,
            scopes: vec!["email".to_owned()],
        }
    }
}

/// The ID-token claims `ui.oidc.claim` may name (the standard ones the
/// OIDC client checks the types of; a free-form claim could be anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcClaim {
    Email,
    Sub,
    PreferredUsername,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &self.database_display())
            .field("database_max_connections", &self.database_max_connections)
            .field("rotations_dir", &self.rotations_dir)
            .field("rotations_poll", &self.rotations_poll)
            .field("public_url", &self.public_url)
            .field("admin_token", &self.admin_token)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("engine_poll", &self.engine_poll)
            .field("log_format", &self.log_format)
            .field("intake", &self.intake)
            .field("watch", &self.watch)
            .field("signing_key", &self.signing_key)
            .field("previous_signing_key", &self.previous_signing_key)
            .field(
                "previous_signing_key_until",
                &self.previous_signing_key_until,
            )
            .field("pages_per_number_per_hour", &self.pages_per_number_per_hour)
            .field("channels", &self.channels)
            .field("tls", &self.tls)
            .field("ui", &self.ui)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: Secret::new("sqlite://rouse.db"),
            database_max_connections: 16,
            rotations_dir: PathBuf::from("rotations"),
            rotations_poll: Duration::from_secs(2),
            public_url: "http://127.0.0.1:8080".to_owned(),
            admin_token: None,
            shutdown_grace: Duration::from_secs(20),
            engine_poll: Duration::from_secs(1),
            log_format: LogFormat::Text,
            intake: IntakeConfig {
                max_body_bytes: 1024 * 1024,
                rate_per_key: 500,
                burst_per_key: 2000,
                storm_threshold: 200,
            },
            watch: WatchConfig {
                concurrency: 8,
                rdap_bootstrap_url: "https://data.iana.org/rdap/dns.json".to_owned(),
                bootstrap_cache: PathBuf::from("rdap-bootstrap.json"),
            },
            signing_key: Secret::new(random_key()),
            signing_key_configured: false,
            previous_signing_key: None,
            previous_signing_key_until: None,
            pages_per_number_per_hour: 20,
            channels: Default::default(),
            tls: TlsConfig::default(),
            ui: UiConfig {
                session_idle: Duration::from_secs(8 * 3600),
                login_failures: 5,
                failure_window: Duration::from_secs(15 * 60),
                oidc: OidcConfig::default(),
            },
        }
    }
}

impl Config {
    /// The database URL with any password replaced, for logs and `/readyz`.
    pub fn database_display(&self) -> String {
        redact_url_password(self.database_url.expose())
    }

    /// Defaults, then `file` (if any), then the environment given by `env`.
    ///
    /// `env` is injected so tests do not have to mutate the process environment.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut values: BTreeMap<&'static str, (String, Origin)> = BTreeMap::new();
        let mut channels = crate::channel::ChannelsConfig::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                setting: "--config".to_owned(),
                message: format!("cannot read {}: {e}", path.display()),
            })?;
            // The settings first: a YAML mistake anywhere in the file (a
            // duplicate key, bad syntax) is reported there with its place,
            // not blamed on the channel block read afterwards.
            for (name, value) in parse_file(&text).map_err(|e| e.in_file(path, ""))? {
                values.insert(name, (value, Origin::File));
            }
            channels = parse_channels(&text).map_err(|e| e.in_file(path, "channels: "))?;
        }
        for setting in SETTINGS {
            if let Some(value) = env(setting.env) {
                values.insert(setting.file, (value, Origin::Env));
            }
        }
        let mut config = Config::default();
        crate::channel::registry::apply_env(&mut channels, env);
        // Unless set, the grace outlasts every provider's timeout, so a send
        // started just before SIGTERM can finish and be recorded as it went.
        config.shutdown_grace = default_grace(channels.longest_timeout());
        config.channels = std::sync::Arc::new(channels);
        for (name, (value, origin)) in values {
            let Some(setting) = SETTINGS.iter().find(|s| s.file == name) else {
                continue;
            };
            (setting.apply)(&mut config, value.trim()).map_err(|message| ConfigError {
                setting: match origin {
                    Origin::File => setting.file.to_owned(),
                    Origin::Env => setting.env.to_owned(),
                },
                message,
            })?;
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database_url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError {
                setting: "database_url".to_owned(),
                message: "must start with sqlite:, postgres:// or postgresql://".to_owned(),
            });
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(ConfigError {
                setting: "public_url".to_owned(),
                message: format!("must be an http(s) URL, got {:?}", self.public_url),
            });
        }
        self.tls.validate()?;
        if self.ui.oidc.enabled() && self.ui.oidc.client_id.is_none() {
            return Err(ConfigError {
                setting: "ui.oidc.client_id".to_owned(),
                message: "is required when ui.oidc.issuer is set".to_owned(),
            });
        }
        Ok(())
    }
}

/// `shutdown_grace` when not set: 20 s, or 5 s more than the longest
/// provider timeout if that is longer (an SMTP `timeout_secs` of 60 gives 65 s).
pub fn default_grace(longest_provider_timeout: Duration) -> Duration {
    (longest_provider_timeout + Duration::from_secs(5)).max(Duration::from_secs(20))
}

/// A setting that could not be used, named the way the operator wrote it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

#[derive(Clone, Copy)]
enum Origin {
    File,
    Env,
}

/// One configurable value: its file name, its environment name, how to apply it.
pub struct Setting {
    pub file: &'static str,
    pub env: &'static str,
    pub help: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

pub const SETTINGS: &[Setting] = &[
    Setting {
        file: "listen",
        env: "ROUSE_LISTEN",
        help: "address and port to serve HTTP on (127.0.0.1:8080)",
        apply: |c, v| {
            c.listen = v
                .parse()
                .map_err(|_| format!("expected host:port such as 0.0.0.0:8080, got {v:?}"))?;
            Ok(())
        },
    },
    Setting {
        file: "database_url",
        env: "ROUSE_DATABASE_URL",
        help: "sqlite://rouse.db (created if missing) or postgres://user:pass@host/db",
        apply: |c, v| {
            c.database_url = Secret::new(v);
            Ok(())
        },
    },
    Setting {
        file: "database_max_connections",
        env: "ROUSE_DATABASE_MAX_CONNECTIONS",
        help: "connection pool size (16)",
        apply: |c, v| {
            c.database_max_connections = parse_positive(v)?;
            Ok(())
        },
    },
    Setting {
        file: "rotations_dir",
        env: "ROUSE_ROTATIONS_DIR",
        help: "folder of on-call YAML files (./rotations)",
        apply: |c, v| {
            c.rotations_dir = PathBuf::from(v);
            Ok(())
        },
    },
    Setting {
        file: "rotations_poll",
        env: "ROUSE_ROTATIONS_POLL",
        help: "how often the rotations folder is checked for edits (2s)",
        apply: |c, v| {
            let every = parse_duration(v)?;
            if every.is_zero() {
                return Err("must be longer than zero".to_owned());
            }
            c.rotations_poll = every;
            Ok(())
        },
    },
    Setting {
        file: "public_url",
        env: "ROUSE_PUBLIC_URL",
        help: "base URL people and providers reach Rouse at (http://127.0.0.1:8080)",
        apply: |c, v| {
            c.public_url = v.trim_end_matches('/').to_owned();
            Ok(())
        },
    },
    Setting {
        file: "admin_token",
        env: "ROUSE_ADMIN_TOKEN",
        help: "bearer token for the alert API (unset: API disabled)",
        apply: |c, v| {
            if v.len() < 16 {
                return Err("must be at least 16 characters".to_owned());
            }
            c.admin_token = Some(Secret::new(v));
            Ok(())
        },
    },
    Setting {
        file: "signing_key",
        env: "ROUSE_SIGNING_KEY",
        help: "secret that signs ack links and call URLs; share it between replicas (random)",
        apply: |c, v| {
            if v.len() < 32 {
                return Err("must be at least 32 characters".to_owned());
            }
            c.signing_key = Secret::new(v);
            c.signing_key_configured = true;
            Ok(())
        },
    },
    Setting {
        file: "previous_signing_key",
        env: "ROUSE_PREVIOUS_SIGNING_KEY",
        help: "the signing key before a rotation; links it signed keep working for a grace period (unset)",
        apply: |c, v| {
            if v.len() < 32 {
                return Err("must be at least 32 characters".to_owned());
            }
            c.previous_signing_key = Some(Secret::new(v));
            Ok(())
        },
    },
    Setting {
        file: "previous_signing_key_until",
        env: "ROUSE_PREVIOUS_SIGNING_KEY_UNTIL",
        help: "RFC 3339 instant the previous signing key stops working (start-up + 24h)",
        apply: |c, v| {
            let until = chrono::DateTime::parse_from_rfc3339(v)
                .map_err(|e| format!("not an RFC 3339 instant: {e}"))?;
            c.previous_signing_key_until = Some(until.with_timezone(&chrono::Utc));
            Ok(())
        },
    },
    Setting {
        file: "pages_per_number_per_hour",
        env: "ROUSE_PAGES_PER_NUMBER_PER_HOUR",
        help: "SMS + calls to one phone number per hour; more wait (20)",
        apply: |c, v| {
            c.pages_per_number_per_hour = parse_positive(v)?;
            Ok(())
        },
    },
    Setting {
        file: "engine_poll",
        env: "ROUSE_ENGINE_POLL",
        help: "how often the engine checks for due work nobody woke it for (1s)",
        apply: |c, v| {
            let every = parse_duration(v)?;
            if every.is_zero() {
                return Err("must be longer than zero".to_owned());
            }
            c.engine_poll = every;
            Ok(())
        },
    },
    Setting {
        file: "shutdown_grace",
        env: "ROUSE_SHUTDOWN_GRACE",
        help: "time in-flight work gets after SIGTERM (20s)",
        apply: |c, v| {
            c.shutdown_grace = parse_duration(v)?;
            Ok(())
        },
    },
    Setting {
        file: "log_format",
        env: "ROUSE_LOG_FORMAT",
        help: "text or json (text)",
        apply: |c, v| {
            c.log_format = match v {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(format!("expected text or json, got {v:?}")),
            };
            Ok(())
        },
    },
    Setting {
        file: "intake.max_body_bytes",
        env: "ROUSE_INTAKE_MAX_BODY_BYTES",
        help: "largest accepted request body in bytes (1048576)",
        apply: |c, v| {
            c.intake.max_body_bytes = parse_positive::<usize>(v)?;
            Ok(())
        },
    },
    Setting {
        file: "intake.rate_per_key",
        env: "ROUSE_INTAKE_RATE_PER_KEY",
        help: "sustained events/second per integration key (500)",
        apply: |c, v| {
            c.intake.rate_per_key = parse_positive(v)?;
            Ok(())
        },
    },
    Setting {
        file: "intake.burst_per_key",
        env: "ROUSE_INTAKE_BURST_PER_KEY",
        help: "burst of events allowed per integration key (2000)",
        apply: |c, v| {
            c.intake.burst_per_key = parse_positive(v)?;
            Ok(())
        },
    },
    Setting {
        file: "intake.storm_threshold",
        env: "ROUSE_INTAKE_STORM_THRESHOLD",
        help: "open alerts per service before new ones fold into a storm alert (200)",
        apply: |c, v| {
            c.intake.storm_threshold = parse_positive(v)?;
            Ok(())
        },
    },
    Setting {
        file: "watch.concurrency",
        env: "ROUSE_WATCH_CONCURRENCY",
        help: "watcher checks running at once (8)",
        apply: |c, v| {
            c.watch.concurrency = parse_positive(v)?;
            Ok(())
        },
    },
    Setting {
        file: "watch.rdap_bootstrap_url",
        env: "ROUSE_WATCH_RDAP_BOOTSTRAP_URL",
        help: "IANA RDAP bootstrap for domain watchers (https://data.iana.org/rdap/dns.json)",
        apply: |c, v| {
            match reqwest::Url::parse(v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => return Err(format!("expected an http(s) URL, got {v:?}")),
            }
            c.watch.rdap_bootstrap_url = v.to_owned();
            Ok(())
        },
    },
    Setting {
        file: "watch.bootstrap_cache",
        env: "ROUSE_WATCH_BOOTSTRAP_CACHE",
        help: "file keeping the fetched RDAP bootstrap and its age (rdap-bootstrap.json)",
        apply: |c, v| {
            c.watch.bootstrap_cache = PathBuf::from(v);
            Ok(())
        },
    },
    // --- web UI login ---
    Setting {
        file: "ui.session_idle",
        env: "ROUSE_UI_SESSION_IDLE",
        help: "a web UI session unused this long is over (8h)",
        apply: |c, v| {
            let idle = parse_duration(v)?;
            if idle < Duration::from_secs(60) {
                return Err("must be at least 1m".to_owned());
            }
            c.ui.session_idle = idle;
            Ok(())
        },
    },
    Setting {
        file: "ui.login_failures",
        env: "ROUSE_UI_LOGIN_FAILURES",
        help: "failed web UI logins per login name before it is refused for ui.failure_window (5)",
        apply: |c, v| {
            c.ui.login_failures = parse_positive(v)?;
            Ok(())
        },
    },
    Setting {
        file: "ui.failure_window",
        env: "ROUSE_UI_FAILURE_WINDOW",
        help: "how far back failed web UI logins count (15m)",
        apply: |c, v| {
            let window = parse_duration(v)?;
            if window.is_zero() {
                return Err("must be longer than zero".to_owned());
            }
            c.ui.failure_window = window;
            Ok(())
        },
    },
    // OpenID Connect login for the web UI (src/web/oidc.rs).
    Setting {
        file: "ui.oidc.issuer",
        env: "ROUSE_UI_OIDC_ISSUER",
        help: "OpenID Connect issuer URL for web UI login (unset: no SSO)",
        apply: |c, v| {
            match reqwest::Url::parse(v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => return Err(format!("expected an http(s) URL, got {v:?}")),
            }
            c.ui.oidc.issuer = Some(v.to_owned());
            Ok(())
        },
    },
    Setting {
        file: "ui.oidc.client_id",
        env: "ROUSE_UI_OIDC_CLIENT_ID",
        help: "Rouse's client id at the OpenID provider",
        apply: |c, v| {
            c.ui.oidc.client_id = Some(v.to_owned());
            Ok(())
        },
    },
    Setting {
        file: "ui.oidc.client_secret",
        env: "ROUSE_UI_OIDC_CLIENT_SECRET",
        help: "Rouse's client secret at the OpenID provider (unset: a public client)",
        apply: |c, v| {
            c.ui.oidc.client_secret = Some(Secret::new(v));
            Ok(())
        },
    },
    Setting {
        file: "ui.oidc.claim",
        env: "ROUSE_UI_OIDC_CLAIM",
        help: "ID-token claim naming the person: email (their email), sub or preferred_username (their id) (email)",
        apply: |c, v| {
            c.ui.oidc.claim = match v {
                "email" => OidcClaim::Email,
                "sub" => OidcClaim::Sub,
                "preferred_username" => OidcClaim::PreferredUsername,
                _ => {
                    return Err(format!(
                        "expected email, sub or preferred_username, got {v:?}"
                    ))
                }
            };
            Ok(())
        },
    },
    Setting {
        file: "ui.oidc.scopes",
        env: "ROUSE_UI_OIDC_SCOPES",
        help: "scopes asked for besides openid, space- or comma-separated (email)",
        apply: |c, v| {
            c.ui.oidc.scopes = v
                .split([' ', ','])
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "openid")
                .map(str::to_owned)
                .collect();
            Ok(())
        },
    },
    // HTTPS (src/tls/): PEM files or ACME.
    Setting {
        file: "tls.cert",
        env: "ROUSE_TLS_CERT",
        help: "PEM certificate chain to serve HTTPS with, re-read when it changes (unset: plain HTTP)",
        apply: |c, v| {
            c.tls.cert = Some(PathBuf::from(v));
            Ok(())
        },
    },
    Setting {
        file: "tls.key",
        env: "ROUSE_TLS_KEY",
        help: "PEM private key of tls.cert, re-read with it",
        apply: |c, v| {
            c.tls.key = Some(PathBuf::from(v));
            Ok(())
        },
    },
    Setting {
        file: "tls.reload_poll",
        env: "ROUSE_TLS_RELOAD_POLL",
        help: "how often tls.cert and tls.key are checked for a renewal (10s)",
        apply: |c, v| {
            let every = parse_duration(v)?;
            if every.is_zero() {
                return Err("must be longer than zero".to_owned());
            }
            c.tls.reload_poll = every;
            Ok(())
        },
    },
    Setting {
        file: "tls.acme.domains",
        env: "ROUSE_TLS_ACME_DOMAINS",
        help: "names to get an ACME certificate for, a YAML list or comma-separated (unset: no ACME)",
        apply: |c, v| {
            c.tls.acme_domains = parse_list(v)?;
            Ok(())
        },
    },
    Setting {
        file: "tls.acme.contact",
        env: "ROUSE_TLS_ACME_CONTACT",
        help: "mailto: URLs the CA writes to about expiry, a list or comma-separated",
        apply: |c, v| {
            let contact = parse_list(v)?;
            if let Some(bad) = contact.iter().find(|m| !m.starts_with("mailto:")) {
                return Err(format!("expected mailto: URLs, got {bad:?}"));
            }
            c.tls.acme_contact = contact;
            Ok(())
        },
    },
    Setting {
        file: "tls.acme.directory_url",
        env: "ROUSE_TLS_ACME_DIRECTORY_URL",
        help: "the CA's ACME directory (Let's Encrypt production)",
        apply: |c, v| {
            match reqwest::Url::parse(v) {
                Ok(u) if u.scheme() == "https" => {}
                _ => return Err(format!("expected an https URL, got {v:?}")),
            }
            c.tls.acme_directory_url = v.to_owned();
            Ok(())
        },
    },
    Setting {
        file: "tls.acme.cache_dir",
        env: "ROUSE_TLS_ACME_CACHE_DIR",
        help: "folder keeping the ACME account key and certificate (acme)",
        apply: |c, v| {
            c.tls.acme_cache_dir = PathBuf::from(v);
            Ok(())
        },
    },
    Setting {
        file: "tls.acme.ca_file",
        env: "ROUSE_TLS_ACME_CA_FILE",
        help: "extra PEM root to trust for the CA's API, for a private CA (unset)",
        apply: |c, v| {
            c.tls.acme_ca_file = Some(PathBuf::from(v));
            Ok(())
        },
    },
];

/// `[a, b]` (a YAML list arrives as JSON) or `a,b` (the environment).
fn parse_list(v: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = if v.starts_with('[') {
        serde_json::from_str(v).map_err(|_| format!("expected a list of strings, got {v}"))?
    } else {
        v.split(',').map(|s| s.trim().to_owned()).collect()
    };
    let items: Vec<String> = items.into_iter().filter(|s| !s.is_empty()).collect();
    if items.is_empty() {
        return Err("the list is empty".to_owned());
    }
    Ok(items)
}

/// `tls:` — HTTPS on Rouse's own listener, from PEM files (`cert` + `key`)
/// or from an ACME CA (`acme`); neither means plain HTTP.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub reload_poll: Duration,
    pub acme_domains: Vec<String>,
    pub acme_contact: Vec<String>,
    pub acme_directory_url: String,
    pub acme_cache_dir: PathBuf,
    pub acme_ca_file: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            reload_poll: Duration::from_secs(10),
            acme_domains: Vec::new(),
            acme_contact: Vec::new(),
            acme_directory_url: crate::tls::acme::LETS_ENCRYPT.to_owned(),
            acme_cache_dir: PathBuf::from("acme"),
            acme_ca_file: None,
        }
    }
}

impl TlsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |setting: &str, message: &str| ConfigError {
            setting: setting.to_owned(),
            message: message.to_owned(),
        };
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(fail("tls.key", "tls.cert is set, so tls.key must be too")),
            (None, Some(_)) => Err(fail("tls.cert", "tls.key is set, so tls.cert must be too")),
            (Some(_), Some(_)) if !self.acme_domains.is_empty() => Err(fail(
                "tls.acme.domains",
                "use either tls.cert/tls.key or tls.acme, not both",
            )),
            _ => Ok(()),
        }
    }

    /// Whether Rouse itself serves HTTPS (for `Secure` cookies and the like).
    pub fn enabled(&self) -> bool {
        self.files().is_some() || !self.acme_domains.is_empty()
    }

    /// The ACME settings, when the certificate comes from a CA.
    pub fn acme(&self) -> Option<crate::tls::acme::AcmeSettings> {
        if self.acme_domains.is_empty() {
            return None;
        }
        Some(crate::tls::acme::AcmeSettings {
            domains: self.acme_domains.clone(),
            contact: self.acme_contact.clone(),
            directory_url: self.acme_directory_url.clone(),
            cache_dir: self.acme_cache_dir.clone(),
            ca_file: self.acme_ca_file.clone(),
        })
    }

    /// The PEM pair, when HTTPS is served from files.
    pub fn files(&self) -> Option<crate::tls::files::PemFiles> {
        Some(crate::tls::files::PemFiles {
            cert: self.cert.clone()?,
            key: self.key.clone()?,
        })
    }
}

fn parse_positive<T>(v: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + Default,
{
    match v.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("expected a positive whole number, got {v:?}")),
    }
}

/// `30s`, `5m`, `1h30m`, `2d`: the form people write in YAML and env vars.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(rouse::config::parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert!(rouse::config::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v)
        .map_err(|e| format!("expected a duration such as 30s, 5m or 1h, got {v:?} ({e})"))
}

/// The config file is a flat or nested YAML mapping; nested keys are joined with
/// dots so `intake: {max_body_bytes: 1}` and `intake.max_body_bytes: 1` agree.
fn parse_file(text: &str) -> Result<Vec<(&'static str, String)>, FileError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Node {
        Map(BTreeMap<String, Node>),
        Scalar(serde_json::Value),
    }
    if text.len() > 1 << 20 {
        return Err(FileError::whole("the file is larger than 1 MiB"));
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: 8, max_nodes: 10_000 },
        with_snippet: false,
    };
    let root: Option<BTreeMap<String, Node>> =
        serde_saphyr::from_str_with_options(text, options).map_err(FileError::yaml)?;
    let mut out = Vec::new();
    let mut stack: Vec<(String, Node)> = root.unwrap_or_default().into_iter().rev().collect();
    while let Some((key, node)) = stack.pop() {
        match node {
            // Channel blocks are structured; `parse_channels` reads them.
            _ if key == "channels" => {}
            Node::Map(map) => {
                for (k, v) in map.into_iter().rev() {
                    stack.push((format!("{key}.{k}"), v));
                }
            }
            Node::Scalar(value) => {
                let Some(setting) = SETTINGS.iter().find(|s| s.file == key) else {
                    return Err(FileError::whole(format!("unknown setting {key:?}")));
                };
                let text = match value {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => continue,
                    other => other.to_string(),
                };
                out.push((setting.file, text));
            }
        }
    }
    Ok(out)
}

/// The `channels:` block, read with its own types (unknown keys rejected).
fn parse_channels(text: &str) -> Result<crate::channel::ChannelsConfig, FileError> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        channels: Option<crate::channel::ChannelsConfig>,
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: 8, max_nodes: 10_000 },
        with_snippet: false,
    };
    let file: Option<File> =
        serde_saphyr::from_str_with_options(text, options).map_err(FileError::yaml)?;
    Ok(file.and_then(|f| f.channels).unwrap_or_default())
}

/// A problem in the configuration file, with its place when it has one.
#[derive(Debug)]
struct FileError {
    /// Line and column, 1-based.
    at: Option<(u64, u64)>,
    message: String,
}

impl FileError {
    fn whole(message: impl Into<String>) -> Self {
        Self {
            at: None,
            message: message.into(),
        }
    }

    /// In our words (see [`crate::yaml::message`]), with its place.
    fn yaml(e: serde_saphyr::Error) -> Self {
        let at = e
            .without_snippet()
            .location()
            .map(|l| (l.line(), l.column()))
            .filter(|(line, _)| *line > 0);
        let message = crate::yaml::message(&e);
        Self { at, message }
    }

    /// `rouse.yaml:3:1: duplicate key `listen``, as a [`ConfigError`].
    fn in_file(self, path: &Path, section: &str) -> ConfigError {
        let setting = match self.at {
            Some((line, column)) => format!("{}:{line}:{column}", path.display()),
            None => path.display().to_string(),
        };
        ConfigError {
            setting,
            message: format!("{section}{}", self.message),
        }
    }
}

/// 256 random bits, hex: uuid v4 draws from the OS's CSPRNG.
fn random_key() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn redact_url_password(url: &str) -> String {
    // scheme://user:password@host → scheme://user:***@host
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_give_a_local_instance() {
        let c = Config::load(None, &env_of(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url.expose(), "sqlite://rouse.db");
        assert_eq!(c.rotations_dir, PathBuf::from("rotations"));
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rouse.yaml");
        std::fs::write(
            &path,
            "listen: 0.0.0.0:9000\nintake:\n  max_body_bytes: 4096\nrotations_dir: /etc/rouse\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), &env_of(&[("ROUSE_LISTEN", "127.0.0.1:1")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:1");
        assert_eq!(c.intake.max_body_bytes, 4096);
        assert_eq!(c.rotations_dir, PathBuf::from("/etc/rouse"));
    }

    #[test]
    fn oidc_settings_from_file_and_environment_and_the_secret_stays_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rouse.yaml");
        std::fs::write(
            &path,
            "ui:\n  oidc:\n    issuer: https://login.example.com/realms/ops\n    \
             client_id: rouse\n    claim: preferred_username\n    scopes: openid email, profile\n",
        )
        .unwrap();
        let env = env_of(&[("ROUSE_UI_OIDC_CLIENT_SECRET", "oidc-s3cret")]);
        let c = Config::load(Some(&path), &env).unwrap();
        let oidc = &c.ui.oidc;
        assert!(oidc.enabled());
        assert_eq!(
            oidc.issuer.as_deref(),
            Some("https://login.example.com/realms/ops")
        );
        assert_eq!(oidc.client_id.as_deref(), Some("rouse"));
        assert_eq!(oidc.claim, OidcClaim::PreferredUsername);
        assert_eq!(oidc.scopes, ["email", "profile"]);
        assert_eq!(
            oidc.client_secret.as_ref().map(Secret::expose),
            Some("oidc-s3cret")
        );
        assert!(!format!("{c:?}").contains("oidc-s3cret"));
        assert!(!Config::load(None, &env_of(&[])).unwrap().ui.oidc.enabled());

        let no_client = env_of(&[("ROUSE_UI_OIDC_ISSUER", "https://login.example.com")]);
        let err = Config::load(None, &no_client).unwrap_err();
        assert_eq!(err.setting, "ui.oidc.client_id");
        let bad_claim = env_of(&[("ROUSE_UI_OIDC_CLAIM", "groups")]);
        assert_eq!(
            Config::load(None, &bad_claim).unwrap_err().setting,
            "ROUSE_UI_OIDC_CLAIM"
        );
        let bad_issuer = env_of(&[("ROUSE_UI_OIDC_ISSUER", "login.example.com")]);
        assert_eq!(
            Config::load(None, &bad_issuer).unwrap_err().setting,
            "ROUSE_UI_OIDC_ISSUER"
        );
    }

    #[test]
    fn a_bad_setting_is_named_in_one_sentence() {
        let err = Config::load(None, &env_of(&[("ROUSE_LISTEN", "nope")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("invalid configuration: ROUSE_LISTEN: "),
            "{text}"
        );
        assert!(!text.contains('\n'));
        let err = Config::load(None, &env_of(&[("ROUSE_SHUTDOWN_GRACE", "soon")])).unwrap_err();
        assert_eq!(err.setting, "ROUSE_SHUTDOWN_GRACE");
        let err = Config::load(None, &env_of(&[("ROUSE_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(err.setting, "database_url");
    }

    #[test]
    fn the_default_grace_outlasts_every_provider_timeout() {
        let c = Config::load(None, &env_of(&[])).unwrap();
        assert_eq!(c.shutdown_grace, Duration::from_secs(20));
        assert!(c.shutdown_grace > c.channels.longest_timeout());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rouse.yaml");
        std::fs::write(
            &path,
            "channels:\n  email: {host: 127.0.0.1, tls: none, from: r@localhost, timeout_secs: 60}\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), &env_of(&[])).unwrap();
        assert_eq!(c.shutdown_grace, Duration::from_secs(65));
        let c = Config::load(Some(&path), &env_of(&[("ROUSE_SHUTDOWN_GRACE", "3s")])).unwrap();
        assert_eq!(
            c.shutdown_grace,
            Duration::from_secs(3),
            "an explicit setting wins"
        );
    }

    #[test]
    fn unknown_file_settings_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rouse.yaml");
        std::fs::write(&path, "lisen: 0.0.0.0:9000\n").unwrap();
        let err = Config::load(Some(&path), &env_of(&[])).unwrap_err();
        assert!(err.message.contains("unknown setting \"lisen\""), "{err}");
    }

    #[test]
    fn a_duplicate_key_names_the_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rouse.yaml");
        std::fs::write(
            &path,
            "listen: 0.0.0.0:9000\nchannels: {}\nlisten: 0.0.0.0:9001\n",
        )
        .unwrap();
        let err = Config::load(Some(&path), &env_of(&[]))
            .unwrap_err()
            .to_string();
        let at = format!("{}:3:1", path.display());
        assert_eq!(
            err,
            format!("invalid configuration: {at}: duplicate key `listen`"),
        );
        assert!(!err.contains("DuplicateKeyPolicy"), "{err}");
        // Inside a channel block, too: the place is the second key.
        std::fs::write(
            &path,
            "channels:\n  webhook:\n    url: https://a.example\n    url: https://b.example\n",
        )
        .unwrap();
        let err = Config::load(Some(&path), &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{}:4:", path.display())), "{err}");
        assert!(err.contains("duplicate key `url`"), "{err}");
        assert!(!err.contains("Options"), "{err}");
    }

    #[test]
    fn channel_blocks_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rouse.yaml");
        std::fs::write(
            &path,
            "channels:\n  twilio:\n    account_sid: AC123\n    from: \"+15005550006\"\n  slack:\n    webhook_url: https://hooks.slack.com/services/T/B/X\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            &env_of(&[
                ("ROUSE_TWILIO_AUTH_TOKEN", "tok-123"),
                ("ROUSE_SLACK_SIGNING_SECRET", "slack-signing-456"),
            ]),
        )
        .unwrap();
        let slack = c.channels.slack.as_ref().unwrap();
        assert_eq!(
            slack.signing_secret.as_ref().map(Secret::expose),
            Some("slack-signing-456")
        );
        assert!(!format!("{c:?}").contains("slack-signing-456"));
        let twilio = c.channels.twilio.as_ref().unwrap();
        assert_eq!(twilio.account_sid, "AC123");
        assert_eq!(
            twilio.auth_token.as_ref().map(Secret::expose),
            Some("tok-123")
        );
        assert!(!format!("{c:?}").contains("tok-123"));
        std::fs::write(&path, "channels:\n  twillio: {}\n").unwrap();
        let err = Config::load(Some(&path), &env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("twillio"), "{err}");
    }

    #[test]
    fn push_settings_come_from_the_file_and_their_tokens_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rouse.yaml");
        std::fs::write(
            &path,
            "channels:\n  pushover:\n    retry: 45\n  ntfy:\n    base_url: https://ntfy.example\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            &env_of(&[
                ("ROUSE_PUSHOVER_TOKEN", "pushover-app-token-123"),
                ("ROUSE_NTFY_TOKEN", "tk_ntfy-456"),
            ]),
        )
        .unwrap();
        let pushover = c.channels.pushover.as_ref().unwrap();
        assert_eq!(
            (pushover.retry, pushover.expire, pushover.poll_every),
            (45, 3600, 10)
        );
        assert_eq!(
            pushover.token.as_ref().map(Secret::expose),
            Some("pushover-app-token-123")
        );
        let ntfy = c.channels.ntfy.as_ref().unwrap();
        assert_eq!(ntfy.base_url.as_deref(), Some("https://ntfy.example"));
        assert_eq!(ntfy.token.as_ref().map(Secret::expose), Some("tk_ntfy-456"));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("pushover-app-token-123") && !shown.contains("tk_ntfy"),
            "{shown}"
        );
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::load(
            None,
            &env_of(&[
                ("ROUSE_ADMIN_TOKEN", "super-secret-token-123"),
                ("ROUSE_DATABASE_URL", "postgres://rouse:hunter2@db/rouse"),
                (
                    "ROUSE_PREVIOUS_SIGNING_KEY",
                    "previous-signing-key-0123456789abcdef",
                ),
            ]),
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("super-secret-token-123"), "{shown}");
        assert!(!shown.contains("previous-signing-key"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://rouse:***@db/rouse"), "{shown}");
    }
}
