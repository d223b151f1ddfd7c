//! YAML parse errors in words for the people who edit the files. The
//! parser's own messages are written for programmers (a duplicate key
//! suggests "set DuplicateKeyPolicy in Options"); only its user-facing
//! rendering is passed on, the place is reported separately, and a duplicate
//! key, the likeliest slip in a hand-edited file, is named outright.

/// The message for `e`, without its place (`line`/`column` come from
/// [`serde_saphyr::Error::location`]) and without snippets or hints.
pub fn message(e: &serde_saphyr::Error) -> String {
    match e.without_snippet() {
        serde_saphyr::Error::DuplicateMappingKey { key: Some(k), .. } => {
            format!("duplicate key `{k}`")
        }
        serde_saphyr::Error::DuplicateMappingKey { key: None, .. } => "duplicate key".to_owned(),
        other => {
            let text = other.render_with_formatter(&serde_saphyr::UserMessageFormatter);
            let first = text.split_whitespace().collect::<Vec<_>>().join(" ");
            strip_location(&first)
        }
    }
}

/// serde-saphyr appends " at line N, column M"; callers carry the place.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(", column ") => message[..i].to_owned(),
        _ => message.to_owned(),
    }
}
