//! Logging in and out of the web UI: a person's password (Argon2 hash in the
//! YAML) or the admin token. Failed attempts are limited per login name.
//! Single sign-on (src/web/oidc.rs) ends in the same [`start_session`].

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::session::{self, ADMIN, LOGIN_COOKIE};
use super::{clear_cookie, cookie, render, set_cookie, Viewer, WebState};
use crate::http::ApiError;

#[derive(Debug, Default, Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Only a path inside the UI, so the login form cannot be turned into an
/// open redirect.
pub(super) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/ui/alerts",
    }
}

pub(super) fn login_page(
    web: &WebState,
    status: StatusCode,
    next: &str,
    error: Option<String>,
    nonce: Option<String>,
) -> Response {
    // The form's CSRF token is bound to a pre-session cookie: a fresh one
    // each time the form is shown unless the browser already holds one.
    let nonce = nonce.unwrap_or_else(session::random_id);
    let csrf = web.sessions.csrf(&format!("login:{nonce}"));
    let mut response = render(
        status,
        "login.html",
        minijinja::context! {
            next => next,
            error => error,
            csrf => csrf,
            admin_token => web.app.config.admin_token.is_some(),
            // None: SSO not configured; false: configured, provider not reached yet.
            sso => web.oidc.as_ref().map(|o| o.available()),
            sso_url => format!(
                "/ui/login/oidc?next={}",
                crate::channel::twilio::percent_encode(next)
            ),
        },
    );
    if let Ok(v) = HeaderValue::from_str(&super::cookie_header(
        LOGIN_COOKIE,
        &nonce,
        "/ui",
        3600,
        web.secure,
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `GET /ui/login`
pub async fn form(
    State(web): State<WebState>,
    headers: HeaderMap,
    query: Result<Query<Next>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = query.ok().and_then(|q| q.0.next);
    let nonce = cookie(&headers, LOGIN_COOKIE).map(str::to_owned);
    if let Some(oidc) = &web.oidc {
        oidc.refresh().await;
    }
    login_page(
        &web,
        StatusCode::OK,
        safe_next(next.as_deref()),
        None,
        nonce,
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// A hash verified when the login name is unknown, so an unknown name takes
/// as long as a wrong password and timing does not tell which names exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$QkBkbSa0S9CVJhbDk8Qx2c1ttVfgW63NkPI/lVuVc2I";

fn verify(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).ok().is_some_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// `POST /ui/login`
pub async fn submit(
    State(web): State<WebState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let Form(form) = form.map_err(|e| ApiError::BadRequest(format!("login form: {e}")))?;
    let now = web.app.clock.now();
    let nonce = cookie(&headers, LOGIN_COOKIE).map(str::to_owned);
    let csrf_ok = nonce
        .as_deref()
        .is_some_and(|n| web.sessions.csrf_ok(&format!("login:{n}"), &form.csrf));
    if !csrf_ok {
        return Err(ApiError::Forbidden(
            "missing or wrong CSRF token: reload the login page and try again".to_owned(),
        ));
    }
    let next = safe_next(form.next.as_deref()).to_owned();
    let using_token = !form.token.is_empty();
    let name = if using_token {
        ADMIN.to_owned()
    } else {
        form.login.trim().to_owned()
    };
    if name.is_empty() || name.chars().count() > 128 {
        return Ok(login_page(
            &web,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Enter your login and password.".to_owned()),
            nonce,
        ));
    }
    if let Err(wait) = web.sessions.may_try(&name, now) {
        let secs = wait.num_seconds().max(1);
        let mut page = login_page(
            &web,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(format!(
                "Too many failed logins for {name}. Try again in {} min.",
                (secs as u64).div_ceil(60)
            )),
            nonce,
        );
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
        return Ok(page);
    }
    let person = if using_token {
        let ok = web.app.config.admin_token.as_ref().is_some_and(|expected| {
            let a = Sha256::digest(form.token.as_bytes());
            let b = Sha256::digest(expected.expose().as_bytes());
            bool::from(a.ct_eq(&b))
        });
        ok.then(|| ADMIN.to_owned())
    } else {
        // The login is a person's id or their email address.
        let catalog = web.app.catalog.current();
        let found = catalog.as_ref().and_then(|c| {
            c.people()
                .find(|p| {
                    p.id == name
                        || p.contact
                            .email
                            .as_deref()
                            .is_some_and(|e| e.eq_ignore_ascii_case(&name))
                })
                .and_then(|p| {
                    c.password_hash(&p.id)
                        .map(|h| (p.id.clone(), h.expose().to_owned()))
                })
        });
        let password = form.password.clone();
        let (id, hash) = match found {
            Some((id, hash)) => (Some(id), hash),
            None => (None, DUMMY_HASH.to_owned()),
        };
        // Argon2 is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || verify(&password, &hash))
            .await
            .unwrap_or(false);
        id.filter(|_| ok)
    };
    let Some(person) = person else {
        web.sessions.failed(&name, now);
        tracing::info!(login = %name, "web UI login failed");
        return Ok(login_page(
            &web,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Wrong login or password.".to_owned()),
            nonce,
        ));
    };
    web.sessions.succeeded(&name);
    tracing::info!(person = %person, "web UI login");
    Ok(start_session(&web, &person, next, now))
}

/// Logs `person` in: a new session cookie, the login form's cookie cleared,
/// and a redirect to `next`. Every way of logging in ends here.
pub(super) fn start_session(
    web: &WebState,
    person: &str,
    next: String,
    now: chrono::DateTime<chrono::Utc>,
) -> Response {
    // A new id at every login: a session id planted before login is worthless.
    let session = web.sessions.start(person, now);
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(web, &web.sessions.encode(&session)),
    );
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(LOGIN_COOKIE, web.secure)) {
        headers.append(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/logout`: revokes the session and clears the cookie.
pub async fn logout(
    viewer: Viewer,
    State(web): State<WebState>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let Form(form) = form.map_err(|e| ApiError::BadRequest(format!("logout form: {e}")))?;
    if !web.sessions.csrf_ok(&viewer.session.id, &form.csrf) {
        return Err(ApiError::Forbidden(
            "missing or wrong CSRF token".to_owned(),
        ));
    }
    web.sessions.revoke(&viewer.session, web.app.clock.now());
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/login")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(session::COOKIE, web.secure)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stand_in_hash_is_a_real_argon2_hash_that_matches_nothing_typed() {
        use argon2::password_hash::PasswordHash;
        let parsed = PasswordHash::new(DUMMY_HASH).expect("parses");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(!verify("", DUMMY_HASH) && !verify("password", DUMMY_HASH));
        let real = crate::commands::hash_password::hash("s3cret").unwrap();
        assert!(verify("s3cret", &real) && !verify("s3cret ", &real));
    }

    #[test]
    fn next_stays_inside_the_ui() {
        assert_eq!(safe_next(Some("/ui/alerts/3")), "/ui/alerts/3");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui\\evil",
            "/v1/alerts",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/alerts", "{bad}");
        }
    }
}
