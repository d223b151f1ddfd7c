//! The words and colours every chat and email channel shows, in one place:
//! headline, severity label/colour/emoji, "paging alice, bob", the status of a
//! follow-up, links and the acknowledge link, plus the escaping each markup
//! needs. Channels only arrange these pieces in their own wire format, so six
//! channels cannot drift into six wordings of the same page.

use crate::alert::{AlertStatus, Severity};
use crate::channel::Notification;

/// `CRITICAL`, `ERROR`, `WARNING`, `INFO`.
pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::Error => "ERROR",
        Severity::Warning => "WARNING",
        Severity::Info => "INFO",
    }
}

/// Status colours win over severity: a resolved critical alert must stop
/// looking red, or the room still reads as on fire.
pub const RESOLVED_COLOR: u32 = 0x2E_B6_7D;
pub const ACKNOWLEDGED_COLOR: u32 = 0x36_C5_F0;

/// RGB colour for the left border / embed: red, orange, yellow, grey.
pub fn severity_color(s: Severity) -> u32 {
    match s {
        Severity::Critical => 0xE0_1E_5A,
        Severity::Error => 0xF2_71_1C,
        Severity::Warning => 0xEC_B2_2E,
        Severity::Info => 0x9E_9E_9E,
    }
}

/// The colour of this notification: severity while firing, status after.
pub fn color(n: &Notification) -> u32 {
    match n.status {
        AlertStatus::Triggered => severity_color(n.severity),
        AlertStatus::Acknowledged => ACKNOWLEDGED_COLOR,
        AlertStatus::Resolved => RESOLVED_COLOR,
    }
}

/// `#E01E5A`, the form Slack attachments and Mattermost want.
pub fn hex_color(rgb: u32) -> String {
    format!("#{:06X}", rgb & 0xFF_FF_FF)
}

/// Unicode emoji (Matrix, Teams, Discord, email all render it).
pub fn emoji(n: &Notification) -> &'static str {
    match n.status {
        AlertStatus::Acknowledged => "👀",
        AlertStatus::Resolved => "✅",
        AlertStatus::Triggered => match n.severity {
            Severity::Critical => "🚨",
            Severity::Error => "🔴",
            Severity::Warning => "⚠️",
            Severity::Info => "ℹ️",
        },
    }
}

/// `CRITICAL #42 payments: disk full` — the one-line identity of the alert,
/// also the email subject after `[Rouse] `.
pub fn title(n: &Notification) -> String {
    one_line(&format!(
        "{} #{} {}: {}",
        severity_label(n.severity),
        n.alert_id,
        n.service_id,
        n.summary
    ))
}

/// Title prefixed by the status for follow-ups: `RESOLVED #42 payments: disk full`.
pub fn headline(n: &Notification) -> String {
    match n.status {
        AlertStatus::Triggered => title(n),
        AlertStatus::Acknowledged | AlertStatus::Resolved => one_line(&format!(
            "{} #{} {}: {}",
            status_word(n.status),
            n.alert_id,
            n.service_id,
            n.summary
        )),
    }
}

pub fn status_word(s: AlertStatus) -> &'static str {
    match s {
        AlertStatus::Triggered => "FIRING",
        AlertStatus::Acknowledged => "ACKNOWLEDGED",
        AlertStatus::Resolved => "RESOLVED",
    }
}

/// `paging alice, bob` while firing; `ACKNOWLEDGED by alice` / `RESOLVED`
/// after. For follow-ups the engine puts who acted in `paged`.
pub fn status_line(n: &Notification) -> String {
    let who = n.paged.join(", ");
    match (n.status, who.is_empty()) {
        (AlertStatus::Triggered, true) => "firing".to_owned(),
        (AlertStatus::Triggered, false) => format!("paging {who}"),
        (status, true) => status_word(status).to_owned(),
        (status, false) => format!("{} by {who}", status_word(status)),
    }
}

/// Links an alert carries, as (text, href), only with http(s) targets: alert
/// links are outside data and a `javascript:` href must never become clickable.
pub fn links(n: &Notification) -> Vec<(String, String)> {
    n.links
        .iter()
        .filter(|l| is_web_url(&l.href))
        .map(|l| {
            let text = l
                .text
                .as_deref()
                .map(one_line)
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| l.href.clone());
            (text, l.href.clone())
        })
        .collect()
}

/// The acknowledge link, only while firing (acknowledging an acknowledged
/// alert is a dead end for the reader).
pub fn ack_url(n: &Notification) -> Option<&str> {
    match n.status {
        AlertStatus::Triggered => n.ack_url.as_deref().filter(|u| is_web_url(u)),
        _ => None,
    }
}

pub fn is_web_url(s: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Plain text, several lines: email text part, Matrix `body`, fallbacks.
pub fn plain_text(n: &Notification) -> String {
    let mut out = format!("{} {}\n", emoji(n), headline(n));
    out.push_str(&format!(
        "Severity: {} · Service: {}\n",
        severity_label(n.severity),
        n.service_id
    ));
    out.push_str(&status_line(n));
    out.push('\n');
    for (text, href) in links(n) {
        if text == href {
            out.push_str(&format!("{href}\n"));
        } else {
            out.push_str(&format!("{text}: {href}\n"));
        }
    }
    if let Some(url) = ack_url(n) {
        out.push_str(&format!("Acknowledge: {url}\n"));
    }
    out
}

/// HTML for Matrix `formatted_body` and the email HTML part; everything from
/// the alert is escaped.
pub fn html(n: &Notification) -> String {
    let mut out = format!(
        "<p>{} <strong>{}</strong></p>\n<p>Severity: <strong>{}</strong> · Service: <code>{}</code><br>{}</p>\n",
        emoji(n),
        escape_html(&headline(n)),
        severity_label(n.severity),
        escape_html(&n.service_id),
        escape_html(&status_line(n)),
    );
    let links = links(n);
    if !links.is_empty() {
        out.push_str("<ul>\n");
        for (text, href) in links {
            out.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>\n",
                escape_html(&href),
                escape_html(&text)
            ));
        }
        out.push_str("</ul>\n");
    }
    if let Some(url) = ack_url(n) {
        out.push_str(&format!(
            "<p><a href=\"{}\"><strong>Acknowledge</strong></a></p>\n",
            escape_html(url)
        ));
    }
    out
}

/// HTML text and attribute escaping (quotes included, for `href="…"`).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Slack mrkdwn control characters: Slack documents exactly these three; an
/// unescaped `<!channel>` in an alert summary would otherwise ping everyone.
pub fn escape_slack(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Collapses newlines and control characters to spaces: titles, subjects and
/// headers are one line.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = false;
    for c in s.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
    out.trim().to_owned()
}

/// Cuts to at most `max` characters, ending with `…` when cut: every provider
/// has field limits, and a too-long field rejects the whole page.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Link, Urgency};
    use crate::channel::Recipient;
    use chrono::TimeZone;

    fn n() -> Notification {
        Notification {
            idempotency_key: "42/1/alice/chat/1".into(),
            alert_id: 42,
            service_id: "payments".into(),
            summary: "disk\nfull <!channel>".into(),
            severity: Severity::Critical,
            urgency: Urgency::High,
            status: AlertStatus::Triggered,
            links: vec![
                Link::new("https://grafana.example/d/1", "Dashboard"),
                Link::new("javascript:alert(1)", "evil"),
            ],
            ack_url: Some("https://rouse.example/ack/abc".into()),
            reply_code: None,
            action_url: None,
            paged: vec!["alice".into(), "bob".into()],
            recipient: Recipient::Room {
                address: "#ops".into(),
            },
            attempt: 1,
            created_at: chrono::Utc
                .timestamp_opt(1_700_000_000, 0)
                .single()
                .unwrap_or_default(),
        }
    }

    #[test]
    fn title_is_one_line() {
        assert_eq!(title(&n()), "CRITICAL #42 payments: disk full <!channel>");
    }

    #[test]
    fn status_lines() {
        let mut n = n();
        assert_eq!(status_line(&n), "paging alice, bob");
        n.status = AlertStatus::Acknowledged;
        n.paged = vec!["alice".into()];
        assert_eq!(status_line(&n), "ACKNOWLEDGED by alice");
        assert_eq!(ack_url(&n), None);
        n.status = AlertStatus::Resolved;
        n.paged.clear();
        assert_eq!(status_line(&n), "RESOLVED");
        assert_eq!(color(&n), RESOLVED_COLOR);
    }

    #[test]
    fn unsafe_links_are_dropped_and_html_is_escaped() {
        let n = n();
        assert_eq!(links(&n).len(), 1);
        let h = html(&n);
        assert!(h.contains("&lt;!channel&gt;"));
        assert!(!h.contains("javascript"));
        assert!(h.contains("href=\"https://rouse.example/ack/abc\""));
        assert_eq!(hex_color(severity_color(Severity::Critical)), "#E01E5A");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
