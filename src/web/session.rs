//! Web UI sessions, CSRF tokens and the failed-login limit.
//!
//! Sessions are signed cookies with server-side revocation, not rows: every
//! replica already shares `signing_key` (ack links need it), so any replica
//! can check a cookie without a database round trip on each page, and a
//! database outage — when the UI matters most — does not log everyone out.
//! The cookie carries a random session id, the person, when it was issued and
//! when it was last used; the MAC covers all of it, so a cookie signed with
//! another key, or edited, is refused. Logging out revokes the id (kept until
//! the session could have expired anyway); an idle session is refused and the
//! next login issues a new id, so ids rotate on login, logout and expiry.
//!
//! CSRF tokens are a MAC of the session id: no state, bound to one session,
//! and useless to anyone who cannot read the victim's page. Everything here
//! takes `now` as an argument; the clock is the caller's.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// The session cookie's name.
pub const COOKIE: &str = "rouse_session";
/// The login form's pre-session cookie (its CSRF token is bound to it).
pub const LOGIN_COOKIE: &str = "rouse_login";
/// However active, a session ends this long after login.
pub const MAX_AGE: TimeDelta = TimeDelta::days(7);
/// A used session's cookie is re-issued (new "last used") at most this often.
const TOUCH_EVERY: TimeDelta = TimeDelta::minutes(1);

/// A checked session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    /// A person id, or [`ADMIN`] for the admin token.
    pub person: String,
    pub issued: DateTime<Utc>,
    pub seen: DateTime<Utc>,
}

/// Who a session logged in with the admin token is.
pub const ADMIN: &str = "admin";

impl Session {
    /// Whether the cookie should be re-issued to move "last used" forward.
    pub fn needs_touch(&self, now: DateTime<Utc>) -> bool {
        now - self.seen >= TOUCH_EVERY
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("malformed session cookie")]
    Malformed,
    #[error("session cookie not signed by this server")]
    BadSignature,
    #[error("session expired")]
    Expired,
    #[error("session ended by logout")]
    Revoked,
}

pub struct Sessions {
    key: Vec<u8>,
    idle: TimeDelta,
    /// Logged-out session ids and when they would have ended anyway.
    revoked: Mutex<HashMap<String, DateTime<Utc>>>,
    failures: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
    max_failures: usize,
    window: TimeDelta,
}

type HmacSha256 = Hmac<Sha256>;

impl Sessions {
    /// `signing_key` is the server's; the session key is derived from it so a
    /// session cookie can never be mistaken for an ack-link MAC or the reverse.
    pub fn new(
        signing_key: &Secret,
        idle: std::time::Duration,
        max_failures: u32,
        window: std::time::Duration,
    ) -> Self {
        let mut mac = HmacSha256::new_from_slice(signing_key.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"rouse web session v1");
        Self {
            key: mac.finalize().into_bytes().to_vec(),
            idle: TimeDelta::from_std(idle).unwrap_or(TimeDelta::hours(8)),
            revoked: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            max_failures: max_failures.max(1) as usize,
            window: TimeDelta::from_std(window).unwrap_or(TimeDelta::minutes(15)),
        }
    }

    fn mac(&self, purpose: &str, data: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
    }

    /// `data` with a MAC for `purpose`: for short-lived state the browser
    /// carries (the OIDC login's state, nonce and PKCE verifier). Signed, not
    /// encrypted: it only ever goes back to this server over the same channel.
    pub fn seal(&self, purpose: &str, data: &str) -> String {
        format!("{data}.{}", self.mac(purpose, data))
    }

    /// The data of a [`Sessions::seal`]ed value, if this server signed it for `purpose`.
    pub fn open<'a>(&self, purpose: &str, sealed: &'a str) -> Option<&'a str> {
        let (data, mac) = sealed.rsplit_once('.')?;
        let expected = self.mac(purpose, data);
        bool::from(expected.as_bytes().ct_eq(mac.as_bytes())).then_some(data)
    }

    /// A new session for `person`, with a fresh random id.
    pub fn start(&self, person: &str, now: DateTime<Utc>) -> Session {
        Session {
            id: random_id(),
            person: person.to_owned(),
            issued: now,
            seen: now,
        }
    }

    /// The cookie value for `session`: `id.person.issued.seen.mac`.
    pub fn encode(&self, session: &Session) -> String {
        let body = format!(
            "{}.{}.{}.{}",
            session.id,
            URL_SAFE_NO_PAD.encode(session.person.as_bytes()),
            session.issued.timestamp(),
            session.seen.timestamp()
        );
        let mac = self.mac("session", &body);
        format!("{body}.{mac}")
    }

    /// Checks a cookie value: signature first, then revocation and age.
    pub fn decode(&self, cookie: &str, now: DateTime<Utc>) -> Result<Session, SessionError> {
        let (body, mac) = cookie.rsplit_once('.').ok_or(SessionError::Malformed)?;
        let expected = self.mac("session", body);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return Err(SessionError::BadSignature);
        }
        let parts: Vec<&str> = body.split('.').collect();
        let [id, person, issued, seen] = parts[..] else {
            return Err(SessionError::Malformed);
        };
        let person = URL_SAFE_NO_PAD
            .decode(person)
            .ok()
            .and_then(|p| String::from_utf8(p).ok())
            .ok_or(SessionError::Malformed)?;
        let instant = |s: &str| {
            s.parse::<i64>()
                .ok()
                .and_then(|t| DateTime::from_timestamp(t, 0))
                .ok_or(SessionError::Malformed)
        };
        let session = Session {
            id: id.to_owned(),
            person,
            issued: instant(issued)?,
            seen: instant(seen)?,
        };
        if now - session.seen > self.idle || now - session.issued > MAX_AGE {
            return Err(SessionError::Expired);
        }
        if self.lock_revoked().contains_key(&session.id) {
            return Err(SessionError::Revoked);
        }
        Ok(session)
    }

    /// Ends a session for good (logout).
    pub fn revoke(&self, session: &Session, now: DateTime<Utc>) {
        let mut revoked = self.lock_revoked();
        // Ids past their maximum age are refused anyway: forget them.
        revoked.retain(|_, until| *until > now);
        revoked.insert(session.id.clone(), session.issued + MAX_AGE);
    }

    /// The CSRF token for forms shown in `session`.
    pub fn csrf(&self, session_id: &str) -> String {
        self.mac("csrf", session_id)
    }

    /// Whether `given` is the CSRF token of `session_id`, in constant time.
    pub fn csrf_ok(&self, session_id: &str, given: &str) -> bool {
        let expected = self.csrf(session_id);
        bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }

    /// Whether `login` may try a password now (fewer failures than allowed
    /// within the window); the failures are per login name, so guessing one
    /// person's password does not lock out everyone else.
    pub fn may_try(&self, login: &str, now: DateTime<Utc>) -> Result<(), TimeDelta> {
        let mut failures = self.lock_failures();
        let Some(times) = failures.get_mut(&login.to_lowercase()) else {
            return Ok(());
        };
        while times.front().is_some_and(|t| now - *t >= self.window) {
            times.pop_front();
        }
        match times.front() {
            Some(oldest) if times.len() >= self.max_failures => Err(*oldest + self.window - now),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, login: &str, now: DateTime<Utc>) {
        let mut failures = self.lock_failures();
        // Bound the memory an attacker spraying names can take: drop names
        // whose failures have all aged out first.
        if failures.len() > 10_000 {
            let window = self.window;
            failures.retain(|_, times| times.back().is_some_and(|t| now - *t < window));
        }
        let times = failures.entry(login.to_lowercase()).or_default();
        times.push_back(now);
        while times.len() > self.max_failures {
            times.pop_front();
        }
    }

    pub fn succeeded(&self, login: &str) {
        self.lock_failures().remove(&login.to_lowercase());
    }

    fn lock_revoked(&self) -> std::sync::MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<DateTime<Utc>>>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// 128 random bits (two v4 UUIDs' worth of the OS generator), base64url.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    bytes[8..].copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(key: &str) -> Sessions {
        Sessions::new(
            &Secret::new(key),
            std::time::Duration::from_secs(3600),
            3,
            std::time::Duration::from_secs(600),
        )
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_cookie_round_trips_and_another_key_is_refused() {
        let (a, b) = (sessions("key-a"), sessions("key-b"));
        let s = a.start("alice", t0());
        let cookie = a.encode(&s);
        assert_eq!(a.decode(&cookie, t0()), Ok(s));
        assert_eq!(b.decode(&cookie, t0()), Err(SessionError::BadSignature));
        let edited = cookie.replacen(
            &URL_SAFE_NO_PAD.encode("alice"),
            &URL_SAFE_NO_PAD.encode("admin"),
            1,
        );
        assert_eq!(a.decode(&edited, t0()), Err(SessionError::BadSignature));
    }

    #[test]
    fn idle_sessions_and_logged_out_ones_are_refused() {
        let a = sessions("key-a");
        let s = a.start("alice", t0());
        let cookie = a.encode(&s);
        assert_eq!(
            a.decode(&cookie, t0() + TimeDelta::minutes(61)),
            Err(SessionError::Expired)
        );
        a.revoke(&s, t0());
        assert_eq!(a.decode(&cookie, t0()), Err(SessionError::Revoked));
        assert_ne!(a.start("alice", t0()).id, s.id);
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let a = sessions("key-a");
        let token = a.csrf("one");
        assert!(a.csrf_ok("one", &token));
        assert!(!a.csrf_ok("two", &token));
        assert!(!a.csrf_ok("one", ""));
    }

    #[test]
    fn failures_lock_one_login_for_the_window() {
        let a = sessions("key-a");
        for _ in 0..3 {
            assert!(a.may_try("Alice", t0()).is_ok());
            a.failed("alice", t0());
        }
        assert!(a.may_try("alice", t0()).is_err());
        assert!(a.may_try("bob", t0()).is_ok());
        assert!(a.may_try("alice", t0() + TimeDelta::minutes(10)).is_ok());
    }
}
