//! Single sign-on for the web UI against a real OpenID provider (npm
//! `oidc-provider`, tests/peers/oidc_provider.js) over plain HTTP: the code
//! flow with PKCE as a browser follows it, the provider's development login
//! form filled in by the test. A login yields the right person's session; a
//! wrong state, a replayed callback and an account that matches nobody get
//! no session; a provider that is down leaves password login working. Then
//! the same login in headless Chromium (tests/peers/web_oidc.js), with
//! screenshots in `target/screenshots/web-oidc-*.png`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rouse::config::Secret;

use crate::peers::{chromium, free_port, missing, peers_dir, run_browser};
use crate::support::{TestApp, TestDb, TEST_CATALOG};
use crate::web_ui::{catalog_with_login, Browser, Page, ALICE_PASSWORD};

pub const CLIENT_ID: &str = "rouse-web";
pub const CLIENT_SECRET: &str = "rouse-web-client-secret-0123456789";
pub const ALICE_EMAIL: &str = "alice@example.com";

/// The running provider; killed when dropped.
pub struct Provider {
    child: Child,
    pub issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// node and the npm package, or skip (fail under CI).
pub fn node_with_provider(test: &str) -> Option<PathBuf> {
    let node_ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_ok {
        return missing(test, "node");
    }
    let script = peers_dir().join("oidc_provider.js");
    if !peers_dir()
        .join("node_modules/oidc-provider/package.json")
        .exists()
    {
        return missing(test, "npm oidc-provider in tests/peers");
    }
    Some(script)
}

/// Starts the provider on `port` with Rouse's callback as the one redirect
/// URI; the account `alice` has alice's email, every other login gets an
/// address nobody has.
pub fn start_provider(script: &PathBuf, port: u16, rouse_base: &str) -> Provider {
    let child = Command::new("node")
        .arg(script)
        .args([
            &port.to_string(),
            &format!("{rouse_base}/ui/login/oidc/callback"),
            CLIENT_ID,
            CLIENT_SECRET,
            &format!(r#"{{"alice":"{ALICE_EMAIL}"}}"#),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node oidc_provider.js");
    let provider = Provider {
        child,
        issuer: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "oidc-provider did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    provider
}

/// The test catalog with alice's email (and her password, for the
/// provider-down case).
pub fn catalog() -> String {
    catalog_with_login(TEST_CATALOG).replacen(
        "contact: { sms: \"+4915100000001\"",
        &format!("contact: {{ email: \"{ALICE_EMAIL}\", sms: \"+4915100000001\""),
        1,
    )
}

/// Rouse configured for a provider on `port` (which need not be up yet).
async fn spawn(db: &TestDb, port: u16) -> TestApp {
    TestApp::spawn_with_catalog(db, &catalog(), move |c| {
        c.ui.oidc.issuer = Some(format!("http://127.0.0.1:{port}"));
        c.ui.oidc.client_id = Some(CLIENT_ID.to_owned());
        c.ui.oidc.client_secret = Some(Secret::new(CLIENT_SECRET));
    })
    .await
}

/// Clicks "Log in with SSO" and follows the redirects, filling in the
/// provider's login form as `login`, up to (not into) Rouse's callback.
/// Returns the callback URL the provider sent the browser to.
async fn to_callback(browser: &mut Browser, app: &TestApp, issuer: &str, login: &str) -> String {
    let start = browser.get("/ui/login/oidc?next=/ui/oncall").await;
    assert_eq!(start.status, 303, "{}", start.body);
    let mut url = start.location.expect("redirect to the provider");
    assert!(url.starts_with(&format!("{issuer}/auth?")), "{url}");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    for _ in 0..10 {
        if url.starts_with(&app.url("/ui/login/oidc/callback")) {
            return url;
        }
        let page = browser.get(&url).await;
        let next = match page.status {
            302 | 303 => page.location.expect("location"),
            200 if page.body.contains("name=\"login\"") => {
                // The development login form posts back to its own URL.
                let posted = browser
                    .post(
                        &url,
                        &[("prompt", "login"), ("login", login), ("password", "any")],
                    )
                    .await;
                assert!(
                    matches!(posted.status, 302 | 303),
                    "{} {}",
                    posted.status,
                    posted.body
                );
                posted.location.expect("location")
            }
            other => panic!("unexpected {other} at {url}: {}", page.body),
        };
        url = if next.starts_with('/') {
            format!("{issuer}{next}")
        } else {
            next
        };
    }
    panic!("the provider never sent the browser back to Rouse");
}

#[tokio::test]
async fn sso_logs_in_the_person_whose_email_matches_and_a_down_provider_leaves_passwords() {
    const TEST: &str = "sso_logs_in_the_person_whose_email_matches";
    let Some(script) = node_with_provider(TEST) else {
        return;
    };
    let db = TestDb::sqlite();
    let port = free_port();
    let app = spawn(&db, port).await;

    // The provider is not up: the login page says so, password login works.
    let mut browser = Browser::new(&app);
    let page = browser.get("/ui/login").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Log in with SSO"), "{}", page.body);
    assert!(
        page.body.contains("id=\"sso-unavailable\""),
        "{}",
        page.body
    );
    let down = browser.get("/ui/login/oidc").await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.body.contains("unavailable"), "{}", down.body);
    let login = browser
        .log_in(&[("login", "alice"), ("password", ALICE_PASSWORD)])
        .await;
    assert_eq!(login.status, 303, "{}", login.body);

    let provider = start_provider(&script, port, &app.base);
    let mut browser = Browser::new(&app);
    let callback = to_callback(&mut browser, &app, &provider.issuer, "alice").await;
    assert!(browser.cookies.contains_key("rouse_oidc"));
    let done: Page = browser.get(&callback).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/ui/oncall"));
    assert!(
        !browser.cookies.contains_key("rouse_oidc"),
        "the login cookie is spent"
    );
    let session = browser
        .cookies
        .get("rouse_session")
        .expect("a session")
        .clone();
    // The cookie is `id.base64(person).issued.seen.mac`: alice's session.
    assert_eq!(session.split('.').nth(1), Some("YWxpY2U"), "{session}");
    let oncall = browser.get("/ui/oncall").await;
    assert_eq!(oncall.status, 200, "{}", oncall.body);
    assert!(
        oncall.body.contains("alice"),
        "the page shows who is logged in"
    );
    // The login page now offers SSO without the warning.
    let page = Browser::new(&app).get("/ui/login").await;
    assert!(
        !page.body.contains("id=\"sso-unavailable\""),
        "{}",
        page.body
    );

    // The same callback again: the cookie is gone, so no new session.
    let again = browser.get(&callback).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(browser.cookies.get("rouse_session"), Some(&session));
    // Another browser with the link and no cookie gets nothing either.
    let mut thief = Browser::new(&app);
    let stolen = thief.get(&callback).await;
    assert_eq!(stolen.status, 400, "{}", stolen.body);
    assert!(!thief.cookies.contains_key("rouse_session"));
    drop(provider);
    app.stop().await;
}

#[tokio::test]
async fn sso_refuses_a_wrong_state_and_an_account_that_matches_nobody() {
    const TEST: &str = "sso_refuses_a_wrong_state_and_an_account_that_matches_nobody";
    let Some(script) = node_with_provider(TEST) else {
        return;
    };
    let db = TestDb::sqlite();
    let port = free_port();
    let app = spawn(&db, port).await;
    let provider = start_provider(&script, port, &app.base);

    // A callback whose state is not the one this browser started with.
    let mut browser = Browser::new(&app);
    let callback = to_callback(&mut browser, &app, &provider.issuer, "alice").await;
    let state_at = callback.find("state=").expect("state in the callback") + "state=".len();
    let mut forged = callback.clone();
    forged.insert(state_at, 'x');
    let refused = browser.get(&forged).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("does not belong"), "{}", refused.body);
    assert!(!browser.cookies.contains_key("rouse_session"));

    // A real login at the provider for an address no person has.
    let mut browser = Browser::new(&app);
    let callback = to_callback(&mut browser, &app, &provider.issuer, "stranger").await;
    let denied = browser.get(&callback).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(
        denied.body.contains("stranger@nobody.example"),
        "{}",
        denied.body
    );
    assert!(!browser.cookies.contains_key("rouse_session"));
    assert_eq!(
        browser.get("/ui/alerts").await.status,
        303,
        "still logged out"
    );
    drop(provider);
    app.stop().await;
}

#[tokio::test]
async fn sso_login_in_headless_chromium() {
    const TEST: &str = "sso_login_in_headless_chromium";
    let Some(script) = node_with_provider(TEST) else {
        return;
    };
    let Some(chromium) = chromium(TEST) else {
        return;
    };
    let db = TestDb::sqlite();
    let port = free_port();
    let app = spawn(&db, port).await;
    let provider = start_provider(&script, port, &app.base);
    // The provider came up after Rouse: have Rouse discover it now (a click
    // on the button does), so the first screenshot shows the usual page.
    let mut browser = Browser::new(&app);
    assert_eq!(browser.get("/ui/login/oidc").await.status, 303);
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let base = app.base.clone();
    let seen = run_browser(
        &chromium,
        "web_oidc.js",
        vec![base, shots.display().to_string(), "alice".to_owned()],
    )
    .await;
    assert_eq!(seen["ssoUnavailable"], 0, "{seen}");
    assert!(
        seen["providerUrl"]
            .as_str()
            .unwrap()
            .starts_with(&provider.issuer),
        "{seen}"
    );
    assert_eq!(seen["afterLogin"], app.url("/ui/oncall"), "{seen}");
    let cookies = seen["cookies"].as_array().unwrap();
    assert!(cookies.iter().any(|c| c == "rouse_session"), "{seen}");
    assert!(!cookies.iter().any(|c| c == "rouse_oidc"), "{seen}");
    drop(provider);
    app.stop().await;
}
