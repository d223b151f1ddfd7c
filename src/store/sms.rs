//! What Rouse remembers about SMS conversations: the short reply code each
//! phone number uses for each alert (`4a` acknowledges the alert that number
//! knows as 4), and numbers that replied STOP.
//!
//! Codes are per number, not global, so they stay one or two digits however
//! many alerts the whole installation has open, and a number never sees two
//! open alerts with the same code. A code is reused once its alert resolves.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{NewTimelineEntry, StoreError};
use crate::alert::TimelineKind;

#[async_trait]
pub trait SmsBook: Send + Sync {
    /// The codes `(address, alert)` pairs have: the one each was given
    /// before, else the smallest not held by another open alert paged to
    /// that number; `None` when all [`MAX_CODE`] are held. One transaction
    /// for the whole list (an engine round).
    async fn sms_codes(
        &self,
        pairs: &[(String, i64)],
        at: DateTime<Utc>,
    ) -> Result<Vec<Option<u32>>, StoreError>;

    /// The alert `code` stands for at `address`, if any.
    async fn sms_code_alert(&self, address: &str, code: u32) -> Result<Option<i64>, StoreError>;

    /// Records a STOP (`opted_out`) or START; returns whether anything changed.
    async fn set_sms_opt_out(
        &self,
        address: &str,
        opted_out: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Of `addresses`, those that replied STOP (and not START since), with when.
    async fn sms_opted_out(
        &self,
        addresses: &[String],
    ) -> Result<HashMap<String, DateTime<Utc>>, StoreError>;

    /// Takes one of `max` slots for a status text ("ACKNOWLEDGED by alice")
    /// to `address` in the `window` before `at`; `false` when they are used
    /// up. Atomic, so concurrent sends (and replicas) cannot all slip under
    /// the limit at once.
    async fn take_status_text_slot(
        &self,
        address: &str,
        at: DateTime<Utc>,
        window: chrono::TimeDelta,
        max: u32,
    ) -> Result<bool, StoreError>;

    /// Appends the same entry to several alerts' timelines.
    async fn note(
        &self,
        alert_ids: &[i64],
        at: DateTime<Utc>,
        kind: TimelineKind,
        actor: &str,
        message: &str,
    ) -> Result<(), StoreError>;
}

/// The entries [`SmsBook::note`] appends: one per alert.
pub(crate) fn note_entries(
    alert_ids: &[i64],
    at: DateTime<Utc>,
    kind: TimelineKind,
    actor: &str,
    message: &str,
) -> Vec<NewTimelineEntry> {
    alert_ids
        .iter()
        .map(|&alert_id| NewTimelineEntry {
            alert_id,
            at,
            kind,
            actor: actor.to_owned(),
            message: message.to_owned(),
            data: None,
        })
        .collect()
}

/// Codes stay one or two digits: with 99 alerts open at one number, the next
/// gets no code (its text says "Reply A to ack", which acts on the newest),
/// and a number's stored codes never grow past 99 rows.
pub const MAX_CODE: u32 = 99;

/// What one number's codes look like before assignment: its code rows as
/// `(code, alert, alert still open)`.
pub type CodeRows = Vec<(u32, i64, bool)>;

/// A code row to write: `(address, code, alert)`.
pub type CodeUpsert = (String, u32, i64);

/// Assigns codes to `pairs` given each number's existing rows; returns the
/// codes in the order of `pairs` and the rows to upsert. Pure, so both
/// stores share it.
pub fn assign_codes(
    pairs: &[(String, i64)],
    existing: &HashMap<String, CodeRows>,
) -> (Vec<Option<u32>>, Vec<CodeUpsert>) {
    let mut taken: HashMap<&str, Vec<u32>> = HashMap::new();
    let mut given: HashMap<(&str, i64), u32> = HashMap::new();
    for (address, rows) in existing {
        for &(code, alert, open) in rows {
            given.insert((address.as_str(), alert), code);
            if open {
                taken.entry(address.as_str()).or_default().push(code);
            }
        }
    }
    let mut codes = Vec::with_capacity(pairs.len());
    let mut upserts = Vec::new();
    for (address, alert) in pairs {
        if let Some(&code) = given.get(&(address.as_str(), *alert)) {
            codes.push(Some(code));
            continue;
        }
        let used = taken.entry(address.as_str()).or_default();
        let code = lowest_free(used);
        if code > MAX_CODE {
            codes.push(None);
            continue;
        }
        used.push(code);
        given.insert((address.as_str(), *alert), code);
        upserts.push((address.clone(), code, *alert));
        codes.push(Some(code));
    }
    (codes, upserts)
}

/// The smallest positive code not in `taken`.
pub fn lowest_free(taken: &[u32]) -> u32 {
    // At most MAX_CODE codes are ever held, so a linear scan is the cheap way.
    (1..).find(|c| !taken.contains(c)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::{assign_codes, lowest_free};
    use std::collections::HashMap;

    #[test]
    fn codes_are_kept_reused_once_resolved_and_unique_per_number() {
        let existing = HashMap::from([(
            "+1".to_owned(),
            vec![(1, 10, true), (2, 11, false), (3, 12, true)],
        )]);
        let pairs = vec![
            ("+1".to_owned(), 12), // keeps its code
            ("+1".to_owned(), 20), // takes 2, freed by resolved #11
            ("+1".to_owned(), 21), // then 4
            ("+2".to_owned(), 20), // another number starts at 1
            ("+1".to_owned(), 20), // asked twice: the same code
        ];
        let (codes, upserts) = assign_codes(&pairs, &existing);
        assert_eq!(codes, vec![Some(3), Some(2), Some(4), Some(1), Some(2)]);
        assert_eq!(
            upserts,
            vec![
                ("+1".to_owned(), 2, 20),
                ("+1".to_owned(), 4, 21),
                ("+2".to_owned(), 1, 20)
            ]
        );
    }

    #[test]
    fn a_number_with_every_code_held_gets_none() {
        let full: Vec<(u32, i64, bool)> = (1..=99).map(|c| (c, i64::from(c), true)).collect();
        let existing = HashMap::from([("+1".to_owned(), full)]);
        let (codes, upserts) = assign_codes(&[("+1".to_owned(), 500)], &existing);
        assert_eq!(codes, vec![None]);
        assert!(upserts.is_empty());
    }

    #[test]
    fn the_lowest_free_code_fills_gaps_first() {
        assert_eq!(lowest_free(&[]), 1);
        assert_eq!(lowest_free(&[1, 2, 3]), 4);
        assert_eq!(lowest_free(&[3, 1]), 2);
        assert_eq!(lowest_free(&[2, 2, 5]), 1);
        assert_eq!(lowest_free(&[1, 1, 2]), 3);
    }
}
