//! What Rouse remembers about SMS conversations: the short reply code each
//! phone number uses for each alert (`4a` acknowledges the alert that number
//! knows as 4), and numbers that replied STOP.
//!
//! Codes are per number, not global, so they stay one or two digits however
//! many alerts the whole installation has open, and a number never sees two
//! open alerts with the same code. A code is reused once its alert resolves.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::alert::TimelineKind;

#[async_trait]
pub trait SmsBook: Send + Sync {
    /// The code `alert_id` has at `address`: the one it was given before, else
    /// the smallest not held by another open alert paged to that number.
    async fn sms_code(
        &self,
        address: &str,
        alert_id: i64,
        at: DateTime<Utc>,
    ) -> Result<u32, StoreError>;

    /// The alert `code` stands for at `address`, if any.
    async fn sms_code_alert(&self, address: &str, code: u32) -> Result<Option<i64>, StoreError>;

    /// Records a STOP (`opted_out`) or START; returns whether anything changed.
    async fn set_sms_opt_out(
        &self,
        address: &str,
        opted_out: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// When `address` replied STOP, if it has not replied START since.
    async fn sms_opted_out(&self, address: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

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

/// The smallest positive code not in `taken`.
pub fn lowest_free(taken: &[u32]) -> u32 {
    let mut code = 1;
    let mut sorted = taken.to_vec();
    sorted.sort_unstable();
    for t in sorted {
        if t == code {
            code += 1;
        } else if t > code {
            break;
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::lowest_free;

    #[test]
    fn the_lowest_free_code_fills_gaps_first() {
        assert_eq!(lowest_free(&[]), 1);
        assert_eq!(lowest_free(&[1, 2, 3]), 4);
        assert_eq!(lowest_free(&[3, 1]), 2);
        assert_eq!(lowest_free(&[2, 2, 5]), 1);
        assert_eq!(lowest_free(&[1, 1, 2]), 3);
    }
}
