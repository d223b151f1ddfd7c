//! Signed, expiring tokens bound to one alert and one purpose.
//!
//! A token is `<expiry unix seconds>.<hex HMAC-SHA256(key, "purpose:alert:expiry")>`.
//! Binding the purpose means a voice-call token cannot be replayed as an ack
//! link; binding the alert means a token for #41 cannot acknowledge #42.
//! Verification compares MACs in constant time.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// ```
/// use chrono::{TimeDelta, Utc};
/// use rouse::ack::token::{Signer, TokenError};
/// use rouse::config::Secret;
///
/// let signer = Signer::new(Secret::new("a-key-of-at-least-32-characters!!"));
/// let now = Utc::now();
/// let token = signer.sign("ack", 42, now + TimeDelta::hours(24));
/// assert_eq!(signer.verify("ack", 42, &token, now), Ok(()));
/// assert_eq!(signer.verify("ack", 43, &token, now), Err(TokenError::BadSignature));
/// ```
#[derive(Clone)]
pub struct Signer {
    key: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link has expired")]
    Expired,
    #[error("the link is not valid for this alert")]
    BadSignature,
}

impl Signer {
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    pub fn sign(&self, purpose: &str, alert_id: i64, expires: DateTime<Utc>) -> String {
        let expiry = expires.timestamp();
        format!("{expiry}.{}", hex(&self.mac(purpose, alert_id, expiry)))
    }

    pub fn verify(
        &self,
        purpose: &str,
        alert_id: i64,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TokenError> {
        let (expiry, mac) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let expiry: i64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
        let given = unhex(mac).ok_or(TokenError::Malformed)?;
        let expected = self.mac(purpose, alert_id, expiry);
        if !bool::from(given.as_slice().ct_eq(expected.as_slice())) {
            return Err(TokenError::BadSignature);
        }
        // Checked after the MAC so an attacker learns nothing from the order.
        if now.timestamp() > expiry {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    fn mac(&self, purpose: &str, alert_id: i64, expiry: i64) -> Vec<u8> {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes()) else {
            // HMAC takes keys of any length; this branch cannot be reached.
            return Vec::new();
        };
        mac.update(format!("{purpose}:{alert_id}:{expiry}").as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    // Exactly one SHA-256 MAC.
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn a_token_is_bound_to_its_alert_purpose_and_lifetime() {
        let signer = Signer::new(Secret::new("k".repeat(32)));
        let now = Utc::now();
        let token = signer.sign("ack", 42, now + TimeDelta::hours(1));
        assert_eq!(signer.verify("ack", 42, &token, now), Ok(()));
        assert_eq!(
            signer.verify("ack", 43, &token, now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            signer.verify("voice", 42, &token, now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            signer.verify("ack", 42, &token, now + TimeDelta::hours(2)),
            Err(TokenError::Expired)
        );
        let other = Signer::new(Secret::new("x".repeat(32)));
        assert_eq!(
            other.verify("ack", 42, &token, now),
            Err(TokenError::BadSignature)
        );
        // Moving the expiry forward breaks the MAC.
        let (_, mac) = token.split_once('.').unwrap();
        let forged = format!("{}.{mac}", (now + TimeDelta::days(9)).timestamp());
        assert_eq!(
            signer.verify("ack", 42, &forged, now),
            Err(TokenError::BadSignature)
        );
        for junk in ["", ".", "abc", "1.zz", "1.", &"1.".repeat(200)] {
            assert_eq!(
                signer.verify("ack", 42, junk, now),
                Err(TokenError::Malformed),
                "{junk:?}"
            );
        }
    }
}
