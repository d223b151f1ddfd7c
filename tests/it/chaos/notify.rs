//! A replica's commit wakes the others at once (PostgreSQL `NOTIFY`): the
//! replica that took an alert dies before its first step is due, and the
//! other one — whose poll is an hour, so only a notification can have woken
//! it — sends the page.

use std::time::{Duration, Instant};

use super::{catalog, Cluster, NUMBERS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_sent_by_the_other_replica_woken_by_notify() {
    let Some(mut cluster) = Cluster::start(
        "chaos::notify",
        2,
        &catalog("3s", "1h"),
        &[("ROUSE_ENGINE_POLL", "1h")],
    )
    .await
    else {
        return;
    };
    crate::support::eventually("both replicas listen for wake-ups", || {
        let both = cluster
            .replicas
            .iter()
            .all(|r| r.logged("listening for wake-ups from other replicas"));
        async move { both }
    })
    .await;
    let http = reqwest::Client::new();
    let id = cluster.open(&http, 0, "woken-by-notify").await;
    // Dead before its first step is due (3 s): only the other replica is left.
    cluster.kill9(0);

    let deadline = Instant::now() + Duration::from_secs(60);
    let sent = loop {
        if let Some(sent) = cluster.pages().get(&(id, NUMBERS[0].to_owned())) {
            break sent.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no page for #{id} within 60 s: the surviving replica (poll 1h) was not woken"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].port, cluster.replicas[1].port,
        "the page must come from the surviving replica"
    );
    cluster.finish().await;
}
