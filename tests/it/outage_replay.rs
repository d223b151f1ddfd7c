//! The outage Rouse was built for, replayed on a virtual clock.
//!
//! A `.app` domain fails to renew on 2024-01-11 15:28 UTC; the registrar
//! parks it (client hold, parking nameservers) while the registry's date
//! moves a year ahead and looks fine; every request then fails TLS with a
//! name mismatch. Engineers in Tokyo, Berlin and New York share a
//! follow-the-sun schedule, and whoever is on call does not answer the phone.
//!
//! Rouse's own watchers must see it coming: a page weeks before the expiry,
//! a critical page within one TLS check of the parking, and the second
//! person paged when the first does not answer. The test prints every page
//! with UTC and the recipient's local time, and fails if any of them is late.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, TimeDelta, TimeZone, Timelike, Utc};
use rouse::channel::twilio::{TwilioClient, TwilioConfig, TwilioSms, TwilioVoice};
use rouse::channel::{ChannelKind, Recipient};
use rouse::clock::Clock;
use rouse::config::Secret;
use rouse::escalation::engine::{Channels, Engine};
use rouse::store::{AlertFilter, NotificationRow};

use crate::fake_twilio::{CallScript, FakeTwilio};
use crate::support::TestDb;
use crate::tls_peer::{SwitchableTls, TestCa};
use crate::watch_runner::Rig;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "replay_token";

fn expiry() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 11, 15, 28, 4).unwrap()
}

/// An RDAP server whose one answer the test replaces as the story goes on.
async fn fake_rdap(body: Vec<u8>) -> (String, Arc<Mutex<Vec<u8>>>) {
    let answer = Arc::new(Mutex::new(body));
    let app = axum::Router::new()
        .route(
            "/domain/{name}",
            get(|State(a): State<Arc<Mutex<Vec<u8>>>>| async move {
                let body = a.lock().unwrap().clone();
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/rdap+json")],
                    body,
                )
                    .into_response()
            }),
        )
        .with_state(answer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, answer)
}

fn fixture(name: &str) -> Vec<u8> {
    crate::support::fixture(&format!("rdap/{name}"))
}

/// Kenji in Tokyo, Alice in Berlin, Bob in New York, each on call during
/// their own working day: together a day without gaps. The secondary
/// schedule is the next region along, so a backup is always awake too.
fn catalog(rdap: &str, tls_port: u16, ca: &str) -> String {
    format!(
        r#"
people:
  - id: kenji
    name: Kenji
    timezone: Asia/Tokyo
    contact: {{ sms: "+819012345678", voice: "+819012345678" }}
  - id: alice
    name: Alice
    timezone: Europe/Berlin
    contact: {{ sms: "+4915112345678", voice: "+4915112345678" }}
  - id: bob
    name: Bob
    timezone: America/New_York
    contact: {{ sms: "+12125550100", voice: "+12125550100" }}
rotations:
  - {{ id: tokyo, timezone: Asia/Tokyo, participants: [kenji], shift: 1w, handoff: "08:00", start: 2023-11-27, active: [{{ from: "08:00", to: "16:00" }}] }}
  - {{ id: berlin, timezone: Europe/Berlin, participants: [alice], shift: 1w, handoff: "08:00", start: 2023-11-27, active: [{{ from: "08:00", to: "16:00" }}] }}
  - {{ id: newyork, timezone: America/New_York, participants: [bob], shift: 1w, handoff: "10:00", start: 2023-11-27, active: [{{ from: "10:00", to: "18:00" }}] }}
  - {{ id: tokyo-backup, timezone: Asia/Tokyo, participants: [alice], shift: 1w, handoff: "08:00", start: 2023-11-27, active: [{{ from: "08:00", to: "16:00" }}] }}
  - {{ id: berlin-backup, timezone: Europe/Berlin, participants: [bob], shift: 1w, handoff: "08:00", start: 2023-11-27, active: [{{ from: "08:00", to: "16:00" }}] }}
  - {{ id: newyork-backup, timezone: America/New_York, participants: [kenji], shift: 1w, handoff: "10:00", start: 2023-11-27, active: [{{ from: "10:00", to: "18:00" }}] }}
schedules:
  - id: follow-the-sun
    timezone: UTC
    layers: [{{ rotation: tokyo }}, {{ rotation: berlin }}, {{ rotation: newyork }}]
  - id: backup
    timezone: UTC
    layers: [{{ rotation: tokyo-backup }}, {{ rotation: berlin-backup }}, {{ rotation: newyork-backup }}]
policies:
  - id: wake-up
    steps:
      - delay: 0m
        targets: [{{ schedule: follow-the-sun }}]
        channels: [voice]
      - delay: 10m
        targets: [{{ schedule: backup }}]
        channels: [voice]
  - id: heads-up
    steps:
      - delay: 0m
        targets: [{{ schedule: follow-the-sun }}]
        channels: [sms]
services:
  - id: shop
    policy: wake-up
    integrations: [{{ name: monitoring, key: shop-key-0123456789 }}]
    routes:
      - match: {{ severity: warning }}
        policy: heads-up
watchers:
  - id: shop-domain
    kind: domain
    service: shop
    domain: shop.example.app
    rdap_url: {rdap}
    every: 1d
    expect_nameservers: [ns1.dns-host.example, ns2.dns-host.example]
  - id: shop-tls
    kind: tls
    service: shop
    host: 127.0.0.1
    port: {tls_port}
    server_name: shop.example.app
    ca_file: {ca}
    every: 1h
"#
    )
}

/// One page as the test prints it.
struct Page {
    at: DateTime<Utc>,
    dedup_key: String,
    channel: ChannelKind,
    who: String,
    local: String,
}

fn zone_of(person: &str) -> chrono_tz::Tz {
    match person {
        "kenji" => chrono_tz::Asia::Tokyo,
        "alice" => chrono_tz::Europe::Berlin,
        _ => chrono_tz::America::New_York,
    }
}

async fn pages(rig: &Rig) -> Vec<Page> {
    let alerts = rig
        .store
        .alerts(&AlertFilter {
            limit: 500,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    for alert in alerts {
        let rows: Vec<NotificationRow> = rig.store.notifications(alert.id).await.unwrap();
        for n in rows {
            let Recipient::Person { id, name, .. } = &n.recipient else {
                continue;
            };
            out.push(Page {
                at: n.due_at,
                dedup_key: alert.dedup_key.clone(),
                channel: n.channel,
                who: name.clone(),
                local: n
                    .due_at
                    .with_timezone(&zone_of(id))
                    .format("%a %H:%M %Z")
                    .to_string(),
            });
        }
    }
    out.sort_by_key(|p| p.at);
    out
}

async fn the_parked_domain_is_caught_weeks_ahead_and_wakes_someone(db: &TestDb) {
    let start = Utc.with_ymd_and_hms(2023, 12, 1, 0, 0, 0).unwrap();
    let (rdap, answer) = fake_rdap(fixture("domain_app_active.json")).await;
    let ca = TestCa::new("Replay Test CA");
    // Valid on both clocks: the virtual one (2023–24) and the real one,
    // which the chain verification inside rustls reads.
    let years = TimeDelta::days(4 * 365);
    let tls = SwitchableTls::start(ca.leaf(&["shop.example.app"], -years, years)).await;
    let ca_path = ca.path().unwrap();
    let rig = Rig::with_catalog(
        db,
        &catalog(&rdap, tls.port, &ca_path.display().to_string()),
        start,
    )
    .await;
    let runner = rig.runner();

    let twilio = FakeTwilio::start(SID, TOKEN).await;
    for number in ["+819012345678", "+4915112345678", "+12125550100"] {
        twilio.script_call(number, CallScript::NoAnswer);
    }
    let mut config = TwilioConfig::new(SID, Secret::new(TOKEN), "+15005550006");
    config.base_url = twilio.base_url();
    let client = TwilioClient::new(config);
    let public = "http://127.0.0.1:9";
    let channels = Channels::console_only()
        .with(Arc::new(TwilioSms::new(
            "twilio-sms",
            client.clone(),
            public,
        )))
        .with(Arc::new(TwilioVoice::new(
            "twilio-voice",
            client,
            public,
            Arc::new(|_| "token".to_owned()),
        )));
    let engine = Engine::new(
        rig.store.clone(),
        rig.catalog.clone(),
        Arc::new(channels),
        Arc::new(rig.clock.clone()),
    );

    // Hour by hour, but minute by minute around the expiry and for half an
    // hour after anything was sent, so each escalation step shows at its
    // own minute.
    let mut t = start;
    let mut parked = false;
    let mut fine_until = start;
    let mut sent_so_far = 0;
    let end = Utc.with_ymd_and_hms(2024, 1, 12, 1, 0, 0).unwrap();
    while t <= end {
        if !parked && t >= expiry() {
            // The renewal failed: the registry shows a healthy date but the
            // registrar holds the domain, and the proxy now presents the
            // parking page's certificate.
            *answer.lock().unwrap() = fixture("domain_app_expired_parked.json");
            tls.present(ca.leaf(&["parking.registrar.example"], -years, years));
            parked = true;
        }
        rig.clock.set(t);
        runner.tick().await.unwrap();
        for _ in 0..10 {
            let (fired, sent) = engine.tick().await.unwrap();
            engine.idle().await;
            if fired == 0 && sent == 0 {
                break;
            }
        }
        let sent = twilio.calls().len() + twilio.messages().len();
        if sent != sent_so_far {
            sent_so_far = sent;
            fine_until = t + TimeDelta::minutes(30);
        }
        let around_expiry =
            t >= expiry() - TimeDelta::hours(1) && t < expiry() + TimeDelta::hours(1);
        t = if around_expiry || t < fine_until {
            t + TimeDelta::minutes(1)
        } else {
            // The next whole hour.
            let next = t + TimeDelta::hours(1);
            next - TimeDelta::seconds(i64::from(next.minute() * 60 + next.second()))
        };
    }

    let pages = pages(&rig).await;
    println!("\nThe outage, replayed (fake Twilio answers no-answer to every call):");
    for p in &pages {
        println!(
            "  {}  {:<5}  {:<6} ({:<14})  {}",
            p.at.format("%Y-%m-%d %H:%M UTC"),
            p.channel.as_str(),
            p.who,
            p.local,
            p.dedup_key
        );
    }

    let first_expiry_page = pages
        .iter()
        .find(|p| p.dedup_key == "watch:shop-domain:expiry")
        .expect("the expiry was paged");
    assert!(
        expiry() - first_expiry_page.at >= TimeDelta::days(28),
        "the first page came {} before expiry",
        expiry() - first_expiry_page.at
    );
    let critical_expiry = pages
        .iter()
        .find(|p| p.dedup_key == "watch:shop-domain:expiry" && p.channel == ChannelKind::Voice)
        .expect("the last week was paged by voice");
    assert!(expiry() - critical_expiry.at >= TimeDelta::days(6));

    let after: Vec<&Page> = pages
        .iter()
        .filter(|p| p.at >= expiry() && p.channel == ChannelKind::Voice)
        .collect();
    let first = after
        .iter()
        .find(|p| p.dedup_key == "watch:shop-tls:cert_name")
        .expect("the wrong-name certificate was paged");
    assert!(
        first.at - expiry() <= TimeDelta::hours(1),
        "paged {} after the parking, more than one TLS check interval",
        first.at - expiry()
    );
    let second = after
        .iter()
        .find(|p| p.dedup_key == first.dedup_key && p.who != first.who)
        .expect("the second person was paged");
    assert!(
        second.at - first.at <= TimeDelta::minutes(10),
        "the backup was paged {} after the first call, later than the 10m step",
        second.at - first.at
    );
    // The registrar hold is found on the next daily domain check, whatever
    // the (renewed-looking) date says.
    let alerts = rig
        .store
        .alerts(&AlertFilter {
            limit: 100,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    println!("\nAlerts:");
    for a in &alerts {
        println!("  #{} {:?} {}: {}", a.id, a.status, a.dedup_key, a.summary);
    }
    let hold = alerts
        .iter()
        .find(|a| a.dedup_key == "watch:shop-domain:status")
        .expect("the client hold was paged");
    assert_eq!(hold.severity, rouse::alert::Severity::Critical);
    assert!(hold.summary.contains("CLIENT HOLD"), "{}", hold.summary);
    // The next daily check after the parking (the watcher runs every day at
    // the minute it was first configured, 00:00 UTC).
    let next_daily = Utc.with_ymd_and_hms(2024, 1, 12, 0, 0, 0).unwrap();
    assert!(
        hold.created_at <= next_daily + TimeDelta::hours(1),
        "the hold was found at {}",
        hold.created_at
    );
    let _ = rig.clock.now();
}
crate::both_backends!(the_parked_domain_is_caught_weeks_ahead_and_wakes_someone);
