//! The engine: fires due escalation steps and sends due notifications.
//!
//! The database is the timer. Each replica claims due rows with a lease and
//! completes them fenced on the lease token, so a crashed replica's work is
//! taken over when its lease runs out and a stale replica cannot overwrite a
//! newer decision. In memory there is only a wake-up: sleep until the earliest
//! due instant, or until woken: by a new alert here, by another replica's
//! commit (PostgreSQL `NOTIFY`, see [`crate::store::postgres::notify`]), or by
//! the poll that stays the fallback for both.
//!
//! Sending runs in its own tasks, bounded by a semaphore: a provider that hangs
//! until its timeout delays only its own notification, never the steps of
//! other alerts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{Mutex, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::hold::{self, hold_at, Cap, Hold};
use super::plan;
use crate::alert::silence::{Silence, SilenceSet, Subject};
use crate::alert::{Alert, AlertStatus, TimelineKind};
use crate::catalog::live::LiveCatalog;
use crate::channel::console::Console;
use crate::channel::{Channel, ChannelKind, Notification, Outcome, Recipient};
use crate::clock::Clock;
use crate::config::Secret;
use crate::store::group_commit::{CommitError, DeliveryCommit};
use crate::store::stats::timed;
use crate::store::{
    DeliveryRecord, DeliveryStatus, EscalationClaim, NewNotification, NotificationClaim,
    StepRecord, Store, StoreError,
};

/// How long a claim is exclusive; a replica that dies holding one delays that
/// alert by at most this long.
pub const LEASE: Duration = Duration::from_secs(60);
/// Rows claimed per round.
const CLAIM_BATCH: u32 = 100;
/// Attempts per notification before it counts as failed and the escalation
/// falls through to its next step.
pub const MAX_ATTEMPTS: u32 = 5;
/// Backoff between attempts: 10 s, 20 s, 40 s … at most 5 minutes.
const BACKOFF_BASE: TimeDelta = TimeDelta::seconds(10);
const BACKOFF_MAX: TimeDelta = TimeDelta::minutes(5);
/// Longest one send may take, whatever the channel's own timeouts say.
const SEND_DEADLINE: Duration = Duration::from_secs(30);
/// Sends in flight at once, per replica.
const MAX_IN_FLIGHT: usize = 64;
/// Checked even when nothing is due here, for work other replicas scheduled
/// (default of [`Engine::with_poll`]; on PostgreSQL their NOTIFY usually
/// wakes the engine long before).
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// Pause when work is due but none could be claimed (see [`Engine::run`]).
const STALLED: Duration = Duration::from_millis(50);

/// The channel for each kind; kinds nobody configured go to the console.
pub struct Channels {
    by_kind: HashMap<ChannelKind, Arc<dyn Channel>>,
}

impl Channels {
    pub fn console_only() -> Self {
        Self {
            by_kind: HashMap::new(),
        }
    }

    pub fn with(mut self, channel: Arc<dyn Channel>) -> Self {
        self.by_kind.insert(channel.kind(), channel);
        self
    }

    pub fn get(&self, kind: ChannelKind) -> Arc<dyn Channel> {
        self.by_kind
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| Arc::new(Console::new(kind)))
    }

    /// `sms: twilio-sms, voice: console-voice, …` for the start-up log.
    pub fn describe(&self) -> String {
        [
            ChannelKind::Chat,
            ChannelKind::Sms,
            ChannelKind::Voice,
            ChannelKind::Email,
            ChannelKind::Pushover,
            ChannelKind::Ntfy,
        ]
        .iter()
        .map(|k| format!("{}: {}", k.as_str(), self.get(*k).name()))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

pub struct Engine {
    store: Arc<dyn Store>,
    catalog: Arc<LiveCatalog>,
    channels: Arc<Channels>,
    clock: Arc<dyn Clock>,
    owner: String,
    wake: Arc<Notify>,
    in_flight: Mutex<JoinSet<()>>,
    slots: Arc<Semaphore>,
    /// SMS and calls per destination number per hour (carriers block numbers
    /// that call too often); a person's own `max_calls_per_hour` also applies.
    pages_per_number_per_hour: u32,
    /// Outcomes of concurrent sends, committed together.
    outcomes: DeliveryCommit,
    /// Builds the signed ack link each page carries, when configured.
    ack_links: Option<Arc<AckLinks>>,
    /// The silences of the last round, compiled: rebuilt only when the
    /// stored ones change, so each regex is compiled once.
    silences: std::sync::Mutex<(Vec<Silence>, Arc<SilenceSet>)>,
    /// Cancelled when the shutdown grace is nearly over (see
    /// [`Engine::cut_off_sends`]).
    cut_off: CancellationToken,
    /// See [`Engine::with_poll`].
    poll: Duration,
}

/// Signs `{public_url}/ack/{alert}?t=…` links.
pub struct AckLinks {
    pub public_url: String,
    pub signer: crate::ack::token::Signer,
    pub lifetime: TimeDelta,
}

impl AckLinks {
    pub fn url(&self, alert_id: i64, person: &str, now: DateTime<Utc>) -> String {
        let token = self.signer.sign(
            crate::ack::token::Purpose::Acknowledge,
            alert_id,
            person,
            now + self.lifetime,
        );
        format!(
            "{}/ack/{alert_id}?t={}",
            self.public_url.trim_end_matches('/'),
            crate::channel::twilio::percent_encode(&token)
        )
    }
}

impl AckLinks {
    /// The URL an ntfy `http` button POSTs to: a token that only
    /// acknowledges, only this alert, for this person.
    pub fn push_ack_url(&self, alert_id: i64, person: &str, now: DateTime<Utc>) -> String {
        let token = self.signer.sign(
            crate::ack::token::Purpose::PushAck,
            alert_id,
            person,
            now + self.lifetime,
        );
        format!(
            "{}/ntfy/ack/{alert_id}?t={}",
            self.public_url.trim_end_matches('/'),
            crate::channel::twilio::percent_encode(&token)
        )
    }

    /// Pushover's `callback` for one page, with a fresh random secret; the
    /// store keeps only its hash ([`crate::ack::push::secret_hash`]).
    pub fn pushover_callback(&self, notification_id: i64) -> (Secret, String) {
        let secret = crate::ack::push::new_secret();
        let url = format!(
            "{}/pushover/callback/{notification_id}/{}",
            self.public_url.trim_end_matches('/'),
            secret.expose()
        );
        let hash = crate::ack::push::secret_hash(secret.expose());
        (Secret::new(url), hash)
    }
}

/// Default for [`Engine::with_number_cap`].
pub const DEFAULT_PAGES_PER_NUMBER_PER_HOUR: u32 = 20;

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Arc<LiveCatalog>,
        channels: Arc<Channels>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store: store.clone(),
            catalog,
            channels,
            clock,
            owner: format!(
                "rouse-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
            wake: Arc::new(Notify::new()),
            in_flight: Mutex::new(JoinSet::new()),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            pages_per_number_per_hour: DEFAULT_PAGES_PER_NUMBER_PER_HOUR,
            outcomes: DeliveryCommit::start(store).0,
            ack_links: None,
            silences: std::sync::Mutex::new((Vec::new(), Arc::new(SilenceSet::default()))),
            cut_off: CancellationToken::new(),
            poll: DEFAULT_POLL,
        }
    }

    /// How long the engine sleeps at most when nothing woke it.
    pub fn with_poll(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }

    /// Ends the sends still waiting on a provider, at the end of the
    /// shutdown grace: each is recorded as `unknown` (the request left; the
    /// provider may have it) rather than left leased, which would have the
    /// next server send it again once the lease ran out. Sends not started
    /// yet are handed back to be sent by the next server.
    pub fn cut_off_sends(&self) {
        self.cut_off.cancel();
    }

    /// Every page carries a signed link that acknowledges its alert.
    pub fn with_ack_links(mut self, links: AckLinks) -> Self {
        self.ack_links = Some(Arc::new(links));
        self
    }

    /// Caps SMS + voice pages per destination number per hour.
    pub fn with_number_cap(mut self, per_hour: u32) -> Self {
        self.pages_per_number_per_hour = per_hour.max(1);
        self
    }

    /// Notified when new work may be due now (an alert was opened).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Fires every step due at the clock's now; returns how many fired.
    pub async fn fire_due_steps(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let Some(catalog) = self.catalog.current() else {
            // No valid configuration yet: nothing can be resolved; the rows wait.
            return Ok(0);
        };
        let claims = timed(
            "claim_escalations",
            self.store
                .claim_escalations(now, &self.owner, LEASE, CLAIM_BATCH),
        )
        .await?;
        if claims.is_empty() {
            return Ok(0);
        }
        // Every claimed alert in one read, not one query per alert.
        let alerts = self.alerts_of(claims.iter().map(|c| c.alert_id)).await?;
        // Silences in force, and those that ended since the earliest step
        // was due (to say so when a silenced alert starts paging).
        let earliest = claims.iter().map(|c| c.due_at).min().unwrap_or(now);
        let stored = self
            .store
            .silences(earliest.min(now) - TimeDelta::seconds(1))
            .await?;
        let silences = self.compiled(stored);
        let mut records = Vec::with_capacity(claims.len());
        for claim in claims {
            let record = self.plan_step(
                &claim,
                alerts.get(&claim.alert_id),
                &catalog,
                silences.as_ref(),
                now,
            );
            records.push((claim, record));
        }
        // All steps of a round in one transaction: one commit, not one per alert.
        let written = timed("record_steps", self.store.record_steps(&records)).await?;
        let mut fired = 0;
        for ((claim, _), ok) in records.iter().zip(written) {
            let service = alerts
                .get(&claim.alert_id)
                .map_or("", |a| a.service_id.as_str());
            if ok {
                fired += 1;
                tracing::info!(
                    alert_id = claim.alert_id,
                    service,
                    policy = %claim.policy_id,
                    step = claim.fired + 1,
                    "escalation step fired"
                );
                metrics::counter!("rouse_escalation_steps_total").increment(1);
                let late = (now - claim.due_at).num_milliseconds();
                metrics::histogram!("rouse_escalation_step_lateness_seconds")
                    .record(late as f64 / 1000.0);
            } else {
                tracing::info!(
                    alert_id = claim.alert_id,
                    service,
                    "step not recorded: claim fenced out or alert closed"
                );
            }
        }
        Ok(fired)
    }

    /// `stored` compiled, reusing the last round's set when nothing changed.
    fn compiled(&self, stored: Vec<Silence>) -> Arc<SilenceSet> {
        let mut cache = self
            .silences
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.0 != stored {
            let set = Arc::new(SilenceSet::new(stored.clone()));
            *cache = (stored, set);
        }
        cache.1.clone()
    }

    /// The alerts with these ids, read at once.
    async fn alerts_of(
        &self,
        ids: impl Iterator<Item = i64>,
    ) -> Result<HashMap<i64, Alert>, StoreError> {
        let mut ids: Vec<i64> = ids.collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(self
            .store
            .alerts_by_id(&ids)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect())
    }

    fn plan_step(
        &self,
        claim: &EscalationClaim,
        alert: Option<&Alert>,
        catalog: &crate::catalog::Catalog,
        silences: &SilenceSet,
        now: DateTime<Utc>,
    ) -> StepRecord {
        let Some(alert) = alert.filter(|a| a.status == AlertStatus::Triggered) else {
            return StepRecord {
                at: now,
                deliveries: Vec::new(),
                notes: Vec::new(),
                next: None,
            };
        };
        // A policy renamed or removed since the alert opened: use the service's
        // current one rather than stop paging.
        let policy = catalog.policy(&claim.policy_id).or_else(|| {
            catalog
                .service(&alert.service_id)
                .and_then(|s| catalog.policy(&s.policy_id))
        });
        let Some(policy) = policy else {
            tracing::error!(alert_id = alert.id, service = %alert.service_id, policy = %claim.policy_id, "escalation policy not found; retrying in a minute");
            return StepRecord {
                at: now,
                deliveries: Vec::new(),
                notes: vec![(
                    TimelineKind::StepSkipped,
                    format!(
                        "policy {} is not in the configuration; retrying in 1 minute",
                        claim.policy_id
                    ),
                )],
                next: Some((claim.cursor, now + TimeDelta::minutes(1))),
            };
        };
        if let Some((until, why)) = suppressed(alert, catalog, silences, now) {
            metrics::counter!("rouse_pages_suppressed_total", "by" => why.by()).increment(1);
            return postponed(&why.describe(), until, now);
        }
        let mut step_plan = plan::fire(policy, claim.cursor, catalog, now, alert.urgency);
        if let Some(why) = suppression_just_ended(claim, alert, catalog, silences) {
            step_plan.notes.insert(
                0,
                plan::Note {
                    kind: TimelineKind::StepFired,
                    message: format!("{} over: escalating from the first step", why.by()),
                },
            );
        }
        let fired = claim.fired + 1;
        let deliveries = step_plan
            .deliveries
            .into_iter()
            .map(|d| NewNotification {
                idempotency_key: format!(
                    "alert-{}/fire-{fired}/{}/{}{}",
                    alert.id,
                    d.channel.as_str(),
                    d.recipient.address(),
                    d.rule
                        .map(|i| format!("{}{i}", crate::store::RULE_KEY_MARK))
                        .unwrap_or_default()
                ),
                channel: d.channel,
                target: d.target,
                recipient: d.recipient,
                delay: d.delay,
            })
            .collect();
        StepRecord {
            at: now,
            deliveries,
            notes: step_plan
                .notes
                .into_iter()
                .map(|n| (n.kind, n.message))
                .collect(),
            next: step_plan.next,
        }
    }

    /// Claims due notifications and starts sending them; returns how many.
    pub async fn dispatch_due(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let room = u32::try_from(self.slots.available_permits()).unwrap_or(0);
        if room == 0 {
            return Ok(0);
        }
        let claims = timed(
            "claim_notifications",
            self.store
                .claim_notifications(now, &self.owner, LEASE, room.min(CLAIM_BATCH)),
        )
        .await?;
        let count = claims.len();
        if count == 0 {
            return Ok(0);
        }
        // The alerts the pages are about, read once for the whole round.
        let alerts = Arc::new(self.alerts_of(claims.iter().map(|c| c.alert_id)).await?);
        let texts = Arc::new(
            super::sms::SmsRound::prepare(self.store.as_ref(), now, &claims, &alerts).await?,
        );
        let mut in_flight = self.in_flight.lock().await;
        // Reap finished sends so the set does not grow without bound.
        while in_flight.try_join_next().is_some() {}
        for group in bundle(claims) {
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                break;
            };
            let store = self.store.clone();
            let outcomes = self.outcomes.clone();
            let links = self.ack_links.clone();
            let channel = self.channels.get(group[0].channel);
            let clock = self.clock.clone();
            let caps = self.caps_for(&group[0]);
            let alerts = alerts.clone();
            let texts = texts.clone();
            let cut_off = self.cut_off.clone();
            in_flight.spawn(async move {
                let _permit = permit;
                let sending = Sending {
                    store,
                    outcomes,
                    channel,
                    clock,
                    links,
                    cut_off,
                };
                if let Err(err) = deliver(sending, &alerts, &texts, group, caps).await {
                    tracing::error!(error = %err, "recording a delivery failed; it will be retried after its lease");
                }
            });
        }
        Ok(count)
    }

    /// The hourly caps that apply to one page: per number, and the person's own.
    fn caps_for(&self, claim: &NotificationClaim) -> Vec<Cap> {
        if claim.follow_up.is_some() {
            return Vec::new();
        }
        let catalog = self.catalog.current();
        hold::caps(
            claim.channel,
            &claim.recipient,
            self.pages_per_number_per_hour,
            catalog.as_deref(),
        )
    }

    /// Waits until every send started so far has finished and been recorded.
    pub async fn idle(&self) {
        let mut in_flight = self.in_flight.lock().await;
        while in_flight.join_next().await.is_some() {}
    }

    /// One round: due steps, then due notifications (tests call this on a
    /// virtual clock, followed by [`Engine::idle`]).
    pub async fn tick(&self) -> Result<(usize, usize), StoreError> {
        let fired = self.fire_due_steps().await?;
        let sent = self.dispatch_due().await?;
        Ok((fired, sent))
    }

    /// Runs until `stop`, then lets in-flight sends finish.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        tracing::info!(channels = %self.channels.describe(), "escalation engine started");
        while !stop.is_cancelled() {
            // Ask first (one indexed read) and claim only when something is
            // due: intake wakes the engine after every commit that opened an
            // alert, and claiming takes the writer that intake commits on.
            let now = self.clock.now();
            let wait = match self.store.next_due().await {
                Ok(None) => self.poll,
                Ok(Some(due)) if due > now => (due - now)
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(self.poll),
                due => match self.tick().await {
                    // More may have fallen due meanwhile: ask again at once.
                    Ok((fired, sent)) if fired + sent > 0 => continue,
                    // Due, yet nothing to claim: no valid configuration, or
                    // every send slot busy. Do not spin on it.
                    Ok(_) if due.is_ok() => STALLED,
                    Ok(_) => self.poll,
                    Err(err) => {
                        // The database is down or failing: keep trying, never exit.
                        tracing::error!(error = %err, "escalation round failed; retrying");
                        self.poll.min(DEFAULT_POLL)
                    }
                },
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.idle().await;
        tracing::info!("escalation engine stopped");
    }
}

/// Groups the SMS pages of one round that go to the same number, so a person
/// hit by several alerts at once gets one message listing them; everything
/// else is sent on its own. Groups are never empty.
fn bundle(claims: Vec<NotificationClaim>) -> Vec<Vec<NotificationClaim>> {
    let mut groups: Vec<Vec<NotificationClaim>> = Vec::new();
    let mut sms_group: HashMap<String, usize> = HashMap::new();
    for claim in claims {
        if claim.channel == ChannelKind::Sms && claim.follow_up.is_none() {
            let address = claim.recipient.address().to_owned();
            if let Some(&i) = sms_group.get(&address) {
                if let Some(group) = groups.get_mut(i) {
                    group.push(claim);
                    continue;
                }
            }
            sms_group.insert(address, groups.len());
        }
        groups.push(vec![claim]);
    }
    groups
}

/// When the send may go out under `caps`, or `None` if it may go now.
async fn held_until(
    store: &dyn Store,
    address: &str,
    caps: &[Cap],
    now: DateTime<Utc>,
) -> Result<Option<(DateTime<Utc>, Cap)>, StoreError> {
    let mut latest: Option<(DateTime<Utc>, Cap)> = None;
    for cap in caps {
        let sent = store
            .sent_since(address, cap.channels, now - TimeDelta::hours(1))
            .await?;
        if let Some(free_at) = hold::cap_free_at(&sent, cap) {
            if latest.is_none_or(|(t, _)| free_at > t) {
                latest = Some((free_at, *cap));
            }
        }
    }
    Ok(latest)
}

/// What one send task needs besides its claims.
struct Sending {
    store: Arc<dyn Store>,
    outcomes: DeliveryCommit,
    channel: Arc<dyn Channel>,
    clock: Arc<dyn Clock>,
    links: Option<Arc<AckLinks>>,
    cut_off: CancellationToken,
}

/// Sends one message for `claims` (one page, or several SMS pages for the
/// same number bundled) and records the outcome of each. Never panics: every
/// failure of the channel is an [`Outcome`].
async fn deliver(
    sending: Sending,
    alerts: &HashMap<i64, Alert>,
    texts: &super::sms::SmsRound,
    claims: Vec<NotificationClaim>,
    caps: Vec<Cap>,
) -> Result<(), CommitError> {
    let Sending {
        store,
        outcomes,
        channel,
        clock,
        links,
        cut_off,
    } = sending;
    let via = channel.name().to_owned();
    let mut ready: Vec<(NotificationClaim, Notification)> = Vec::with_capacity(claims.len());
    let mut records: Vec<(NotificationClaim, DeliveryRecord)> = Vec::new();
    for claim in claims {
        let alert = alerts.get(&claim.alert_id);
        let mut n = match prepare(alert, clock.as_ref(), &via, &claim, links.as_deref()) {
            Ok(n) => n,
            Err(canceled) => {
                records.push((claim, canceled));
                continue;
            }
        };
        if let Some(alert) = alert {
            let checked = super::sms::preflight(
                store.as_ref(),
                texts,
                clock.now(),
                &via,
                &claim,
                alert,
                &mut n,
            )
            .await
            // The lease runs out and another round retries it.
            .map_err(|e| CommitError::Store(e.to_string()))?;
            if let Err(held) = checked {
                records.push((claim, held));
                continue;
            }
            if let Some(links) = links.as_deref() {
                callback_secret(store.as_ref(), links, clock.now(), &claim, alert, &mut n)
                    .await
                    .map_err(|e| CommitError::Store(e.to_string()))?;
            }
        }
        ready.push((claim, n));
    }
    let Some((first, first_notification)) = ready.first() else {
        outcomes.submit(records).await?;
        return Ok(());
    };
    let who = first.recipient.label().to_owned();
    let address = first.recipient.address().to_owned();
    let kind = first.channel;
    let held = held_until(store.as_ref(), &address, &caps, clock.now())
        .await
        .map_err(|e| CommitError::Store(e.to_string()))?;
    if let Some((free_at, cap)) = held {
        metrics::counter!("rouse_notifications_held_total", "channel" => kind.as_str())
            .increment(1);
        for (claim, _) in &ready {
            let record = DeliveryRecord {
                at: clock.now(),
                status: DeliveryStatus::Retry,
                provider_id: None,
                error: None,
                retry_at: Some(free_at),
                fall_through: false,
                count_attempt: false,
                message: format!(
                    "{via} to {who}: held back, {} {} in the last hour is the cap; sending at {}",
                    cap.per_hour,
                    cap.what,
                    free_at.format("%H:%M:%S UTC")
                ),
            };
            records.push((claim.clone(), record));
        }
        outcomes.submit(records).await?;
        return Ok(());
    }
    if cut_off.is_cancelled() {
        // Shutting down, and nothing has left yet: the next server sends it.
        for (claim, _) in &ready {
            records.push((claim.clone(), handed_back(clock.now(), &via, &who)));
        }
        outcomes.submit(records).await?;
        return Ok(());
    }
    // The send runs as a task of its own so that a channel that panics (a
    // bug meeting odd input) fails this one send, not the process and not
    // the rest of the round: the panic becomes an attempt that failed, is
    // retried, and falls through to the next step like any other failure.
    let bundle: Vec<Notification> = ready.iter().map(|(_, n)| n.clone()).collect();
    let follow_up = (ready.len() == 1)
        .then(|| first.follow_up.clone())
        .flatten();
    let sender = channel.clone();
    let sending = async move {
        match (&bundle[..], follow_up) {
            ([one], Some(previous)) => sender.follow_up(one, previous.as_deref()).await,
            ([one], None) => sender.send(one).await,
            (all, _) => sender.send_bundle(all).await,
        }
    };
    // Whatever the channel logs while sending is about this alert.
    let sending = tracing::Instrument::instrument(
        sending,
        tracing::info_span!(
            "page",
            alert_id = first.alert_id,
            service = %first_notification.service_id,
            channel = %via
        ),
    );
    let send = tokio::spawn(sending);
    let started = std::time::Instant::now();
    let abort = send.abort_handle();
    let outcome = tokio::select! {
        sent = tokio::time::timeout(SEND_DEADLINE, send) => match sent {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(joined)) => {
                tracing::error!(channel = %via, panicked = joined.is_panic(), "a channel's send failed abnormally; counted as a failed attempt");
                Outcome::Retry {
                    after: None,
                    reason: "the channel failed internally (panic)".to_owned(),
                }
            }
            Err(_) => {
                abort.abort();
                Outcome::Unknown {
                    reason: format!("no answer within {}s", SEND_DEADLINE.as_secs()),
                }
            }
        },
        () = cut_off.cancelled() => {
            abort.abort();
            Outcome::Unknown {
                reason: "cut off by shutdown while waiting for the provider".to_owned(),
            }
        }
    };
    // One provider answer, whatever it covered (a bundle is one message).
    metrics::histogram!("rouse_notification_delivery_duration_seconds", "channel" => kind.as_str())
        .record(started.elapsed().as_secs_f64());
    // From here until the outcome is committed, a replica that dies leaves a
    // page the provider has but the database does not know was sent: the
    // lease runs out and it is sent again. The README's delivery guarantee
    // names this window; the histogram measures it.
    let answered = std::time::Instant::now();
    metrics::counter!("rouse_notifications_total", "channel" => kind.as_str(), "outcome" => outcome.name())
        .increment(ready.len() as u64);
    let bundled = (ready.len() > 1).then(|| {
        let ids: Vec<String> = ready
            .iter()
            .map(|(c, _)| format!("#{}", c.alert_id))
            .collect();
        format!(" (one message for {})", ids.join(", "))
    });
    for (claim, n) in &ready {
        let mut record = outcome_record(&outcome, claim, &via, &who, clock.now());
        if let Some(note) = &bundled {
            record.message.push_str(note);
        }
        if record.status != DeliveryStatus::Delivered {
            tracing::warn!(alert_id = claim.alert_id, service = %n.service_id, channel = %via, status = record.status.as_str(), "{}", record.message);
        }
        records.push((claim.clone(), record));
    }
    outcomes.submit(records).await?;
    if matches!(outcome, Outcome::Delivered { .. }) {
        metrics::histogram!("rouse_delivery_unrecorded_seconds")
            .record(answered.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Gives an emergency Pushover page its callback URL, with a fresh secret
/// whose hash is stored before the page leaves: a callback can only be
/// checked against what was written first.
async fn callback_secret(
    store: &dyn Store,
    links: &AckLinks,
    now: DateTime<Utc>,
    claim: &NotificationClaim,
    alert: &Alert,
    n: &mut Notification,
) -> Result<(), StoreError> {
    let emergency = alert.urgency == crate::alert::Urgency::High;
    if claim.channel != ChannelKind::Pushover || claim.follow_up.is_some() || !emergency {
        return Ok(());
    }
    let (url, hash) = links.pushover_callback(claim.id);
    store
        .set_push_secret(claim.id, claim.alert_id, &hash, now)
        .await?;
    n.action_url = Some(url);
    Ok(())
}

/// Builds the notification for a claim, or records why it is not sent (the
/// alert was closed meanwhile; follow-ups exist precisely because it was).
/// `alert` was read after the claim, so an acknowledgement that committed
/// before the claim is seen here.
fn prepare(
    alert: Option<&Alert>,
    clock: &dyn Clock,
    via: &str,
    claim: &NotificationClaim,
    links: Option<&AckLinks>,
) -> Result<Notification, DeliveryRecord> {
    let who = claim.recipient.label().to_owned();
    let is_follow_up = claim.follow_up.is_some();
    let Some(alert) = alert.filter(|a| is_follow_up || a.status == AlertStatus::Triggered) else {
        let record = DeliveryRecord {
            at: clock.now(),
            status: DeliveryStatus::Canceled,
            provider_id: None,
            error: None,
            retry_at: None,
            fall_through: false,
            count_attempt: true,
            message: format!("{via} to {who}: not sent, the alert is no longer open"),
        };
        return Err(record);
    };
    // Follow-ups name who acted ("ACKNOWLEDGED by alice"); pages name who is paged.
    let paged = match alert.status {
        AlertStatus::Triggered => vec![who],
        AlertStatus::Acknowledged => alert.acknowledged_by.iter().cloned().collect(),
        AlertStatus::Resolved => alert.resolved_by.iter().cloned().collect(),
    };
    Ok(Notification {
        idempotency_key: format!("{}/attempt-{}", claim.idempotency_key, claim.attempt),
        alert_id: alert.id,
        service_id: alert.service_id.clone(),
        summary: alert.summary.clone(),
        severity: alert.severity,
        urgency: alert.urgency,
        status: alert.status,
        links: alert.links.clone(),
        ack_url: (alert.status == AlertStatus::Triggered)
            .then(|| links.map(|l| l.url(alert.id, person_id(&claim.recipient), clock.now())))
            .flatten(),
        reply_code: None,
        action_url: (alert.status == AlertStatus::Triggered && claim.channel == ChannelKind::Ntfy)
            .then(|| {
                links.map(|l| {
                    Secret::new(l.push_ack_url(alert.id, person_id(&claim.recipient), clock.now()))
                })
            })
            .flatten(),
        paged,
        recipient: claim.recipient.clone(),
        attempt: claim.attempt,
        created_at: alert.created_at,
    })
}

/// The person a page is for, bound into its ack link; empty for a room.
pub fn person_id(recipient: &Recipient) -> &str {
    match recipient {
        Recipient::Person { id, .. } => id,
        Recipient::Room { .. } => "",
    }
}

/// A claim given back unsent at shutdown: due at once, no attempt counted.
fn handed_back(now: DateTime<Utc>, via: &str, who: &str) -> DeliveryRecord {
    DeliveryRecord {
        at: now,
        status: DeliveryStatus::Retry,
        provider_id: None,
        error: None,
        retry_at: Some(now),
        fall_through: false,
        count_attempt: false,
        message: format!("{via} to {who}: not sent, shutting down; the next server sends it"),
    }
}

/// What one claim's record says about a send's outcome.
fn outcome_record(
    outcome: &Outcome,
    claim: &NotificationClaim,
    via: &str,
    who: &str,
    now: DateTime<Utc>,
) -> DeliveryRecord {
    let attempt = claim.attempt;
    let is_follow_up = claim.follow_up.is_some();
    match outcome.clone() {
        Outcome::Delivered { provider_id } => DeliveryRecord {
            at: now,
            status: DeliveryStatus::Delivered,
            message: format!(
                "{via} to {who}: delivered{}",
                provider_id
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            ),
            provider_id,
            error: None,
            retry_at: None,
            fall_through: false,
            count_attempt: true,
        },
        Outcome::Retry { after, reason } if attempt < MAX_ATTEMPTS => {
            let retry_at = now + backoff(attempt, after, &claim.idempotency_key);
            DeliveryRecord {
                at: now,
                status: DeliveryStatus::Retry,
                message: format!(
                    "{via} to {who}: attempt {attempt} failed ({reason}); retrying at {}",
                    retry_at.format("%H:%M:%S UTC")
                ),
                provider_id: None,
                error: Some(reason),
                retry_at: Some(retry_at),
                fall_through: false,
                count_attempt: true,
            }
        }
        Outcome::Retry { reason, .. } | Outcome::Failed { reason } => DeliveryRecord {
            at: now,
            status: DeliveryStatus::Failed,
            message: if is_follow_up {
                format!("{via} to {who}: follow-up failed after attempt {attempt} ({reason})")
            } else {
                format!(
                    "{via} to {who}: failed after attempt {attempt} ({reason}); escalating to the next step now"
                )
            },
            provider_id: None,
            error: Some(reason),
            retry_at: None,
            fall_through: !is_follow_up,
            count_attempt: true,
        },
        Outcome::Unknown { reason } => DeliveryRecord {
            at: now,
            status: DeliveryStatus::Unknown,
            message: format!(
                "{via} to {who}: outcome unknown ({reason}); not resent, the escalation carries on"
            ),
            provider_id: None,
            error: Some(reason),
            retry_at: None,
            fall_through: false,
            count_attempt: true,
        },
    }
}

/// Exponential backoff with jitter, never sooner than the provider's
/// `Retry-After`. The jitter is derived from the key so it is reproducible.
pub fn backoff(attempt: u32, retry_after: Option<Duration>, key: &str) -> TimeDelta {
    let exp = BACKOFF_BASE * 2i32.saturating_pow(attempt.saturating_sub(1).min(10));
    let capped = exp.min(BACKOFF_MAX);
    let hash = key.bytes().fold(attempt as u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    // ±20 %.
    let jitter_permille = (hash % 401) as i64 - 200;
    let jittered = capped + capped * i32::try_from(jitter_permille).unwrap_or(0) / 1000;
    let floor = retry_after
        .and_then(|d| TimeDelta::from_std(d).ok())
        .unwrap_or_default();
    jittered.max(floor).max(TimeDelta::seconds(1))
}

/// The hold on `alert` at `t`, if any (see [`hold_at`]).
fn suppressed<'a>(
    alert: &Alert,
    catalog: &'a crate::catalog::Catalog,
    silences: &'a SilenceSet,
    t: DateTime<Utc>,
) -> Option<(DateTime<Utc>, Hold<'a>)> {
    let subject = Subject {
        service: &alert.service_id,
        severity: alert.severity.as_str(),
        labels: &alert.labels,
    };
    hold_at(catalog, silences, &subject, t)
}

/// A step due while nobody may be paged: the timeline says why, and the
/// escalation waits for the end, then starts from its first step.
fn postponed(why: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> StepRecord {
    StepRecord {
        at: now,
        deliveries: Vec::new(),
        notes: vec![(
            TimelineKind::StepSkipped,
            format!(
                "{why} — nobody is paged until {}; escalation then starts from its first step",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )],
        next: Some((plan::Cursor::START, until)),
    }
}

/// The first step again, due the instant a suppression of this alert ended:
/// the step [`postponed`] held back.
fn suppression_just_ended<'a>(
    claim: &EscalationClaim,
    alert: &Alert,
    catalog: &'a crate::catalog::Catalog,
    silences: &'a SilenceSet,
) -> Option<Hold<'a>> {
    if claim.cursor != plan::Cursor::START || claim.fired == 0 {
        return None;
    }
    suppressed(
        alert,
        catalog,
        silences,
        claim.due_at - TimeDelta::milliseconds(1),
    )
    .map(|(_, why)| why)
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("owner", &self.owner)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let b1 = backoff(1, None, "k");
        let b2 = backoff(2, None, "k");
        assert!(
            b1 >= TimeDelta::seconds(8) && b1 <= TimeDelta::seconds(12),
            "{b1}"
        );
        assert!(
            b2 >= TimeDelta::seconds(16) && b2 <= TimeDelta::seconds(24),
            "{b2}"
        );
        assert!(backoff(30, None, "k") <= TimeDelta::minutes(6));
        assert_eq!(
            backoff(1, Some(Duration::from_secs(120)), "k"),
            TimeDelta::seconds(120)
        );
    }
}
