//! "On call now" and the 14-day schedule picture.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{local, render, timeline, Instant, Viewer, WebState};
use crate::catalog::Catalog;
use crate::http::ApiError;
use crate::oncall::Schedule;

/// How far ahead "who is next" and the picture look.
const HORIZON_DAYS: u64 = 14;

#[derive(Serialize)]
struct Person {
    id: String,
    name: String,
    zone: String,
    /// The time for them now: "Tue 03:12 EST".
    local_now: String,
    quiet_hours: Option<String>,
    in_quiet_hours: bool,
}

fn person(catalog: &Catalog, id: &str, now: DateTime<Utc>) -> Person {
    match catalog.person(id) {
        Some(p) => Person {
            id: p.id.clone(),
            name: p.name.clone(),
            zone: p.zone.name().to_owned(),
            local_now: local(now, p.zone),
            quiet_hours: p.quiet_hours.map(|q| format!("{}–{}", q.from, q.to)),
            in_quiet_hours: p.in_quiet_hours(now),
        },
        None => Person {
            id: id.to_owned(),
            name: id.to_owned(),
            zone: "UTC".to_owned(),
            local_now: local(now, Tz::UTC),
            quiet_hours: None,
            in_quiet_hours: false,
        },
    }
}

#[derive(Serialize)]
struct Now {
    id: String,
    name: Option<String>,
    zone: String,
    who: Option<Person>,
    since: Option<Instant>,
    until: Option<Instant>,
    source: Option<String>,
    /// The next handoff (the end of the current shift or gap) and who takes over.
    next_at: Option<Instant>,
    next: Option<Person>,
}

fn now_for(catalog: &Catalog, s: &Schedule, now: DateTime<Utc>) -> Now {
    let horizon = now + TimeDelta::days(HORIZON_DAYS as i64);
    let shifts = s.shifts(now, horizon);
    let current = shifts.first();
    // The next shift with someone else (or someone, after a gap).
    let next = shifts.iter().skip(1).find(|x| {
        x.person_id.is_some() && x.person_id != current.and_then(|c| c.person_id.clone())
    });
    Now {
        id: s.id.clone(),
        name: s.name.clone(),
        zone: s.zone.name().to_owned(),
        who: current
            .and_then(|c| c.person_id.as_deref())
            .map(|p| person(catalog, p, now)),
        since: current.map(|c| Instant::new(c.start)),
        until: current.map(|c| Instant::new(c.end)),
        source: current
            .and_then(|c| c.source.as_ref())
            .map(|src| match src {
                crate::oncall::Source::Layer { layer, rotation } => {
                    format!("layer {} ({rotation})", layer + 1)
                }
                crate::oncall::Source::Override { index } => format!("override #{}", index + 1),
            }),
        next_at: next.map(|n| Instant::new(n.start)),
        next: next
            .and_then(|n| n.person_id.as_deref())
            .map(|p| person(catalog, p, now)),
    }
}

fn no_catalog() -> ApiError {
    ApiError::Unavailable("no valid on-call configuration is loaded".to_owned())
}

/// `GET /ui/oncall`
pub async fn on_call_now(
    viewer: Viewer,
    State(web): State<WebState>,
) -> Result<Response, ApiError> {
    let catalog = web.app.catalog.current().ok_or_else(no_catalog)?;
    let now = web.app.clock.now();
    let schedules: Vec<Now> = catalog
        .schedules()
        .map(|s| now_for(&catalog, s, now))
        .collect();
    Ok(viewer.finish(render(
        StatusCode::OK,
        "oncall.html",
        minijinja::context! {
            viewer => viewer.context(),
            page => "oncall",
            schedules => schedules,
            now => Instant::new(now),
        },
    )))
}

#[derive(Debug, Default, Deserialize)]
pub struct TimelineQuery {
    tz: Option<String>,
}

#[derive(Serialize)]
struct Picture {
    id: String,
    name: Option<String>,
    svg: String,
    gaps: Vec<timeline::GapText>,
}

/// `GET /ui/schedules?tz=Zone`: the next 14 days of every schedule.
pub async fn timeline(
    viewer: Viewer,
    State(web): State<WebState>,
    query: Result<Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(format!("query: {e}")))?;
    let catalog = web.app.catalog.current().ok_or_else(no_catalog)?;
    let now = web.app.clock.now();
    // The viewer's zone: chosen, or their own, or UTC for the admin.
    let zone: Tz = match query.tz.as_deref().filter(|z| !z.is_empty()) {
        Some(z) => z
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("unknown time zone {z:?}")))?,
        None => catalog
            .person(&viewer.session.person)
            .map(|p| p.zone)
            .unwrap_or(Tz::UTC),
    };
    let (from, until) = timeline::window(now, zone, HORIZON_DAYS);
    let name_of = |id: &str| {
        catalog
            .person(id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.to_owned())
    };
    let pictures: Vec<Picture> = catalog
        .schedules()
        .map(|s| {
            let (svg, gaps) = timeline::draw(s, &name_of, zone, from, until);
            Picture {
                id: s.id.clone(),
                name: s.name.clone(),
                svg,
                gaps,
            }
        })
        .collect();
    // The zones people and schedules use, then a few common ones.
    let mut zones: Vec<String> = catalog
        .people()
        .map(|p| p.zone.name().to_owned())
        .chain(catalog.schedules().map(|s| s.zone.name().to_owned()))
        .chain(
            [
                "UTC",
                "Europe/London",
                "Europe/Berlin",
                "America/New_York",
                "America/Los_Angeles",
                "Asia/Tokyo",
                "Australia/Sydney",
            ]
            .map(str::to_owned),
        )
        .collect();
    zones.sort();
    zones.dedup();
    if !zones.iter().any(|z| z == zone.name()) {
        zones.push(zone.name().to_owned());
    }
    let changes: Vec<String> = timeline::offset_changes(zone, from, until)
        .into_iter()
        .map(|c| c.text)
        .collect();
    Ok(viewer.finish(render(
        StatusCode::OK,
        "schedules.html",
        minijinja::context! {
            viewer => viewer.context(),
            page => "schedules",
            pictures => pictures,
            zone => zone.name(),
            zones => zones,
            changes => changes,
            from => local(from, zone),
            until => local(until, zone),
        },
    )))
}
