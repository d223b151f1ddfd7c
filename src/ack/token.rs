//! Signed, expiring tokens bound to one alert, one person and one action.
//!
//! A token is `<person>.<action><expiry>.<mac>`:
//! - `person`: the id of the person it was sent to (empty for a chat room);
//! - `action`: `a` acknowledge, `r` resolve, `v` a voice call's TwiML URLs,
//!   `p` a push notification's acknowledge button;
//! - `expiry`: unix seconds in base 36;
//! - `mac`: HMAC-SHA256 over all of that and the alert id, truncated to 128
//!   bits and base64url-encoded (22 characters).
//!
//! Binding the action means a voice-call token cannot be replayed as an ack
//! link and an acknowledge link cannot resolve; binding the alert means a
//! token for #41 cannot acknowledge #42; binding the person means the
//! timeline can say who acted. A link for alice is about 60 characters with
//! the host, short enough to sit in an SMS. 128 bits of MAC is far beyond
//! what anyone can guess online against a rate-limited endpoint.
//!
//! Keys rotate: a previous key can be kept for a grace period, during which
//! tokens signed with either key verify. MACs are compared in constant time
//! and both keys are always tried, so timing reveals nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// Bytes of HMAC kept in a token.
const MAC_BYTES: usize = 16;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Acknowledge,
    Resolve,
    /// Fetching a call's TwiML and posting its key presses.
    Voice,
    /// The acknowledge button of a push notification (an ntfy `http` action),
    /// which POSTs without showing a page: kept apart from ack links so that
    /// neither can stand in for the other.
    PushAck,
}

impl Purpose {
    fn code(self) -> char {
        match self {
            Purpose::Acknowledge => 'a',
            Purpose::Resolve => 'r',
            Purpose::Voice => 'v',
            Purpose::PushAck => 'p',
        }
    }

    fn from_code(c: char) -> Option<Purpose> {
        [
            Purpose::Acknowledge,
            Purpose::Resolve,
            Purpose::Voice,
            Purpose::PushAck,
        ]
        .into_iter()
        .find(|p| p.code() == c)
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub purpose: Purpose,
    /// The person the link was sent to; empty for a chat room.
    pub person: String,
    pub expires: DateTime<Utc>,
}

/// ```
/// use chrono::{TimeDelta, Utc};
/// use rouse::ack::token::{Purpose, Signer, TokenError};
/// use rouse::config::Secret;
///
/// let signer = Signer::new(Secret::new("a-key-of-at-least-32-characters!!"));
/// let now = Utc::now();
/// let token = signer.sign(Purpose::Acknowledge, 42, "alice", now + TimeDelta::hours(24));
/// let grant = signer.verify(42, &token, now).unwrap();
/// assert_eq!((grant.purpose, grant.person.as_str()), (Purpose::Acknowledge, "alice"));
/// assert_eq!(signer.verify(43, &token, now), Err(TokenError::BadSignature));
/// ```
#[derive(Clone)]
pub struct Signer {
    current: Secret,
    /// The key before the last rotation, accepted until the instant given.
    previous: Option<(Secret, DateTime<Utc>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link has expired")]
    Expired,
    #[error("the link is not valid for this alert")]
    BadSignature,
    #[error("the link does not allow this action")]
    WrongPurpose,
}

impl Signer {
    pub fn new(key: Secret) -> Self {
        Self {
            current: key,
            previous: None,
        }
    }

    /// Also accepts tokens signed with `key` until `until` (a key rotation's
    /// grace period: links already sent keep working).
    pub fn with_previous(mut self, key: Secret, until: DateTime<Utc>) -> Self {
        self.previous = Some((key, until));
        self
    }

    pub fn sign(
        &self,
        purpose: Purpose,
        alert_id: i64,
        person: &str,
        expires: DateTime<Utc>,
    ) -> String {
        let expiry = expires.timestamp().max(0);
        let mac = mac(&self.current, purpose, alert_id, person, expiry);
        format!(
            "{person}.{}{}.{}",
            purpose.code(),
            base36(expiry),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// Checks the token against `alert_id` and returns what it grants.
    pub fn verify(
        &self,
        alert_id: i64,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Grant, TokenError> {
        let mut parts = token.rsplitn(3, '.');
        let (Some(mac_text), Some(middle), Some(person)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let mut chars = middle.chars();
        let purpose = chars
            .next()
            .and_then(Purpose::from_code)
            .ok_or(TokenError::Malformed)?;
        let expiry = unbase36(chars.as_str()).ok_or(TokenError::Malformed)?;
        if mac_text.len() != 22 {
            return Err(TokenError::Malformed);
        }
        let given = URL_SAFE_NO_PAD
            .decode(mac_text)
            .map_err(|_| TokenError::Malformed)?;
        let mut ok = given
            .as_slice()
            .ct_eq(&mac(&self.current, purpose, alert_id, person, expiry));
        if let Some((previous, until)) = &self.previous {
            let old = given
                .as_slice()
                .ct_eq(&mac(previous, purpose, alert_id, person, expiry));
            ok |= old & subtle::Choice::from(u8::from(now <= *until));
        }
        if !bool::from(ok) {
            return Err(TokenError::BadSignature);
        }
        // Checked after the MAC so an attacker learns nothing from the order.
        if now.timestamp() > expiry {
            return Err(TokenError::Expired);
        }
        Ok(Grant {
            purpose,
            person: person.to_owned(),
            expires: DateTime::from_timestamp(expiry, 0).unwrap_or(DateTime::<Utc>::MAX_UTC),
        })
    }

    /// [`Signer::verify`] that also insists on one purpose.
    pub fn verify_for(
        &self,
        purpose: Purpose,
        alert_id: i64,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Grant, TokenError> {
        let grant = self.verify(alert_id, token, now)?;
        if grant.purpose != purpose {
            return Err(TokenError::WrongPurpose);
        }
        Ok(grant)
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

fn mac(
    key: &Secret,
    purpose: Purpose,
    alert_id: i64,
    person: &str,
    expiry: i64,
) -> [u8; MAC_BYTES] {
    let mut out = [0u8; MAC_BYTES];
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()) else {
        // HMAC takes keys of any length; this branch cannot be reached.
        return out;
    };
    // The person goes last with its length first, so no two inputs share an
    // encoding whatever characters an id holds.
    mac.update(
        format!(
            "rouse-link-1:{}:{alert_id}:{expiry}:{}:{person}",
            purpose.code(),
            person.len()
        )
        .as_bytes(),
    );
    let full = mac.finalize().into_bytes();
    out.copy_from_slice(&full[..MAC_BYTES]);
    out
}

fn base36(mut n: i64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n <= 0 {
        return "0".to_owned();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn unbase36(s: &str) -> Option<i64> {
    // Thirteen digits already exceed any instant chrono can represent.
    if s.is_empty() || s.len() > 12 {
        return None;
    }
    s.chars().try_fold(0i64, |acc, c| {
        let d = c.to_digit(36)?;
        if c.is_ascii_uppercase() {
            return None;
        }
        acc.checked_mul(36)?.checked_add(i64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn signer() -> Signer {
        Signer::new(Secret::new("k".repeat(32)))
    }

    #[test]
    fn a_token_is_bound_to_its_alert_person_purpose_and_lifetime() {
        let signer = signer();
        let now = Utc::now();
        let token = signer.sign(Purpose::Acknowledge, 42, "alice", now + TimeDelta::hours(1));
        let grant = signer.verify(42, &token, now).unwrap();
        assert_eq!(grant.person, "alice");
        assert_eq!(grant.purpose, Purpose::Acknowledge);
        assert_eq!(
            signer.verify(43, &token, now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            signer.verify_for(Purpose::Resolve, 42, &token, now),
            Err(TokenError::WrongPurpose)
        );
        assert_eq!(
            signer.verify(42, &token, now + TimeDelta::hours(2)),
            Err(TokenError::Expired)
        );
        let other = Signer::new(Secret::new("x".repeat(32)));
        assert_eq!(other.verify(42, &token, now), Err(TokenError::BadSignature));
    }

    #[test]
    fn editing_any_field_breaks_the_mac() {
        let signer = signer();
        let now = Utc::now();
        let token = signer.sign(Purpose::Acknowledge, 42, "alice", now + TimeDelta::hours(1));
        let (person, rest) = token.split_once('.').unwrap();
        let (middle, mac) = rest.split_once('.').unwrap();
        let later = base36((now + TimeDelta::days(9)).timestamp());
        for forged in [
            format!("bob.{middle}.{mac}"),
            format!("{person}.r{}.{mac}", &middle[1..]),
            format!("{person}.v{}.{mac}", &middle[1..]),
            format!("{person}.p{}.{mac}", &middle[1..]),
            format!("{person}.a{later}.{mac}"),
            format!("{person}.{middle}.{}", "A".repeat(22)),
        ] {
            assert_eq!(
                signer.verify(42, &forged, now),
                Err(TokenError::BadSignature),
                "{forged}"
            );
        }
    }

    #[test]
    fn junk_is_malformed_not_a_panic() {
        let signer = signer();
        let now = Utc::now();
        for junk in [
            "",
            ".",
            "..",
            "abc",
            "a.b.c",
            "alice.x1.AAAAAAAAAAAAAAAAAAAAAA",
            "alice.a.AAAAAAAAAAAAAAAAAAAAAA",
            "alice.aZZ.AAAAAAAAAAAAAAAAAAAAAA",
            "alice.azzzzzzzzzzzzzz.AAAAAAAAAAAAAAAAAAAAAA",
            "alice.a1.short",
            "alice.a1.!!!!!!!!!!!!!!!!!!!!!!",
            &"1.".repeat(200),
        ] {
            assert_eq!(
                signer.verify(42, junk, now),
                Err(TokenError::Malformed),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn a_rotated_key_is_accepted_only_during_its_grace_period() {
        let now = Utc::now();
        let old = signer();
        let token = old.sign(Purpose::Acknowledge, 7, "alice", now + TimeDelta::hours(24));
        let rotated = Signer::new(Secret::new("n".repeat(32)))
            .with_previous(Secret::new("k".repeat(32)), now + TimeDelta::hours(1));
        assert!(rotated.verify(7, &token, now).is_ok());
        assert_eq!(
            rotated.verify(7, &token, now + TimeDelta::hours(2)),
            Err(TokenError::BadSignature)
        );
        // New tokens are signed with the new key only.
        let fresh = rotated.sign(Purpose::Acknowledge, 7, "alice", now + TimeDelta::hours(24));
        assert_eq!(old.verify(7, &fresh, now), Err(TokenError::BadSignature));
        assert!(rotated.verify(7, &fresh, now + TimeDelta::hours(2)).is_ok());
    }

    #[test]
    fn tokens_are_short_and_url_safe() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let token = signer().sign(Purpose::Acknowledge, 123_456, "alice", now);
        assert!(token.len() <= 40, "{token} is {} chars", token.len());
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
        assert_eq!(unbase36(&base36(1_800_000_000)), Some(1_800_000_000));
    }

    #[test]
    fn a_room_token_has_no_person() {
        let signer = signer();
        let now = Utc::now();
        let token = signer.sign(Purpose::Voice, 1, "", now + TimeDelta::minutes(5));
        assert!(token.starts_with(".v"));
        assert_eq!(signer.verify(1, &token, now).unwrap().person, "");
    }
}
