//! The schedule picture: the next days of one schedule as SVG, drawn on the
//! server from the same shifts `rouse oncall --from/--until` prints. One row
//! per layer (that rotation alone), one for overrides, and the effective
//! result with coverage gaps in red. Day lines sit at the viewer's local
//! midnights, so a day with a DST change is drawn 23 or 25 hours wide and
//! the change itself is marked. Pure: no I/O, no clock.

use std::fmt::Write;

use chrono::{DateTime, Days, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::channel::render::escape_html as escape;
use crate::oncall::{Schedule, Shift};

const WIDTH: f64 = 1400.0;
const LABEL: f64 = 150.0;
const ROW: f64 = 34.0;
const TOP: f64 = 34.0;

/// A stretch of a schedule with nobody on call, as listed under the picture.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GapText {
    pub local: String,
    pub utc: String,
}

/// A change of the viewer's UTC offset within the window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OffsetChange {
    pub at: DateTime<Utc>,
    pub text: String,
}

/// The local midnight starting `day` in `zone` (the first instant of the day
/// where midnight does not exist).
fn midnight(zone: Tz, day: chrono::NaiveDate) -> DateTime<Utc> {
    let naive = day.and_time(NaiveTime::MIN);
    match zone.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        // Midnight skipped (a few zones switch at 00:00): the day starts an hour later.
        chrono::LocalResult::None => zone
            .from_local_datetime(&(naive + TimeDelta::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
    }
}

/// The window the picture covers: `days` local days from the viewer's today.
pub fn window(now: DateTime<Utc>, zone: Tz, days: u64) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.with_timezone(&zone).date_naive();
    let end = today.checked_add_days(Days::new(days)).unwrap_or(today);
    (midnight(zone, today), midnight(zone, end))
}

/// Every change of `zone`'s UTC offset in `[from, until)`, to the minute.
pub fn offset_changes(zone: Tz, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<OffsetChange> {
    let offset = |t: DateTime<Utc>| t.with_timezone(&zone).offset().fix().local_minus_utc();
    let mut changes = Vec::new();
    let mut t = from;
    while t < until {
        let next = (t + TimeDelta::hours(1)).min(until);
        if offset(t) != offset(next) {
            // Narrow down to the minute: transitions are on whole minutes.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > TimeDelta::minutes(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == offset(lo) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let before = lo.with_timezone(&zone).format("%Z (UTC%:z)");
            let after = hi.with_timezone(&zone).format("%Z (UTC%:z)");
            changes.push(OffsetChange {
                at: hi,
                text: format!(
                    "{}: clocks change {before} → {after}",
                    hi.with_timezone(&zone).format("%a %Y-%m-%d %H:%M")
                ),
            });
        }
        t = next;
    }
    changes
}

struct Scale {
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl Scale {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let total = (self.until - self.from).num_seconds().max(1) as f64;
        let at = (t.clamp(self.from, self.until) - self.from).num_seconds() as f64;
        LABEL + (WIDTH - LABEL) * at / total
    }
}

fn span_text(s: &Shift, zone: Tz) -> String {
    format!(
        "{} – {} ({} – {})",
        s.start.with_timezone(&zone).format("%a %m-%d %H:%M"),
        s.end.with_timezone(&zone).format("%a %m-%d %H:%M %Z"),
        s.start.format("%m-%d %H:%M"),
        s.end.format("%m-%d %H:%M UTC"),
    )
}

/// The picture, and the gaps written out with their exact times.
pub fn draw(
    schedule: &Schedule,
    name_of: &dyn Fn(&str) -> String,
    zone: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> (String, Vec<GapText>) {
    let scale = Scale { from, until };
    let mut rows: Vec<(String, Vec<Shift>, &str)> = Vec::new();
    for (i, layer) in schedule.layers.iter().enumerate() {
        let alone = Schedule {
            layers: vec![layer.clone()],
            overrides: Vec::new(),
            ..schedule.clone()
        };
        let label = format!("layer {}: {}", i + 1, layer.rotation.id);
        rows.push((label, alone.shifts(from, until), "layer"));
    }
    let overrides: Vec<Shift> = schedule
        .overrides
        .iter()
        .filter(|o| o.until > from && o.from < until)
        .map(|o| Shift {
            person_id: Some(o.who.clone()),
            start: o.from,
            end: o.until,
            source: None,
        })
        .collect();
    rows.push(("overrides".to_owned(), overrides, "override"));
    let effective = schedule.shifts(from, until);
    let gaps: Vec<GapText> = effective
        .iter()
        .filter(|s| s.person_id.is_none())
        .map(|s| {
            let clipped = Shift {
                start: s.start.max(from),
                end: s.end.min(until),
                ..s.clone()
            };
            GapText {
                local: format!(
                    "{} – {}",
                    clipped
                        .start
                        .with_timezone(&zone)
                        .format("%a %Y-%m-%d %H:%M"),
                    clipped
                        .end
                        .with_timezone(&zone)
                        .format("%a %Y-%m-%d %H:%M %Z")
                ),
                utc: format!(
                    "{} – {}",
                    clipped.start.format("%Y-%m-%d %H:%M"),
                    clipped.end.format("%Y-%m-%d %H:%M UTC")
                ),
            }
        })
        .collect();
    rows.push(("on call".to_owned(), effective, "effective"));

    let height = TOP + ROW * rows.len() as f64 + 10.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"Schedule {} from {} to {}\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(&schedule.id),
        from.with_timezone(&zone).format("%Y-%m-%d"),
        until.with_timezone(&zone).format("%Y-%m-%d %Z"),
    );
    // Day lines at local midnights: DST days are wider or narrower, as they are.
    let mut day = from.with_timezone(&zone).date_naive();
    loop {
        let start = midnight(zone, day);
        if start >= until {
            break;
        }
        let x = scale.x(start);
        let _ = write!(
            svg,
            "<line class=\"day\" x1=\"{x:.1}\" y1=\"14\" x2=\"{x:.1}\" y2=\"{height}\"/>\
             <text class=\"daylabel\" x=\"{:.1}\" y=\"24\">{}</text>",
            x + 3.0,
            day.format("%a %d")
        );
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    for change in offset_changes(zone, from, until) {
        let x = scale.x(change.at);
        let _ = write!(
            svg,
            "<line class=\"dst\" x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{height}\"><title>{}</title></line>\
             <text class=\"dstlabel\" x=\"{:.1}\" y=\"10\">DST</text>",
            escape(&change.text),
            x + 2.0
        );
    }
    for (r, (label, shifts, class)) in rows.iter().enumerate() {
        let y = TOP + ROW * r as f64;
        let _ = write!(
            svg,
            "<text class=\"rowlabel\" x=\"4\" y=\"{:.1}\">{}</text>",
            y + ROW * 0.6,
            escape(label)
        );
        for s in shifts {
            let (x1, x2) = (scale.x(s.start), scale.x(s.end));
            if x2 - x1 < 0.05 {
                continue;
            }
            let (cls, who) = match &s.person_id {
                Some(p) => (*class, name_of(p)),
                None if *class == "effective" => ("gap", "nobody".to_owned()),
                // A layer's own idle stretch is not a gap if another layer covers it.
                None => continue,
            };
            let _ = write!(
                svg,
                "<g class=\"{cls}\"><title>{}: {}</title>\
                 <rect x=\"{x1:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"3\"/>",
                escape(&who),
                escape(&span_text(s, zone)),
                y + 3.0,
                x2 - x1,
                ROW - 6.0
            );
            if x2 - x1 > 28.0 {
                let _ = write!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    x1 + 4.0,
                    y + ROW * 0.6,
                    escape(&who)
                );
            }
            svg.push_str("</g>");
        }
    }
    svg.push_str("</svg>");
    (svg, gaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_local_midnights_across_dst() {
        let zone: Tz = "America/New_York".parse().unwrap();
        // 2027-03-14 is the spring-forward Sunday in New York.
        let now = Utc.with_ymd_and_hms(2027, 3, 13, 15, 0, 0).unwrap();
        let (from, until) = window(now, zone, 2);
        assert_eq!(from, Utc.with_ymd_and_hms(2027, 3, 13, 5, 0, 0).unwrap());
        // Two local days, one of 24 hours and one of 23.
        assert_eq!(until - from, TimeDelta::hours(47));
        let changes = offset_changes(zone, from, until);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].at,
            Utc.with_ymd_and_hms(2027, 3, 14, 7, 0, 0).unwrap()
        );
        assert!(changes[0].text.contains("EST"), "{}", changes[0].text);
        assert!(changes[0].text.contains("EDT"), "{}", changes[0].text);
    }
}
