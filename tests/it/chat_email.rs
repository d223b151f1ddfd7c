//! Email against a real SMTP server (aiosmtpd, `peers/smtp_capture.py`) on
//! loopback, with and without AUTH: the captured .eml is checked for the
//! subject, multipart parts, ack link and threading headers.

use rouse::alert::AlertStatus;
use rouse::channel::email::{Email, EmailConfig, SmtpTls};
use rouse::channel::{Channel, Outcome, Recipient};
use rouse::config::Secret;

use crate::peers::{self, notification, SmtpPeer};

fn config(port: u16, auth: Option<(&str, &str)>) -> EmailConfig {
    EmailConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        username: auth.map(|(u, _)| u.to_owned()),
        password: auth.map(|(_, p)| Secret::new(p)),
        from: "Rouse <pager@example.com>".into(),
        message_id_domain: None,
        timeout_secs: Some(5),
    }
}

fn to_alice(status: AlertStatus) -> rouse::channel::Notification {
    let mut n = notification(status);
    n.recipient = Recipient::Person {
        id: "alice".into(),
        name: "Alice Example".into(),
        address: "alice@example.test".into(),
    };
    n
}

/// A header's value from raw .eml text (first occurrence, unfolded).
fn header<'a>(eml: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    eml.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::trim)
}

/// Quoted-printable bodies as a reader sees them (soft breaks joined, =XX decoded).
fn qp_decode(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn sends_multipart_mail_that_threads_by_alert() {
    let Some(smtp) = SmtpPeer::start("sends_multipart_mail_that_threads_by_alert", None) else {
        return;
    };
    let email = Email::new(&config(smtp.port, None)).unwrap_or_else(|e| panic!("{e}"));
    let first = email.send(&to_alice(AlertStatus::Triggered)).await;
    assert_eq!(
        first,
        Outcome::Delivered {
            provider_id: Some("<alert-42@rouse.example.com>".into())
        }
    );
    let mut ack = to_alice(AlertStatus::Acknowledged);
    ack.paged = vec!["alice".into()];
    assert!(matches!(
        email.follow_up(&ack, None).await,
        Outcome::Delivered { .. }
    ));
    let mut resolved = to_alice(AlertStatus::Resolved);
    resolved.paged.clear();
    assert!(matches!(
        email.follow_up(&resolved, None).await,
        Outcome::Delivered { .. }
    ));

    let mails = smtp.messages();
    assert_eq!(mails.len(), 3);
    let (eml, envelope) = &mails[0];
    assert_eq!(envelope["mail_from"], "pager@example.com");
    assert_eq!(envelope["rcpt_tos"][0], "alice@example.test");
    assert_eq!(
        header(eml, "Subject"),
        Some("[Rouse] CRITICAL #42 payments: disk full on db-1 <@everyone> & more")
    );
    assert_eq!(
        header(eml, "Message-ID"),
        Some("<alert-42@rouse.example.com>")
    );
    assert_eq!(header(eml, "In-Reply-To"), None);
    assert!(eml.contains("multipart/alternative"), "{eml}");
    assert!(
        eml.contains("text/plain") && eml.contains("text/html"),
        "{eml}"
    );
    assert!(eml.contains("https://rouse.example/ack/t0k3n"), "{eml}");
    assert!(
        qp_decode(eml).contains("&lt;@everyone&gt; &amp; more"),
        "HTML part escapes: {eml}"
    );

    for (eml, _) in &mails[1..] {
        let id = header(eml, "Message-ID").unwrap_or_default();
        assert!(
            id.starts_with("<alert-42-") && id.ends_with("@rouse.example.com>"),
            "{id}"
        );
        assert_eq!(
            header(eml, "In-Reply-To"),
            Some("<alert-42@rouse.example.com>")
        );
        assert_eq!(
            header(eml, "References"),
            Some("<alert-42@rouse.example.com>")
        );
        assert!(header(eml, "Subject")
            .unwrap_or_default()
            .starts_with("Re: [Rouse] CRITICAL #42"));
    }
    assert_ne!(
        header(&mails[1].0, "Message-ID"),
        header(&mails[2].0, "Message-ID")
    );
    assert!(qp_decode(&mails[1].0).contains("ACKNOWLEDGED by alice"));
    assert!(qp_decode(&mails[2].0).contains("RESOLVED"));
}

#[tokio::test]
async fn auth_succeeds_and_a_wrong_password_is_a_clear_failure() {
    let test = "auth_succeeds_and_a_wrong_password_is_a_clear_failure";
    let Some(smtp) = SmtpPeer::start(test, Some(("pager", "s3cret"))) else {
        return;
    };
    let good =
        Email::new(&config(smtp.port, Some(("pager", "s3cret")))).unwrap_or_else(|e| panic!("{e}"));
    let outcome = good.send(&to_alice(AlertStatus::Triggered)).await;
    assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].1["auth_user"], "pager");

    let wrong =
        Email::new(&config(smtp.port, Some(("pager", "wrong")))).unwrap_or_else(|e| panic!("{e}"));
    match wrong.send(&to_alice(AlertStatus::Triggered)).await {
        Outcome::Failed { reason } => {
            assert!(reason.contains("authentication failed (535)"), "{reason}");
            assert!(!reason.contains("wrong"), "password leaked: {reason}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // No AUTH at all against a server that requires it: also Failed.
    let none = Email::new(&config(smtp.port, None)).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        none.send(&to_alice(AlertStatus::Triggered)).await,
        Outcome::Failed { .. }
    ));
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_retry_and_bad_addresses_fail() {
    let email = Email::new(&config(peers::free_port(), None)).unwrap_or_else(|e| panic!("{e}"));
    let o = email.send(&to_alice(AlertStatus::Triggered)).await;
    assert!(peers::is_retry(&o), "{o:?}");

    let mut n = to_alice(AlertStatus::Triggered);
    n.recipient = Recipient::Room {
        address: "not an address".into(),
    };
    assert!(matches!(email.send(&n).await, Outcome::Failed { .. }));
}

#[tokio::test]
async fn starttls_against_a_plain_server_is_not_a_silent_downgrade() {
    let test = "starttls_against_a_plain_server_is_not_a_silent_downgrade";
    let Some(smtp) = SmtpPeer::start(test, None) else {
        return;
    };
    let mut c = config(smtp.port, None);
    c.tls = SmtpTls::Starttls;
    let email = Email::new(&c).unwrap_or_else(|e| panic!("{e}"));
    let o = email.send(&to_alice(AlertStatus::Triggered)).await;
    assert!(!matches!(o, Outcome::Delivered { .. }), "{o:?}");
    assert!(smtp.messages().is_empty());
}

#[test]
fn config_is_checked() {
    let mut c = config(25, None);
    c.from = "not a mailbox".into();
    assert!(Email::new(&c).is_err());
    let mut c = config(25, None);
    c.username = Some("u".into());
    assert!(Email::new(&c).is_err(), "username without password");
}
