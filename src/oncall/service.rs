//! Services: what alerts belong to, how they arrive (integration keys), and which
//! escalation policy and urgency an alert gets.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Respects people's quiet hours.
    Low,
    High,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "low" => Some(Urgency::Low),
            "high" => Some(Urgency::High),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Integration {
    pub name: String,
    /// The secret, already resolved from `key` or `key_env`.
    pub key: String,
}

impl fmt::Debug for Integration {
    // Keys are secrets; keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Integration")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Sends matching alerts to another policy and/or urgency. All `matches` entries must be
/// equal; the key `severity` compares with the alert's severity, others with its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingRule {
    pub matches: BTreeMap<String, String>,
    pub policy_id: Option<String>,
    pub urgency: Option<Urgency>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub policy_id: String,
    pub urgency: Urgency,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub policy_id: String,
    pub urgency: Urgency,
    pub integrations: Vec<Integration>,
    pub routes: Vec<RoutingRule>,
}

impl Service {
    /// The first matching rule decides; fields it leaves out come from the service.
    pub fn route(&self, labels: &BTreeMap<String, String>, severity: &str) -> Route {
        let rule = self.routes.iter().find(|r| {
            r.matches.iter().all(|(k, v)| {
                if k == "severity" {
                    v == severity
                } else {
                    labels.get(k) == Some(v)
                }
            })
        });
        Route {
            policy_id: rule
                .and_then(|r| r.policy_id.clone())
                .unwrap_or_else(|| self.policy_id.clone()),
            urgency: rule.and_then(|r| r.urgency).unwrap_or(self.urgency),
        }
    }
}
