//! The file format as admins write it. Every node that can be wrong in a way only the
//! validator sees is `Spanned`, so diagnostics can point at it. No flatten, untagged or
//! internally tagged enums: they would drop locations.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

pub type Text = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileYaml {
    #[serde(default)]
    pub people: Vec<Spanned<PersonYaml>>,
    #[serde(default)]
    pub rotations: Vec<Spanned<RotationYaml>>,
    #[serde(default)]
    pub schedules: Vec<Spanned<ScheduleYaml>>,
    #[serde(default)]
    pub policies: Vec<Spanned<PolicyYaml>>,
    #[serde(default)]
    pub services: Vec<Spanned<ServiceYaml>>,
    #[serde(default)]
    pub watchers: Vec<Spanned<super::watchers::WatcherYaml>>,
    #[serde(default)]
    pub maintenance: Vec<Spanned<super::maintenance::MaintenanceYaml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonYaml {
    pub id: Text,
    pub name: Text,
    pub timezone: Text,
    #[serde(default)]
    pub contact: Option<ContactYaml>,
    #[serde(default)]
    pub quiet_hours: Option<RangeYaml>,
    #[serde(default)]
    pub max_calls_per_hour: Option<Spanned<u32>>,
    #[serde(default)]
    pub notify: Vec<Spanned<NotifyYaml>>,
    /// Web UI login: `login: {password_hash: "$argon2id$…"}`.
    #[serde(default)]
    pub login: Option<LoginYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginYaml {
    /// A PHC string as `rouse hash-password` prints it; never the password itself.
    pub password_hash: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyYaml {
    pub after: Text,
    pub via: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactYaml {
    #[serde(default)]
    pub sms: Option<Text>,
    #[serde(default)]
    pub voice: Option<Text>,
    #[serde(default)]
    pub email: Option<Text>,
    #[serde(default)]
    pub slack: Option<Text>,
    #[serde(default)]
    pub matrix: Option<Text>,
    /// The person's Pushover user key.
    #[serde(default)]
    pub pushover: Option<Text>,
    #[serde(default)]
    pub ntfy: Option<Spanned<NtfyYaml>>,
}

/// `ntfy: alice-pager` (a topic on the configured server) or
/// `ntfy: { server: https://ntfy.example, topic: alice-pager }`. Read by hand
/// rather than as an untagged enum, which would lose the location.
#[derive(Debug)]
pub struct NtfyYaml {
    pub server: Option<String>,
    pub topic: String,
}

impl<'de> Deserialize<'de> for NtfyYaml {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NtfyYaml;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an ntfy topic, or a map with `server` and `topic`")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NtfyYaml, E> {
                Ok(NtfyYaml {
                    server: None,
                    topic: v.to_owned(),
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<NtfyYaml, A::Error> {
                let (mut server, mut topic) = (None, None);
                while let Some(key) = m.next_key::<String>()? {
                    match key.as_str() {
                        "server" => server = Some(m.next_value::<String>()?),
                        "topic" => topic = Some(m.next_value::<String>()?),
                        other => {
                            return Err(serde::de::Error::unknown_field(
                                other,
                                &["server", "topic"],
                            ))
                        }
                    }
                }
                let topic = topic.ok_or_else(|| serde::de::Error::missing_field("topic"))?;
                Ok(NtfyYaml { server, topic })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeYaml {
    pub from: Text,
    pub to: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationYaml {
    pub id: Text,
    #[serde(default)]
    pub name: Option<Text>,
    pub timezone: Text,
    pub participants: Spanned<Vec<Text>>,
    pub shift: Text,
    pub handoff: Text,
    pub start: Text,
    #[serde(default)]
    pub active: Vec<Spanned<WindowYaml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowYaml {
    #[serde(default)]
    pub days: Option<Text>,
    pub from: Text,
    pub to: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleYaml {
    pub id: Text,
    #[serde(default)]
    pub name: Option<Text>,
    pub timezone: Text,
    pub layers: Spanned<Vec<LayerYaml>>,
    #[serde(default)]
    pub overrides: Vec<Spanned<OverrideYaml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerYaml {
    pub rotation: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideYaml {
    pub who: Text,
    #[serde(default, rename = "for")]
    pub for_person: Option<Text>,
    pub from: Text,
    pub until: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyYaml {
    pub id: Text,
    #[serde(default)]
    pub name: Option<Text>,
    pub steps: Spanned<Vec<Spanned<StepYaml>>>,
    #[serde(default)]
    pub repeat: Option<Text>,
    #[serde(default)]
    pub voice_repeat_every: Option<Text>,
    /// `false` turns breakthrough calls off.
    #[serde(default)]
    pub breakthrough: Option<Spanned<bool>>,
    #[serde(default)]
    pub breakthrough_after: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepYaml {
    #[serde(default)]
    pub delay: Option<Text>,
    pub targets: Spanned<Vec<Spanned<TargetYaml>>>,
    pub channels: Spanned<Vec<Text>>,
    /// For `channels: [personal]`: what people without rules get.
    #[serde(default)]
    pub fallback: Option<Spanned<Vec<Text>>>,
}

/// Written as a one-key map (`- schedule: primary`); a struct rather than an enum keeps
/// locations and lets the validator say which keys are allowed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetYaml {
    #[serde(default)]
    pub schedule: Option<Text>,
    #[serde(default)]
    pub rotation: Option<Text>,
    #[serde(default)]
    pub person: Option<Text>,
    #[serde(default)]
    pub chat: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceYaml {
    pub id: Text,
    #[serde(default)]
    pub name: Option<Text>,
    pub policy: Text,
    #[serde(default)]
    pub urgency: Option<Text>,
    #[serde(default)]
    pub integrations: Vec<Spanned<IntegrationYaml>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteYaml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationYaml {
    pub name: Text,
    #[serde(default)]
    pub key: Option<Text>,
    #[serde(default)]
    pub key_env: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteYaml {
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    #[serde(default)]
    pub policy: Option<Text>,
    #[serde(default)]
    pub urgency: Option<Text>,
}
