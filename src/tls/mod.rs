//! Serving HTTPS on Rouse's own listener: Twilio, Slack, Pushover and
//! PagerDuty's client libraries call `https://` URLs, and a pager should not
//! need a proxy in front of it to be reachable.
//!
//! The certificate comes from PEM files (`tls.cert` / `tls.key`), re-read
//! when they change so a renewal never needs a restart ([`files`]), or from
//! ACME ([`acme`]). Either way every handshake asks one [`CertStore`] for the
//! certificate, and [`TlsListener`] hands finished handshakes to axum.

pub mod acme;
pub mod files;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// Why HTTPS cannot be served (at start-up; later failures are logged and
/// the certificate in use stays).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Pem(String),
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("ACME: {0}")]
    Acme(String),
}

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737): a handshake that negotiates
/// it is the CA validating, never a client to serve.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How long a client gets to finish its handshake: a connection that opens
/// and says nothing must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes waiting for axum to take them; more wait in the kernel's backlog.
const READY_QUEUE: usize = 256;

/// The certificate every handshake gets. Swapped whole when a renewal lands,
/// so a handshake sees the old chain or the new one, never half of each.
pub struct CertStore {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    /// Under ACME, the resolver that also answers TLS-ALPN-01 challenges.
    acme: Option<Arc<dyn ResolvesServerCert>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("acme", &self.acme.is_some())
            .finish_non_exhaustive()
    }
}

impl CertStore {
    pub fn with(key: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::new(Some(key)),
            acme: None,
        }
    }

    pub fn acme(resolver: Arc<dyn ResolvesServerCert>) -> Self {
        Self {
            current: RwLock::new(None),
            acme: Some(resolver),
        }
    }

    pub fn replace(&self, key: Arc<CertifiedKey>) {
        // A poisoned lock only means a writer panicked mid-assignment of an
        // Arc, which cannot leave it half-written: keep serving.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(key);
    }

    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match &self.acme {
            Some(acme) => acme.resolve(hello),
            None => self.current(),
        }
    }
}

/// The rustls server configuration over `certs`: HTTP/1.1 (what the router
/// speaks), plus the TLS-ALPN-01 protocol when ACME validates through it.
pub fn server_config(certs: Arc<CertStore>, acme_alpn: bool) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // ring's provider supports the default versions; this cannot fail.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if acme_alpn {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Arc::new(config)
}

/// A TCP listener whose connections axum receives only once their TLS
/// handshake is done. Handshakes run in their own tasks, so one slow or
/// silent client never holds up the others.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        stop: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(accept_loop(listener, acceptor, tx, stop));
        Ok(Self { ready, local })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather
                // than spin, as axum's own TCP listener does.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
                        // The CA saw the challenge certificate; nothing to serve.
                        return;
                    }
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            // The accept loop ended: shutdown has begun and axum is about to
            // stop asking.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
