//! The `channels:` YAML from README-channels.md parses, and typos are refused.

use rouse::channel::email::SmtpTls;
use rouse::channel::ChannelsConfig;

const README: &str = include_str!("../../README.md");

/// Every ```yaml block of the README, parsed as `{channels: …}`.
#[test]
fn readme_examples_parse() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        channels: ChannelsConfig,
    }
    let blocks: Vec<&str> = README
        .split("```yaml")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(blocks.len() >= 6, "one example per channel");
    for block in blocks {
        let file: File = serde_saphyr::from_str(block)
            .unwrap_or_else(|e| panic!("README example does not parse: {e}\n{block}"));
        let c = file.channels;
        if let Some(email) = &c.email {
            assert!(matches!(
                email.tls,
                SmtpTls::Starttls | SmtpTls::Implicit | SmtpTls::None
            ));
        }
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
