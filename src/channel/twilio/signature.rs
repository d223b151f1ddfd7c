//! `X-Twilio-Signature` verification for everything Twilio POSTs to Rouse
//! (TwiML fetches, `<Gather>` actions, status callbacks, inbound SMS).
//!
//! The algorithm (Twilio's "Webhooks security" page, and what
//! `twilio-python`'s `RequestValidator` does byte for byte):
//!
//! 1. Start from the full URL Twilio requested, query string included.
//! 2. For a form POST, append every parameter as `key + value`, keys sorted.
//!    A key that repeats contributes each *distinct* value, the values sorted
//!    too (twilio-python iterates `sorted(set(values))`; the generator of our
//!    known-answer vectors). Keys compare by Unicode code point, which is what
//!    sorting UTF-8 byte strings gives.
//! 3. HMAC-SHA1 with the account's auth token, base64 (standard, padded).
//!
//! Provider quirk: behind some load balancers Twilio signs the URL with an
//! explicit port (`https://host:443/path`) or without the one you configured,
//! so [`verify`] accepts the signature for the URL with and without the port,
//! exactly like the official helper libraries do.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// The base64 signature Twilio would send for `url` and the POSTed `params`.
pub fn compute(url: &str, params: &[(String, String)], token: &Secret) -> String {
    let mut keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();

    let mut data = String::from(url);
    for key in keys {
        let mut values: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        values.sort_unstable();
        values.dedup();
        for value in values {
            data.push_str(key);
            data.push_str(value);
        }
    }

    // HMAC takes keys of any length, so this cannot fail; an empty signature
    // would simply never verify.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(token.expose().as_bytes()) else {
        return String::new();
    };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// True when `header_value` is a valid signature of the request, for the URL
/// as given or with/without its port. Every candidate is compared in constant
/// time and all are evaluated, so timing does not reveal which one was close.
pub fn verify(url: &str, params: &[(String, String)], token: &Secret, header_value: &str) -> bool {
    let header = header_value.trim().as_bytes();
    if header.is_empty() {
        return false;
    }
    let mut ok = subtle::Choice::from(0u8);
    for candidate in url_variants(url) {
        let expected = compute(&candidate, params, token);
        ok |= expected.as_bytes().ct_eq(header);
    }
    bool::from(ok)
}

/// The URL as given, without its port, and with the scheme's default port,
/// deduplicated. Mirrors twilio-python's `remove_port`/`add_port`.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // Keep any userinfo (`user:pass@`) untouched: its ':' is not a port.
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => authority.split_at(i + 1),
        None => ("", authority),
    };
    // A ':' after the closing ']' of an IPv6 literal (or anywhere in a
    // hostname) starts the port.
    let host_end = hostport.rfind(']').map_or(0, |i| i + 1);
    let (host, port) = match hostport[host_end..].find(':') {
        Some(i) => (
            &hostport[..host_end + i],
            Some(&hostport[host_end + i + 1..]),
        ),
        None => (hostport, None),
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        _ => "80",
    };
    let without = format!("{scheme}://{userinfo}{host}{tail}");
    let with = match port {
        Some(p) => format!("{scheme}://{userinfo}{host}:{p}{tail}"),
        None => format!("{scheme}://{userinfo}{host}:{default_port}{tail}"),
    };
    for v in [without, with] {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variants() {
        assert_eq!(
            url_variants("https://h.example/a?b=1"),
            vec!["https://h.example/a?b=1", "https://h.example:443/a?b=1"]
        );
        assert_eq!(
            url_variants("https://h.example:443/a"),
            vec!["https://h.example:443/a", "https://h.example/a"]
        );
        assert_eq!(
            url_variants("http://u:p@[::1]:8080"),
            vec!["http://u:p@[::1]:8080", "http://u:p@[::1]"]
        );
        assert_eq!(url_variants("not a url"), vec!["not a url"]);
    }

    #[test]
    fn repeated_keys_use_each_distinct_value_sorted() {
        let t = Secret::new("t");
        let a = vec![
            ("E".to_string(), "b".to_string()),
            ("E".to_string(), "a".to_string()),
        ];
        let b = vec![
            ("E".to_string(), "a".to_string()),
            ("E".to_string(), "b".to_string()),
            ("E".to_string(), "a".to_string()),
        ];
        assert_eq!(compute("u", &a, &t), compute("u", &b, &t));
        assert!(verify("u", &b, &t, &compute("u", &a, &t)));
        assert!(!verify("u", &b, &t, ""));
    }
}
