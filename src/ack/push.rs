//! Acknowledgements that come back from Pushover: the callback Pushover POSTs
//! when someone acknowledges an emergency page in the app, and the receipt
//! poll that finds the same thing when no callback arrives (a `public_url`
//! Pushover cannot reach, a callback lost on the way).
//!
//! Each emergency page's callback URL carries its own random secret; the
//! store keeps only the SHA-256 of it, and a callback counts only if both its
//! secret and its receipt match that page's, compared in constant time. The
//! first report of an acknowledgement (callback or poll) acts on the alert;
//! every later one changes nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::alert::{Action, Decision};
use crate::catalog::live::LiveCatalog;
use crate::channel::pushover::PushoverClient;
use crate::channel::Recipient;
use crate::clock::Clock;
use crate::config::Secret;
use crate::store::{Act, PushPage, Store, StoreError, Via};

/// A fresh callback secret: 244 random bits (two v4 UUIDs), URL-safe.
pub fn new_secret() -> Secret {
    Secret::new(format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    ))
}

/// What the store keeps of a secret.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a callback's secret and receipt are this page's. Both comparisons
/// always run and take the same time whatever matches.
pub fn callback_matches(page: &PushPage, secret: &str, receipt: &str) -> bool {
    let (Some(stored), Some(page_receipt)) = (&page.secret_hash, &page.receipt) else {
        return false;
    };
    let secret_ok = secret_hash(secret).as_bytes().ct_eq(stored.as_bytes());
    let receipt_ok = receipt.as_bytes().ct_eq(page_receipt.as_bytes());
    bool::from(secret_ok & receipt_ok)
}

/// Who acknowledged: the person whose Pushover user key acknowledged (a
/// group key reaches several people), else the person the page was for.
pub fn actor(catalog: &LiveCatalog, page: &PushPage, acknowledged_by: Option<&str>) -> String {
    let by_key = acknowledged_by.and_then(|key| {
        let catalog = catalog.current()?;
        let person = catalog
            .people()
            .find(|p| p.contact.pushover.as_deref() == Some(key))?;
        Some(person.id.clone())
    });
    by_key.unwrap_or_else(|| match &page.recipient {
        Recipient::Person { id, .. } => id.clone(),
        Recipient::Room { .. } => "someone in Pushover".to_owned(),
    })
}

/// Acts on a page's acknowledgement once; `None` when it was already acted on.
pub async fn acknowledge(
    store: &dyn Store,
    page: &PushPage,
    actor: String,
    at: DateTime<Utc>,
) -> Result<Option<Decision>, StoreError> {
    if !store.push_acknowledged(page.notification_id, at).await? {
        return Ok(None);
    }
    let acted = store
        .act(&Act {
            alert_id: page.alert_id,
            action: Action::Acknowledge,
            actor,
            via: Via::Pushover,
            at,
        })
        .await;
    match acted {
        Ok(decision) => Ok(decision),
        Err(err) => {
            // Let the next poll try again rather than lose the acknowledgement.
            let _ = store.push_unacknowledged(page.notification_id).await;
            Err(err)
        }
    }
}

/// Receipts polled per round.
const POLL_BATCH: u32 = 50;
/// How often the loop looks for receipts due a poll (each receipt itself is
/// polled at most every `poll_every`, on the injected clock).
const WAKE: Duration = Duration::from_secs(1);

/// Polls the receipts of open emergency pages.
pub struct ReceiptPoller {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<LiveCatalog>,
    pub client: PushoverClient,
    pub clock: Arc<dyn Clock>,
    /// Pushover asks for no more than one poll per receipt every 5 s.
    pub every: TimeDelta,
    /// Woken after an acknowledgement so the engine sends follow-ups now.
    pub engine_wake: Arc<tokio::sync::Notify>,
}

impl ReceiptPoller {
    /// Polls every receipt due a poll; returns how many acknowledgements it acted on.
    pub async fn tick(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let pages = self
            .store
            .receipts_to_poll(now, now - self.every, POLL_BATCH)
            .await?;
        let mut acted = 0;
        for page in pages {
            let Some(receipt) = page.receipt.as_deref() else {
                continue;
            };
            let status = match self.client.receipt(receipt).await {
                Ok(status) => status,
                Err(reason) => {
                    // Rare (Pushover down): worth a read to name the service.
                    let service = match self.store.alert(page.alert_id).await {
                        Ok(Some(alert)) => alert.service_id,
                        _ => String::new(),
                    };
                    tracing::warn!(alert_id = page.alert_id, service, %reason, "Pushover receipt poll failed; trying again later");
                    continue;
                }
            };
            if status.acknowledged {
                let who = actor(&self.catalog, &page, status.acknowledged_by.as_deref());
                if acknowledge(self.store.as_ref(), &page, who, self.clock.now())
                    .await?
                    .is_some()
                {
                    acted += 1;
                }
            } else if status.expired {
                self.store
                    .push_expired(page.notification_id, self.clock.now())
                    .await?;
            }
        }
        if acted > 0 {
            self.engine_wake.notify_one();
        }
        Ok(acted)
    }

    pub async fn run(self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if let Err(err) = self.tick().await {
                tracing::error!(error = %err, "Pushover receipt round failed; retrying");
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(WAKE) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(secret: &str) -> PushPage {
        PushPage {
            notification_id: 1,
            alert_id: 7,
            receipt: Some("r".repeat(30)),
            recipient: Recipient::Person {
                id: "alice".into(),
                name: "Alice".into(),
                address: "u".repeat(30),
            },
            secret_hash: Some(secret_hash(secret)),
        }
    }

    #[test]
    fn a_callback_needs_both_the_secret_and_the_receipt() {
        let p = page("s3cret");
        assert!(callback_matches(&p, "s3cret", &"r".repeat(30)));
        assert!(!callback_matches(&p, "s3cres", &"r".repeat(30)));
        assert!(!callback_matches(&p, "s3cret", &"x".repeat(30)));
        assert!(!callback_matches(&p, "", ""));
        let unsent = PushPage {
            receipt: None,
            ..page("s3cret")
        };
        assert!(!callback_matches(&unsent, "s3cret", ""));
    }

    #[test]
    fn secrets_are_fresh_and_only_their_hash_is_kept() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 64);
        assert_eq!(secret_hash(a.expose()).len(), 64);
        assert_ne!(secret_hash(a.expose()), a.expose());
    }
}
