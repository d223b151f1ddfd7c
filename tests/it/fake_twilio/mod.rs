//! A fake Twilio REST API for integration tests: a real HTTP server on
//! `127.0.0.1:0` speaking Twilio's documented wire format.
//!
//! * `POST /2010-04-01/Accounts/{sid}/Messages.json`, `POST …/Calls.json`,
//!   `GET …/Calls/{CallSid}.json`.
//! * Checks HTTP basic auth (401, code 20003), form encoding, required
//!   fields, enum values and unknown parameters (400 with Twilio's error JSON
//!   `{code, message, more_info, status}`).
//! * Records every request (method, path, headers, form with repeated keys).
//! * Scripted per destination number; [`FakeTwilio::run_call`] and
//!   [`FakeTwilio::run_message`] then play the script deterministically: the
//!   status callbacks, the TwiML fetch and the `<Gather>` key press, each a
//!   signed form POST exactly as Twilio sends them. Tests just await them.
//!
//! The signer and form decoder here are deliberately independent of the
//! crate's own, so the tests cross-check them rather than agree with
//! themselves.

#![allow(dead_code)]

pub mod app;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

/// Parameters the CreateMessage operation accepts (Twilio OpenAPI spec).
const MESSAGE_PARAMS: &[&str] = &[
    "To",
    "StatusCallback",
    "ApplicationSid",
    "MaxPrice",
    "ProvideFeedback",
    "Attempt",
    "ValidityPeriod",
    "ForceDelivery",
    "ContentRetention",
    "AddressRetention",
    "SmartEncoded",
    "PersistentAction",
    "TrafficType",
    "ShortenUrls",
    "ScheduleType",
    "SendAt",
    "SendAsMms",
    "ContentVariables",
    "RiskCheck",
    "From",
    "FallbackFrom",
    "MessagingServiceSid",
    "Body",
    "MediaUrl",
    "ContentSid",
];
/// Parameters the CreateCall operation accepts (Twilio OpenAPI spec).
const CALL_PARAMS: &[&str] = &[
    "To",
    "From",
    "Method",
    "FallbackUrl",
    "FallbackMethod",
    "StatusCallback",
    "StatusCallbackEvent",
    "StatusCallbackMethod",
    "SendDigits",
    "Timeout",
    "Record",
    "RecordingChannels",
    "RecordingStatusCallback",
    "RecordingStatusCallbackMethod",
    "SipAuthUsername",
    "SipAuthPassword",
    "MachineDetection",
    "MachineDetectionTimeout",
    "RecordingStatusCallbackEvent",
    "Trim",
    "CallerId",
    "MachineDetectionSpeechThreshold",
    "MachineDetectionSpeechEndThreshold",
    "MachineDetectionSilenceTimeout",
    "AsyncAmd",
    "AsyncAmdStatusCallback",
    "AsyncAmdStatusCallbackMethod",
    "Byoc",
    "CallReason",
    "CallToken",
    "RecordingTrack",
    "TimeLimit",
    "ClientNotificationUrl",
    "Url",
    "Twiml",
    "ApplicationSid",
];
const CALL_EVENTS: &[&str] = &["initiated", "ringing", "answered", "completed"];
/// The fake's code for an unknown parameter on Messages. Real Twilio mostly
/// ignores unknown keys; failing loudly is what catches a typo such as
/// `StatusCalback` (Prism cannot: it drops unknown form keys).
pub const CODE_UNKNOWN_MESSAGE_PARAM: u32 = 21600;
/// "Calls resource" error, which Twilio uses for invalid Calls parameters.
pub const CODE_INVALID_CALL_PARAM: u32 = 21200;

/// What happens when Rouse calls a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallScript {
    /// Rings out (`no-answer`).
    NoAnswer,
    Busy,
    Failed,
    /// A person answers; the TwiML is fetched and, if `press` is set, that
    /// key is pressed at the first `<Gather>`.
    Human {
        press: Option<String>,
    },
    /// Voicemail picks up (`AnsweredBy=machine_end_beep`).
    Machine,
    /// The create request itself is refused with this HTTP status and code.
    Rejected {
        status: u16,
        code: u32,
    },
}

/// What happens to a message sent to a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageScript {
    Delivered,
    /// The carrier could not deliver it (`ErrorCode`, e.g. 30003 unreachable).
    Undelivered {
        error_code: u32,
    },
    Failed {
        error_code: u32,
    },
    /// The create request itself is refused (e.g. 400 / 21211 invalid To,
    /// 21610 unsubscribed recipient).
    Rejected {
        status: u16,
        code: u32,
    },
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    /// When it arrived (the chaos tests compare it with when replicas died).
    pub received_at: std::time::SystemTime,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn param(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn params(&self, key: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct FakeMessage {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub status: String,
    pub status_callback: Option<String>,
    pub error_code: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct FakeCall {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub url: String,
    pub status_callback: Option<String>,
    pub status_callback_events: Vec<String>,
    pub machine_detection: Option<String>,
    pub timeout: Option<u32>,
    pub status: String,
    pub answered_by: Option<String>,
    pub duration: u32,
}

/// What kind of request the fake made to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    Status,
    TwimlFetch,
    Gather,
    /// A text someone sent to the Twilio number, forwarded to the app.
    InboundSms,
}

/// One signed POST the fake made to the application, and the answer.
#[derive(Debug, Clone)]
pub struct CallbackRecord {
    pub kind: CallbackKind,
    pub url: String,
    pub params: Vec<(String, String)>,
    pub signature: String,
    /// `None` if the application could not be reached.
    pub response_status: Option<u16>,
    pub response_body: String,
}

impl CallbackRecord {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

struct Failure {
    status: u16,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct State {
    requests: Vec<RecordedRequest>,
    messages: Vec<FakeMessage>,
    calls: Vec<FakeCall>,
    call_scripts: HashMap<String, CallScript>,
    message_scripts: HashMap<String, MessageScript>,
    failures: VecDeque<Failure>,
    hang_next: u32,
    callbacks: Vec<CallbackRecord>,
    counter: u64,
}

struct Inner {
    account_sid: String,
    auth_token: String,
    http: reqwest::Client,
    state: Mutex<State>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the fake's state from others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct FakeTwilio {
    inner: Arc<Inner>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeTwilio {
    pub async fn start(account_sid: &str, auth_token: &str) -> FakeTwilio {
        let inner = Arc::new(Inner {
            account_sid: account_sid.to_string(),
            auth_token: auth_token.to_string(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("reqwest client"),
            state: Mutex::new(State::default()),
        });
        let app_inner = inner.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let inner = app_inner.clone();
                async move { handle(inner, method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake twilio");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTwilio { inner, addr, task }
    }

    /// `http://127.0.0.1:<port>`: use as `TwilioConfig::base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn script_call(&self, to: &str, script: CallScript) {
        self.inner
            .state()
            .call_scripts
            .insert(to.to_string(), script);
    }

    pub fn script_message(&self, to: &str, script: MessageScript) {
        self.inner
            .state()
            .message_scripts
            .insert(to.to_string(), script);
    }

    /// The next `n` API requests get `status` (429 → code 20429, 5xx →
    /// 20500) with `Retry-After: retry_after` if given.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut state = self.inner.state();
        for _ in 0..n {
            state.failures.push_back(Failure {
                status,
                retry_after,
            });
        }
    }

    /// The next `n` API requests are never answered (client timeouts).
    pub fn hang_next(&self, n: u32) {
        self.inner.state().hang_next += n;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.state().requests.clone()
    }

    pub fn messages(&self) -> Vec<FakeMessage> {
        self.inner.state().messages.clone()
    }

    pub fn calls(&self) -> Vec<FakeCall> {
        self.inner.state().calls.clone()
    }

    /// Every POST the fake made to the application so far.
    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        self.inner.state().callbacks.clone()
    }

    /// Plays the scripted call to its end (default script: a human who
    /// presses nothing) and returns the requests made to the application.
    pub async fn run_call(&self, call_sid: &str) -> Vec<CallbackRecord> {
        let (call, script) = {
            let state = self.inner.state();
            let call = state
                .calls
                .iter()
                .find(|c| c.sid == call_sid)
                .cloned()
                .unwrap_or_else(|| panic!("no call {call_sid}"));
            let script = state
                .call_scripts
                .get(&call.to)
                .cloned()
                .unwrap_or(CallScript::Human { press: None });
            (call, script)
        };
        let mut run = CallRun {
            fake: self,
            call: &call,
            seq: 0,
            out: Vec::new(),
        };
        run.status("initiated", "initiated", None, None).await;
        run.status("ringing", "ringing", None, None).await;
        let (final_status, answered_by, duration) = match &script {
            CallScript::NoAnswer => ("no-answer", None, 0),
            CallScript::Busy => ("busy", None, 0),
            CallScript::Failed => ("failed", None, 0),
            CallScript::Rejected { .. } => ("failed", None, 0),
            CallScript::Human { press } => {
                self.set_call(call_sid, "in-progress", Some("human"));
                run.status("answered", "in-progress", Some("human"), None)
                    .await;
                let twiml = run.fetch_twiml("human").await;
                if let (Some(digit), Some(action)) =
                    (press, twiml.as_deref().and_then(gather_action))
                {
                    run.press(&action, digit).await;
                }
                ("completed", Some("human"), 17)
            }
            CallScript::Machine => {
                self.set_call(call_sid, "in-progress", Some("machine_end_beep"));
                run.status("answered", "in-progress", Some("machine_end_beep"), None)
                    .await;
                run.fetch_twiml("machine_end_beep").await;
                ("completed", Some("machine_end_beep"), 4)
            }
        };
        self.set_call(call_sid, final_status, answered_by);
        {
            let mut state = self.inner.state();
            if let Some(c) = state.calls.iter_mut().find(|c| c.sid == call_sid) {
                c.duration = duration;
            }
        }
        // Twilio reports every terminal status (busy, no-answer, …) with the
        // `completed` event.
        run.status("completed", final_status, answered_by, Some(duration))
            .await;
        run.out
    }

    /// Plays the scripted message (default: delivered): `sent`, then the
    /// final status, each as a signed status callback.
    pub async fn run_message(&self, message_sid: &str) -> Vec<CallbackRecord> {
        let (msg, script) = {
            let state = self.inner.state();
            let msg = state
                .messages
                .iter()
                .find(|m| m.sid == message_sid)
                .cloned()
                .unwrap_or_else(|| panic!("no message {message_sid}"));
            let script = state
                .message_scripts
                .get(&msg.to)
                .cloned()
                .unwrap_or(MessageScript::Delivered);
            (msg, script)
        };
        let (status, error) = match script {
            MessageScript::Delivered | MessageScript::Rejected { .. } => ("delivered", None),
            MessageScript::Undelivered { error_code } => ("undelivered", Some(error_code)),
            MessageScript::Failed { error_code } => ("failed", Some(error_code)),
        };
        let mut out = Vec::new();
        let steps: Vec<(&str, Option<u32>)> = if status == "failed" {
            vec![(status, error)]
        } else {
            vec![("sent", None), (status, error)]
        };
        for (step, code) in steps {
            {
                let mut state = self.inner.state();
                if let Some(m) = state.messages.iter_mut().find(|m| m.sid == message_sid) {
                    m.status = step.to_string();
                    m.error_code = code;
                }
            }
            let Some(url) = msg.status_callback.clone() else {
                continue;
            };
            let mut params = vec![
                p("AccountSid", &self.inner.account_sid),
                p("ApiVersion", "2010-04-01"),
                p("From", &msg.from),
                p("MessageSid", &msg.sid),
                p("MessageStatus", step),
                p("SmsSid", &msg.sid),
                p("SmsStatus", step),
                p("To", &msg.to),
            ];
            if let Some(code) = code {
                params.push(p("ErrorCode", &code.to_string()));
            }
            out.push(self.post_signed(CallbackKind::Status, &url, params).await);
        }
        out
    }

    fn set_call(&self, sid: &str, status: &str, answered_by: Option<&str>) {
        let mut state = self.inner.state();
        if let Some(c) = state.calls.iter_mut().find(|c| c.sid == sid) {
            c.status = status.to_string();
            if let Some(a) = answered_by {
                c.answered_by = Some(a.to_string());
            }
        }
    }

    /// A text from `from` to the Twilio number, forwarded to the app's
    /// messaging webhook `url` with the parameters Twilio sends.
    pub async fn inbound_sms(&self, url: &str, from: &str, to: &str, body: &str) -> CallbackRecord {
        let sid = {
            let mut state = self.inner.state();
            state.counter += 1;
            format!("SM{:032x}", state.counter + 0xabc0_0000)
        };
        let params = vec![
            ("ToCountry".to_owned(), "US".to_owned()),
            ("SmsMessageSid".to_owned(), sid.clone()),
            ("NumMedia".to_owned(), "0".to_owned()),
            ("SmsSid".to_owned(), sid.clone()),
            ("SmsStatus".to_owned(), "received".to_owned()),
            ("Body".to_owned(), body.to_owned()),
            ("To".to_owned(), to.to_owned()),
            ("NumSegments".to_owned(), "1".to_owned()),
            ("MessageSid".to_owned(), sid),
            ("AccountSid".to_owned(), self.inner.account_sid.clone()),
            ("From".to_owned(), from.to_owned()),
            ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
        ];
        self.post_signed(CallbackKind::InboundSms, url, params)
            .await
    }

    /// Signs and POSTs `params` to `url` as Twilio does; records the exchange.
    pub async fn post_signed(
        &self,
        kind: CallbackKind,
        url: &str,
        params: Vec<(String, String)>,
    ) -> CallbackRecord {
        let signature = twilio_signature(&self.inner.auth_token, url, &params);
        let result = self
            .inner
            .http
            .post(url)
            .header("X-Twilio-Signature", &signature)
            .header("User-Agent", "TwilioProxy/1.1")
            .form(&params)
            .send()
            .await;
        let (response_status, response_body) = match result {
            Ok(r) => {
                let status = r.status().as_u16();
                (Some(status), r.text().await.unwrap_or_default())
            }
            Err(e) => (None, e.to_string()),
        };
        let record = CallbackRecord {
            kind,
            url: url.to_string(),
            params,
            signature,
            response_status,
            response_body,
        };
        self.inner.state().callbacks.push(record.clone());
        record
    }
}

struct CallRun<'a> {
    fake: &'a FakeTwilio,
    call: &'a FakeCall,
    seq: u32,
    out: Vec<CallbackRecord>,
}

impl CallRun<'_> {
    fn base_params(&self, status: &str, answered_by: Option<&str>) -> Vec<(String, String)> {
        let c = self.call;
        let mut params = vec![
            p("AccountSid", &self.fake.inner.account_sid),
            p("ApiVersion", "2010-04-01"),
            p("CallSid", &c.sid),
            p("CallStatus", status),
            p("Called", &c.to),
            p("Caller", &c.from),
            p("Direction", "outbound-api"),
            p("From", &c.from),
            p("To", &c.to),
        ];
        if let Some(a) = answered_by {
            params.push(p("AnsweredBy", a));
        }
        params
    }

    /// A status callback, sent only for events the create request asked for
    /// (`completed` is always sent when there is a StatusCallback).
    async fn status(
        &mut self,
        event: &str,
        status: &str,
        answered_by: Option<&str>,
        duration: Option<u32>,
    ) {
        let Some(url) = self.call.status_callback.clone() else {
            return;
        };
        if event != "completed" && !self.call.status_callback_events.iter().any(|e| e == event) {
            return;
        }
        let mut params = self.base_params(status, answered_by);
        params.push(p("CallbackSource", "call-progress-events"));
        params.push(p("SequenceNumber", &self.seq.to_string()));
        params.push(p("Timestamp", &chrono::Utc::now().to_rfc2822()));
        if let Some(d) = duration {
            params.push(p("CallDuration", &d.to_string()));
            params.push(p("Duration", &d.div_ceil(60).to_string()));
        }
        self.seq += 1;
        let record = self
            .fake
            .post_signed(CallbackKind::Status, &url, params)
            .await;
        self.out.push(record);
    }

    async fn fetch_twiml(&mut self, answered_by: &str) -> Option<String> {
        let params = self.base_params("in-progress", Some(answered_by));
        let url = self.call.url.clone();
        let record = self
            .fake
            .post_signed(CallbackKind::TwimlFetch, &url, params)
            .await;
        let ok = record.response_status == Some(200);
        let body = record.response_body.clone();
        self.out.push(record);
        ok.then_some(body)
    }

    async fn press(&mut self, action: &str, digit: &str) {
        let action = resolve_url(&self.call.url, action);
        let mut params = self.base_params("in-progress", Some("human"));
        params.push(p("Digits", digit));
        params.push(p("FinishedOnKey", ""));
        params.push(p("msg", "Gather End"));
        let record = self
            .fake
            .post_signed(CallbackKind::Gather, &action, params)
            .await;
        self.out.push(record);
    }
}

fn p(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// The `action` of the first `<Gather>` in a TwiML document.
pub fn gather_action(twiml: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(twiml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) if e.name().as_ref() == b"Gather" => {
                let attr = e.try_get_attribute("action").ok()??;
                return attr.unescape_value().ok().map(|v| v.into_owned());
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Relative `action` URLs resolve against the TwiML URL, as Twilio does.
fn resolve_url(base: &str, action: &str) -> String {
    if action.contains("://") {
        return action.to_string();
    }
    let origin_end = base
        .find("://")
        .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(base.len());
    format!("{}/{}", &base[..origin_end], action.trim_start_matches('/'))
}

/// HMAC-SHA1(token, url + sorted key+value pairs), base64: an independent
/// copy of Twilio's algorithm.
pub fn twilio_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("hmac key");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------- server

fn twilio_error(status: u16, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    });
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    if status == 401 {
        response.headers_mut().insert(
            "WWW-Authenticate",
            HeaderValue::from_static("Basic realm=\"Twilio API\""),
        );
    }
    response
}

async fn handle(
    inner: Arc<Inner>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // Like Twilio, a body that is not form-encoded is simply not read as
    // parameters (so a JSON body fails with "To is required").
    let form = if is_form {
        decode_form(&body)
    } else {
        Vec::new()
    };
    let record = RecordedRequest {
        received_at: std::time::SystemTime::now(),
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        form: form.clone(),
    };
    let (failure, hang) = {
        let mut state = inner.state();
        state.requests.push(record);
        let hang = state.hang_next > 0;
        if hang {
            state.hang_next -= 1;
        }
        let failure = if hang {
            None
        } else {
            state.failures.pop_front()
        };
        (failure, hang)
    };
    if hang {
        std::future::pending::<()>().await;
    }
    if let Some(f) = failure {
        let (code, message) = match f.status {
            429 => (20429, "Too Many Requests"),
            503 => (20503, "Service Unavailable"),
            s if s >= 500 => (20500, "Internal Server Error"),
            _ => (20001, "Scripted failure"),
        };
        let mut response = twilio_error(f.status, code, message);
        if let Some(secs) = f.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert("Retry-After", v);
            }
        }
        return response;
    }

    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (account, resource) = match segments.as_slice() {
        ["2010-04-01", "Accounts", account, rest @ ..] => (*account, rest.to_vec()),
        _ => return twilio_error(404, 20404, "The requested resource was not found"),
    };
    if !authorized(&inner, &headers, account) {
        return twilio_error(401, 20003, "Authenticate");
    }
    match (method.as_str(), resource.as_slice()) {
        ("POST", ["Messages.json"]) => create_message(&inner, &form),
        ("POST", ["Calls.json"]) => create_call(&inner, &form),
        ("GET", ["Calls", file]) if file.ends_with(".json") => {
            let sid = file.trim_end_matches(".json");
            let state = inner.state();
            match state.calls.iter().find(|c| c.sid == sid) {
                Some(c) => (StatusCode::OK, axum::Json(call_json(&inner, c))).into_response(),
                None => twilio_error(
                    404,
                    20404,
                    &format!("The requested resource /2010-04-01/Accounts/{account}/Calls/{sid}.json was not found"),
                ),
            }
        }
        _ => twilio_error(404, 20404, "The requested resource was not found"),
    }
}

fn authorized(inner: &Inner, headers: &HeaderMap, account: &str) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", inner.account_sid, inner.auth_token);
    decoded == expected.as_bytes() && account == inner.account_sid
}

fn get<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn unknown_param(form: &[(String, String)], allowed: &[&str]) -> Option<String> {
    form.iter()
        .map(|(k, _)| k)
        .find(|k| !allowed.contains(&k.as_str()))
        .cloned()
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn is_absolute_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && s.len() > "https://".len()
}

fn next_sid(inner: &Inner, prefix: &str) -> String {
    let mut state = inner.state();
    state.counter += 1;
    let n = (state.counter as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    format!("{prefix}{n:032x}")
}

fn rfc2822_now() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

fn create_message(inner: &Inner, form: &[(String, String)]) -> Response {
    if let Some(k) = unknown_param(form, MESSAGE_PARAMS) {
        return twilio_error(
            400,
            CODE_UNKNOWN_MESSAGE_PARAM,
            &format!("Unknown parameter: {k}"),
        );
    }
    let Some(to) = get(form, "To") else {
        return twilio_error(400, 21604, "A 'To' phone number is required.");
    };
    let from = get(form, "From").or(get(form, "MessagingServiceSid"));
    let Some(from) = from else {
        return twilio_error(
            400,
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
        );
    };
    let Some(body) = get(form, "Body") else {
        return twilio_error(400, 21602, "Message body is required.");
    };
    if !is_e164(to) {
        return twilio_error(400, 21211, &format!("Invalid 'To' Phone Number: {to}"));
    }
    if body.chars().count() > 1600 {
        return twilio_error(
            400,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    if let Some(cb) = get(form, "StatusCallback") {
        if !is_absolute_url(cb) {
            return twilio_error(400, 21609, "Invalid StatusCallback");
        }
    }
    if let Some(MessageScript::Rejected { status, code }) =
        inner.state().message_scripts.get(to).cloned()
    {
        return twilio_error(status, code, "Scripted rejection");
    }
    let sid = next_sid(inner, "SM");
    let message = FakeMessage {
        sid: sid.clone(),
        to: to.to_string(),
        from: from.to_string(),
        body: body.to_string(),
        status: "queued".to_string(),
        status_callback: get(form, "StatusCallback").map(str::to_string),
        error_code: None,
    };
    let json = message_json(inner, &message, form);
    inner.state().messages.push(message);
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

fn message_json(inner: &Inner, m: &FakeMessage, form: &[(String, String)]) -> Value {
    let now = rfc2822_now();
    json!({
        "account_sid": inner.account_sid,
        "api_version": "2010-04-01",
        "body": m.body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": get(form, "From"),
        "messaging_service_sid": get(form, "MessagingServiceSid"),
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": m.sid,
        "status": m.status,
        "subresource_uris": {
            "media": format!("/2010-04-01/Accounts/{}/Messages/{}/Media.json", inner.account_sid, m.sid)
        },
        "to": m.to,
        "uri": format!("/2010-04-01/Accounts/{}/Messages/{}.json", inner.account_sid, m.sid),
    })
}

fn create_call(inner: &Inner, form: &[(String, String)]) -> Response {
    let bad = |msg: String| twilio_error(400, CODE_INVALID_CALL_PARAM, &msg);
    if let Some(k) = unknown_param(form, CALL_PARAMS) {
        return bad(format!("Unknown parameter: {k}"));
    }
    let Some(to) = get(form, "To") else {
        return twilio_error(400, 21201, "No 'To' number is specified");
    };
    let Some(from) = get(form, "From") else {
        return twilio_error(400, 21213, "No 'From' number is specified");
    };
    let Some(url) = get(form, "Url") else {
        return twilio_error(400, 21205, "Url is not a valid URL: ");
    };
    if !is_absolute_url(url) {
        return twilio_error(400, 21205, &format!("Url is not a valid URL: {url}"));
    }
    if !is_e164(to) {
        return twilio_error(400, 21211, &format!("Invalid 'To' Phone Number: {to}"));
    }
    for key in ["Method", "StatusCallbackMethod", "FallbackMethod"] {
        if let Some(v) = get(form, key) {
            if v != "GET" && v != "POST" {
                return bad(format!("{key} must be GET or POST, not {v}"));
            }
        }
    }
    let events: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "StatusCallbackEvent")
        .map(|(_, v)| v.clone())
        .collect();
    if let Some(e) = events.iter().find(|e| !CALL_EVENTS.contains(&e.as_str())) {
        return bad(format!("Invalid StatusCallbackEvent: {e}"));
    }
    let machine_detection = get(form, "MachineDetection");
    if let Some(m) = machine_detection {
        if m != "Enable" && m != "DetectMessageEnd" {
            return bad(format!("Invalid MachineDetection: {m}"));
        }
    }
    let timeout = match get(form, "Timeout") {
        None => None,
        Some(t) => match t.parse::<u32>() {
            Ok(t) if (1..=600).contains(&t) => Some(t),
            _ => return bad(format!("Invalid Timeout: {t}")),
        },
    };
    let status_callback = get(form, "StatusCallback");
    if let Some(cb) = status_callback {
        if !is_absolute_url(cb) {
            return bad(format!("Invalid StatusCallback: {cb}"));
        }
    }
    if let Some(CallScript::Rejected { status, code }) = inner.state().call_scripts.get(to).cloned()
    {
        return twilio_error(status, code, "Scripted rejection");
    }
    let call = FakeCall {
        sid: next_sid(inner, "CA"),
        to: to.to_string(),
        from: from.to_string(),
        url: url.to_string(),
        status_callback: status_callback.map(str::to_string),
        status_callback_events: events,
        machine_detection: machine_detection.map(str::to_string),
        timeout,
        status: "queued".to_string(),
        answered_by: None,
        duration: 0,
    };
    let json = call_json(inner, &call);
    inner.state().calls.push(call);
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

fn call_json(inner: &Inner, c: &FakeCall) -> Value {
    let now = rfc2822_now();
    json!({
        "account_sid": inner.account_sid,
        "answered_by": c.answered_by,
        "api_version": "2010-04-01",
        "caller_name": null,
        "date_created": now,
        "date_updated": now,
        "direction": "outbound-api",
        "duration": null,
        "end_time": null,
        "forwarded_from": null,
        "from": c.from,
        "from_formatted": c.from,
        "group_sid": null,
        "parent_call_sid": null,
        "phone_number_sid": null,
        "price": null,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": c.sid,
        "start_time": null,
        "status": c.status,
        "subresource_uris": {
            "notifications": format!("/2010-04-01/Accounts/{}/Calls/{}/Notifications.json", inner.account_sid, c.sid),
            "recordings": format!("/2010-04-01/Accounts/{}/Calls/{}/Recordings.json", inner.account_sid, c.sid)
        },
        "to": c.to,
        "to_formatted": c.to,
        "trunk_sid": null,
        "uri": format!("/2010-04-01/Accounts/{}/Calls/{}.json", inner.account_sid, c.sid),
    })
}

/// `application/x-www-form-urlencoded` → ordered pairs, repeated keys kept.
pub fn decode_form(body: &[u8]) -> Vec<(String, String)> {
    fn unhex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::new();
        let mut i = 0;
        while i < s.len() {
            if s[i] == b'+' {
                out.push(b' ');
            } else if s[i] == b'%' && i + 2 < s.len() {
                match (unhex(s[i + 1]), unhex(s[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            } else {
                out.push(s[i]);
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|&b| b == b'&')
        .filter(|s| !s.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(i) => (decode(&pair[..i]), decode(&pair[i + 1..])),
            None => (decode(pair), String::new()),
        })
        .collect()
}
