//! A rolling restart (SIGTERM one replica, start it again, the next) while
//! alerts escalate: every step of every alert fires and each page reaches
//! Twilio exactly once — a clean stop hands its unsent work back and records
//! what it sent, so nothing is lost and nothing doubled.

use super::{catalog, fired, Cluster, NUMBERS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_and_doubles_nothing() {
    let Some(mut cluster) = Cluster::start("chaos::rolling", 3, &catalog("0s", "2s"), &[]).await
    else {
        return;
    };
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    let mut n = 0;
    for restarting in 0..cluster.replicas.len() {
        for _ in 0..8 {
            ids.push(cluster.open(&http, n, &format!("rolling-{n}")).await);
            n += 1;
        }
        let stopping = std::time::Instant::now();
        cluster.terminate(restarting).await;
        eprintln!(
            "chaos rolling restart: replica {restarting} stopped in {:?}",
            stopping.elapsed()
        );
        cluster.spawn(restarting);
        // Alerts keep arriving (at the others) while it starts.
        for _ in 0..4 {
            ids.push(
                cluster
                    .open(&http, restarting + 1, &format!("rolling-{n}"))
                    .await,
            );
            n += 1;
        }
        cluster.ready(restarting).await;
    }
    let settling = std::time::Instant::now();
    cluster.settled(rouse::escalation::engine::LEASE * 2).await;
    eprintln!(
        "chaos rolling restart: settled {:?} after the last restart",
        settling.elapsed()
    );

    let pool = cluster.pool().await;
    let fired = fired(&pool).await;
    pool.close().await;
    let pages = cluster.pages();
    let mut problems = Vec::new();
    for id in &ids {
        let steps = fired.get(id).map(|f| &f.steps);
        for step in 1..=3 {
            match steps.and_then(|s| s.get(&step)) {
                Some((_, _, status)) if status == "delivered" => {}
                other => problems.push(format!("#{id} step {step}: {other:?}")),
            }
        }
        for number in NUMBERS {
            let count = pages.get(&(*id, number.to_owned())).map_or(0, Vec::len);
            if count != 1 {
                problems.push(format!("#{id} reached {number} {count} times"));
            }
        }
    }
    eprintln!(
        "chaos rolling restart: {} alerts, {} pages, {} problems",
        ids.len(),
        pages.values().map(Vec::len).sum::<usize>(),
        problems.len()
    );
    if !problems.is_empty() {
        // A doubled page has so far been rare and only under a loaded
        // machine; this is the only trace of why: who sent each copy when,
        // what the database holds, and what the replicas said.
        let ports: Vec<u16> = cluster.replicas.iter().map(|r| r.port).collect();
        for ((id, number), sent) in pages.iter().filter(|(_, s)| s.len() > 1) {
            for s in sent {
                let replica = ports.iter().position(|p| *p == s.port);
                eprintln!(
                    "#{id} to {number}: sent by replica {replica:?} at {:?}",
                    s.at
                );
            }
        }
        let pool = cluster.pool().await;
        for row in notification_rows(&pool).await {
            eprintln!("{row}");
        }
        pool.close().await;
        for (i, replica) in cluster.replicas.iter().enumerate() {
            for line in replica.log.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                if line.contains("WARN")
                    || line.contains("ERROR")
                    || line.contains("shut")
                    || line.contains("stopped")
                    || line.contains("listening")
                {
                    eprintln!("replica {i}: {line}");
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    cluster.finish().await;
}

/// Every page row, one line each, for a failure's report.
async fn notification_rows(pool: &sqlx::PgPool) -> Vec<String> {
    use sqlx::Row;
    sqlx::query(
        "SELECT id, alert_id, fired, target, status, attempt, last_error, lease_owner,
                created_at, updated_at
           FROM notifications WHERE NOT follow_up ORDER BY alert_id, id",
    )
    .fetch_all(pool)
    .await
    .expect("notifications")
    .iter()
    .map(|r| {
        format!(
            "notification {} #{} fired {} to {}: {} attempt {} error {:?} lease {:?} created {} updated {}",
            r.get::<i64, _>("id"),
            r.get::<i64, _>("alert_id"),
            r.get::<i64, _>("fired"),
            r.get::<String, _>("target"),
            r.get::<String, _>("status"),
            r.get::<i32, _>("attempt"),
            r.get::<Option<String>, _>("last_error"),
            r.get::<Option<String>, _>("lease_owner"),
            r.get::<chrono::DateTime<chrono::Utc>, _>("created_at"),
            r.get::<chrono::DateTime<chrono::Utc>, _>("updated_at"),
        )
    })
    .collect()
}
