//! While the database cannot be reached, intake says so with a `503` and
//! `Retry-After` (senders retry), never a `202` it cannot keep and never a
//! bare `500`; once the database is back, events are accepted again.

use serde_json::json;

use crate::support::{eventually, TestApp, TestDb, PAYMENTS_KEY};

async fn admin(db: &TestDb) -> Option<(sqlx::PgPool, String)> {
    let TestDb::Postgres {
        admin_url, name, ..
    } = db
    else {
        return None;
    };
    Some((
        sqlx::PgPool::connect(admin_url).await.unwrap(),
        name.clone(),
    ))
}

async fn native(app: &TestApp, key: &str) -> (u16, Option<String>, serde_json::Value) {
    let response = app
        .http
        .post(app.url("/v1/events"))
        .header("x-rouse-key", PAYMENTS_KEY)
        .body(
            json!({"action": "trigger", "dedup_key": key, "summary": "db down", "severity": "critical"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, response.json().await.unwrap())
}

#[tokio::test]
async fn an_unreachable_database_answers_503_with_retry_after() {
    let Some(db) = TestDb::postgres("store_outage::an_unreachable_database_answers_503").await
    else {
        return;
    };
    let app = TestApp::spawn(&db, |_| {}).await;
    let (status, _, body) = native(&app, "before").await;
    assert_eq!(status, 202, "{body}");

    let (pg, name) = admin(&db).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&pg)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&pg)
    .await
    .unwrap();

    for key in ["during-1", "during-2"] {
        let (status, retry, body) = native(&app, key).await;
        assert_eq!(status, 503, "{body}");
        assert!(
            retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s > 0)),
            "{body}"
        );
        assert_eq!(body["status"], "error", "{body}");
        assert!(
            !body["message"].as_str().unwrap().contains("sqlx"),
            "{body}"
        );
    }
    let response = app
        .http
        .post(app.url("/v2/enqueue"))
        .body(
            json!({"routing_key": PAYMENTS_KEY, "event_action": "trigger", "dedup_key": "pd",
                   "payload": {"summary": "db down", "source": "db-1", "severity": "critical"}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["status"].is_string(), "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["errors"].is_array(), "{body}");

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&pg)
        .await
        .unwrap();
    pg.close().await;
    eventually("intake accepts events again", || async {
        native(&app, "after").await.0 == 202
    })
    .await;
    app.stop().await;
    db.drop_db().await;
}

/// With no valid on-call configuration yet, the 503 says when to retry too.
#[tokio::test]
async fn no_configuration_yet_is_503_with_retry_after() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn_with_catalog(&db, "people: [", |_| {}).await;
    let (status, retry, body) = native(&app, "k").await;
    assert_eq!(status, 503, "{body}");
    assert!(retry.is_some(), "{body}");
    app.stop().await;
}
