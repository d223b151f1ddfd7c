//! The HTTP edge: routing, limits and wiring. Handlers translate requests into
//! calls on the modules beneath and their results into responses; they decide
//! nothing themselves.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::catalog::live::LiveCatalog;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::group_commit::GroupCommit;
use crate::store::Store;

mod ack;
mod alerts;
mod contact;
pub use ack::ACK_LINK_LIFETIME;
pub mod error;
mod extract;
mod feeds;
mod health;
mod intake;
pub mod openapi;
mod opsgenie;
mod people;
mod push;
mod replay;
mod silences;
mod simulate;
mod slack;
pub mod throttle;
mod twilio;
mod watchers;

pub use error::ApiError;

/// Everything a handler may touch. axum clones it for every request, so it
/// is one `Arc`: cloning and dropping the fields one by one (ten reference
/// counts and the signer's keys) was ~3% of `perf record`'s samples during
/// the duplicate intake benchmark.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub commits: GroupCommit,
    pub catalog: Arc<LiveCatalog>,
    pub throttle: Arc<throttle::Throttle>,
    pub clock: Arc<dyn Clock>,
    /// Wakes the escalation engine when an alert opens.
    pub engine_wake: Arc<tokio::sync::Notify>,
    /// Signs and checks ack links and call URLs.
    pub signer: crate::ack::token::Signer,
    /// At most one SMS help reply per number per [`SMS_HELP_EVERY`].
    pub sms_help: Arc<governor::DefaultKeyedRateLimiter<String>>,
    /// For the few requests the HTTP layer makes itself (Slack `response_url`).
    pub http: reqwest::Client,
}

/// An auto-responder that answers our help text with its own must not get
/// another help text back for a while.
pub const SMS_HELP_EVERY: Duration = Duration::from_secs(600);

/// The limiter behind [`AppState::sms_help`].
pub fn sms_help_limiter() -> Arc<governor::DefaultKeyedRateLimiter<String>> {
    let quota = governor::Quota::with_period(SMS_HELP_EVERY)
        .unwrap_or_else(|| governor::Quota::per_hour(std::num::NonZeroU32::MIN));
    Arc::new(governor::RateLimiter::keyed(quota))
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.intake.max_body_bytes;
    let (api, _) = openapi::api().split_for_parts();
    api.merge(crate::web::router(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Last line of defence: a bug in a handler answers 500, never kills the process.
        .layer(CatchPanicLayer::new())
}

/// Prometheus text format; see the README's Operations section for the series.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String))
)]
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> String {
    let services: Vec<String> = state
        .catalog
        .current()
        .map(|c| c.services().map(|s| s.id.clone()).collect())
        .unwrap_or_default();
    crate::telemetry::scrape(state.store.as_ref(), &services).await
}

/// The span of one request names its route template (`/pushover/callback/{notification}/{secret}`),
/// never the raw path or query: several paths and queries are credentials
/// (integration keys, Pushover callback secrets, signed ack and call tokens),
/// and secrets never reach logs.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", axum::extract::MatchedPath::as_str);
    tracing::debug_span!("request", method = %request.method(), route)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
