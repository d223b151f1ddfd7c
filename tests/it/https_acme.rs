//! HTTPS by ACME against a real ACME server: Let's Encrypt's Pebble (the
//! Debian package), validating by TLS-ALPN-01 on Rouse's own port. The test
//! then connects trusting only Pebble's issuing root, and a second server
//! with Pebble gone serves the certificate from the on-disk cache.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::https_files::{client_trusting, presented, HttpsApp};
use crate::peers::{free_port, missing};
use crate::support::TestDb;
use crate::tls_peer::TestCa;

/// Pebble on loopback with its API certificate from a test CA.
struct Pebble {
    child: Child,
    api_port: u16,
    management_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pebble_binary(test: &str) -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/pebble");
    if path.exists() {
        return Some(path);
    }
    missing(test, "pebble (Debian package pebble)")
}

impl Pebble {
    /// Validates challenges by connecting to `tls_port` on the domain.
    fn start(binary: &Path, ca: &TestCa, tls_port: u16) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = ca.leaf_pem(&["127.0.0.1", "localhost"]);
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let (api_port, management_port) = (free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{api_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": free_port(),
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("pebble.log")).unwrap();
        let child = Command::new(binary)
            .arg("-config")
            .arg(&config_path)
            // Pebble's deliberate flakiness (random nonce rejections, sleeps
            // before validating) tests ACME clients; here it only slows us.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pebble = Pebble {
            child,
            api_port,
            management_port,
            _dir: dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", management_port)).is_ok()
            {
                return pebble;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pebble did not start: {}", pebble.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// The root Pebble signs certificates under (new on every start).
    async fn root(&self, ca_pem: &[u8]) -> Vec<u8> {
        let client = client_trusting(ca_pem);
        let url = format!("https://127.0.0.1:{}/roots/0", self.management_port);
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().to_vec()
    }
}

#[tokio::test]
async fn a_certificate_from_pebble_is_served_and_cached() {
    let Some(binary) = pebble_binary("a_certificate_from_pebble_is_served_and_cached") else {
        return;
    };
    let ca = TestCa::new("Pebble API test CA");
    let ca_pem = std::fs::read(ca.path().unwrap()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    // Rouse's port is chosen first: Pebble validates TLS-ALPN-01 there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let pebble = Pebble::start(&binary, &ca, port);
    let db = TestDb::sqlite();
    let directory = format!("https://127.0.0.1:{}/dir", pebble.api_port);
    let acme = |c: &mut rouse::config::Config| {
        c.tls.acme_domains = vec!["localhost".to_owned()];
        c.tls.acme_contact = vec!["mailto:oncall@example.com".to_owned()];
        c.tls.acme_directory_url = directory.clone();
        c.tls.acme_cache_dir = cache.path().to_owned();
        c.tls.acme_ca_file = ca.path();
    };
    let app = HttpsApp::start_on(&db, port, acme).await;
    let root = pebble.root(&ca_pem).await;
    let client = client_trusting(&root);
    let mut served = None;
    for _ in 0..600 {
        if let Some(der) = presented(&client, &app.base).await {
            served = Some(der);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let served = served.unwrap_or_else(|| {
        panic!(
            "Rouse never presented a certificate from Pebble's root; pebble said:\n{}",
            pebble.log()
        )
    });
    app.stop().await;

    // The certificate and account are on disk: with Pebble gone, a new
    // server presents the same certificate straight away.
    drop(pebble);
    assert!(
        std::fs::read_dir(cache.path()).unwrap().count() >= 2,
        "account and certificate cached"
    );
    let app = HttpsApp::start(&db, acme).await;
    let mut again = None;
    for _ in 0..200 {
        if let Some(der) = presented(&client, &app.base).await {
            again = Some(der);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        again.as_deref(),
        Some(&served[..]),
        "the cached certificate is served"
    );
    app.stop().await;
    db.drop_db().await;
}
