//! The HTTP edge: routing, limits and wiring. Handlers translate requests into
//! calls on the modules beneath and their results into responses; they decide
//! nothing themselves.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::config::Config;
use crate::store::group_commit::GroupCommit;
use crate::store::Store;

pub mod error;
mod health;

pub use error::ApiError;

/// Everything a handler may touch; cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub commits: GroupCommit,
    pub clock: Arc<dyn Clock>,
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.intake.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http())
        // Last line of defence: a bug in a handler answers 500, never kills the process.
        .layer(CatchPanicLayer::new())
}
