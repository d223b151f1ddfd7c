//! TwiML for the voice page: what Twilio reads out when the callee answers,
//! and what to say after they press a key.
//!
//! Everything returned is a complete, well-formed XML document. Text and
//! attribute values are escaped (`& < > " '`), characters XML 1.0 forbids
//! (C0 controls other than tab/newline/CR, U+FFFE, U+FFFF) are removed, and
//! whitespace is collapsed, so an alert summary can never break the
//! document or inject verbs (a summary of `</Say><Dial>…` stays spoken text).
//!
//! Speech: `<Say>` with the Amazon Polly voice `Polly.Joanna`. SSML such as
//! `<prosody>` is voice-dependent, so pacing comes from plain punctuation:
//! the alert number is spelled digit by digit with commas ("4, 2"), which
//! every TTS engine reads slowly and unambiguously.

/// Polly voices read plain text well; the standard `alice`/`man`/`woman`
/// voices are being retired by Twilio.
const VOICE: &str = "Polly.Joanna";
const LANGUAGE: &str = "en-US";
/// Seconds `<Gather>` waits for the first key press after speaking.
const GATHER_TIMEOUT_SECS: u32 = 8;
/// Longest summary spoken; a page is a prompt to look, not the runbook.
const MAX_SPOKEN_SUMMARY_CHARS: usize = 300;
const PROMPT: &str =
    "Press 1 to acknowledge. Press 2 to escalate to the next person. Press 3 to resolve.";

/// What the callee asked for with their key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatherAction {
    /// `1`: acknowledge the alert; stop escalating.
    Acknowledge,
    /// `2`: hand the page to the next person now.
    Escalate,
    /// `3`: the problem is fixed; resolve the alert.
    Resolve,
    /// Anything else (or nothing): ask again.
    Reprompt,
}

/// The page read to a human: the alert spoken inside a `<Gather>` (so a key
/// press interrupts it), said a second time if nothing was pressed, then a
/// goodbye. Bounded: no `<Redirect>` loop can keep a call (and its cost)
/// running forever when nobody presses anything.
pub fn voice_page(alert_id: i64, summary: &str, gather_action_url: &str) -> String {
    let number = spell_digits(alert_id);
    let summary = crate::channel::render::truncate(&clean_text(summary), MAX_SPOKEN_SUMMARY_CHARS);
    let first = format!("Rouse alert. Alert number, {number}. {summary}. {PROMPT}");
    let again = format!("Again. Rouse alert number, {number}. {summary}. {PROMPT}");
    let mut xml = header();
    xml.push_str(&gather(gather_action_url, &first));
    xml.push_str(&gather(gather_action_url, &again));
    xml.push_str(&say("No key was pressed. Goodbye."));
    xml.push_str("<Hangup/></Response>");
    xml
}

/// Interprets the `Digits` Twilio posts to the gather action, and the TwiML
/// to answer with. On an unexpected key the caller gets one more short prompt
/// that posts back to the same `gather_action_url`.
pub fn gather_result(digits: &str, gather_action_url: &str) -> (GatherAction, String) {
    let mut xml = header();
    let action = match digits.trim() {
        "1" => {
            xml.push_str(&say("Acknowledged. Thank you."));
            xml.push_str("<Hangup/>");
            GatherAction::Acknowledge
        }
        "2" => {
            xml.push_str(&say("Escalating to the next person. Goodbye."));
            xml.push_str("<Hangup/>");
            GatherAction::Escalate
        }
        "3" => {
            xml.push_str(&say("Resolved. Thank you. Goodbye."));
            xml.push_str("<Hangup/>");
            GatherAction::Resolve
        }
        _ => {
            xml.push_str(&gather(
                gather_action_url,
                &format!("Sorry, I did not get that. {PROMPT}"),
            ));
            xml.push_str(&say("Goodbye."));
            xml.push_str("<Hangup/>");
            GatherAction::Reprompt
        }
    };
    xml.push_str("</Response>");
    (action, xml)
}

/// For `AnsweredBy` = machine/fax: hang up at once. A voicemail is not an
/// acknowledgement and leaving alert details on it helps nobody.
pub fn machine_hangup() -> String {
    let mut xml = header();
    xml.push_str("<Hangup/></Response>");
    xml
}

/// A document that says one sentence and hangs up (errors, expired links).
pub fn say_and_hangup(text: &str) -> String {
    let mut xml = header();
    xml.push_str(&say(text));
    xml.push_str("<Hangup/></Response>");
    xml
}

fn header() -> String {
    String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>")
}

fn gather(action: &str, text: &str) -> String {
    format!(
        "<Gather numDigits=\"1\" action=\"{}\" method=\"POST\" timeout=\"{GATHER_TIMEOUT_SECS}\">{}</Gather>",
        escape(&strip_illegal(action)),
        say(text)
    )
}

fn say(text: &str) -> String {
    format!(
        "<Say voice=\"{VOICE}\" language=\"{LANGUAGE}\">{}</Say>",
        escape(&clean_text(text))
    )
}

/// "42" → "4, 2"; negative ids (never issued) keep their sign spoken.
fn spell_digits(n: i64) -> String {
    let digits: Vec<String> = n
        .unsigned_abs()
        .to_string()
        .chars()
        .map(String::from)
        .collect();
    let spelled = digits.join(", ");
    if n < 0 {
        format!("minus {spelled}")
    } else {
        spelled
    }
}

/// Removes characters XML 1.0 cannot carry and collapses whitespace runs
/// (newlines, tabs) to one space: speech has no use for layout, and it keeps
/// parsers' line-ending normalisation from changing the text.
pub fn clean_text(s: &str) -> String {
    let stripped = strip_illegal(s);
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Drops characters not allowed anywhere in an XML 1.0 document.
pub fn strip_illegal(s: &str) -> String {
    s.chars().filter(|&c| is_xml_char(c)).collect()
}

fn is_xml_char(c: char) -> bool {
    // Rust chars are never surrogates, so only these ranges need excluding.
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes for both text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_and_escapes() {
        assert_eq!(spell_digits(42), "4, 2");
        assert_eq!(spell_digits(-7), "minus 7");
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
        assert_eq!(clean_text("a\u{0}b\n\t c\u{FFFE}"), "ab c");
        let page = voice_page(42, "disk </Say><Dial>+1</Dial>", "https://x/a?n=1&b=2");
        assert!(page.contains("action=\"https://x/a?n=1&amp;b=2\""));
        assert!(!page.contains("<Dial>"));
        assert!(page.ends_with("<Hangup/></Response>"));
    }

    #[test]
    fn gather_digits() {
        assert_eq!(gather_result("1", "u").0, GatherAction::Acknowledge);
        assert_eq!(gather_result(" 2 ", "u").0, GatherAction::Escalate);
        assert_eq!(gather_result("", "u").0, GatherAction::Reprompt);
        assert_eq!(gather_result("12", "u").0, GatherAction::Reprompt);
    }
}
