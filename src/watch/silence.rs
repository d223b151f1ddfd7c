//! Heartbeats and the watchdog: silence is the finding. Something that
//! should ping every `interval` has not been heard from for `interval +
//! grace`.
//!
//! A heartbeat never heard from is "waiting for first ping" (visible, not
//! paging) until `interval + grace` after the watcher was configured, so
//! adding a watcher before its monitor is deployed pages only if the monitor
//! never arrives.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Finding, Level, Verdict};

/// What is listened for, for summaries: `heartbeat backup-nightly` or
/// `watchdog prometheus (alertname=Watchdog)`.
pub struct Silence<'a> {
    pub what: &'a str,
    pub interval: TimeDelta,
    pub grace: TimeDelta,
}

impl Silence<'_> {
    /// The instant silence becomes a finding.
    pub fn deadline(
        &self,
        last_ping: Option<DateTime<Utc>>,
        configured_at: DateTime<Utc>,
    ) -> DateTime<Utc> {
        last_ping.unwrap_or(configured_at) + self.interval + self.grace
    }

    pub fn verdict(
        &self,
        last_ping: Option<DateTime<Utc>>,
        configured_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Verdict {
        let deadline = self.deadline(last_ping, configured_at);
        let facts = serde_json::json!({
            "last_ping_at": last_ping,
            "deadline": deadline,
            "interval_secs": self.interval.num_seconds(),
            "grace_secs": self.grace.num_seconds(),
        });
        let expected = format!(
            "expected every {} + {} grace",
            span(self.interval),
            span(self.grace)
        );
        if now < deadline {
            let status = match last_ping {
                Some(at) => format!("last ping {} ({} ago)", stamp(at), span(now - at)),
                None => format!(
                    "waiting for first ping (pages from {} if none arrives)",
                    stamp(deadline)
                ),
            };
            return Verdict::healthy(status, facts);
        }
        let summary = match last_ping {
            Some(at) => format!(
                "{}: no ping since {} ({} ago; {expected}) — is it still running?",
                self.what,
                stamp(at),
                span(now - at)
            ),
            None => format!(
                "{}: never pinged since the watcher was set up at {} ({expected}) — is it running and sending to Rouse?",
                self.what,
                stamp(configured_at)
            ),
        };
        Verdict {
            findings: vec![Finding {
                code: "silent".into(),
                level: Level::Critical,
                transient: false,
                summary,
                details: facts.clone(),
            }],
            status: format!("silent since {}", stamp(last_ping.unwrap_or(configured_at))),
            facts,
        }
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `5m`, `1h 30m`: rounded to seconds.
pub(crate) fn span(d: TimeDelta) -> String {
    let secs = u64::try_from(d.num_seconds()).unwrap_or(0);
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const SILENCE: Silence<'static> = Silence {
        what: "heartbeat backup",
        interval: TimeDelta::minutes(5),
        grace: TimeDelta::minutes(1),
    };

    #[test]
    fn silence_is_a_finding_from_exactly_interval_plus_grace() {
        let last = Some(t("2026-01-01T00:00:00Z"));
        let set_up = t("2025-12-01T00:00:00Z");
        assert!(SILENCE
            .verdict(last, set_up, t("2026-01-01T00:05:59Z"))
            .findings
            .is_empty());
        let v = SILENCE.verdict(last, set_up, t("2026-01-01T00:06:00Z"));
        assert_eq!(v.findings.len(), 1);
        assert_eq!(v.findings[0].code, "silent");
        assert!(
            v.findings[0]
                .summary
                .contains("no ping since 2026-01-01 00:00:00 UTC (6m ago"),
            "{}",
            v.findings[0].summary
        );
    }

    #[test]
    fn never_pinged_waits_from_configuration_then_pages() {
        let set_up = t("2026-01-01T00:00:00Z");
        let waiting = SILENCE.verdict(None, set_up, t("2026-01-01T00:05:00Z"));
        assert!(waiting.findings.is_empty());
        assert!(waiting.status.starts_with("waiting for first ping"));
        let silent = SILENCE.verdict(None, set_up, t("2026-01-01T00:06:00Z"));
        assert!(silent.findings[0].summary.contains("never pinged"));
    }
}
