//! `rouse oncall`: who is on call now (or at `--at`), or the shifts in a window, as text or
//! as the stable JSON documented in README-rotations.md.

use super::check::{local, utc};
use crate::catalog::{load_dir, Catalog};
use crate::oncall::{Schedule, Shift, Source};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

/// Default window length when only `--from` is given.
pub const DEFAULT_WINDOW_DAYS: i64 = 7;

#[derive(Debug, Clone, Default)]
pub struct OncallArgs {
    pub dir: PathBuf,
    pub at: Option<DateTime<Utc>>,
    pub schedule: Option<String>,
    pub json: bool,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

fn source_text(s: &Source) -> String {
    match s {
        Source::Layer { layer, rotation } => format!("layer {layer}, rotation {rotation}"),
        Source::Override { index } => format!("override {index}"),
    }
}

fn person_json(catalog: &Catalog, id: &str, t: DateTime<Utc>) -> Value {
    match catalog.person(id) {
        Some(p) => json!({
            "id": p.id,
            "name": p.name,
            "timezone": p.zone.name(),
            "local_time": t.with_timezone(&p.zone).to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        }),
        None => json!({ "id": id }),
    }
}

/// Returns false (after printing why) on configuration errors or bad arguments.
pub fn oncall(
    args: &OncallArgs,
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
    let schedules: Vec<&Schedule> = match &args.schedule {
        Some(id) => match catalog.schedule(id) {
            Some(s) => vec![s],
            None => {
                writeln!(out, "error: unknown schedule `{id}`")?;
                return Ok(false);
            }
        },
        None => catalog.schedules().collect(),
    };
    if args.from.is_some() || args.until.is_some() {
        let from = args.from.or(args.at).unwrap_or(now);
        let until = args
            .until
            .unwrap_or(from + TimeDelta::days(DEFAULT_WINDOW_DAYS));
        if until <= from {
            writeln!(out, "error: --until must be after --from")?;
            return Ok(false);
        }
        window(&catalog, &schedules, from, until, args.json, out)?;
    } else {
        at(&catalog, &schedules, args.at.unwrap_or(now), args.json, out)?;
    }
    Ok(true)
}

fn at(
    catalog: &Catalog,
    schedules: &[&Schedule],
    t: DateTime<Utc>,
    as_json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if as_json {
        let items: Vec<Value> = schedules
            .iter()
            .map(|s| {
                let on_call = s.on_call_at(t).map(|o| {
                    json!({
                        "person": person_json(catalog, &o.person_id, t),
                        "shift_start": utc(o.shift_start),
                        "shift_end": utc(o.shift_end),
                        "source": o.source,
                    })
                });
                json!({ "schedule": s.id, "timezone": s.zone.name(), "on_call": on_call })
            })
            .collect();
        writeln!(out, "{}", json!({ "at": utc(t), "schedules": items }))?;
        return Ok(());
    }
    writeln!(out, "on call at {}:", utc(t))?;
    for s in schedules {
        match s.on_call_at(t) {
            None => writeln!(out, "{}: nobody", s.id)?,
            Some(o) => {
                let person = catalog.person(&o.person_id);
                let name = person.map_or(o.person_id.as_str(), |p| p.name.as_str());
                let their_time = person
                    .map(|p| format!("; their local time {}", local(t, p.zone)))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}: {} ({}) from {} until {} ({} to {}){}; via {}",
                    s.id,
                    o.person_id,
                    name,
                    utc(o.shift_start),
                    utc(o.shift_end),
                    local(o.shift_start, s.zone),
                    local(o.shift_end, s.zone),
                    their_time,
                    source_text(&o.source),
                )?;
            }
        }
    }
    for w in catalog.maintenance_windows() {
        if let Some(end) = w.covering(t) {
            writeln!(
                out,
                "maintenance: {} until {} ({}): nobody is paged",
                w.services.join(", "),
                utc(end),
                w.reason
            )?;
        }
    }
    Ok(())
}

fn shift_json(s: &Shift, zone: chrono_tz::Tz) -> Value {
    json!({
        "person": s.person_id,
        "start": utc(s.start),
        "end": utc(s.end),
        "start_local": s.start.with_timezone(&zone).to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "end_local": s.end.with_timezone(&zone).to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "source": s.source,
    })
}

fn window(
    catalog: &Catalog,
    schedules: &[&Schedule],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    as_json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if as_json {
        let items: Vec<Value> = schedules
            .iter()
            .map(|s| {
                let shifts: Vec<Value> = s
                    .shifts(from, until)
                    .iter()
                    .map(|x| shift_json(x, s.zone))
                    .collect();
                json!({ "schedule": s.id, "timezone": s.zone.name(), "shifts": shifts })
            })
            .collect();
        writeln!(
            out,
            "{}",
            json!({ "from": utc(from), "until": utc(until), "schedules": items })
        )?;
        return Ok(());
    }
    for s in schedules {
        writeln!(
            out,
            "{} ({}), {} to {}:",
            s.id,
            s.zone.name(),
            utc(from),
            utc(until)
        )?;
        for x in s.shifts(from, until) {
            let who = x.person_id.as_deref().unwrap_or("(nobody)");
            let via = x
                .source
                .as_ref()
                .map(|v| format!("  [{}]", source_text(v)))
                .unwrap_or_default();
            writeln!(
                out,
                "  {} to {}  {}{}",
                local(x.start, s.zone),
                local(x.end, s.zone),
                who,
                via
            )?;
        }
    }
    for w in catalog.maintenance_windows() {
        for (start, end) in w.occurrences(from, until, 100) {
            writeln!(
                out,
                "maintenance: {} from {} to {} ({}): nobody is paged",
                w.services.join(", "),
                utc(start),
                utc(end),
                w.reason
            )?;
        }
    }
    Ok(())
}
