//! The `maintenance:` section: planned windows in which a service's alerts
//! are kept but nobody is paged. Validated into [`MaintenanceWindow`]s.

use std::collections::HashMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::build::{at, Ctx, Place};
use super::yaml::Text;
use crate::oncall::maintenance::{MaintenanceWindow, WindowTimes};
use crate::oncall::time::{parse_duration, parse_instant};
use crate::watch::schedule::When;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceYaml {
    #[serde(default)]
    pub service: Option<Text>,
    #[serde(default)]
    pub services: Option<Spanned<Vec<Text>>>,
    pub reason: Text,
    #[serde(default)]
    pub from: Option<Text>,
    #[serde(default)]
    pub until: Option<Text>,
    #[serde(default)]
    pub cron: Option<Text>,
    #[serde(default)]
    pub duration: Option<Text>,
    #[serde(default)]
    pub timezone: Option<Text>,
}

/// Longer windows are a service switched off, not maintenance.
const MAX_DURATION_DAYS: i64 = 31;

pub(super) fn build_window(
    cx: &mut Ctx<'_>,
    services: &HashMap<String, Place>,
    f: usize,
    m: &Spanned<MaintenanceYaml>,
) -> Option<MaintenanceWindow> {
    let y = &m.value;
    let mut ok = true;
    let mut ids = Vec::new();
    let listed: Vec<&Text> = y
        .service
        .iter()
        .chain(y.services.iter().flat_map(|s| s.value.iter()))
        .collect();
    if listed.is_empty() {
        cx.err(
            at(f, m),
            "a maintenance window needs `service` or `services`",
        );
        ok = false;
    }
    for s in listed {
        ok &= cx.reference(services, "service", f, s);
        ids.push(s.value.clone());
    }
    if y.reason.value.trim().is_empty() {
        cx.err(
            at(f, &y.reason),
            "`reason` must say why (it is shown in every alert's timeline)",
        );
        ok = false;
    }
    let zone = match &y.timezone {
        Some(t) => Some(cx.zone(f, t)?),
        None => None,
    };
    let when = match (&y.from, &y.until, &y.cron, &y.duration) {
        (Some(from), Some(until), None, None) => once(cx, f, from, until, zone),
        (None, None, Some(cron), Some(duration)) => recurring(cx, f, cron, duration, zone),
        _ => {
            cx.err(
                at(f, m),
                "a maintenance window is either `from` + `until`, or `cron` + `duration` (+ `timezone`)",
            );
            None
        }
    };
    let when = when?;
    ok.then(|| MaintenanceWindow {
        services: ids,
        reason: y.reason.value.trim().to_owned(),
        when,
        place: cx.describe(at(f, m)),
    })
}

fn once(
    cx: &mut Ctx<'_>,
    f: usize,
    from: &Text,
    until: &Text,
    zone: Option<chrono_tz::Tz>,
) -> Option<WindowTimes> {
    let zone = zone.unwrap_or(chrono_tz::UTC);
    let start = cx.parse(f, from, |s| parse_instant(s, zone));
    let end = cx.parse(f, until, |s| parse_instant(s, zone));
    let (start, end) = (start?, end?);
    if end <= start {
        cx.err(at(f, until), "`until` must be after `from`");
        return None;
    }
    if end - start > chrono::TimeDelta::days(MAX_DURATION_DAYS) {
        cx.err(
            at(f, until),
            format!("a maintenance window lasts at most {MAX_DURATION_DAYS} days"),
        );
        return None;
    }
    Some(WindowTimes::Once {
        from: start,
        until: end,
    })
}

fn recurring(
    cx: &mut Ctx<'_>,
    f: usize,
    cron: &Text,
    duration: &Text,
    zone: Option<chrono_tz::Tz>,
) -> Option<WindowTimes> {
    let Some(zone) = zone else {
        cx.err(
            at(f, cron),
            "`cron` needs `timezone` (the zone its hours are read in)",
        );
        return None;
    };
    let starts = cx.parse(f, cron, |s| When::cron(s, zone));
    let length = cx.parse(f, duration, parse_duration);
    let (starts, length) = (starts?, length?);
    if length <= chrono::TimeDelta::zero() || length > chrono::TimeDelta::days(MAX_DURATION_DAYS) {
        cx.err(
            at(f, duration),
            format!("`duration` must be longer than 0 and at most {MAX_DURATION_DAYS}d"),
        );
        return None;
    }
    Some(WindowTimes::Recurring {
        starts,
        duration: length,
    })
}
