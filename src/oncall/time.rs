//! Wall-clock vocabulary of rotations: shift lengths, local times, weekday sets,
//! active windows, and the one rule that turns a local wall-clock time into an instant.

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;
use std::fmt;
use thiserror::Error;

/// Why a textual value in a rotation file could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("invalid duration `{0}`: expected a number followed by s, m, h, d or w (e.g. `5m`, `12h`, `1w`)")]
    Duration(String),
    #[error("invalid shift length `{0}`: expected a positive number of hours, days or weeks (e.g. `12h`, `1d`, `1w`)")]
    ShiftLength(String),
    #[error("invalid local time `{0}`: expected HH:MM (24-hour clock, e.g. `09:00`)")]
    LocalTime(String),
    #[error("invalid date `{0}`: expected YYYY-MM-DD")]
    Date(String),
    #[error("invalid weekdays `{0}`: expected e.g. `mon-fri`, `sat,sun`, `daily`")]
    Weekdays(String),
    #[error("unknown time zone `{0}`: expected an IANA name such as `Europe/Berlin`")]
    Zone(String),
    #[error("invalid instant `{0}`: expected e.g. `2026-12-24T00:00:00+01:00`, `2026-12-24T09:00` or `2026-12-24`")]
    Instant(String),
}

/// Length of one shift of a rotation.
///
/// All lengths are counted in local wall-clock time of the rotation's zone, so a
/// `1d` shift spanning a DST change lasts 23 or 25 hours of elapsed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShiftLength {
    Hours(u32),
    Days(u32),
    Weeks(u32),
}

impl ShiftLength {
    /// The wall-clock step between two handoffs, in seconds of naive local time.
    pub fn wall_seconds(self) -> i64 {
        match self {
            ShiftLength::Hours(h) => i64::from(h) * 3600,
            ShiftLength::Days(d) => i64::from(d) * 86_400,
            ShiftLength::Weeks(w) => i64::from(w) * 7 * 86_400,
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = || ParseError::ShiftLength(s.to_string());
        let t = s.trim();
        let unit = t.chars().last().ok_or_else(err)?;
        let n: u32 = t[..t.len() - unit.len_utf8()]
            .trim()
            .parse()
            .map_err(|_| err())?;
        // Bounded so that handoff arithmetic can never overflow a NaiveDateTime.
        let ok = match unit {
            'h' => (1..=24 * 366).contains(&n),
            'd' => (1..=366).contains(&n),
            'w' => (1..=53).contains(&n),
            _ => false,
        };
        if !ok {
            return Err(err());
        }
        Ok(match unit {
            'h' => ShiftLength::Hours(n),
            'd' => ShiftLength::Days(n),
            _ => ShiftLength::Weeks(n),
        })
    }
}

impl fmt::Display for ShiftLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShiftLength::Hours(n) => write!(f, "{n}h"),
            ShiftLength::Days(n) => write!(f, "{n}d"),
            ShiftLength::Weeks(n) => write!(f, "{n}w"),
        }
    }
}

/// Parses an elapsed duration such as `30s`, `5m`, `1h`, `1d`, `1w`, or a bare `0`.
pub fn parse_duration(s: &str) -> Result<TimeDelta, ParseError> {
    let err = || ParseError::Duration(s.to_string());
    let t = s.trim();
    if t == "0" {
        return Ok(TimeDelta::zero());
    }
    let unit = t.chars().last().ok_or_else(err)?;
    let n: i64 = t[..t.len() - unit.len_utf8()]
        .trim()
        .parse()
        .map_err(|_| err())?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(err()),
    };
    // A year is far beyond any sensible pager delay; the cap keeps arithmetic safe.
    if !(0..=366 * 86_400).contains(&n.saturating_mul(secs)) {
        return Err(err());
    }
    Ok(TimeDelta::seconds(n * secs))
}

/// The shortest way to write a duration back: `90s`, `3m`, `2h`, `1d`.
pub fn format_duration(d: TimeDelta) -> String {
    let secs = d.num_seconds();
    match secs {
        0 => "0".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Minutes since local midnight, 0..=1440 (1440 only as the end of a range: `24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalTime(u16);

impl LocalTime {
    pub const MIDNIGHT: LocalTime = LocalTime(0);
    pub const END_OF_DAY: LocalTime = LocalTime(1440);

    pub fn from_hm(h: u16, m: u16) -> Option<Self> {
        (h < 24 && m < 60).then_some(LocalTime(h * 60 + m))
    }

    /// Parses `HH:MM`; `24:00` is accepted only when `allow_end_of_day`.
    pub fn parse(s: &str, allow_end_of_day: bool) -> Result<Self, ParseError> {
        let err = || ParseError::LocalTime(s.to_string());
        let (h, m) = s.trim().split_once(':').ok_or_else(err)?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return Err(err());
        }
        let h: u16 = h.parse().map_err(|_| err())?;
        let m: u16 = m.parse().map_err(|_| err())?;
        if allow_end_of_day && h == 24 && m == 0 {
            return Ok(Self::END_OF_DAY);
        }
        Self::from_hm(h, m).ok_or_else(err)
    }

    pub fn minutes(self) -> u16 {
        self.0
    }

    /// The local date-time this time denotes on `date` (`24:00` is the next midnight).
    pub fn on(self, date: NaiveDate) -> Option<NaiveDateTime> {
        date.and_hms_opt(0, 0, 0)?
            .checked_add_signed(TimeDelta::minutes(i64::from(self.0)))
    }

    pub fn to_naive_time(self) -> NaiveTime {
        NaiveTime::from_hms_opt(u32::from(self.0 / 60) % 24, u32::from(self.0 % 60), 0)
            .unwrap_or(NaiveTime::MIN)
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

pub fn parse_date(s: &str) -> Result<NaiveDate, ParseError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| ParseError::Date(s.to_string()))
}

pub fn parse_zone(s: &str) -> Result<Tz, ParseError> {
    s.trim()
        .parse::<Tz>()
        .map_err(|_| ParseError::Zone(s.to_string()))
}

/// Parses an override boundary: RFC 3339 with offset, or a local date-time / date that is
/// read in `zone` (so admins can write `2026-12-24` and mean the schedule's midnight).
pub fn parse_instant(s: &str, zone: Tz) -> Result<DateTime<Utc>, ParseError> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    .or_else(|| parse_date(t).ok().and_then(|d| d.and_hms_opt(0, 0, 0)));
    naive
        .and_then(|n| resolve_local(zone, n))
        .ok_or_else(|| ParseError::Instant(s.to_string()))
}

/// A set of weekdays as a bit mask (bit 0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weekdays(u8);

impl Weekdays {
    pub const ALL: Weekdays = Weekdays(0x7f);

    pub fn contains(self, d: Weekday) -> bool {
        self.0 & (1 << d.num_days_from_monday()) != 0
    }

    /// Parses `mon-fri`, `sat,sun`, `fri-mon` (wraps), `daily`, `weekdays`, `weekends`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = || ParseError::Weekdays(s.to_string());
        let day = |x: &str| -> Option<u8> {
            let i = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .position(|d| x.len() >= 3 && d.starts_with(&x[..3]) && is_day_name(x))?;
            u8::try_from(i).ok()
        };
        let mut mask = 0u8;
        for part in s.split(',').map(|p| p.trim().to_ascii_lowercase()) {
            match part.as_str() {
                "daily" | "all" | "every day" => mask |= 0x7f,
                "weekdays" => mask |= 0x1f,
                "weekends" => mask |= 0x60,
                _ => {
                    if let Some((a, b)) = part.split_once('-') {
                        let (a, b) = (
                            day(a.trim()).ok_or_else(err)?,
                            day(b.trim()).ok_or_else(err)?,
                        );
                        let mut i = a;
                        loop {
                            mask |= 1 << i;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    } else {
                        mask |= 1 << day(&part).ok_or_else(err)?;
                    }
                }
            }
        }
        if mask == 0 {
            return Err(err());
        }
        Ok(Weekdays(mask))
    }
}

fn is_day_name(x: &str) -> bool {
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .iter()
    .any(|full| full.starts_with(x))
}

/// A recurring local window in which a rotation has someone on call.
///
/// `days` are the days on which the window *starts*; when `to <= from` the window
/// runs past midnight into the next day (`from: "22:00", to: "06:00"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActiveWindow {
    pub days: Weekdays,
    pub from: LocalTime,
    pub to: LocalTime,
}

impl ActiveWindow {
    /// The local start and end date-times of the window instance starting on `date`,
    /// or None when the window does not start on that weekday.
    pub fn on(&self, date: NaiveDate) -> Option<(NaiveDateTime, NaiveDateTime)> {
        if !self.days.contains(date.weekday()) {
            return None;
        }
        let start = self.from.on(date)?;
        let end = if self.to > self.from {
            self.to.on(date)?
        } else {
            self.to.on(date.succ_opt()?)?
        };
        Some((start, end))
    }
}

/// Resolves a local wall-clock time in `zone` to an instant.
///
/// A time that happens twice (fall-back) resolves to its first occurrence; a time that does
/// not exist (spring-forward gap) resolves to the first valid instant after the gap, i.e. the
/// transition instant itself. Returns None only when the date-time is out of chrono's range.
pub fn resolve_local(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        chrono::LocalResult::None => gap_end(zone, local),
    }
}

/// Finds the transition instant that swallowed `local`.
fn gap_end(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let offset_at = |t: DateTime<Utc>| {
        i64::from(
            zone.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc(),
        )
    };
    let as_utc = local.and_utc();
    // The offset in force a little before the gap; gaps are never longer than a day.
    let before = offset_at(as_utc.checked_sub_signed(TimeDelta::hours(36))?);
    // Reading `local` with the old offset gives an instant at or after the transition.
    let mut hi = as_utc.checked_sub_signed(TimeDelta::seconds(before))?;
    let after = offset_at(hi);
    let gap = after - before;
    if gap <= 0 {
        return None;
    }
    let mut lo = hi.checked_sub_signed(TimeDelta::seconds(gap))?;
    // Invariant: offset(lo) == before (or lo precedes the transition), offset(hi) == after.
    while (hi - lo).num_seconds() > 1 {
        let mid = lo + TimeDelta::seconds((hi - lo).num_seconds() / 2);
        if offset_at(mid) == after {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}
