//! A minimal stand-in for the routes the engine must expose to Twilio, built
//! only from the crate's public Twilio API: verify `X-Twilio-Signature` over
//! the public URL + form, then serve TwiML or parse the callback. The lead's
//! real routes should behave the same way.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use rouse::channel::twilio::callbacks::{
    call_reached_human, form_get, parse_form, sms_failed, AnsweredBy, CallStatus, MessageStatus,
    Reached,
};
use rouse::channel::twilio::twiml::{self, GatherAction};
use rouse::channel::twilio::{signature, Routes};
use rouse::config::Secret;

/// What the application observed, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    Twiml {
        alert_id: i64,
        token: String,
        machine: bool,
    },
    Gather {
        alert_id: i64,
        action: GatherAction,
    },
    CallStatus {
        sid: String,
        status: CallStatus,
        reached: Reached,
        sequence: Option<u32>,
    },
    SmsStatus {
        sid: String,
        status: MessageStatus,
        failed: bool,
        error_code: Option<String>,
    },
    BadSignature {
        path: String,
    },
}

pub struct TestApp {
    pub public_url: String,
    events: Arc<Mutex<Vec<AppEvent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const SPOKEN_SUMMARY: &str = "disk full on db-1 & <db-2>";

impl TestApp {
    pub async fn start(auth_token: &str) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind app");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let public_url = format!("http://{addr}");
        let events = Arc::new(Mutex::new(Vec::new()));
        let ctx = Arc::new(Ctx {
            public_url: public_url.clone(),
            token: Secret::new(auth_token),
            events: events.clone(),
        });
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let ctx = ctx.clone();
                async move { ctx.handle(method, uri, headers, body) }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestApp {
            public_url,
            events,
            task,
        }
    }

    pub fn events(&self) -> Vec<AppEvent> {
        self.events.lock().expect("events").clone()
    }
}

struct Ctx {
    public_url: String,
    token: Secret,
    events: Arc<Mutex<Vec<AppEvent>>>,
}

impl Ctx {
    fn push(&self, e: AppEvent) {
        self.events.lock().expect("events").push(e);
    }

    fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        if method != Method::POST {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        // Twilio signs the URL it was given; rebuild it from the configured
        // public URL (not the Host header, which a proxy may rewrite).
        let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let url = format!("{}{}", self.public_url, path_and_query);
        let params = parse_form(&body);
        let sig = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !signature::verify(&url, &params, &self.token, sig) {
            self.push(AppEvent::BadSignature {
                path: uri.path().to_string(),
            });
            return StatusCode::FORBIDDEN.into_response();
        }
        let token = uri
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("n=")))
            .unwrap_or("")
            .to_string();
        let routes = Routes::new(&self.public_url);
        let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["twilio", "voice", id] => {
                let Ok(alert_id) = id.parse::<i64>() else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                let machine = form_get(&params, "AnsweredBy")
                    .and_then(|a| a.parse::<AnsweredBy>().ok())
                    .is_some_and(AnsweredBy::is_machine);
                self.push(AppEvent::Twiml {
                    alert_id,
                    token: token.clone(),
                    machine,
                });
                let xml = if machine {
                    twiml::machine_hangup()
                } else {
                    twiml::voice_page(
                        alert_id,
                        SPOKEN_SUMMARY,
                        &routes.gather_url(alert_id, &token),
                    )
                };
                xml_response(xml)
            }
            ["twilio", "voice", id, "gather"] => {
                let Ok(alert_id) = id.parse::<i64>() else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                let digits = form_get(&params, "Digits").unwrap_or("");
                let (action, xml) =
                    twiml::gather_result(digits, &routes.gather_url(alert_id, &token));
                self.push(AppEvent::Gather { alert_id, action });
                xml_response(xml)
            }
            ["twilio", "status"] => {
                let Some(status) = form_get(&params, "CallStatus").and_then(|s| s.parse().ok())
                else {
                    return StatusCode::BAD_REQUEST.into_response();
                };
                let answered_by = form_get(&params, "AnsweredBy").and_then(|a| a.parse().ok());
                self.push(AppEvent::CallStatus {
                    sid: form_get(&params, "CallSid").unwrap_or("").to_string(),
                    status,
                    reached: call_reached_human(status, answered_by),
                    sequence: form_get(&params, "SequenceNumber").and_then(|s| s.parse().ok()),
                });
                StatusCode::NO_CONTENT.into_response()
            }
            ["twilio", "sms", "status"] => {
                let Some(status) = form_get(&params, "MessageStatus").and_then(|s| s.parse().ok())
                else {
                    return StatusCode::BAD_REQUEST.into_response();
                };
                self.push(AppEvent::SmsStatus {
                    sid: form_get(&params, "MessageSid").unwrap_or("").to_string(),
                    status,
                    failed: sms_failed(status),
                    error_code: form_get(&params, "ErrorCode").map(str::to_string),
                });
                StatusCode::NO_CONTENT.into_response()
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

fn xml_response(xml: String) -> Response {
    ([("content-type", "text/xml; charset=utf-8")], xml).into_response()
}
