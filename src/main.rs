//! The `rouse` command line: parses arguments and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

// Measured with `cargo bench --bench intake`: about 20% more requests per
// second than glibc's allocator under many concurrent connections.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rouse", version, about = "Escalating pager and alert router")]
struct Cli {
    /// YAML configuration file (settings can also come from ROUSE_* variables).
    #[arg(long, short, global = true, env = "ROUSE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and run the background workers.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the on-call YAML and report coverage gaps in the next 28 days.
    Check {
        /// Folder of rotation files (default: the configured rotations_dir).
        dir: Option<PathBuf>,
        /// Also warn about people on call in the next 14 days without an
        /// acknowledged test page in the last 90 (reads this database).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Send PERSON a clearly marked test page through the running server.
    TestPage {
        /// The person's id.
        person: String,
        /// push, sms, voice or all of the person's high-urgency methods.
        #[arg(long, default_value = "all", value_parser = ["push", "sms", "voice", "all"])]
        via: String,
        /// Where Rouse runs (default: the configured public_url).
        #[arg(long)]
        url: Option<String>,
    },
    /// Who would be woken, when and how, if an alert arrived at --at and nobody acknowledged.
    Simulate {
        /// Folder of rotation files (default: the configured rotations_dir).
        dir: Option<PathBuf>,
        /// The service the alert arrives at.
        #[arg(long)]
        service: String,
        /// When it arrives, RFC 3339 (default: now).
        #[arg(long, value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
        /// critical, error, warning or info.
        #[arg(long, default_value = "critical")]
        severity: String,
        /// A label of the alert, key=value (repeatable); routes match on them.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// How long to follow the escalation (e.g. 2h).
        #[arg(long = "for", default_value = "2h", value_parser = parse_span)]
        horizon: chrono::TimeDelta,
        /// Machine-readable output (the same JSON as POST /v1/simulate).
        #[arg(long)]
        json: bool,
    },
    /// Show who is on call now (or at --at), or the shifts between --from and --until.
    Oncall {
        /// Folder of rotation files (default: the configured rotations_dir).
        dir: Option<PathBuf>,
        /// The instant to ask about, RFC 3339 (default: now).
        #[arg(long, value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
        /// Only this schedule.
        #[arg(long)]
        schedule: Option<String>,
        /// Machine-readable output (documented in the README).
        #[arg(long)]
        json: bool,
        /// List shifts from this instant (RFC 3339).
        #[arg(long, value_parser = parse_instant)]
        from: Option<DateTime<Utc>>,
        /// List shifts until this instant (RFC 3339; default: 7 days after --from).
        #[arg(long, value_parser = parse_instant, requires = "from")]
        until: Option<DateTime<Utc>>,
    },
    /// Run every watcher's check once, now, and print what each found.
    Watch {
        /// Folder of rotation files (default: the configured rotations_dir).
        dir: Option<PathBuf>,
        /// Run each watcher once and exit (`rouse serve` runs them continuously).
        #[arg(long)]
        once: bool,
        /// Machine-readable output (one JSON document).
        #[arg(long)]
        json: bool,
    },
    /// Read a password from standard input and print its Argon2id hash for a
    /// person's `login: {password_hash: …}`.
    HashPassword,
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 instant such as 2026-11-26T09:00:00Z: {e}"))
}

fn parse_span(s: &str) -> Result<chrono::TimeDelta, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("expected a duration such as 2h: {e}"))?;
    let d = chrono::TimeDelta::from_std(d).map_err(|e| e.to_string())?;
    if d > chrono::TimeDelta::days(14) {
        return Err("at most 14d".to_owned());
    }
    Ok(d)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = |name: &str| std::env::var(name).ok();
    let config = match rouse::config::Config::load(cli.config.as_deref(), &env) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("rouse: {err}");
            return ExitCode::from(2);
        }
    };
    // The offline commands print for people and need no runtime or logging.
    match &cli.command {
        Command::HashPassword => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("Password (the line is shown as you type; pipe it in to avoid that):");
            }
            return match rouse::commands::hash_password::hash_password(&mut std::io::stdin().lock())
            {
                Ok(phc) => {
                    println!("{phc}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("rouse: {err}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Check {
            dir,
            database_url: None,
        } => {
            let dir = dir.clone().unwrap_or_else(|| config.rotations_dir.clone());
            let mut out = std::io::stdout().lock();
            return exit(rouse::commands::check::check_with_config(
                &dir,
                Utc::now(),
                &env,
                &config,
                cli.config.as_deref(),
                &mut out,
            ));
        }
        Command::Simulate {
            dir,
            service,
            at,
            severity,
            labels,
            horizon,
            json,
        } => {
            let args = rouse::commands::simulate::SimulateArgs {
                dir: dir.clone().unwrap_or_else(|| config.rotations_dir.clone()),
                service: service.clone(),
                at: *at,
                severity: severity.clone(),
                labels: labels.clone(),
                horizon: *horizon,
                json: *json,
                number_cap_per_hour: config.pages_per_number_per_hour,
            };
            let mut out = std::io::stdout().lock();
            return exit(rouse::commands::simulate::simulate(
                &args,
                Utc::now(),
                &env,
                &mut out,
            ));
        }
        Command::Oncall {
            dir,
            at,
            schedule,
            json,
            from,
            until,
        } => {
            let args = rouse::commands::oncall::OncallArgs {
                dir: dir.clone().unwrap_or_else(|| config.rotations_dir.clone()),
                at: *at,
                schedule: schedule.clone(),
                json: *json,
                from: *from,
                until: *until,
            };
            let mut out = std::io::stdout().lock();
            return exit(rouse::commands::oncall::oncall(
                &args,
                Utc::now(),
                &env,
                &mut out,
            ));
        }
        Command::Serve
        | Command::Migrate
        | Command::Watch { .. }
        | Command::Check { .. }
        | Command::TestPage { .. } => {}
    }
    rouse::telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("rouse: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let result = match cli.command {
            Command::Serve => serve(config).await,
            Command::Migrate => rouse::migrate(&config).await.map_err(|e| e.to_string()),
            Command::Watch { dir, once, json } => {
                let args = rouse::commands::watch::WatchArgs {
                    dir: dir.unwrap_or_else(|| config.rotations_dir.clone()),
                    once,
                    json,
                };
                return watch(&args, &config, &env).await;
            }
            Command::Check {
                dir,
                database_url: Some(url),
            } => {
                let dir = dir.unwrap_or_else(|| config.rotations_dir.clone());
                check_with_test_pages(&dir, &url, &config, cli.config.as_deref(), &env).await
            }
            Command::TestPage { person, via, url } => {
                rouse::commands::test_page::test_page(&config, &person, &via, url.as_deref())
                    .await
                    .map(|done| println!("{done}"))
            }
            Command::Check { .. }
            | Command::Oncall { .. }
            | Command::Simulate { .. }
            | Command::HashPassword => Ok(()),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("rouse: {message}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `rouse watch`: its exit code says what was found (0, 1 critical, 2 configuration).
async fn watch(
    args: &rouse::commands::watch::WatchArgs,
    config: &rouse::config::Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match rouse::commands::watch::watch(args, config, env, Utc::now(), &mut out).await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("rouse: cannot write output: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: rouse::config::Config) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    rouse::run(config, listener, rouse::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

/// `rouse check --database-url`: the check, with the stored test pages.
async fn check_with_test_pages(
    dir: &std::path::Path,
    url: &str,
    config: &rouse::config::Config,
    config_file: Option<&std::path::Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let now = Utc::now();
    let store = rouse::store::open(url, 2)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    let results = store
        .test_pages(None, now - rouse::escalation::test_page::PROOF_MAX_AGE)
        .await
        .map_err(|e| format!("cannot read test pages (run `rouse migrate` first?): {e}"));
    store.close().await;
    let results = results?;
    let mut out = std::io::stdout().lock();
    match rouse::commands::check::check_with(
        dir,
        now,
        env,
        config,
        config_file,
        Some(&results),
        &mut out,
    ) {
        Ok(true) => Ok(()),
        Ok(false) => Err("the configuration has errors".to_owned()),
        Err(err) => Err(format!("cannot write output: {err}")),
    }
}

fn exit(result: std::io::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("rouse: cannot write output: {err}");
            ExitCode::FAILURE
        }
    }
}
