//! The alert lifecycle as one pure function: given an incoming event and what
//! the store already holds for its key, decide what happens.
//!
//! Keeping this free of I/O means both stores apply exactly the same rules and
//! the rules are tested without a database.

use super::event::Action;
use super::model::AlertStatus;

/// The open alert (if any) that an event's dedup key points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenAlert {
    pub id: i64,
    pub status: AlertStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A new alert is opened and escalation starts.
    Open,
    /// The same problem again: count it, refresh details, page nobody.
    Refresh {
        id: i64,
    },
    Acknowledge {
        id: i64,
    },
    /// A second acknowledgement is recorded in the timeline but changes nothing.
    AlreadyAcknowledged {
        id: i64,
    },
    Resolve {
        id: i64,
    },
    /// Acknowledge or resolve for a key with no open alert: accepted and ignored,
    /// as PagerDuty does, because monitoring systems resend resolves freely.
    NothingOpen,
    /// The service is over its storm threshold: count the event into the storm alert.
    FoldIntoStorm,
}

impl Decision {
    /// The stable name API responses and metrics use for this outcome.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Open => "opened",
            Decision::Refresh { .. } => "deduplicated",
            Decision::Acknowledge { .. } => "acknowledged",
            Decision::AlreadyAcknowledged { .. } => "already_acknowledged",
            Decision::Resolve { .. } => "resolved",
            Decision::NothingOpen => "no_open_alert",
            Decision::FoldIntoStorm => "storm_folded",
        }
    }
}

/// `open_alerts` is the service's current number of open alerts, used for storm control.
pub fn decide(
    action: Action,
    open: Option<OpenAlert>,
    open_alerts: u64,
    storm_threshold: u64,
) -> Decision {
    match (action, open) {
        (Action::Trigger, Some(alert)) => Decision::Refresh { id: alert.id },
        (Action::Trigger, None) if open_alerts >= storm_threshold => Decision::FoldIntoStorm,
        (Action::Trigger, None) => Decision::Open,
        (Action::Acknowledge, Some(alert)) if alert.status == AlertStatus::Acknowledged => {
            Decision::AlreadyAcknowledged { id: alert.id }
        }
        (Action::Acknowledge, Some(alert)) => Decision::Acknowledge { id: alert.id },
        (Action::Resolve, Some(alert)) => Decision::Resolve { id: alert.id },
        (Action::Acknowledge | Action::Resolve, None) => Decision::NothingOpen,
    }
}

/// The dedup key of the one alert per service that collects a storm.
pub const STORM_DEDUP_KEY: &str = "rouse:storm";

#[cfg(test)]
mod tests {
    use super::*;

    const TRIGGERED: Option<OpenAlert> = Some(OpenAlert {
        id: 7,
        status: AlertStatus::Triggered,
    });
    const ACKED: Option<OpenAlert> = Some(OpenAlert {
        id: 7,
        status: AlertStatus::Acknowledged,
    });

    #[test]
    fn a_trigger_for_an_open_key_refreshes_and_pages_nobody() {
        assert_eq!(
            decide(Action::Trigger, TRIGGERED, 1, 10),
            Decision::Refresh { id: 7 }
        );
        assert_eq!(
            decide(Action::Trigger, ACKED, 1, 10),
            Decision::Refresh { id: 7 }
        );
    }

    #[test]
    fn a_trigger_for_a_new_key_opens_until_the_storm_threshold() {
        assert_eq!(decide(Action::Trigger, None, 9, 10), Decision::Open);
        assert_eq!(
            decide(Action::Trigger, None, 10, 10),
            Decision::FoldIntoStorm
        );
        // Duplicates of alerts that are already open are never folded.
        assert_eq!(
            decide(Action::Trigger, TRIGGERED, 50, 10),
            Decision::Refresh { id: 7 }
        );
    }

    #[test]
    fn acknowledge_and_resolve_act_on_the_open_alert_only() {
        assert_eq!(
            decide(Action::Acknowledge, TRIGGERED, 1, 10),
            Decision::Acknowledge { id: 7 }
        );
        assert_eq!(
            decide(Action::Acknowledge, ACKED, 1, 10),
            Decision::AlreadyAcknowledged { id: 7 }
        );
        assert_eq!(
            decide(Action::Resolve, ACKED, 1, 10),
            Decision::Resolve { id: 7 }
        );
        assert_eq!(decide(Action::Resolve, None, 0, 10), Decision::NothingOpen);
        assert_eq!(
            decide(Action::Acknowledge, None, 0, 10),
            Decision::NothingOpen
        );
    }
}
