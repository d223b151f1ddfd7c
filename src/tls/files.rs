//! The certificate from PEM files, re-read when they change.
//!
//! certbot, cert-manager and acme.sh renew by writing new files in place (or
//! swapping a symlink); Rouse polls their contents and serves the new pair on
//! the next handshake. A new pair that does not load (half written, a key
//! that does not match) is logged and the old certificate stays, so a botched
//! renewal never takes HTTPS down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{CertStore, TlsError};

/// The two files and what they held when last loaded.
#[derive(Debug, Clone)]
pub struct PemFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A loaded pair, with the digest of the bytes it came from.
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    digest: [u8; 32],
}

impl PemFiles {
    /// Reads and checks both files.
    pub fn load(&self) -> Result<Loaded, TlsError> {
        let (cert, key) = self.read()?;
        let digest = digest(&cert, &key);
        Ok(Loaded {
            key: Arc::new(certified_key(&cert, &key)?),
            digest,
        })
    }

    fn read(&self) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        Ok((read(&self.cert)?, read(&self.key)?))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

/// A certificate chain (leaf first) and its private key, from PEM, checked
/// to belong together.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(format!("the certificate file is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Pem(
            "the certificate file holds no CERTIFICATE block".to_owned(),
        ));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| TlsError::Pem(format!("the key file is not PEM: {e}")))?
        .ok_or_else(|| TlsError::Pem("the key file holds no private key".to_owned()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| TlsError::Pem(format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(TlsError::Pem(format!(
                "the key does not belong to the certificate: {e}"
            )))
        }
    }
    Ok(certified)
}

/// When the leaf of `key` stops being valid, for the log line that says what
/// is served.
pub fn not_after(key: &CertifiedKey) -> Option<chrono::DateTime<chrono::Utc>> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    chrono::DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
}

/// Polls `files` every `every` and swaps a changed pair into `store` until
/// `stop`. `loaded` is what start-up served.
pub async fn watch(
    files: PemFiles,
    store: Arc<CertStore>,
    loaded: Loaded,
    every: Duration,
    stop: CancellationToken,
) {
    let mut served = loaded.digest;
    // The digest of a pair that failed, so a bad file is reported once, not
    // on every poll.
    let mut rejected: Option<[u8; 32]> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let files2 = files.clone();
        // Blocking file reads off the runtime's worker threads.
        let read = tokio::task::spawn_blocking(move || files2.read()).await;
        let (cert, key) = match read {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                if rejected != Some([0; 32]) {
                    tracing::warn!(error = %e, "TLS files unreadable; still serving the loaded certificate");
                    rejected = Some([0; 32]);
                }
                continue;
            }
            Err(_) => continue,
        };
        let now = digest(&cert, &key);
        if now == served || rejected == Some(now) {
            continue;
        }
        match certified_key(&cert, &key) {
            Ok(certified) => {
                let until = not_after(&certified);
                store.replace(Arc::new(certified));
                served = now;
                rejected = None;
                tracing::info!(cert = %files.cert.display(), ?until, "TLS certificate reloaded");
            }
            Err(e) => {
                rejected = Some(now);
                tracing::warn!(cert = %files.cert.display(), error = %e, "new TLS files rejected; still serving the previous certificate");
            }
        }
    }
}
