//! HTTPS from PEM files: the server presents the file's certificate, intake
//! works over it, a renewal written while serving is presented on the next
//! connection, and a broken renewal keeps the old certificate.

use serde_json::json;
use std::path::{Path, PathBuf};

use crate::support::{TestDb, PAYMENTS_KEY, TEST_CATALOG};
use crate::tls_peer::TestCa;

/// A server with `tls.cert`/`tls.key` on an ephemeral port, reached as
/// `https://localhost:port`.
pub struct HttpsApp {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), rouse::RunError>>>,
    _rotations: tempfile::TempDir,
}

impl HttpsApp {
    pub async fn start(db: &TestDb, adjust: impl FnOnce(&mut rouse::config::Config)) -> HttpsApp {
        Self::start_on(db, 0, adjust).await
    }

    /// [`HttpsApp::start`] on a given port (0: any).
    pub async fn start_on(
        db: &TestDb,
        port: u16,
        adjust: impl FnOnce(&mut rouse::config::Config),
    ) -> HttpsApp {
        let rotations = tempfile::tempdir().unwrap();
        std::fs::write(rotations.path().join("oncall.yaml"), TEST_CATALOG).unwrap();
        let mut config = rouse::config::Config::default();
        config.rotations_dir = rotations.path().to_owned();
        config.database_url = rouse::config::Secret::new(db.url());
        config.database_max_connections = 4;
        config.shutdown_grace = std::time::Duration::from_secs(5);
        config.tls.reload_poll = std::time::Duration::from_millis(50);
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let base = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        config.public_url = base.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(rouse::run(config, listener, async move {
            let _ = stopped.await;
        }));
        HttpsApp {
            base,
            stop: Some(stop),
            handle: Some(handle),
            _rotations: rotations,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }
}

/// A client that trusts only `ca` and makes a full handshake per request
/// (no pooled connection, no session resumption, which would show the
/// certificate of the session it resumes), so each request sees the
/// certificate served at that moment.
pub fn client_trusting(ca_pem: &[u8]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.resumption = rustls::client::Resumption::disabled();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The DER of the certificate the server presented for `GET /healthz`,
/// or None while the server does not answer yet.
pub async fn presented(client: &reqwest::Client, base: &str) -> Option<Vec<u8>> {
    let response = client.get(format!("{base}/healthz")).send().await.ok()?;
    assert_eq!(response.status(), 200);
    let info = response.extensions().get::<reqwest::tls::TlsInfo>()?;
    info.peer_certificate().map(<[u8]>::to_vec)
}

fn write_pair(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    // Renewal tools write the new file beside the old and rename it over.
    for (path, text) in [(&key_path, key), (&cert_path, cert)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    (cert_path, key_path)
}

async fn wait_for(client: &reqwest::Client, base: &str, want: &[u8], what: &str) {
    for _ in 0..400 {
        if presented(client, base).await.as_deref() == Some(want) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the server never presented {what}");
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_a_restart() {
    let ca = TestCa::new("Rouse HTTPS test CA");
    let ca_pem = std::fs::read(ca.path().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert1, key1, der1) = ca.leaf_pem(&["localhost"]);
    let (cert_path, key_path) = write_pair(dir.path(), &cert1, &key1);
    let db = TestDb::sqlite();
    let app = HttpsApp::start(&db, |c| {
        c.tls.cert = Some(cert_path.clone());
        c.tls.key = Some(key_path.clone());
    })
    .await;
    let client = client_trusting(&ca_pem);
    wait_for(&client, &app.base, &der1, "the first certificate").await;

    // Intake over HTTPS, as a PagerDuty or Twilio client would call it.
    let response = client
        .post(format!("{}/v1/events", app.base))
        .header("x-rouse-key", PAYMENTS_KEY)
        .json(
            &json!({"action": "trigger", "summary": "disk full", "severity": "critical",
                      "dedup_key": "https-1"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["outcome"], "opened", "{body}");

    // Plain HTTP on the same port gets no answer in HTTP.
    let plain =
        reqwest::get(app.base.replace("https://localhost", "http://127.0.0.1") + "/healthz").await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // A renewal lands while serving.
    let (cert2, key2, der2) = ca.leaf_pem(&["localhost"]);
    write_pair(dir.path(), &cert2, &key2);
    wait_for(&client, &app.base, &der2, "the renewed certificate").await;

    // A broken renewal: a new certificate with the old key. The renewed
    // certificate stays in service meanwhile...
    let (cert3, key3, der3) = ca.leaf_pem(&["localhost"]);
    std::fs::write(&cert_path, &cert3).unwrap();
    for _ in 0..20 {
        assert_eq!(
            presented(&client, &app.base).await.as_deref(),
            Some(&der2[..]),
            "a mismatched pair must never be served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    std::fs::write(&key_path, "not a key").unwrap();
    assert_eq!(
        presented(&client, &app.base).await.as_deref(),
        Some(&der2[..])
    );
    // ...and once the matching key arrives, the new pair is served.
    std::fs::write(&key_path, &key3).unwrap();
    wait_for(&client, &app.base, &der3, "the third certificate").await;

    app.stop().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_certificate_that_does_not_load_stops_start_up_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Rouse HTTPS test CA");
    let (cert, _, _) = ca.leaf_pem(&["localhost"]);
    let (_, other_key, _) = ca.leaf_pem(&["localhost"]);
    let (cert_path, key_path) = write_pair(dir.path(), &cert, &other_key);
    let db = TestDb::sqlite();
    let mut app = HttpsApp::start(&db, |c| {
        c.tls.cert = Some(cert_path.clone());
        c.tls.key = Some(key_path.clone());
    })
    .await;
    let err = app
        .handle
        .take()
        .unwrap()
        .await
        .unwrap()
        .expect_err("a key that does not match must stop start-up");
    let text = err.to_string();
    assert!(
        text.contains("does not belong to the certificate"),
        "{text}"
    );
    db.drop_db().await;
}

#[test]
fn cert_without_key_is_a_configuration_error() {
    let env = |name: &str| (name == "ROUSE_TLS_CERT").then(|| "/etc/rouse/cert.pem".to_owned());
    let err = rouse::config::Config::load(None, &env).unwrap_err();
    assert_eq!(err.setting, "tls.key");
    assert!(!rouse::config::Config::default().tls.enabled());
}

#[test]
fn acme_settings_read_lists_from_the_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rouse.yaml");
    std::fs::write(
        &path,
        "tls:\n  acme:\n    domains: [pager.example.com, rouse.example.com]\n    contact: [\"mailto:oncall@example.com\"]\n",
    )
    .unwrap();
    let c = rouse::config::Config::load(Some(&path), &|_| None).unwrap();
    assert!(c.tls.enabled());
    let acme = c.tls.acme().expect("ACME configured");
    assert_eq!(acme.domains, ["pager.example.com", "rouse.example.com"]);
    assert_eq!(acme.contact, ["mailto:oncall@example.com"]);
    assert_eq!(acme.directory_url, rouse::tls::acme::LETS_ENCRYPT);
    let env =
        |name: &str| (name == "ROUSE_TLS_ACME_DOMAINS").then(|| "a.example, b.example".to_owned());
    let c = rouse::config::Config::load(None, &env).unwrap();
    assert_eq!(c.tls.acme_domains, ["a.example", "b.example"]);
    // Files and ACME at once is a mistake, named.
    let env = |name: &str| match name {
        "ROUSE_TLS_ACME_DOMAINS" => Some("a.example".to_owned()),
        "ROUSE_TLS_CERT" | "ROUSE_TLS_KEY" => Some("/etc/rouse/x.pem".to_owned()),
        _ => None,
    };
    let err = rouse::config::Config::load(None, &env).unwrap_err();
    assert_eq!(err.setting, "tls.acme.domains", "{err}");
    let env =
        |name: &str| (name == "ROUSE_TLS_ACME_CONTACT").then(|| "oncall@example.com".to_owned());
    let err = rouse::config::Config::load(None, &env).unwrap_err();
    assert!(err.message.contains("mailto:"), "{err}");
}
