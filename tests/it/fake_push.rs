//! Fake push providers for integration tests: real HTTP servers on
//! `127.0.0.1:0` speaking Pushover's and ntfy's documented wire formats.
//!
//! * [`FakePushover`]: `POST /1/messages.json` (form: `token`, `user`,
//!   `message`, `priority`; at priority 2 `retry` ≥ 30 and `expire` ≤ 10800 or
//!   a 400 with `errors`, as Pushover answers), `GET /1/receipts/{r}.json`,
//!   `POST /1/receipts/{r}/cancel.json`. Answers `{"status":1,"request":…,
//!   "receipt":…}`. It can acknowledge a receipt (for polls) and call a
//!   page's `callback` the way Pushover does.
//! * [`FakeNtfy`]: `POST /` with a JSON message (topic rule, priority 1–5,
//!   at most three actions of known kinds); answers the stored message.
//!
//! Both record what they received and can fail on demand. The form decoder
//! here is the fake's own, so the tests do not agree with the crate by
//! construction.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// `application/x-www-form-urlencoded`, decoded independently of the crate.
pub fn decode_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One form as Pushover received it.
#[derive(Debug, Clone)]
pub struct PushoverMessage {
    pub form: Vec<(String, String)>,
    /// The receipt handed out (priority 2 only).
    pub receipt: Option<String>,
}

impl PushoverMessage {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct PushoverState {
    messages: Vec<PushoverMessage>,
    cancels: Vec<String>,
    polls: Vec<String>,
    /// receipt → the user key that acknowledged it.
    acknowledged: HashMap<String, String>,
    fail: Option<(u16, Value)>,
    seq: u32,
}

#[derive(Clone)]
pub struct FakePushover {
    base: String,
    token: String,
    state: Arc<Mutex<PushoverState>>,
}

fn pushover_error(status: StatusCode, errors: &[&str]) -> Response {
    (
        status,
        axum::Json(json!({"status": 0, "request": "req-error", "errors": errors})),
    )
        .into_response()
}

impl FakePushover {
    pub async fn start(token: &str) -> FakePushover {
        let state = Arc::new(Mutex::new(PushoverState::default()));
        let (st, tok) = (state.clone(), token.to_owned());
        let router = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (st, tok) = (st.clone(), tok.clone());
                async move { pushover(&st, &tok, method, uri, headers, body) }
            },
        );
        FakePushover {
            base: serve(router).await,
            token: token.to_owned(),
            state,
        }
    }

    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    pub fn messages(&self) -> Vec<PushoverMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn cancels(&self) -> Vec<String> {
        self.state.lock().unwrap().cancels.clone()
    }

    pub fn polls(&self) -> Vec<String> {
        self.state.lock().unwrap().polls.clone()
    }

    /// Every later message is refused with this status and Pushover's error body.
    pub fn fail_with(&self, status: u16) {
        self.state.lock().unwrap().fail = Some((
            status,
            json!({"status": 0, "request": "req-fail", "errors": ["the fake was told to fail"]}),
        ));
    }

    /// The user acknowledges in the app: later receipt polls say so.
    pub fn acknowledge(&self, receipt: &str, user: &str) {
        self.state
            .lock()
            .unwrap()
            .acknowledged
            .insert(receipt.to_owned(), user.to_owned());
    }

    /// POSTs `callback` the way Pushover does once `user` acknowledged
    /// `receipt`; returns the status and body Rouse answered.
    pub async fn call_back(&self, callback: &str, receipt: &str, user: &str) -> (u16, Value) {
        self.acknowledge(receipt, user);
        let form = [
            ("receipt", receipt.to_owned()),
            ("acknowledged", "1".to_owned()),
            ("acknowledged_at", "1793500000".to_owned()),
            ("acknowledged_by", user.to_owned()),
            ("acknowledged_by_device", "iphone".to_owned()),
        ];
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", escape(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = reqwest::Client::new()
            .post(callback)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("callback request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn pushover(
    state: &Mutex<PushoverState>,
    token: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let mut st = state.lock().unwrap();
    if method == Method::GET {
        let Some(receipt) = path
            .strip_prefix("/1/receipts/")
            .and_then(|p| p.strip_suffix(".json"))
        else {
            return pushover_error(StatusCode::NOT_FOUND, &["not found"]);
        };
        let query = decode_form(uri.query().unwrap_or("").as_bytes());
        if !query.iter().any(|(k, v)| k == "token" && v == token) {
            return pushover_error(StatusCode::BAD_REQUEST, &["application token is invalid"]);
        }
        st.polls.push(receipt.to_owned());
        let by = st.acknowledged.get(receipt).cloned();
        return axum::Json(json!({
            "status": 1, "request": "req-poll",
            "acknowledged": i32::from(by.is_some()),
            "acknowledged_at": if by.is_some() { 1_793_500_000 } else { 0 },
            "acknowledged_by": by.clone().unwrap_or_default(),
            "acknowledged_by_device": if by.is_some() { "iphone" } else { "" },
            "last_delivered_at": 0, "expired": 0, "expires_at": 0,
            "called_back": 0, "called_back_at": 0,
        }))
        .into_response();
    }
    if method != Method::POST || !form_type {
        return pushover_error(StatusCode::BAD_REQUEST, &["expected a form POST"]);
    }
    let form = decode_form(&body);
    let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    if get("token") != Some(token) {
        return pushover_error(StatusCode::BAD_REQUEST, &["application token is invalid"]);
    }
    if let Some(receipt) = path
        .strip_prefix("/1/receipts/")
        .and_then(|p| p.strip_suffix("/cancel.json"))
    {
        st.cancels.push(receipt.to_owned());
        return axum::Json(json!({"status": 1, "request": "req-cancel"})).into_response();
    }
    if path != "/1/messages.json" {
        return pushover_error(StatusCode::NOT_FOUND, &["not found"]);
    }
    if let Some((status, body)) = st.fail.clone() {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response();
    }
    let user_ok =
        get("user").is_some_and(|u| u.len() == 30 && u.chars().all(|c| c.is_ascii_alphanumeric()));
    if !user_ok {
        return pushover_error(StatusCode::BAD_REQUEST, &["user identifier is invalid"]);
    }
    if get("message").is_none_or(str::is_empty) {
        return pushover_error(StatusCode::BAD_REQUEST, &["message cannot be blank"]);
    }
    let priority: i32 = match get("priority").unwrap_or("0").parse() {
        Ok(p) if (-2..=2).contains(&p) => p,
        _ => return pushover_error(StatusCode::BAD_REQUEST, &["priority is invalid"]),
    };
    let mut receipt = None;
    if priority == 2 {
        let retry = get("retry").and_then(|r| r.parse::<u32>().ok());
        let expire = get("expire").and_then(|e| e.parse::<u32>().ok());
        match (retry, expire) {
            (None, _) => {
                return pushover_error(
                    StatusCode::BAD_REQUEST,
                    &["retry is required for emergency-priority notifications"],
                )
            }
            (_, None) => {
                return pushover_error(
                    StatusCode::BAD_REQUEST,
                    &["expire is required for emergency-priority notifications"],
                )
            }
            (Some(r), _) if r < 30 => {
                return pushover_error(StatusCode::BAD_REQUEST, &["retry must be at least 30"])
            }
            (_, Some(e)) if e > 10_800 => {
                return pushover_error(StatusCode::BAD_REQUEST, &["expire must be at most 10800"])
            }
            _ => {}
        }
        st.seq += 1;
        receipt = Some(format!("r{:029}", st.seq));
    }
    st.messages.push(PushoverMessage {
        form: form.clone(),
        receipt: receipt.clone(),
    });
    let mut answer = json!({"status": 1, "request": format!("req-{}", st.messages.len())});
    if let Some(r) = receipt {
        answer["receipt"] = json!(r);
    }
    axum::Json(answer).into_response()
}

/// One message as ntfy received it.
#[derive(Debug, Clone)]
pub struct NtfyMessage {
    pub path: String,
    pub authorization: Option<String>,
    pub json: Value,
}

#[derive(Default)]
struct NtfyState {
    messages: Vec<NtfyMessage>,
    fail: Option<u16>,
}

#[derive(Clone)]
pub struct FakeNtfy {
    base: String,
    state: Arc<Mutex<NtfyState>>,
}

impl FakeNtfy {
    pub async fn start() -> FakeNtfy {
        let state = Arc::new(Mutex::new(NtfyState::default()));
        let st = state.clone();
        let router = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let st = st.clone();
                async move { ntfy(&st, method, uri, headers, body) }
            },
        );
        FakeNtfy {
            base: serve(router).await,
            state,
        }
    }

    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    pub fn messages(&self) -> Vec<NtfyMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn fail_with(&self, status: u16) {
        self.state.lock().unwrap().fail = Some(status);
    }
}

fn ntfy_error(status: StatusCode, code: u32, error: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "http": status.as_u16(), "error": error})),
    )
        .into_response()
}

fn ntfy(
    state: &Mutex<NtfyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = state.lock().unwrap();
    if let Some(status) = st.fail {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return ntfy_error(status, 50001, "the fake was told to fail");
    }
    if method != Method::POST && method != Method::PUT {
        return ntfy_error(StatusCode::METHOD_NOT_ALLOWED, 40501, "method not allowed");
    }
    // JSON publishing goes to the root URL.
    if uri.path() != "/" {
        return ntfy_error(
            StatusCode::BAD_REQUEST,
            40001,
            "JSON messages go to the root URL",
        );
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return ntfy_error(StatusCode::BAD_REQUEST, 40024, "invalid request: JSON body");
    };
    let topic = json["topic"].as_str().unwrap_or("");
    let topic_ok = !topic.is_empty()
        && topic.len() <= 64
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !topic_ok {
        return ntfy_error(StatusCode::BAD_REQUEST, 40009, "invalid topic");
    }
    match json.get("priority").map(Value::as_i64) {
        None | Some(Some(1..=5)) => {}
        _ => return ntfy_error(StatusCode::BAD_REQUEST, 40007, "invalid priority"),
    }
    let actions = json["actions"].as_array().cloned().unwrap_or_default();
    if actions.len() > 3 {
        return ntfy_error(StatusCode::BAD_REQUEST, 40011, "too many actions");
    }
    for a in &actions {
        let kind = a["action"].as_str().unwrap_or("");
        let needs_url = matches!(kind, "view" | "http");
        if !matches!(kind, "view" | "http" | "broadcast" | "copy")
            || a["label"].as_str().is_none_or(str::is_empty)
            || (needs_url && a["url"].as_str().is_none())
        {
            return ntfy_error(StatusCode::BAD_REQUEST, 40018, "invalid action");
        }
    }
    st.messages.push(NtfyMessage {
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        json: json.clone(),
    });
    axum::Json(json!({
        "id": format!("ntfy{}", st.messages.len()),
        "time": 1_793_500_000, "event": "message", "topic": topic,
        "message": json["message"],
    }))
    .into_response()
}
