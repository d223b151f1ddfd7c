//! One SQLite file, one server: a second `rouse serve` on the same file is
//! refused at start-up with one sentence, and the first keeps serving.

use rouse::config::{Config, Secret};

use crate::support::{test_rotations, TestApp, TestDb};

#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_is_refused() {
    let db = TestDb::sqlite();
    let first = TestApp::spawn(&db, |_| {}).await;

    let rotations = test_rotations();
    let config = Config {
        rotations_dir: rotations.path().to_owned(),
        database_url: Secret::new(db.url()),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Told to stop at once: without the lock it would start, serve and stop.
    let second = rouse::run(config, listener, std::future::ready(())).await;
    let err = match second {
        Err(e) => e.to_string(),
        Ok(()) => panic!("the second server started on the same SQLite file"),
    };
    assert!(
        err.starts_with(&format!("another rouse is already serving {}", db.url())),
        "{err}"
    );
    assert!(err.contains("rouse.db.lock"), "{err}");
    assert!(err.contains("PostgreSQL"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // The first is unharmed, and once it stops the file is free again.
    let (status, _) = first.admin_get("/v1/alerts").await;
    assert_eq!(status, 200);
    first.stop().await;
    let again = TestApp::spawn(&db, |_| {}).await;
    again.stop().await;
}
