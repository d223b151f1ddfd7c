//! The contact card people save so that Rouse's calls and texts ring through
//! Do Not Disturb: a vCard 4.0 (RFC 6350) named "Rouse pager" with every
//! number Rouse calls and texts from. Phones let a favourite (iOS) or starred
//! (Android) contact through silent mode, and iOS's Emergency Bypass is set
//! per contact, so the numbers must be on one card the person can save.

/// The sender numbers worth a card entry: E.164 only (a Twilio messaging
/// service id such as `MG…` is not a number anyone can save).
pub fn numbers<'a>(from: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for n in from {
        let e164 = n
            .strip_prefix('+')
            .is_some_and(|d| (7..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()));
        if e164 && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The card's text, with CRLF line ends as RFC 6350 asks. The numbers are
/// E.164 already (see [`numbers`]), so nothing in the card needs escaping
/// except the note, which is fixed.
pub fn card(numbers: &[&str]) -> String {
    let mut lines = vec![
        "BEGIN:VCARD".to_owned(),
        "VERSION:4.0".to_owned(),
        "KIND:org".to_owned(),
        "FN:Rouse pager".to_owned(),
        "N:;Rouse pager;;;".to_owned(),
        "ORG:Rouse".to_owned(),
    ];
    for (i, n) in numbers.iter().enumerate() {
        lines.push(format!(
            "TEL;VALUE=uri;TYPE=voice,text;PREF={}:tel:{n}",
            i + 1
        ));
    }
    lines.push(
        "NOTE:Rouse pages you from these numbers when you are on call. Make this \
         contact a favourite (iPhone) or starred contact (Android) and let it \
         through Do Not Disturb\\, so that a page wakes you."
            .to_owned(),
    );
    lines.push("END:VCARD".to_owned());
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_phone_numbers_make_the_card_once_each() {
        assert_eq!(
            numbers(["+15005550006", "MG0123", "+15005550006", "+4915100000009"]),
            ["+15005550006", "+4915100000009"]
        );
        let text = card(&["+15005550006"]);
        assert!(text.starts_with("BEGIN:VCARD\r\nVERSION:4.0\r\n"));
        assert!(text.contains("\r\nTEL;VALUE=uri;TYPE=voice,text;PREF=1:tel:+15005550006\r\n"));
        assert!(text.ends_with("END:VCARD\r\n"));
    }
}
