//! HTTPS by ACME (`tls.acme`): Rouse orders its own certificate from Let's
//! Encrypt or any RFC 8555 CA, validated by TLS-ALPN-01 on the listener it
//! already serves (no port 80 needed), and renews it before expiry.
//!
//! `rustls-acme` does the protocol; the account key and the certificate are
//! cached in `tls.acme.cache_dir`, so a restart serves the cached certificate
//! at once and does not spend the CA's rate limits.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use rustls_acme::caches::DirCache;
use rustls_acme::AcmeConfig;
use tokio_util::sync::CancellationToken;

use super::{CertStore, TlsError};

/// What `tls.acme` says.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub domains: Vec<String>,
    /// `mailto:` URLs the CA writes to about expiry and incidents.
    pub contact: Vec<String>,
    pub directory_url: String,
    pub cache_dir: PathBuf,
    /// An extra root to trust for the CA's own HTTPS API (a private CA, or
    /// Pebble in tests); the system's roots are trusted too.
    pub ca_file: Option<PathBuf>,
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Starts ordering (or loading the cached) certificate; the returned store
/// answers handshakes and the CA's TLS-ALPN-01 validation. Until a
/// certificate is there, ordinary handshakes fail (nothing to present).
pub fn start(settings: &AcmeSettings, stop: CancellationToken) -> Result<Arc<CertStore>, TlsError> {
    let client = Arc::new(client_config(settings.ca_file.as_ref())?);
    let mut state = AcmeConfig::new_with_client_config(&settings.domains, client)
        .contact(settings.contact.iter())
        .directory(&settings.directory_url)
        .cache(DirCache::new(settings.cache_dir.clone()))
        .state();
    let store = Arc::new(CertStore::acme(state.resolver()));
    let domains = settings.domains.join(",");
    tokio::spawn(async move {
        loop {
            // The stream never ends: it sleeps until renewal is due, and
            // retries failures itself with a back-off.
            let event = tokio::select! {
                () = stop.cancelled() => return,
                event = state.next() => event,
            };
            match event {
                Some(Ok(ok)) => tracing::info!(%domains, event = ?ok, "ACME"),
                Some(Err(err)) => tracing::warn!(%domains, error = %err, "ACME failed; retrying"),
                None => return,
            }
        }
    });
    Ok(store)
}

fn client_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system root rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            let cert = cert.map_err(|e| TlsError::Pem(format!("tls.acme.ca_file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| TlsError::Pem(format!("tls.acme.ca_file: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
