//! Turns parsed files into the validated model: parse with a budget, register ids across
//! files, then build each item, checking values and references. Collects every problem
//! instead of stopping at the first.

use super::yaml::{FileYaml, Text};
use super::{Catalog, Diagnostic, Diagnostics, Parts};
use crate::oncall::time::{parse_date, parse_duration, parse_instant, parse_zone};
use crate::oncall::{
    ActiveWindow, Channel, Contact, EscalationPolicy, Integration, Layer, LocalTime, NotifyRule,
    Override, Person, QuietHours, Repeat, Rotation, RoutingRule, Schedule, Service, ShiftLength,
    Step, Target, Urgency, Weekdays,
};
use chrono_tz::Tz;
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// Larger rotation files are certainly not hand-written; refusing them bounds memory.
pub const MAX_FILE_BYTES: usize = 1 << 20;
pub const MAX_FILES: usize = 1000;

/// Where an id was defined: file index, line, column.
pub(super) type Place = (usize, usize, usize);

pub(super) struct Ctx<'a> {
    files: &'a [(PathBuf, String)],
    diags: Vec<Diagnostic>,
    /// With a file unparsed, references into it would be reported as dangling; suppress those.
    parse_failed: bool,
}

fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.budget = serde_saphyr::budget! {
        max_depth: 24,
        max_nodes: 200_000,
        max_events: 500_000,
        max_aliases: 1_000,
        max_anchors: 1_000,
        max_documents: 1,
        max_total_scalar_bytes: MAX_FILE_BYTES,
        max_merge_keys: 100,
    };
    o
}

fn place(file: usize, l: &Location) -> Place {
    let line = usize::try_from(l.line()).unwrap_or(0).max(1);
    let col = usize::try_from(l.column()).unwrap_or(0).max(1);
    (file, line, col)
}

pub(super) fn at<T>(file: usize, s: &Spanned<T>) -> Place {
    place(file, &s.referenced)
}

fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_phone(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (7..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()))
}

/// Pushover user and group keys are 30 characters of `[A-Za-z0-9]`.
fn is_pushover_key(s: &str) -> bool {
    s.len() == 30 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The address an ntfy contact is paged at: the bare topic, or
/// `server/topic` when the person names their own server.
fn ntfy_address(n: &super::yaml::NtfyYaml) -> Result<String, String> {
    // ntfy's own rule for topic names.
    let topic_ok = !n.topic.is_empty()
        && n.topic.len() <= 64
        && n.topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !topic_ok {
        return Err(format!(
            "invalid ntfy topic `{}`: use letters, digits, `-` or `_` (at most 64)",
            n.topic
        ));
    }
    match &n.server {
        None => Ok(n.topic.clone()),
        Some(server) => {
            let server = server.trim_end_matches('/');
            match reqwest::Url::parse(server) {
                Ok(u)
                    if matches!(u.scheme(), "https" | "http")
                        && u.host().is_some()
                        && u.query().is_none() =>
                {
                    Ok(format!("{server}/{}", n.topic))
                }
                _ => Err(format!(
                    "invalid ntfy server `{server}`: expected an http(s) URL such as https://ntfy.sh"
                )),
            }
        }
    }
}

fn fnv1a(files: &[(PathBuf, String)]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (p, text) in files {
        eat(p.to_string_lossy().as_bytes());
        eat(&[0]);
        eat(text.as_bytes());
        eat(&[0]);
    }
    h
}

impl Ctx<'_> {
    pub(super) fn err(&mut self, (file, line, column): Place, message: impl Into<String>) {
        let path = self
            .files
            .get(file)
            .map(|f| f.0.clone())
            .unwrap_or_default();
        self.diags.push(Diagnostic {
            file: path,
            line,
            column,
            message: message.into(),
        });
    }

    /// The folder of file `file`, for paths written relative to it.
    pub(super) fn file_dir(&self, file: usize) -> Option<&std::path::Path> {
        self.files.get(file).and_then(|f| f.0.parent())
    }

    pub(super) fn describe(&self, (file, line, column): Place) -> String {
        let path = self
            .files
            .get(file)
            .map(|f| f.0.display().to_string())
            .unwrap_or_default();
        format!("{path}:{line}:{column}")
    }

    pub(super) fn parse<T, E: std::fmt::Display>(
        &mut self,
        f: usize,
        t: &Text,
        p: impl Fn(&str) -> Result<T, E>,
    ) -> Option<T> {
        match p(&t.value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(at(f, t), e.to_string());
                None
            }
        }
    }

    pub(super) fn zone(&mut self, f: usize, t: &Text) -> Option<Tz> {
        self.parse(f, t, parse_zone)
    }

    fn time(&mut self, f: usize, t: &Text, allow_24: bool) -> Option<LocalTime> {
        self.parse(f, t, |s| LocalTime::parse(s, allow_24))
    }

    /// Registers `id` of `kind`, reporting bad ids and duplicates (naming both places).
    fn register(&mut self, ids: &mut HashMap<String, Place>, kind: &str, f: usize, id: &Text) {
        let here = at(f, id);
        if !is_valid_id(&id.value) {
            self.err(
                here,
                format!(
                    "invalid {kind} id `{}`: use letters, digits, `-`, `_` or `.` (at most 64)",
                    id.value
                ),
            );
            return;
        }
        if let Some(first) = ids.get(&id.value).copied() {
            let there = self.describe(first);
            self.err(
                here,
                format!(
                    "duplicate {kind} id `{}` (first defined at {there})",
                    id.value
                ),
            );
        } else {
            ids.insert(id.value.clone(), here);
        }
    }

    /// Checks that `r` names a known `kind`; quiet when a file failed to parse.
    pub(super) fn reference(
        &mut self,
        ids: &HashMap<String, Place>,
        kind: &str,
        f: usize,
        r: &Text,
    ) -> bool {
        if ids.contains_key(&r.value) {
            return true;
        }
        if !self.parse_failed {
            self.err(at(f, r), format!("unknown {kind} `{}`", r.value));
        }
        false
    }
}

#[derive(Default)]
struct Ids {
    people: HashMap<String, Place>,
    rotations: HashMap<String, Place>,
    schedules: HashMap<String, Place>,
    policies: HashMap<String, Place>,
    services: HashMap<String, Place>,
    watchers: HashMap<String, Place>,
}

pub(super) fn build(
    files: &[(PathBuf, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Catalog, Diagnostics> {
    let mut cx = Ctx {
        files,
        diags: Vec::new(),
        parse_failed: false,
    };
    let mut parsed: Vec<(usize, FileYaml)> = Vec::new();
    for (i, (_, text)) in files.iter().enumerate() {
        if text.len() > MAX_FILE_BYTES {
            cx.diags.push(Diagnostic {
                file: files[i].0.clone(),
                line: 0,
                column: 0,
                message: format!("file is larger than {MAX_FILE_BYTES} bytes"),
            });
            cx.parse_failed = true;
            continue;
        }
        match serde_saphyr::from_str_with_options::<Option<FileYaml>>(text, options()) {
            Ok(doc) => parsed.push((i, doc.unwrap_or_default())),
            Err(e) => {
                let p = e.location().map_or((i, 1, 1), |l| place(i, &l));
                cx.err(p, crate::yaml::message(&e));
                cx.parse_failed = true;
            }
        }
    }

    let mut ids = Ids::default();
    for (f, doc) in &parsed {
        for p in &doc.people {
            cx.register(&mut ids.people, "person", *f, &p.value.id);
        }
        for r in &doc.rotations {
            cx.register(&mut ids.rotations, "rotation", *f, &r.value.id);
        }
        for s in &doc.schedules {
            cx.register(&mut ids.schedules, "schedule", *f, &s.value.id);
        }
        for p in &doc.policies {
            cx.register(&mut ids.policies, "policy", *f, &p.value.id);
        }
        for s in &doc.services {
            cx.register(&mut ids.services, "service", *f, &s.value.id);
        }
        for w in &doc.watchers {
            cx.register(&mut ids.watchers, "watcher", *f, &w.value.id);
        }
    }

    let mut parts = Parts {
        people: BTreeMap::new(),
        rotations: BTreeMap::new(),
        schedules: BTreeMap::new(),
        policies: BTreeMap::new(),
        services: BTreeMap::new(),
        keys: HashMap::new(),
        watchers: BTreeMap::new(),
        maintenance: Vec::new(),
        fingerprint: fnv1a(files),
        person_places: ids
            .people
            .iter()
            .map(|(id, (file, line, column))| {
                let place = super::Place {
                    file: files.get(*file).map(|f| f.0.clone()).unwrap_or_default(),
                    line: *line,
                    column: *column,
                };
                (id.clone(), place)
            })
            .collect(),
        logins: BTreeMap::new(),
    };
    for (f, doc) in &parsed {
        for p in &doc.people {
            if let Some(hash) = build_login(&mut cx, *f, &p.value) {
                parts.logins.entry(p.value.id.value.clone()).or_insert(hash);
            }
            if let Some(person) = build_person(&mut cx, *f, p) {
                parts.people.entry(person.id.clone()).or_insert(person);
            }
        }
        for r in &doc.rotations {
            if let Some(rot) = build_rotation(&mut cx, &ids, *f, r) {
                parts
                    .rotations
                    .entry(rot.id.clone())
                    .or_insert_with(|| Arc::new(rot));
            }
        }
    }
    for (f, doc) in &parsed {
        for s in &doc.schedules {
            if let Some(sch) = build_schedule(&mut cx, &ids, &parts.rotations, *f, s) {
                parts.schedules.entry(sch.id.clone()).or_insert(sch);
            }
        }
        for p in &doc.policies {
            if let Some(pol) = build_policy(&mut cx, &ids, *f, p) {
                parts.policies.entry(pol.id.clone()).or_insert(pol);
            }
        }
    }
    let mut key_places: HashMap<String, Place> = HashMap::new();
    for (f, doc) in &parsed {
        for s in &doc.services {
            if let Some(svc) = build_service(&mut cx, &ids, env, &mut key_places, *f, s) {
                for (i, integ) in svc.integrations.iter().enumerate() {
                    parts
                        .keys
                        .insert(super::key_digest(&integ.key), (svc.id.clone(), i));
                }
                parts.services.entry(svc.id.clone()).or_insert(svc);
            }
        }
        for w in &doc.watchers {
            if let Some(spec) = super::watchers::build_watcher(&mut cx, &ids.services, *f, w) {
                parts.watchers.entry(spec.id.clone()).or_insert(spec);
            }
        }
        for m in &doc.maintenance {
            if let Some(window) = super::maintenance::build_window(&mut cx, &ids.services, *f, m) {
                parts.maintenance.push(window);
            }
        }
    }

    if cx.diags.is_empty() {
        Ok(parts.into())
    } else {
        cx.diags.sort();
        cx.diags.dedup();
        Err(Diagnostics(cx.diags))
    }
}

/// A person's `login.password_hash`: checked to be an Argon2 PHC string now,
/// so a pasted plain password or a truncated hash is a load error with its
/// place instead of a login that can never succeed.
fn build_login(
    cx: &mut Ctx<'_>,
    f: usize,
    y: &super::yaml::PersonYaml,
) -> Option<crate::config::Secret> {
    let hash = &y.login.as_ref()?.password_hash;
    match argon2::PasswordHash::new(&hash.value) {
        Ok(parsed) if parsed.algorithm.as_str().starts_with("argon2") => {
            Some(crate::config::Secret::new(hash.value.clone()))
        }
        _ => {
            cx.err(
                at(f, hash),
                "password_hash must be an Argon2 hash as `rouse hash-password` prints it ($argon2id$…)",
            );
            None
        }
    }
}

fn build_person(
    cx: &mut Ctx<'_>,
    f: usize,
    p: &Spanned<super::yaml::PersonYaml>,
) -> Option<Person> {
    let y = &p.value;
    let zone = cx.zone(f, &y.timezone);
    let mut ok = true;
    if y.name.value.trim().is_empty() {
        cx.err(at(f, &y.name), "name must not be empty");
        ok = false;
    }
    let mut contact = Contact::default();
    if let Some(c) = &y.contact {
        for (field, dst, is_phone_field) in [
            (&c.sms, &mut contact.sms, true),
            (&c.voice, &mut contact.voice, true),
            (&c.email, &mut contact.email, false),
            (&c.slack, &mut contact.slack, false),
            (&c.matrix, &mut contact.matrix, false),
        ] {
            let Some(v) = field else { continue };
            if is_phone_field && !is_phone(&v.value) {
                cx.err(
                    at(f, v),
                    format!(
                        "invalid phone number `{}`: expected E.164, e.g. `+4915112345678`",
                        v.value
                    ),
                );
                ok = false;
            } else if v.value.trim().is_empty() {
                cx.err(at(f, v), "contact value must not be empty");
                ok = false;
            } else {
                *dst = Some(v.value.clone());
            }
        }
        if let Some(e) = &c.email {
            if !e.value.contains('@') {
                cx.err(at(f, e), format!("invalid email address `{}`", e.value));
                ok = false;
            }
        }
        if let Some(k) = &c.pushover {
            if is_pushover_key(&k.value) {
                contact.pushover = Some(k.value.clone());
            } else {
                // Never echo the key: close to a credential.
                cx.err(
                    at(f, k),
                    "invalid Pushover user key: expected 30 letters and digits",
                );
                ok = false;
            }
        }
        if let Some(n) = &c.ntfy {
            match ntfy_address(&n.value) {
                Ok(address) => contact.ntfy = Some(address),
                Err(reason) => {
                    cx.err(at(f, n), reason);
                    ok = false;
                }
            }
        }
    }
    let quiet_hours = match &y.quiet_hours {
        None => None,
        Some(q) => {
            let (from, to) = (cx.time(f, &q.from, false), cx.time(f, &q.to, true));
            match (from, to) {
                (Some(from), Some(to)) if from != to => Some(QuietHours { from, to }),
                (Some(_), Some(_)) => {
                    cx.err(at(f, &q.to), "quiet hours `from` and `to` are equal");
                    ok = false;
                    None
                }
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    let max_calls_per_hour = match &y.max_calls_per_hour {
        Some(m) if m.value == 0 => {
            cx.err(at(f, m), "max_calls_per_hour must be at least 1");
            ok = false;
            None
        }
        m => m.as_ref().map(|m| m.value),
    };
    let mut notify = Vec::new();
    for r in &y.notify {
        let after = cx.parse(f, &r.value.after, parse_duration);
        let via = match Channel::parse(&r.value.via.value) {
            Some(via) if contact.reaches(via) => Some(via),
            Some(via) => {
                cx.err(
                    at(f, &r.value.via),
                    format!("notify via {via}, but the person has no {via} contact"),
                );
                None
            }
            None => {
                cx.err(
                    at(f, &r.value.via),
                    format!(
                        "unknown channel `{}`: expected push, sms, voice, email or chat",
                        r.value.via.value
                    ),
                );
                None
            }
        };
        match (after, via) {
            (Some(after), Some(via)) => notify.push(NotifyRule { after, via }),
            _ => ok = false,
        }
    }
    let zone = zone?;
    ok.then(|| Person {
        id: y.id.value.clone(),
        name: y.name.value.clone(),
        zone,
        contact,
        quiet_hours,
        max_calls_per_hour,
        notify,
    })
}

fn build_rotation(
    cx: &mut Ctx<'_>,
    ids: &Ids,
    f: usize,
    r: &Spanned<super::yaml::RotationYaml>,
) -> Option<Rotation> {
    let y = &r.value;
    let zone = cx.zone(f, &y.timezone);
    let shift = cx.parse(f, &y.shift, ShiftLength::parse);
    let handoff = cx.time(f, &y.handoff, false);
    let start = cx.parse(f, &y.start, parse_date);
    let mut ok = true;
    if y.participants.value.is_empty() {
        cx.err(
            at(f, &y.participants),
            "participants must list at least one person",
        );
        ok = false;
    }
    for p in &y.participants.value {
        ok &= cx.reference(&ids.people, "person", f, p);
    }
    let mut active = Vec::new();
    for w in &y.active {
        let days = match &w.value.days {
            Some(d) => cx.parse(f, d, Weekdays::parse),
            None => Some(Weekdays::ALL),
        };
        let from = cx.time(f, &w.value.from, false);
        let to = cx.time(f, &w.value.to, true);
        match (days, from, to) {
            (Some(days), Some(from), Some(to)) if from != to => {
                active.push(ActiveWindow { days, from, to })
            }
            (Some(_), Some(_), Some(_)) => {
                cx.err(at(f, &w.value.to), "active window `from` and `to` are equal; for a whole day write from: \"00:00\", to: \"24:00\"");
                ok = false;
            }
            _ => ok = false,
        }
    }
    let (zone, shift, handoff, start) = (zone?, shift?, handoff?, start?);
    ok.then(|| Rotation {
        id: y.id.value.clone(),
        name: y.name.as_ref().map(|n| n.value.clone()),
        zone,
        participants: y
            .participants
            .value
            .iter()
            .map(|p| p.value.clone())
            .collect(),
        shift,
        handoff,
        start,
        active,
    })
}

fn build_schedule(
    cx: &mut Ctx<'_>,
    ids: &Ids,
    rotations: &BTreeMap<String, Arc<Rotation>>,
    f: usize,
    s: &Spanned<super::yaml::ScheduleYaml>,
) -> Option<Schedule> {
    let y = &s.value;
    let zone = cx.zone(f, &y.timezone)?;
    let mut ok = true;
    if y.layers.value.is_empty() {
        cx.err(at(f, &y.layers), "layers must list at least one rotation");
        ok = false;
    }
    let mut layers = Vec::new();
    for l in &y.layers.value {
        if cx.reference(&ids.rotations, "rotation", f, &l.rotation) {
            // A known id missing here means the rotation itself had errors (already reported).
            match rotations.get(&l.rotation.value) {
                Some(r) => layers.push(Layer {
                    rotation: Arc::clone(r),
                }),
                None => ok = false,
            }
        } else {
            ok = false;
        }
    }
    let mut overrides = Vec::new();
    for o in &y.overrides {
        let o = &o.value;
        ok &= cx.reference(&ids.people, "person", f, &o.who);
        if let Some(p) = &o.for_person {
            ok &= cx.reference(&ids.people, "person", f, p);
        }
        let from = cx.parse(f, &o.from, |t| parse_instant(t, zone));
        let until = cx.parse(f, &o.until, |t| parse_instant(t, zone));
        match (from, until) {
            (Some(from), Some(until)) if from < until => overrides.push(Override {
                who: o.who.value.clone(),
                for_person: o.for_person.as_ref().map(|p| p.value.clone()),
                from,
                until,
            }),
            (Some(_), Some(_)) => {
                cx.err(at(f, &o.until), "override `until` must be after `from`");
                ok = false;
            }
            _ => ok = false,
        }
    }
    ok.then(|| Schedule {
        id: y.id.value.clone(),
        name: y.name.as_ref().map(|n| n.value.clone()),
        zone,
        layers,
        overrides,
    })
}

fn build_policy(
    cx: &mut Ctx<'_>,
    ids: &Ids,
    f: usize,
    p: &Spanned<super::yaml::PolicyYaml>,
) -> Option<EscalationPolicy> {
    let y = &p.value;
    let mut ok = true;
    if y.steps.value.is_empty() {
        cx.err(at(f, &y.steps), "steps must list at least one step");
        ok = false;
    }
    let mut steps = Vec::new();
    for s in &y.steps.value {
        let sy = &s.value;
        let delay = match &sy.delay {
            Some(d) => cx.parse(f, d, parse_duration),
            None => Some(chrono::TimeDelta::zero()),
        };
        if sy.targets.value.is_empty() {
            cx.err(at(f, &sy.targets), "targets must list at least one target");
            ok = false;
        }
        let mut targets = Vec::new();
        for t in &sy.targets.value {
            let ty = &t.value;
            let given: Vec<(&Text, &str)> = [
                (&ty.schedule, "schedule"),
                (&ty.rotation, "rotation"),
                (&ty.person, "person"),
                (&ty.chat, "chat"),
            ]
            .into_iter()
            .filter_map(|(v, k)| v.as_ref().map(|v| (v, k)))
            .collect();
            let [(v, kind)] = given.as_slice() else {
                cx.err(
                    at(f, t),
                    "a target needs exactly one of `schedule`, `rotation`, `person` or `chat`",
                );
                ok = false;
                continue;
            };
            let target = match *kind {
                "schedule" => cx
                    .reference(&ids.schedules, "schedule", f, v)
                    .then(|| Target::Schedule(v.value.clone())),
                "rotation" => cx
                    .reference(&ids.rotations, "rotation", f, v)
                    .then(|| Target::Rotation(v.value.clone())),
                "person" => cx
                    .reference(&ids.people, "person", f, v)
                    .then(|| Target::Person(v.value.clone())),
                _ if v.value.trim().is_empty() => {
                    cx.err(at(f, *v), "chat channel must not be empty");
                    None
                }
                _ => Some(Target::Chat(v.value.clone())),
            };
            match target {
                Some(t) => targets.push(t),
                None => ok = false,
            }
        }
        if sy.channels.value.is_empty() {
            cx.err(
                at(f, &sy.channels),
                "channels must list at least one of chat, sms, voice, email, push",
            );
            ok = false;
        }
        let personal = sy
            .channels
            .value
            .iter()
            .any(|c| c.value.trim() == "personal");
        if personal && sy.channels.value.len() > 1 {
            cx.err(
                at(f, &sy.channels),
                "`personal` stands alone: write `channels: [personal]` and put other channels in `fallback`",
            );
            ok = false;
        }
        let mut channels = Vec::new();
        let listed: &[Text] = match (&sy.fallback, personal) {
            (Some(fb), true) => &fb.value,
            (Some(fb), false) => {
                cx.err(
                    at(f, fb),
                    "`fallback` only applies to a step with `channels: [personal]`",
                );
                ok = false;
                &[]
            }
            (None, true) => {
                channels.extend(crate::oncall::DEFAULT_FALLBACK);
                &[]
            }
            (None, false) => &sy.channels.value,
        };
        for c in listed {
            match Channel::parse(&c.value) {
                Some(ch) => channels.push(ch),
                None => {
                    cx.err(
                        at(f, c),
                        format!(
                            "unknown channel `{}`: expected chat, sms, voice, email or push{}",
                            c.value,
                            if personal { "" } else { " (or personal)" }
                        ),
                    );
                    ok = false;
                }
            }
        }
        match delay {
            Some(delay) => steps.push(Step {
                delay,
                targets,
                channels,
                personal,
            }),
            None => ok = false,
        }
    }
    let repeat = match &y.repeat {
        None => Repeat::Times(0),
        Some(r) if r.value.trim() == "until_ack" => Repeat::UntilAck,
        Some(r) => match r.value.trim().parse::<u32>() {
            Ok(n) if n <= 100 => Repeat::Times(n),
            _ => {
                cx.err(at(f, r), format!("invalid repeat `{}`: expected a number of extra passes (0-100) or `until_ack`", r.value));
                ok = false;
                Repeat::Times(0)
            }
        },
    };
    let voice_repeat_every = match &y.voice_repeat_every {
        None => None,
        Some(v) => match parse_duration(&v.value) {
            Ok(d) if d >= chrono::TimeDelta::minutes(1) => Some(d),
            Ok(_) => {
                cx.err(at(f, v), "voice_repeat_every must be at least 1m");
                ok = false;
                None
            }
            Err(e) => {
                cx.err(at(f, v), e.to_string());
                ok = false;
                None
            }
        },
    };
    let breakthrough_after = match &y.breakthrough_after {
        None => Some(crate::oncall::DEFAULT_BREAKTHROUGH_AFTER),
        Some(v) => match parse_duration(&v.value) {
            Ok(d)
                if d >= chrono::TimeDelta::seconds(1)
                    && d <= crate::oncall::MAX_BREAKTHROUGH_AFTER =>
            {
                Some(d)
            }
            Ok(_) => {
                cx.err(
                    at(f, v),
                    "breakthrough_after must be 1s to 170s: the second call must come within 3 minutes of the first to ring through Do Not Disturb",
                );
                ok = false;
                None
            }
            Err(e) => {
                cx.err(at(f, v), e.to_string());
                ok = false;
                None
            }
        },
    };
    let breakthrough_on = y.breakthrough.as_ref().is_none_or(|b| b.value);
    ok.then(|| EscalationPolicy {
        id: y.id.value.clone(),
        name: y.name.as_ref().map(|n| n.value.clone()),
        steps,
        repeat,
        voice_repeat_every,
        breakthrough_after: breakthrough_after.filter(|_| breakthrough_on),
    })
}

fn build_service(
    cx: &mut Ctx<'_>,
    ids: &Ids,
    env: &dyn Fn(&str) -> Option<String>,
    key_places: &mut HashMap<String, Place>,
    f: usize,
    s: &Spanned<super::yaml::ServiceYaml>,
) -> Option<Service> {
    let y = &s.value;
    let mut ok = cx.reference(&ids.policies, "policy", f, &y.policy);
    let parse_urgency = |t: &str| {
        Urgency::parse(t).ok_or_else(|| format!("invalid urgency `{t}`: expected `low` or `high`"))
    };
    let urgency = match &y.urgency {
        Some(u) => cx.parse(f, u, parse_urgency),
        None => Some(Urgency::High),
    };
    let mut integrations: Vec<Integration> = Vec::new();
    for i in &y.integrations {
        let iy = &i.value;
        if integrations.iter().any(|x| x.name == iy.name.value) {
            cx.err(
                at(f, &iy.name),
                format!(
                    "duplicate integration name `{}` in service `{}`",
                    iy.name.value, y.id.value
                ),
            );
            ok = false;
        }
        let key = match (&iy.key, &iy.key_env) {
            (Some(k), None) => Some((k.value.clone(), at(f, k))),
            (None, Some(var)) => match env(&var.value) {
                Some(v) => Some((v, at(f, var))),
                None => {
                    cx.err(
                        at(f, var),
                        format!(
                            "environment variable `{}` is not set (key of integration `{}`)",
                            var.value, iy.name.value
                        ),
                    );
                    None
                }
            },
            _ => {
                cx.err(
                    at(f, i),
                    "an integration needs exactly one of `key` or `key_env`",
                );
                None
            }
        };
        let Some((key, here)) = key else {
            ok = false;
            continue;
        };
        if key.trim().is_empty() {
            cx.err(here, "integration key must not be empty");
            ok = false;
        } else if let Some(first) = key_places.get(&key).copied() {
            let there = cx.describe(first);
            // Never echo the key itself: it is a secret.
            cx.err(here, format!("integration key is already used at {there}"));
            ok = false;
        } else {
            key_places.insert(key.clone(), here);
            integrations.push(Integration {
                name: iy.name.value.clone(),
                key,
            });
        }
    }
    let mut routes = Vec::new();
    for r in &y.routes {
        let ry = &r.value;
        if let Some(p) = &ry.policy {
            ok &= cx.reference(&ids.policies, "policy", f, p);
        }
        let urg = match &ry.urgency {
            Some(u) => match cx.parse(f, u, parse_urgency) {
                Some(u) => Some(u),
                None => {
                    ok = false;
                    None
                }
            },
            None => None,
        };
        if ry.policy.is_none() && ry.urgency.is_none() {
            cx.err(at(f, r), "a route needs `policy`, `urgency` or both");
            ok = false;
        }
        routes.push(RoutingRule {
            matches: ry.matches.clone(),
            policy_id: ry.policy.as_ref().map(|p| p.value.clone()),
            urgency: urg,
        });
    }
    let urgency = urgency?;
    ok.then(|| Service {
        id: y.id.value.clone(),
        name: y
            .name
            .as_ref()
            .map_or_else(|| y.id.value.clone(), |n| n.value.clone()),
        policy_id: y.policy.value.clone(),
        urgency,
        integrations,
        routes,
    })
}
