//! The README's configuration examples load, and channel typos are refused.

use rouse::channel::email::SmtpTls;
use rouse::channel::ChannelsConfig;

const README: &str = include_str!("../../README.md");

/// Every ```yaml block of the README, parsed as `{channels: …}`.
#[test]
fn readme_examples_parse() {
    let blocks: Vec<&str> = README
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        // On-call YAML examples say so on their first line; the rest are
        // configuration files.
        .filter(|b| !b.starts_with("# on-call YAML"))
        .collect();
    assert!(blocks.len() >= 8, "one example per channel");
    let dir = tempfile::tempdir().unwrap();
    for block in blocks {
        // Each example is a whole configuration file as an operator writes it.
        let path = dir.path().join("rouse.yaml");
        std::fs::write(&path, block).unwrap();
        let config = rouse::config::Config::load(Some(&path), &|name: &str| {
            (name == "ROUSE_TWILIO_AUTH_TOKEN").then(|| "token-from-env".to_owned())
        })
        .unwrap_or_else(|e| panic!("README example does not load: {e}\n{block}"));
        let c = &config.channels;
        if let Some(email) = &c.email {
            assert!(matches!(
                email.tls,
                SmtpTls::Starttls | SmtpTls::Implicit | SmtpTls::None
            ));
        }
    }
}

/// Every setting is documented under its environment name.
#[test]
fn readme_documents_every_setting() {
    for setting in rouse::config::SETTINGS {
        assert!(
            README.contains(&format!("`{}`", setting.env))
                && README.contains(&format!("`{}`", setting.file)),
            "README lacks {} / {}",
            setting.file,
            setting.env
        );
    }
}

#[test]
fn unknown_keys_are_refused() {
    for yaml in [
        "slack: {webhok_url: 'https://hooks.slack.com/services/T/B/X'}",
        "matrix: {homeserver_url: 'https://m.example', access_token: t, rooms: x}",
        "email: {host: smtp.example.com, from: a@example.com, tls: maybe}",
        "telegram: {token: x}",
    ] {
        assert!(
            serde_saphyr::from_str::<ChannelsConfig>(yaml).is_err(),
            "accepted: {yaml}"
        );
    }
}

#[test]
fn secrets_do_not_show_in_debug() {
    let c: ChannelsConfig = serde_saphyr::from_str(
        "slack: {webhook_url: 'https://hooks.slack.com/services/T/B/SECRETPART'}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!format!("{c:?}").contains("SECRETPART"));
}
