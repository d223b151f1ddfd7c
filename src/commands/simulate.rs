//! `rouse simulate [DIR] --service ID [--at T] [--severity S] [--label k=v]…
//! [--for 2h] [--json]`: who would be woken, when and how, if an alert
//! arrived at T and nobody acknowledged. Offline: maintenance windows apply,
//! silences (which live in the database) are applied by `POST /v1/simulate`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};

use crate::alert::silence::SilenceSet;
use crate::alert::Severity;
use crate::catalog::load_dir;
use crate::escalation::simulate::{render, simulate as run, Question};

pub struct SimulateArgs {
    pub dir: PathBuf,
    pub service: String,
    pub at: Option<DateTime<Utc>>,
    pub severity: String,
    pub labels: Vec<String>,
    pub horizon: TimeDelta,
    pub json: bool,
    pub number_cap_per_hour: u32,
}

/// `k=v` pairs into labels.
pub fn parse_labels(pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(format!("--label wants key=value, got {p:?}")),
        })
        .collect()
}

/// Prints the simulation; false (after a message) when the question or the
/// configuration is wrong.
pub fn simulate(
    args: &SimulateArgs,
    now: DateTime<Utc>,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let catalog = match load_dir(&args.dir, env) {
        Ok(c) => c,
        Err(diags) => {
            writeln!(out, "{diags}")?;
            return Ok(false);
        }
    };
    let severity = match Severity::from_wire(&args.severity) {
        Some(s) => s,
        None => {
            writeln!(out, "error: --severity is critical, error, warning or info")?;
            return Ok(false);
        }
    };
    let labels = match parse_labels(&args.labels) {
        Ok(l) => l,
        Err(e) => {
            writeln!(out, "error: {e}")?;
            return Ok(false);
        }
    };
    let silences = SilenceSet::default();
    let question = Question {
        service_id: &args.service,
        at: args.at.unwrap_or(now),
        severity,
        labels: &labels,
        horizon: args.horizon,
        silences: &silences,
        number_cap_per_hour: args.number_cap_per_hour,
    };
    match run(&catalog, &question) {
        Ok(sim) if args.json => {
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&sim).unwrap_or_default()
            )?;
            Ok(true)
        }
        Ok(sim) => {
            write!(out, "{}", render(&sim))?;
            writeln!(
                out,
                "(silences live in the database: POST /v1/simulate applies them too)"
            )?;
            Ok(true)
        }
        Err(e) => {
            writeln!(out, "error: {e}")?;
            Ok(false)
        }
    }
}
