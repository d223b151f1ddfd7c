//! TLS peers for tests: a private CA made with rcgen, leaf certificates
//! relative to the real clock, and a rustls server whose certificate the
//! test can swap while it runs (a domain parked mid-test starts presenting
//! the registrar's parking certificate).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A private CA whose certificate sits in a temp PEM file (the `ca_file`).
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    file: tempfile::NamedTempFile,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(cert.pem().as_bytes()).unwrap();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            file,
        }
    }

    pub fn path(&self) -> Option<PathBuf> {
        Some(self.file.path().to_owned())
    }

    /// A leaf for `names`, valid from `now + from` to `now + until`.
    pub fn leaf(&self, names: &[&str], from: TimeDelta, until: TimeDelta) -> Identity {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = leaf_params(names, from, until);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity::new(cert, key)
    }
}

impl TestCa {
    /// A leaf for `names` as PEM files would hold it: (certificate, key, DER
    /// of the certificate to compare with what a server presents).
    pub fn leaf_pem(&self, names: &[&str]) -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = leaf_params(names, -TimeDelta::days(1), TimeDelta::days(90));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// A certificate chain and its key, as a server presents them.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    pub fn new(cert: rcgen::Certificate, key: rcgen::KeyPair) -> Identity {
        Identity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }

    pub fn self_signed(names: &[&str]) -> Identity {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = leaf_params(names, -TimeDelta::days(1), TimeDelta::days(90));
        let cert = params.self_signed(&key).unwrap();
        Identity::new(cert, key)
    }
}

pub fn leaf_params(names: &[&str], from: TimeDelta, until: TimeDelta) -> rcgen::CertificateParams {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    // rcgen takes `time` dates; build them from the epoch so this crate
    // needs no `time` dependency of its own.
    let at = |delta: TimeDelta| {
        let secs = u64::try_from((Utc::now() + delta).timestamp()).unwrap();
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(secs)
    };
    params.not_before = at(from);
    params.not_after = at(until);
    params
}

fn server_config(identity: Identity) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(identity.chain, identity.key)
            .unwrap(),
    )
}

/// A TLS server on 127.0.0.1 whose certificate [`SwitchableTls::present`]
/// replaces for every later connection.
pub struct SwitchableTls {
    pub port: u16,
    config: Arc<Mutex<Arc<rustls::ServerConfig>>>,
}

impl SwitchableTls {
    pub async fn start(identity: Identity) -> SwitchableTls {
        let config = Arc::new(Mutex::new(server_config(identity)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = config.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let current = shared.lock().unwrap().clone();
                tokio::spawn(async move {
                    let acceptor = tokio_rustls::TlsAcceptor::from(current);
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        let mut buf = [0u8; 1024];
                        let _ = tls.read(&mut buf).await;
                        let _ = tls
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                    }
                });
            }
        });
        SwitchableTls { port, config }
    }

    pub fn present(&self, identity: Identity) {
        *self.config.lock().unwrap() = server_config(identity);
    }
}
