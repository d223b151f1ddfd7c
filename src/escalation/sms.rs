//! What the engine does for a text before Twilio sees it:
//! - a number that replied STOP gets nothing; the page falls through to the
//!   next channel at once and the timeline says why (carriers would reject
//!   the text anyway, Twilio with error 21610);
//! - a page carries the number's reply code (`Reply 4a to ack`);
//! - "acknowledged by alice" is not texted to alice herself, and status
//!   texts to one number are limited (an alert storm resolving at once must
//!   not send two hundred texts).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::alert::{Alert, AlertStatus};
use crate::channel::{ChannelKind, Notification, Recipient};
use crate::store::{DeliveryRecord, DeliveryStatus, NotificationClaim, Store, StoreError};

/// At most this many status texts to one number per [`FOLLOW_UP_WINDOW`];
/// the rest are in the alerts' timelines and the chat rooms.
pub const MAX_FOLLOW_UPS: u32 = 3;
pub const FOLLOW_UP_WINDOW: TimeDelta = TimeDelta::minutes(15);

/// What one engine round knows about its texts, read and written once for
/// the whole round (a store round trip per text would cap paging at the
/// database's commit rate).
#[derive(Debug, Default)]
pub(super) struct SmsRound {
    opted_out: HashMap<String, DateTime<Utc>>,
    codes: HashMap<(String, i64), Option<u32>>,
}

impl SmsRound {
    /// Opt-outs of every number texted this round, and reply codes for the
    /// pages among them.
    pub(super) async fn prepare(
        store: &dyn Store,
        now: DateTime<Utc>,
        claims: &[NotificationClaim],
        alerts: &HashMap<i64, Alert>,
    ) -> Result<SmsRound, StoreError> {
        let texts: Vec<&NotificationClaim> = claims
            .iter()
            .filter(|c| c.channel == ChannelKind::Sms)
            .collect();
        if texts.is_empty() {
            return Ok(SmsRound::default());
        }
        let mut addresses: Vec<String> = texts
            .iter()
            .map(|c| c.recipient.address().to_owned())
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let opted_out = store.sms_opted_out(&addresses).await?;
        let pairs: Vec<(String, i64)> = texts
            .iter()
            .filter(|c| c.follow_up.is_none())
            .filter(|c| !opted_out.contains_key(c.recipient.address()))
            .filter(|c| {
                alerts
                    .get(&c.alert_id)
                    .is_some_and(|a| a.status == AlertStatus::Triggered)
            })
            .map(|c| (c.recipient.address().to_owned(), c.alert_id))
            .collect();
        let codes = store.sms_codes(&pairs, now).await?;
        Ok(SmsRound {
            opted_out,
            codes: pairs.into_iter().zip(codes).collect(),
        })
    }
}

/// `Ok(())` to send `n` (now carrying its reply code), or the record that
/// says why not.
pub(super) async fn preflight(
    store: &dyn Store,
    round: &SmsRound,
    now: DateTime<Utc>,
    via: &str,
    claim: &NotificationClaim,
    alert: &Alert,
    n: &mut Notification,
) -> Result<Result<(), DeliveryRecord>, StoreError> {
    if claim.channel != ChannelKind::Sms {
        return Ok(Ok(()));
    }
    let who = claim.recipient.label();
    let address = claim.recipient.address();
    let not_sent = |status, fall_through, message: String| DeliveryRecord {
        at: now,
        status,
        provider_id: None,
        error: None,
        retry_at: None,
        fall_through,
        count_attempt: true,
        message,
    };
    if let Some(since) = round.opted_out.get(address) {
        let is_page = claim.follow_up.is_none();
        let message = format!(
            "{via} to {who}: not sent, {address} replied STOP at {}; texts to it are off until it replies START{}",
            since.format("%Y-%m-%d %H:%M UTC"),
            if is_page { "; escalating" } else { "" }
        );
        let status = if is_page {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Canceled
        };
        return Ok(Err(not_sent(status, is_page, message)));
    }
    if claim.follow_up.is_some() {
        let actor = match alert.status {
            AlertStatus::Acknowledged => alert.acknowledged_by.as_deref(),
            AlertStatus::Resolved => alert.resolved_by.as_deref(),
            AlertStatus::Triggered => None,
        };
        if let (Some(actor), Recipient::Person { id, .. }) = (actor, &claim.recipient) {
            if actor == id {
                let message = format!("{via} to {who}: not sent, {who} did it themselves");
                return Ok(Err(not_sent(DeliveryStatus::Canceled, false, message)));
            }
        }
        if !store
            .take_status_text_slot(address, now, FOLLOW_UP_WINDOW, MAX_FOLLOW_UPS)
            .await?
        {
            let message = format!(
                "{via} to {who}: status text not sent, {MAX_FOLLOW_UPS} already went to this number in the last {} minutes",
                FOLLOW_UP_WINDOW.num_minutes()
            );
            return Ok(Err(not_sent(DeliveryStatus::Canceled, false, message)));
        }
        return Ok(Ok(()));
    }
    n.reply_code = round
        .codes
        .get(&(address.to_owned(), alert.id))
        .copied()
        .flatten();
    Ok(Ok(()))
}
