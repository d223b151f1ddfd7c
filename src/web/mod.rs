//! The web UI: server-rendered pages for people on call and admins — alerts
//! and their timelines, who is on call, the next 14 days of schedules, and the
//! configuration's state — behind a login.
//!
//! HTML comes from compiled-in minijinja templates (auto-escaped); a small
//! script refreshes the alert list and shows times in the viewer's zone, and
//! every page reads fine without it. Handlers here only read the store, the
//! catalog and the clock and call the same store operations as the API; the
//! session machinery lives in [`session`], the pictures in [`timeline`].

use std::sync::{Arc, OnceLock};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::Environment;
use serde::Serialize;

use crate::http::AppState;

mod login;
mod oidc;
mod pages;
mod schedules;
pub mod session;
mod status;
pub mod timeline;

use session::{Session, Sessions};

/// What the UI's handlers share: the server's state plus the sessions.
#[derive(Clone)]
pub struct WebState {
    pub app: AppState,
    pub sessions: Arc<Sessions>,
    /// Cookies get `Secure` when people reach Rouse over HTTPS.
    pub secure: bool,
    /// Single sign-on, when `ui.oidc.issuer` is set.
    pub oidc: Option<Arc<oidc::Oidc>>,
}

impl FromRef<WebState> for AppState {
    fn from_ref(web: &WebState) -> AppState {
        web.app.clone()
    }
}

/// The UI's routes, ready to merge into the server's router.
pub fn router(app: &AppState) -> Router<AppState> {
    let ui = &app.config.ui;
    let sessions = Arc::new(Sessions::new(
        &app.config.signing_key,
        ui.session_idle,
        ui.login_failures,
        ui.failure_window,
    ));
    let oidc = oidc::Oidc::new(&ui.oidc, &app.config.public_url);
    if let (Some(oidc), Ok(runtime)) = (&oidc, tokio::runtime::Handle::try_current()) {
        // Discovery at start-up, in the background: a provider that is down
        // must not hold up or stop the server.
        let oidc = oidc.clone();
        runtime.spawn(async move { oidc.refresh().await });
    }
    let state = WebState {
        oidc,
        secure: app.config.public_url.starts_with("https://") || app.config.tls.enabled(),
        app: app.clone(),
        sessions,
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/alerts") }))
        .route("/ui", get(|| async { Redirect::to("/ui/alerts") }))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/login/oidc", get(oidc::start))
        .route("/ui/login/oidc/callback", get(oidc::callback))
        .route("/ui/logout", post(login::logout))
        .route("/ui/alerts", get(pages::alerts))
        .route("/ui/alerts/{id}", get(pages::alert))
        .route("/ui/alerts/{id}/{action}", post(pages::act))
        .route("/ui/oncall", get(schedules::on_call_now))
        .route("/ui/schedules", get(schedules::timeline))
        .route("/ui/config", get(status::config))
        .route("/ui/assets/app.css", get(|| asset("text/css", CSS)))
        .route("/ui/assets/app.js", get(|| asset("text/javascript", JS)))
        .with_state(state)
}

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

async fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("alerts.html", include_str!("templates/alerts.html")),
            ("alert_rows.html", include_str!("templates/alert_rows.html")),
            ("alert.html", include_str!("templates/alert.html")),
            ("oncall.html", include_str!("templates/oncall.html")),
            ("schedules.html", include_str!("templates/schedules.html")),
            ("config.html", include_str!("templates/config.html")),
        ] {
            // The templates are compiled in: one that does not parse is a
            // bug caught by every test that renders a page.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "web UI template does not parse");
            }
        }
        env
    })
}

/// Renders a page with the security headers every UI page carries.
pub(crate) fn render(status: StatusCode, name: &str, context: minijinja::Value) -> Response {
    let html = match templates()
        .get_template(name)
        .and_then(|t| t.render(context))
    {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(template = name, error = %e, "cannot render web UI page");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A logged-in person looking at the UI. Pages take it; without a valid
/// session the answer is a redirect to the login form.
pub struct Viewer {
    pub session: Session,
    /// The CSRF token for this page's forms.
    pub csrf: String,
    /// A re-issued cookie to send back (the session was used after a while).
    pub refresh: Option<HeaderValue>,
}

impl Viewer {
    /// What every page's template gets about who is looking.
    fn context(&self) -> ViewerContext<'_> {
        ViewerContext {
            person: &self.session.person,
            csrf: &self.csrf,
        }
    }

    /// Adds the refreshed cookie, if any, to a response.
    pub fn finish(&self, mut response: Response) -> Response {
        if let Some(cookie) = &self.refresh {
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        response
    }
}

#[derive(Serialize)]
struct ViewerContext<'a> {
    person: &'a str,
    csrf: &'a str,
}

impl FromRequestParts<WebState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &WebState) -> Result<Self, Response> {
        let now = web.app.clock.now();
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .filter(|p| p.starts_with("/ui/") && parts.method == axum::http::Method::GET)
                .unwrap_or("/ui/alerts");
            let location = format!(
                "/ui/login?next={}",
                crate::channel::twilio::percent_encode(next)
            );
            // A stale or forged cookie is cleared, so the browser stops sending it.
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, location),
                    (
                        header::SET_COOKIE,
                        clear_cookie(session::COOKIE, web.secure),
                    ),
                ],
            )
                .into_response()
        };
        let Some(raw) = cookie(&parts.headers, session::COOKIE) else {
            return Err(to_login());
        };
        let session = match web.sessions.decode(raw, now) {
            Ok(session) => session,
            Err(e) => {
                tracing::info!(reason = %e, "web UI session refused");
                return Err(to_login());
            }
        };
        let refresh = session.needs_touch(now).then(|| {
            let touched = Session {
                seen: now,
                ..session.clone()
            };
            set_cookie(web, &web.sessions.encode(&touched))
        });
        Ok(Viewer {
            csrf: web.sessions.csrf(&session.id),
            session,
            refresh,
        })
    }
}

/// The `Set-Cookie` header for a session cookie.
pub(crate) fn set_cookie(web: &WebState, value: &str) -> HeaderValue {
    let header = cookie_header(
        session::COOKIE,
        value,
        "/ui",
        session::MAX_AGE.num_seconds(),
        web.secure,
    );
    HeaderValue::from_str(&header).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(crate) fn clear_cookie(name: &str, secure: bool) -> String {
    cookie_header(name, "", "/ui", 0, secure)
}

/// One `Set-Cookie` value. Every cookie of the UI is `HttpOnly` and
/// `SameSite=Lax` (the OIDC provider's redirect back is a top-level GET,
/// which Lax cookies go along with), and `Secure` when people reach Rouse
/// over HTTPS; a `max_age` of 0 clears it.
pub(crate) fn cookie_header(
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    secure: bool,
) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// One cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// An instant as templates show it: UTC text, plus the ISO form the script
/// turns into the viewer's local time.
#[derive(Debug, Clone, Serialize)]
pub struct Instant {
    pub iso: String,
    pub utc: String,
}

impl Instant {
    pub fn new(t: DateTime<Utc>) -> Self {
        Self {
            iso: t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            utc: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }
}

/// "3m", "2h 5m", "4d 1h": how long ago, for lists.
pub fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A time in `zone` as people read it there: "Tue 03:12 EST".
pub fn local(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}
