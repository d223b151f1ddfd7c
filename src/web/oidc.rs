//! Web UI login through an OpenID Connect provider: authorization code flow
//! with PKCE, via the `openidconnect` crate (discovery, code exchange, and the
//! ID token's signature, issuer, audience, expiry and nonce checks).
//!
//! The provider is discovered at start-up and again when needed until that
//! works: a provider that is down never stops Rouse, the login page just says
//! SSO is unavailable and password login goes on. The state, nonce and PKCE
//! verifier of a login under way ride in a short-lived signed cookie, so any
//! replica can finish a login another one started. The callback is a GET
//! that starts a session — that is the protocol, and it is safe here because
//! it only acts when its `state` matches the cookie this browser was given
//! when it started the login (a forged link carries no such cookie), the
//! cookie is cleared on the first use, and the provider's code works once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::login::{login_page, safe_next, start_session};
use super::{cookie, cookie_header, WebState};
use crate::config::{OidcClaim, OidcConfig};

/// The cookie holding a login under way.
pub const FLOW_COOKIE: &str = "rouse_oidc";
/// How long a person has at the provider to finish logging in.
const FLOW_MAX_AGE: i64 = 600;
/// The flow cookie goes only to the two OIDC routes.
const FLOW_PATH: &str = "/ui/login/oidc";
/// A failed discovery is not retried by page views more often than this
/// (clicking "Log in with SSO" always retries).
const RETRY_EVERY: Duration = Duration::from_secs(10);
/// Discovery and token requests give up after this, so a hung provider
/// costs a person a short wait, not a hung page.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The configured provider and what discovery learnt about it.
pub struct Oidc {
    config: OidcConfig,
    redirect: String,
    http: openidconnect::reqwest::Client,
    metadata: Mutex<Option<CoreProviderMetadata>>,
    last_try: Mutex<Option<Instant>>,
}

impl Oidc {
    /// `None` unless `ui.oidc.issuer` is set.
    pub fn new(config: &OidcConfig, public_url: &str) -> Option<Arc<Oidc>> {
        if !config.enabled() {
            return None;
        }
        // No redirects: discovery and token requests go where configured,
        // never where a response points.
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()
            .ok()?;
        Some(Arc::new(Oidc {
            config: config.clone(),
            redirect: format!(
                "{}/ui/login/oidc/callback",
                public_url.trim_end_matches('/')
            ),
            http,
            metadata: Mutex::new(None),
            last_try: Mutex::new(None),
        }))
    }

    /// Whether discovery has worked (the login page's "SSO unavailable").
    pub fn available(&self) -> bool {
        self.metadata.lock().is_ok_and(|m| m.is_some())
    }

    /// The provider's metadata, discovering it if not known yet.
    async fn metadata(&self) -> Result<CoreProviderMetadata, String> {
        if let Some(m) = self.metadata.lock().ok().and_then(|m| m.clone()) {
            return Ok(m);
        }
        if let Ok(mut last) = self.last_try.lock() {
            *last = Some(Instant::now());
        }
        let issuer = self.config.issuer.clone().unwrap_or_default();
        let url = IssuerUrl::new(issuer.clone()).map_err(|e| format!("issuer URL: {e}"))?;
        match CoreProviderMetadata::discover_async(url, &self.http).await {
            Ok(m) => {
                tracing::info!(issuer = %issuer, "OpenID provider discovered");
                if let Ok(mut slot) = self.metadata.lock() {
                    *slot = Some(m.clone());
                }
                Ok(m)
            }
            Err(e) => {
                let e = error_chain(&e);
                tracing::warn!(issuer = %issuer, error = %e, "OpenID provider discovery failed");
                Err(e)
            }
        }
    }

    /// Discovery now unless it worked already or was tried a moment ago.
    pub async fn refresh(&self) {
        let recent = self
            .last_try
            .lock()
            .ok()
            .and_then(|l| *l)
            .is_some_and(|t| t.elapsed() < RETRY_EVERY);
        if !self.available() && !recent {
            let _ = self.metadata().await;
        }
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Result<OidcClient, String> {
        let redirect = RedirectUrl::new(self.redirect.clone()).map_err(|e| e.to_string())?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone().unwrap_or_default()),
            self.config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_redirect_uri(redirect))
    }
}

type OidcClient = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    openidconnect::core::CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// An error with its causes, for logs and the page (no secrets in either).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn unavailable(web: &WebState, next: &str, why: &str) -> Response {
    login_page(
        web,
        StatusCode::SERVICE_UNAVAILABLE,
        next,
        Some(format!(
            "Single sign-on is unavailable right now ({why}). Log in with your password."
        )),
        None,
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct Start {
    next: Option<String>,
}

/// `GET /ui/login/oidc`: sends the browser to the provider. It changes no
/// server state; the login under way lives in the browser's cookie.
pub async fn start(
    State(web): State<WebState>,
    query: Result<Query<Start>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = safe_next(query.ok().and_then(|q| q.0.next).as_deref()).to_owned();
    let Some(oidc) = web.oidc.clone() else {
        return login_page(
            &web,
            StatusCode::NOT_FOUND,
            &next,
            Some("Single sign-on is not configured.".to_owned()),
            None,
        );
    };
    let client = match oidc.metadata().await.and_then(|m| oidc.client(m)) {
        Ok(c) => c,
        Err(_) => return unavailable(&web, &next, "the provider cannot be reached"),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in &oidc.config.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.url();
    let flow = Flow {
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        next,
        issued: web.app.clock.now().timestamp(),
    };
    let sealed = web.sessions.seal("oidc", &flow.encode());
    let cookie = cookie_header(FLOW_COOKIE, &sealed, FLOW_PATH, FLOW_MAX_AGE, web.secure);
    let mut response =
        (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// A login under way, as the cookie carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    issued: i64,
}

impl Flow {
    /// `state.nonce.verifier.next.issued`; the first three are base64url
    /// already (no dots), `next` is encoded so it cannot add any.
    fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{}.{}",
            self.state,
            self.nonce,
            self.verifier,
            URL_SAFE_NO_PAD.encode(self.next.as_bytes()),
            self.issued
        )
    }

    fn decode(text: &str) -> Option<Flow> {
        let mut parts = text.split('.');
        let flow = Flow {
            state: parts.next()?.to_owned(),
            nonce: parts.next()?.to_owned(),
            verifier: parts.next()?.to_owned(),
            next: String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?,
            issued: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(flow)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /ui/login/oidc/callback`: the provider sends the browser back here.
pub async fn callback(
    State(web): State<WebState>,
    headers: HeaderMap,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    let now = web.app.clock.now();
    let flow = cookie(&headers, FLOW_COOKIE)
        .and_then(|raw| web.sessions.open("oidc", raw))
        .and_then(Flow::decode)
        .filter(|f| (0..=FLOW_MAX_AGE).contains(&(now.timestamp() - f.issued)));
    let next = flow
        .as_ref()
        .map_or("/ui/alerts", |f| safe_next(Some(&f.next)))
        .to_owned();
    // Whatever happens next, this login attempt is spent.
    let finish = |mut response: Response| {
        let clear = cookie_header(FLOW_COOKIE, "", FLOW_PATH, 0, web.secure);
        if let Ok(v) = HeaderValue::from_str(&clear) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
        response
    };
    let refuse = |status: StatusCode, message: String| {
        finish(login_page(&web, status, &next, Some(message), None))
    };
    let Some(oidc) = web.oidc.clone() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "Single sign-on is not configured.".to_owned(),
        );
    };
    if let Some(error) = &query.error {
        tracing::info!(error = %error, "OpenID provider refused the login");
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!("The identity provider did not log you in ({error})."),
        );
    }
    let Some(flow) = flow else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "This SSO login expired or was not started in this browser. Try again.".to_owned(),
        );
    };
    let state_ok = query
        .state
        .as_deref()
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(flow.state.as_bytes())));
    let (true, Some(code)) = (state_ok, query.code) else {
        tracing::info!("OpenID callback refused: state does not match the login started");
        return refuse(
            StatusCode::BAD_REQUEST,
            "This SSO answer does not belong to the login started in this browser. Try again."
                .to_owned(),
        );
    };
    let client = match oidc.metadata().await.and_then(|m| oidc.client(m)) {
        Ok(c) => c,
        Err(_) => {
            return finish(unavailable(&web, &next, "the provider cannot be reached"));
        }
    };
    let claim = match exchange(&oidc, &client, code, &flow).await {
        Ok(claim) => claim,
        Err(e) => {
            tracing::warn!(error = %e, "OpenID login failed");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "The identity provider's answer could not be verified. Try again.".to_owned(),
            );
        }
    };
    let person = web.app.catalog.current().and_then(|c| {
        c.people()
            .find(|p| match oidc.config.claim {
                OidcClaim::Email => p
                    .contact
                    .email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&claim)),
                OidcClaim::Sub | OidcClaim::PreferredUsername => p.id == claim,
            })
            .map(|p| p.id.clone())
    });
    let Some(person) = person else {
        tracing::info!(claim = %claim, "OpenID login for nobody in the configuration");
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "You are logged in at the identity provider as {claim}, but no person in \
                 Rouse has that {}. Ask an admin to add it to your entry.",
                match oidc.config.claim {
                    OidcClaim::Email => "email",
                    OidcClaim::Sub | OidcClaim::PreferredUsername => "id",
                }
            ),
        );
    };
    tracing::info!(person = %person, "web UI login through OpenID Connect");
    finish(start_session(&web, &person, next, now))
}

/// Trades the code for tokens and returns the configured claim from the
/// verified ID token.
async fn exchange(
    oidc: &Oidc,
    client: &OidcClient,
    code: String,
    flow: &Flow,
) -> Result<String, String> {
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| error_chain(&e))?
        .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
        .request_async(&oidc.http)
        .await
        .map_err(|e| error_chain(&e))?;
    let token = response
        .id_token()
        .ok_or("the token response has no ID token")?;
    let claims = token
        .claims(&client.id_token_verifier(), &Nonce::new(flow.nonce.clone()))
        .map_err(|e| error_chain(&e))?;
    let from_token = match oidc.config.claim {
        OidcClaim::Email => claims
            .email()
            .map(|e| (e.as_str().to_owned(), claims.email_verified())),
        OidcClaim::Sub => Some((claims.subject().as_str().to_owned(), None)),
        OidcClaim::PreferredUsername => claims
            .preferred_username()
            .map(|u| (u.as_str().to_owned(), None)),
    };
    // Providers may keep scope claims out of the ID token when they issue an
    // access token (OIDC Core 5.4); then the UserInfo endpoint has them, and
    // its `sub` must be the ID token's.
    let (value, verified) = match from_token {
        Some(found) => found,
        None => {
            let info: openidconnect::core::CoreUserInfoClaims = client
                .user_info(
                    response.access_token().clone(),
                    Some(claims.subject().clone()),
                )
                .map_err(|e| error_chain(&e))?
                .request_async(&oidc.http)
                .await
                .map_err(|e| error_chain(&e))?;
            match oidc.config.claim {
                OidcClaim::Email => info
                    .email()
                    .map(|e| (e.as_str().to_owned(), info.email_verified())),
                OidcClaim::Sub => Some((info.subject().as_str().to_owned(), None)),
                OidcClaim::PreferredUsername => info
                    .preferred_username()
                    .map(|u| (u.as_str().to_owned(), None)),
            }
            .ok_or("neither the ID token nor UserInfo has the configured claim")?
        }
    };
    // An address the provider says it has not verified names nobody.
    if verified == Some(false) {
        return Err("the provider has not verified this email address".to_owned());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_survives_its_cookie_and_nothing_else_does() {
        let flow = Flow {
            state: "c3RhdGU".into(),
            nonce: "bm9uY2U".into(),
            verifier: "dmVyaWZpZXI".into(),
            next: "/ui/alerts/3?x=a.b".into(),
            issued: 1_800_000_000,
        };
        assert_eq!(Flow::decode(&flow.encode()), Some(flow.clone()));
        assert_eq!(Flow::decode(&format!("{}.extra", flow.encode())), None);
        assert_eq!(Flow::decode("a.b.c"), None);
    }

    #[test]
    fn a_flow_cookie_signed_elsewhere_or_for_sessions_is_refused() {
        use crate::config::Secret;
        let ours = super::super::session::Sessions::new(
            &Secret::new("key-a"),
            Duration::from_secs(3600),
            5,
            Duration::from_secs(900),
        );
        let theirs = super::super::session::Sessions::new(
            &Secret::new("key-b"),
            Duration::from_secs(3600),
            5,
            Duration::from_secs(900),
        );
        let sealed = ours.seal("oidc", "s.n.v.L3Vp.1");
        assert_eq!(ours.open("oidc", &sealed), Some("s.n.v.L3Vp.1"));
        assert_eq!(ours.open("session", &sealed), None);
        assert_eq!(theirs.open("oidc", &sealed), None);
        assert_eq!(ours.open("oidc", &sealed.replace("s.n", "t.n")), None);
    }
}
