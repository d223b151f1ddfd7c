//! Builds the channel for each kind from the configuration. Anything not
//! configured goes to the console sink, so a fresh install shows its pages in
//! the log instead of dropping them.

use std::sync::Arc;

use super::discord::Discord;
use super::email::Email;
use super::matrix::Matrix;
use super::mattermost::Mattermost;
use super::ntfy::Ntfy;
use super::pushover::Pushover;
use super::slack::Slack;
use super::teams::Teams;
use super::twilio::{TwilioClient, TwilioConfig, TwilioSms, TwilioVoice, VoiceTokenFn};
use super::webhook::Webhook;
use super::{http, Channel, ChannelsConfig, ConfigError};
use crate::config::Secret;
use crate::escalation::engine::Channels;

/// `voice_token` signs the per-call TwiML URL (see [`crate::http`]'s Twilio routes).
pub fn build(
    config: &ChannelsConfig,
    public_url: &str,
    voice_token: VoiceTokenFn,
) -> Result<Channels, ConfigError> {
    let client = http::client();
    let mut channels = Channels::console_only();

    // Chat: the first configured provider, in this order.
    let chat: Option<Arc<dyn Channel>> = if let Some(c) = &config.slack {
        Some(Arc::new(Slack::new(c, client.clone())?))
    } else if let Some(c) = &config.teams {
        Some(Arc::new(Teams::new(c, client.clone())?))
    } else if let Some(c) = &config.discord {
        Some(Arc::new(Discord::new(c, client.clone())?))
    } else if let Some(c) = &config.mattermost {
        Some(Arc::new(Mattermost::new(c, client.clone())?))
    } else if let Some(c) = &config.matrix {
        Some(Arc::new(Matrix::new(c, client.clone())?))
    } else if let Some(c) = &config.webhook {
        let secret = c.secret.clone().ok_or_else(|| {
            ConfigError::new(
                "webhook",
                "secret is required (or set ROUSE_WEBHOOK_SECRET)",
            )
        })?;
        Some(Arc::new(Webhook::new(
            "webhook",
            c.url.expose(),
            secret,
            client.clone(),
        )))
    } else {
        None
    };
    if let Some(chat) = chat {
        channels = channels.with(chat);
    }

    if let Some(t) = &config.twilio {
        let token = t.auth_token.clone().ok_or_else(|| {
            ConfigError::new(
                "twilio",
                "auth_token is required (or set ROUSE_TWILIO_AUTH_TOKEN)",
            )
        })?;
        let mut twilio = TwilioConfig::new(&t.account_sid, token, &t.from);
        if let Some(base) = &t.base_url {
            super::check_url("twilio", "base_url", base)?;
            twilio.base_url = base.trim_end_matches('/').to_owned();
        }
        let client = TwilioClient::with_http(twilio, client.clone());
        channels = channels
            .with(Arc::new(TwilioSms::new(
                "twilio-sms",
                client.clone(),
                public_url,
            )))
            .with(Arc::new(TwilioVoice::new(
                "twilio-voice",
                client,
                public_url,
                voice_token,
            )));
    }

    if let Some(e) = &config.email {
        channels = channels.with(Arc::new(Email::new(e)?));
    }
    if let Some(p) = &config.pushover {
        channels = channels.with(Arc::new(Pushover::new(p, client.clone())?));
    }
    if let Some(n) = &config.ntfy {
        channels = channels.with(Arc::new(Ntfy::new(n, client.clone())?));
    }
    Ok(channels)
}

/// Applies the secret environment variables over the file's channel settings.
pub fn apply_env(config: &mut ChannelsConfig, env: &dyn Fn(&str) -> Option<String>) {
    if let Some(t) = config.twilio.as_mut() {
        if let Some(token) = env("ROUSE_TWILIO_AUTH_TOKEN") {
            t.auth_token = Some(Secret::new(token));
        }
    }
    if let Some(w) = config.webhook.as_mut() {
        if let Some(secret) = env("ROUSE_WEBHOOK_SECRET") {
            w.secret = Some(Secret::new(secret));
        }
    }
    if let Some(p) = config.pushover.as_mut() {
        if let Some(token) = env("ROUSE_PUSHOVER_TOKEN") {
            p.token = Some(Secret::new(token));
        }
    }
    if let Some(n) = config.ntfy.as_mut() {
        if let Some(token) = env("ROUSE_NTFY_TOKEN") {
            n.token = Some(Secret::new(token));
        }
    }
    if let Some(s) = config.slack.as_mut() {
        if let Some(secret) = env("ROUSE_SLACK_SIGNING_SECRET") {
            s.signing_secret = Some(Secret::new(secret));
        }
    }
}
