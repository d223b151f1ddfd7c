//! The web UI over plain HTTP, as a browser would speak it (forms, cookies,
//! redirects): logging in, acting on an alert, and the security rules —
//! CSRF, idle expiry, failed-login limits, cookies signed by another key.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use rouse::clock::ManualClock;
use rouse::config::Secret;
use serde_json::json;

use crate::support::{TestApp, TestDb, ADMIN_TOKEN, PAYMENTS_KEY, TEST_CATALOG};

pub const ALICE_PASSWORD: &str = "alice-correct-horse";

/// [`TEST_CATALOG`] with a web login for alice.
pub fn catalog_with_login(catalog: &str) -> String {
    let hash = rouse::commands::hash_password::hash(ALICE_PASSWORD).expect("hash");
    catalog.replacen(
        "    timezone: Europe/Berlin\n",
        &format!("    timezone: Europe/Berlin\n    login: {{ password_hash: \"{hash}\" }}\n"),
        1,
    )
}

/// A cookie jar and a client that does not follow redirects, so each answer
/// can be checked.
pub struct Browser {
    base: String,
    client: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, response: reqwest::Response) -> Page {
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().expect("ascii cookie");
            let pair = set.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            body: response.text().await.expect("body"),
        }
    }

    /// A path on Rouse, or an absolute URL (another server on 127.0.0.1,
    /// such as the OpenID provider; cookies are shared across ports there,
    /// as browsers share them).
    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(self.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.finish(response).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    rouse::channel::twilio::percent_encode(k),
                    rouse::channel::twilio::percent_encode(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let response = self
            .client
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST");
        self.finish(response).await
    }

    /// Opens the login form and submits it.
    pub async fn log_in(&mut self, fields: &[(&str, &str)]) -> Page {
        let form = self.get("/ui/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = csrf_of(&form.body);
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post("/ui/login", &all).await
    }
}

/// The CSRF token in a page's first form.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

async fn trigger(app: &TestApp, summary: &str) -> i64 {
    let (status, body) = app
        .post(
            "/v1/events",
            &[("x-rouse-key", PAYMENTS_KEY)],
            json!({"action": "trigger", "summary": summary, "severity": "critical"}).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["alert_id"].as_i64().expect("alert id")
}

async fn alert(app: &TestApp, id: i64) -> serde_json::Value {
    let (status, body) = app.admin_get(&format!("/v1/alerts/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn spawn(db: &TestDb, clock: Option<ManualClock>, key: &str) -> TestApp {
    let catalog = catalog_with_login(TEST_CATALOG);
    let key = key.to_owned();
    let adjust = move |c: &mut rouse::config::Config| c.signing_key = Secret::new(key);
    match clock {
        Some(clock) => TestApp::spawn_with_clock(db, &catalog, Arc::new(clock), adjust).await,
        None => TestApp::spawn_with_catalog(db, &catalog, adjust).await,
    }
}

const KEY_A: &str = "web-ui-signing-key-a-0123456789abcdef";
const KEY_B: &str = "web-ui-signing-key-b-0123456789abcdef";

#[tokio::test]
async fn a_person_logs_in_and_acts_on_an_alert_and_the_timeline_says_who() {
    let db = TestDb::sqlite();
    let app = spawn(&db, None, KEY_A).await;
    let id = trigger(&app, "checkout latency above 2s").await;
    let mut browser = Browser::new(&app);

    // Not logged in: every page sends the browser to the login form.
    let page = browser.get("/ui/alerts?status=open").await;
    assert_eq!(page.status, 303);
    let to = page.location.unwrap();
    assert!(to.starts_with("/ui/login?next=%2Fui%2Falerts"), "{to}");

    let login = browser
        .log_in(&[("login", "alice"), ("password", ALICE_PASSWORD)])
        .await;
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = browser
        .cookies
        .get("rouse_session")
        .expect("session cookie")
        .clone();

    let list = browser.get("/ui/alerts?status=open&q=CHECKOUT").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains("checkout latency above 2s"),
        "{}",
        list.body
    );
    let none = browser.get("/ui/alerts?severity=info").await;
    assert!(!none.body.contains("checkout latency"), "{}", none.body);
    assert_eq!(browser.get("/ui/alerts?status=nonsense").await.status, 400);

    let detail = browser.get(&format!("/ui/alerts/{id}")).await;
    assert_eq!(detail.status, 200);
    assert!(detail.body.contains("Escalate now"), "{}", detail.body);
    let csrf = csrf_of(&detail.body);
    let escalated = browser
        .post(&format!("/ui/alerts/{id}/escalate"), &[("csrf", &csrf)])
        .await;
    assert_eq!(escalated.status, 303);
    let acked = browser
        .post(&format!("/ui/alerts/{id}/acknowledge"), &[("csrf", &csrf)])
        .await;
    assert_eq!(acked.status, 303);
    assert_eq!(
        acked.location.as_deref(),
        Some(format!("/ui/alerts/{id}").as_str())
    );

    let body = alert(&app, id).await;
    assert_eq!(body["alert"]["status"], "acknowledged");
    assert_eq!(body["alert"]["acknowledged_by"], "alice");
    let timeline = body["timeline"].as_array().unwrap();
    assert!(
        timeline.iter().any(|e| e["kind"] == "acknowledged"
            && e["actor"] == "alice"
            && e["message"] == "acknowledged via web"),
        "{timeline:?}"
    );
    assert!(
        timeline
            .iter()
            .any(|e| e["kind"] == "escalated" && e["actor"] == "alice"),
        "{timeline:?}"
    );

    // The other pages render for her, and the configuration page names no secret.
    for path in [
        "/ui/oncall",
        "/ui/schedules?tz=America/New_York",
        "/ui/config",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            !page.body.contains(ADMIN_TOKEN) && !page.body.contains(KEY_A),
            "{path}"
        );
    }
    let config = browser.get("/ui/config").await.body;
    assert!(config.contains("oncall.yaml"), "{config}");
    assert!(
        !config.contains("$argon2"),
        "a password hash is shown: {config}"
    );

    // Logging out revokes the session: the old cookie no longer works.
    let csrf = csrf_of(&browser.get("/ui/alerts").await.body);
    assert_eq!(
        browser.post("/ui/logout", &[("csrf", &csrf)]).await.status,
        303
    );
    browser.cookies.insert("rouse_session".to_owned(), cookie);
    assert_eq!(browser.get("/ui/alerts").await.status, 303);
    app.stop().await;
}

#[tokio::test]
async fn csrf_missing_or_wrong_is_403_and_nothing_changes() {
    let db = TestDb::sqlite();
    let app = spawn(&db, None, KEY_A).await;
    let id = trigger(&app, "disk almost full").await;
    let mut alice = Browser::new(&app);
    assert_eq!(
        alice
            .log_in(&[("login", "alice"), ("password", ALICE_PASSWORD)])
            .await
            .status,
        303
    );
    let mut admin = Browser::new(&app);
    assert_eq!(admin.log_in(&[("token", ADMIN_TOKEN)]).await.status, 303);
    let admins_token = csrf_of(&admin.get(&format!("/ui/alerts/{id}")).await.body);

    for action in ["acknowledge", "resolve", "escalate"] {
        let path = format!("/ui/alerts/{id}/{action}");
        for form in [
            vec![],
            vec![("csrf", "wrong")],
            // Another session's valid token is no good in this one.
            vec![("csrf", admins_token.as_str())],
        ] {
            let page = alice.post(&path, &form).await;
            assert_eq!(page.status, 403, "{action} with {form:?}: {}", page.body);
            let error: serde_json::Value = serde_json::from_str(&page.body).expect("JSON error");
            assert!(
                error["message"].as_str().unwrap().contains("CSRF"),
                "{error}"
            );
        }
    }
    let body = alert(&app, id).await;
    assert_eq!(body["alert"]["status"], "triggered");
    let kinds: Vec<&str> = body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        !kinds.contains(&"escalated") && !kinds.contains(&"acknowledged"),
        "{kinds:?}"
    );

    // The login form has its own token: a forged login is refused too.
    let mut stranger = Browser::new(&app);
    let page = stranger
        .post(
            "/ui/login",
            &[("login", "alice"), ("password", ALICE_PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(!stranger.cookies.contains_key("rouse_session"));
    app.stop().await;
}

#[tokio::test]
async fn an_idle_session_expires_and_then_changes_nothing() {
    let db = TestDb::sqlite();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2027, 1, 12, 10, 0, 0).unwrap());
    let app = spawn(&db, Some(clock.clone()), KEY_A).await;
    let id = trigger(&app, "queue backlog growing").await;
    let mut browser = Browser::new(&app);
    assert_eq!(
        browser
            .log_in(&[("login", "alice"), ("password", ALICE_PASSWORD)])
            .await
            .status,
        303
    );
    let csrf = csrf_of(&browser.get(&format!("/ui/alerts/{id}")).await.body);
    // Used within the idle limit (8h by default), the session lives on.
    clock.advance(chrono::TimeDelta::hours(7));
    assert_eq!(browser.get("/ui/alerts").await.status, 200);
    clock.advance(chrono::TimeDelta::hours(8) + chrono::TimeDelta::minutes(1));
    let page = browser.get("/ui/alerts").await;
    assert_eq!(page.status, 303);
    assert!(page.location.unwrap().starts_with("/ui/login"));
    let page = browser
        .post(&format!("/ui/alerts/{id}/acknowledge"), &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, 303);
    assert!(page.location.unwrap().starts_with("/ui/login"));
    assert_eq!(alert(&app, id).await["alert"]["status"], "triggered");
    app.stop().await;
}

#[tokio::test]
async fn wrong_passwords_are_rate_limited_per_login() {
    let db = TestDb::sqlite();
    let app = spawn(&db, None, KEY_A).await;
    let mut browser = Browser::new(&app);
    for attempt in 1..=5 {
        let page = browser
            .log_in(&[("login", "alice"), ("password", "guess")])
            .await;
        assert_eq!(page.status, 401, "attempt {attempt}");
        assert!(page.body.contains("Wrong login or password"));
    }
    // Now even the right password is refused until the window has passed.
    let page = browser
        .log_in(&[("login", "alice"), ("password", ALICE_PASSWORD)])
        .await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.body.contains("Too many failed logins"));
    assert!(!browser.cookies.contains_key("rouse_session"));
    // An unknown login and the admin token are counted on their own.
    assert_eq!(
        browser
            .log_in(&[("login", "mallory"), ("password", "x")])
            .await
            .status,
        401
    );
    assert_eq!(browser.log_in(&[("token", ADMIN_TOKEN)]).await.status, 303);
    app.stop().await;
}

#[tokio::test]
async fn a_session_cookie_signed_with_another_key_is_refused() {
    let db_a = TestDb::sqlite();
    let db_b = TestDb::sqlite();
    let a = spawn(&db_a, None, KEY_A).await;
    let b = spawn(&db_b, None, KEY_B).await;
    let mut on_a = Browser::new(&a);
    assert_eq!(
        on_a.log_in(&[("login", "alice"), ("password", ALICE_PASSWORD)])
            .await
            .status,
        303
    );
    assert_eq!(on_a.get("/ui/alerts").await.status, 200);
    let mut on_b = Browser::new(&b);
    on_b.cookies = on_a.cookies.clone();
    let page = on_b.get("/ui/alerts").await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(page.location.unwrap().starts_with("/ui/login"));
    a.stop().await;
    b.stop().await;
}
