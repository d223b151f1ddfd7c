//! Configuration status: what was loaded from where, when, and what was
//! refused; which channel providers are set up. Never a secret: providers are
//! named with at most their sender identity, never tokens or webhook URLs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{render, Instant, Viewer, WebState};
use crate::channel::ChannelsConfig;
use crate::http::ApiError;

#[derive(Serialize)]
struct Provider {
    name: &'static str,
    detail: String,
}

fn providers(c: &ChannelsConfig) -> Vec<Provider> {
    let mut out = Vec::new();
    let mut add = |on: bool, name: &'static str, detail: String| {
        if on {
            out.push(Provider { name, detail });
        }
    };
    add(
        c.twilio.is_some(),
        "twilio (SMS, voice)",
        c.twilio
            .as_ref()
            .map(|t| format!("from {}", t.from))
            .unwrap_or_default(),
    );
    add(c.slack.is_some(), "slack", String::new());
    add(c.teams.is_some(), "teams", String::new());
    add(c.discord.is_some(), "discord", String::new());
    add(c.mattermost.is_some(), "mattermost", String::new());
    add(c.matrix.is_some(), "matrix", String::new());
    add(c.webhook.is_some(), "webhook", String::new());
    add(c.email.is_some(), "email (SMTP)", String::new());
    add(c.pushover.is_some(), "pushover", String::new());
    add(c.ntfy.is_some(), "ntfy", String::new());
    out.push(Provider {
        name: "console",
        detail: "always on: pages with no other channel are logged".to_owned(),
    });
    out
}

/// `GET /ui/config`
pub async fn config(viewer: Viewer, State(web): State<WebState>) -> Result<Response, ApiError> {
    let status = web.app.catalog.status();
    let files = web.app.catalog.loaded_files();
    let catalog = web.app.catalog.current();
    let counts = catalog.as_ref().map(|c| {
        minijinja::context! {
            people => c.people().count(),
            schedules => c.schedules().count(),
            rotations => c.rotations().count(),
            policies => c.policies().count(),
            services => c.services().count(),
            watchers => c.watchers().count(),
        }
    });
    Ok(viewer.finish(render(
        StatusCode::OK,
        "config.html",
        minijinja::context! {
            viewer => viewer.context(),
            page => "config",
            ok => status.ok,
            dir => status.dir,
            loaded_at => status.loaded_at.map(Instant::new),
            fingerprint => status.fingerprint,
            rejected_at => status.rejected.as_ref().map(|r| Instant::new(r.at)),
            problems => status.rejected.map(|r| r.problems).unwrap_or_default(),
            files => files,
            counts => counts,
            providers => providers(&web.app.config.channels),
            backend => format!("{:?}", web.app.store.backend()).to_lowercase(),
        },
    )))
}
