//! The database goes away for 20 s mid-storm: the test's own database stops
//! taking connections (`ALLOW_CONNECTIONS false`) and every connection to it
//! is terminated — the shared server itself stays up. Throughout, intake on
//! every replica answers 503 with `Retry-After` (never a 202 it cannot keep,
//! never a 500); afterwards the pools and the wake-up listeners reconnect,
//! and every event accepted before or after escalates through every step.

use std::time::{Duration, Instant};

use super::{catalog, fired, Cluster, NUMBERS};
use crate::support::{TestDb, PAYMENTS_KEY};

const OUTAGE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_503_and_nothing_accepted_is_lost() {
    let Some(mut cluster) = Cluster::start("chaos::outage", 3, &catalog("0s", "3s"), &[]).await
    else {
        return;
    };
    let TestDb::Postgres {
        admin_url, name, ..
    } = &cluster.db
    else {
        unreachable!("the chaos cluster runs on PostgreSQL");
    };
    let (admin_url, name) = (admin_url.clone(), name.clone());
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(cluster.open(&http, i, &format!("before-{i}")).await);
    }

    let admin = sqlx::PgPool::connect(&admin_url).await.expect("admin");
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&admin)
        .await
        .expect("refuse connections");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&admin)
    .await
    .expect("terminate connections");

    // Four senders at a time, round the replicas, for the whole outage.
    let bases: Vec<String> = cluster.replicas.iter().map(|r| r.base()).collect();
    let until = Instant::now() + OUTAGE;
    let mut senders = Vec::new();
    for s in 0..4 {
        let http = http.clone();
        let bases = bases.clone();
        senders.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while Instant::now() < until {
                let base = &bases[(s + n) % bases.len()];
                let body = serde_json::json!({"action": "trigger", "dedup_key": format!("during-{s}-{n}"),
                                              "summary": "during the outage", "severity": "critical"});
                let answer = http
                    .post(format!("{base}/v1/events"))
                    .header("x-rouse-key", PAYMENTS_KEY)
                    .json(&body)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                answers.push(match answer {
                    Ok(r) => (
                        r.status().as_u16(),
                        r.headers().contains_key("retry-after"),
                    ),
                    Err(e) => panic!("a replica dropped a request during the outage: {e}"),
                });
                n += 1;
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for s in senders {
        answers.extend(s.await.expect("sender"));
    }
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .expect("allow connections again");
    admin.close().await;

    let wrong: Vec<&(u16, bool)> = answers.iter().filter(|(s, r)| *s != 503 || !r).collect();
    eprintln!(
        "chaos outage: {} requests during {OUTAGE:?}, {} not 503 with Retry-After",
        answers.len(),
        wrong.len()
    );
    assert!(!answers.is_empty());
    assert!(wrong.is_empty(), "answers during the outage: {wrong:?}");
    for i in 0..cluster.replicas.len() {
        assert!(
            cluster.replicas[i].is_running(),
            "replica {i} died in the outage"
        );
    }

    for i in 0..10 {
        ids.push(cluster.open(&http, i, &format!("after-{i}")).await);
    }
    cluster
        .settled(rouse::escalation::engine::LEASE * 2 + Duration::from_secs(30))
        .await;
    let pool = cluster.pool().await;
    let fired = fired(&pool).await;
    pool.close().await;
    let pages = cluster.pages();
    let mut problems = Vec::new();
    for id in &ids {
        let steps = fired.get(id).map(|f| &f.steps);
        for step in 1..=3 {
            if steps.and_then(|s| s.get(&step)).is_none() {
                problems.push(format!("#{id} step {step} never fired"));
            }
        }
        for number in NUMBERS {
            if !pages.contains_key(&(*id, number.to_owned())) {
                problems.push(format!("#{id} never reached {number}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The wake-up listeners came back too (the first line is from start-up).
    crate::support::eventually("every replica listens for wake-ups again", || {
        let again = cluster.replicas.iter().all(|r| {
            r.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|l| l.contains("listening for wake-ups from other replicas"))
                .count()
                >= 2
        });
        async move { again }
    })
    .await;
    cluster.finish().await;
}
