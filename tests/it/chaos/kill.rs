//! `kill -9` a random replica every few seconds while many alerts escalate
//! through three steps, and restart it. Afterwards: every step of every
//! alert fired; each page reached Twilio once, or twice only when the
//! replica that sent it first was killed right after (the window the README
//! names); no step fired more than one lease late; nothing acknowledged was
//! paged again. The small run is part of `cargo test`; `ROUSE_CHAOS_FULL=1`
//! (set by `.ci/run`) runs 200 alerts under kills for a minute.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::{catalog, fired, Cluster, Dice, NUMBERS};

/// The engine's lease (`rouse::escalation::engine::LEASE`): a killed
/// replica's claims are taken over once it runs out.
const LEASE: Duration = rouse::escalation::engine::LEASE;
/// Seconds between steps.
const STEP_DELAY: i64 = 4;
/// A kill this long after a page reached Twilio found its outcome already
/// committed (the measured window is milliseconds; see the printed figures):
/// a second copy of a page sent longer before any kill is a real duplicate.
const WINDOW_BOUND: Duration = Duration::from_secs(5);
/// On top of one lease: the next poll and the round that claims it, on a
/// machine the test shares with the rest of the suite.
const SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

struct Storm {
    alerts: usize,
    open_over: Duration,
    kill_every: Duration,
    kills_for: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_escalations_loses_no_step() {
    let full = std::env::var_os("ROUSE_CHAOS_FULL").is_some();
    let storm = if full {
        Storm {
            alerts: 200,
            open_over: Duration::from_secs(50),
            kill_every: Duration::from_secs(3),
            kills_for: Duration::from_secs(60),
        }
    } else {
        Storm {
            alerts: 40,
            open_over: Duration::from_secs(10),
            kill_every: Duration::from_secs(3),
            kills_for: Duration::from_secs(14),
        }
    };
    let delay = format!("{STEP_DELAY}s");
    let Some(mut cluster) = Cluster::start("chaos::kill", 3, &catalog("0s", &delay), &[]).await
    else {
        return;
    };
    let mut dice = Dice::new();
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut ids: Vec<i64> = Vec::new();
    // Every fifth alert is acknowledged once its first page arrived.
    let mut to_ack: Vec<i64> = Vec::new();
    let mut acked: HashMap<i64, SystemTime> = HashMap::new();
    let mut next_kill = storm.kill_every;
    loop {
        let elapsed = start.elapsed();
        let due = ((elapsed.as_secs_f64() / storm.open_over.as_secs_f64()) * storm.alerts as f64)
            .ceil() as usize;
        while ids.len() < due.min(storm.alerts) {
            let i = ids.len();
            let id = cluster.open(&http, i, &format!("chaos-{i}")).await;
            ids.push(id);
            if i.is_multiple_of(5) {
                to_ack.push(id);
            }
        }
        let pages = cluster.pages();
        let mut still = Vec::new();
        for id in to_ack.drain(..) {
            if pages.contains_key(&(id, NUMBERS[0].to_owned())) {
                let at = cluster.acknowledge(&http, id as usize, id).await;
                acked.insert(id, at);
            } else {
                still.push(id);
            }
        }
        to_ack = still;
        if elapsed >= next_kill && elapsed < storm.kills_for {
            let victim = dice.below(cluster.replicas.len());
            cluster.kill9(victim);
            cluster.spawn(victim);
            next_kill += storm.kill_every;
        }
        let done = ids.len() == storm.alerts && elapsed >= storm.kills_for && to_ack.is_empty();
        if done {
            break;
        }
        assert!(
            elapsed < storm.kills_for + Duration::from_secs(120),
            "the storm did not finish: {} alerts opened, {} acks waiting",
            ids.len(),
            to_ack.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..cluster.replicas.len() {
        cluster.ready(i).await;
    }
    // Leases of the last killed replica run out, then everything finishes.
    cluster.settled(LEASE * 2 + Duration::from_secs(60)).await;

    let pool = cluster.pool().await;
    let fired = fired(&pool).await;
    pool.close().await;
    let pages = cluster.pages();
    let mut problems = Vec::new();
    let mut duplicates = 0usize;
    let mut gaps = Vec::new();
    let mut latest_step = chrono::TimeDelta::zero();
    let mut latest_page = chrono::TimeDelta::zero();
    for &id in &ids {
        let Some(f) = fired.get(&id) else {
            problems.push(format!("#{id} is not in the database"));
            continue;
        };
        let ack = acked.get(&id).copied();
        if ack.is_none() {
            for n in 1..=3 {
                match f.steps.get(&n) {
                    Some((_, _, status)) if status == "delivered" => {}
                    other => problems.push(format!("#{id} step {n}: {other:?}")),
                }
            }
        }
        let mut planned = f.opened;
        for n in 1..=3 {
            let Some((at, recorded, _)) = f.steps.get(&n) else {
                break;
            };
            latest_step = latest_step.max(*at - planned);
            latest_page = latest_page.max(*recorded - planned);
            if *at - planned > chrono::TimeDelta::from_std(LEASE).unwrap() + SLACK {
                problems.push(format!(
                    "#{id} step {n} fired {} s late",
                    (*at - planned).num_seconds()
                ));
            }
            planned = *at + chrono::TimeDelta::seconds(STEP_DELAY);
        }
        for (k, number) in NUMBERS.iter().enumerate() {
            let sent = pages
                .get(&(id, (*number).to_owned()))
                .cloned()
                .unwrap_or_default();
            if ack.is_none() && sent.is_empty() {
                problems.push(format!("#{id} step {} never reached Twilio", k + 1));
            }
            if let Some(ack) = ack {
                for s in &sent {
                    if s.at > ack + Duration::from_secs(2) {
                        problems.push(format!(
                            "#{id} was paged on {number} after it was acknowledged"
                        ));
                    }
                }
            }
            if sent.len() > 2 {
                problems.push(format!("#{id} reached {number} {} times", sent.len()));
            }
            if sent.len() == 2 {
                duplicates += 1;
                let first = &sent[0];
                let killer = cluster.kills.iter().find(|(r, at)| {
                    cluster.replicas[*r].port == first.port
                        && *at + Duration::from_millis(50) >= first.at
                        && at.duration_since(first.at).unwrap_or_default() <= WINDOW_BOUND
                });
                match killer {
                    Some((_, at)) => gaps.push(at.duration_since(first.at).unwrap_or_default()),
                    None => problems.push(format!(
                        "#{id} reached {number} twice, and the first sender was not killed right after: {sent:?}"
                    )),
                }
            }
        }
    }
    let kills = cluster.kills.len();
    eprintln!(
        "chaos kill -9: {} alerts, {} acknowledged, {kills} kills, {duplicates} duplicate pages ({:.2} per kill; kill came {:?} after the first copy), longest step lateness {:.1} s, longest page delay {:.1} s",
        ids.len(),
        acked.len(),
        duplicates as f64 / kills.max(1) as f64,
        gaps,
        latest_step.num_milliseconds() as f64 / 1000.0,
        latest_page.num_milliseconds() as f64 / 1000.0,
    );
    for line in cluster.windows().await {
        eprintln!("chaos window (provider 2xx → outcome committed, ms): {line}");
    }
    assert!(kills >= 3, "only {kills} kills happened");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    cluster.finish().await;
}
