//! `rouse test-page PERSON [--via push|sms|voice|all]`: asks the running
//! server (its `public_url`, or `--url`) to send a test page, with the admin
//! token, and prints where each one went. The server sends it: it owns the
//! channels and the acknowledge paths.

use serde_json::Value;

use crate::config::Config;

pub async fn test_page(
    config: &Config,
    person: &str,
    via: &str,
    url: Option<&str>,
) -> Result<String, String> {
    let token = config
        .admin_token
        .as_ref()
        .ok_or("set ROUSE_ADMIN_TOKEN (admin_token): test pages go through the admin API")?;
    let base = url.unwrap_or(&config.public_url).trim_end_matches('/');
    let person_path = crate::channel::twilio::percent_encode(person);
    let response = crate::channel::http::client()
        .post(format!("{base}/v1/people/{person_path}/test-page"))
        .bearer_auth(token.expose())
        .json(&serde_json::json!({ "via": via }))
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach Rouse at {base}: {}",
                crate::channel::http::error_chain(&e.without_url())
            )
        })?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|_| format!("Rouse at {base} answered {status} without JSON"))?;
    if !status.is_success() {
        return Err(format!(
            "Rouse refused ({status}): {}",
            body["message"].as_str().unwrap_or("no reason given")
        ));
    }
    let lines: Vec<String> = body["pages"]
        .as_array()
        .map(|pages| {
            pages
                .iter()
                .map(|p| {
                    format!(
                        "test page by {} queued as alert #{}: acknowledge it from that phone",
                        p["method"].as_str().unwrap_or("?"),
                        p["alert_id"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(lines.join("\n"))
}
