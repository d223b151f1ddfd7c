//! `GET /contact.vcf` read back with calcard, a maintained vCard parser, so
//! the card is checked against someone else's reading of RFC 6350.

use std::sync::Arc;

use calcard::vcard::{VCard, VCardProperty, VCardVersion};
use rouse::channel::{ChannelsConfig, TwilioSettings};
use rouse::config::Secret;

use crate::support::{TestApp, TestDb};

const FROM: &str = "+15005550006";

#[tokio::test]
async fn the_card_names_rouse_and_every_number_it_pages_from() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |c| {
        c.channels = Arc::new(ChannelsConfig {
            twilio: Some(TwilioSettings {
                account_sid: "AC00000000000000000000000000000003".to_owned(),
                auth_token: Some(Secret::new("contact-card-auth-token")),
                from: FROM.to_owned(),
                base_url: Some("http://127.0.0.1:9".to_owned()),
            }),
            ..Default::default()
        });
    })
    .await;
    // No login: the card is for anyone about to go on call.
    let response = app.http.get(app.url("/contact.vcf")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/vcard; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("contact-card-auth-token") && !text.contains("AC000"),
        "{text}"
    );
    let card = VCard::parse(&text).unwrap_or_else(|e| panic!("not a vCard ({e:?}): {text}"));
    assert_eq!(card.version(), Some(VCardVersion::V4_0));
    let name = card
        .property(&VCardProperty::Fn)
        .and_then(|e| e.values.first())
        .and_then(|v| v.as_text());
    assert_eq!(name, Some("Rouse pager"));
    let numbers: Vec<String> = card
        .properties(&VCardProperty::Tel)
        .filter_map(|e| {
            e.values
                .first()
                .and_then(|v| v.as_text())
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(numbers, [format!("tel:{FROM}")]);

    // GET only: nothing here acts.
    let post = app.http.post(app.url("/contact.vcf")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    app.stop().await;
}

#[tokio::test]
async fn without_a_number_there_is_no_card() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let response = app.http.get(app.url("/contact.vcf")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "error");
    app.stop().await;
}
