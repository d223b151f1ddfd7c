//! The TLS probe: connect, handshake, and read the chain a server presents
//! — even when it is invalid, because an invalid certificate is exactly what
//! this watcher exists to report (a parked domain serving the registrar's
//! certificate). A recording verifier runs the real webpki verification to
//! learn the exact error, then accepts so the handshake completes; no
//! application data is ever sent over such a connection.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::watch::cert::{self, CertFacts};
use crate::watch::spec::{CertPolicy, TlsSpec};
use crate::watch::{CheckFailure, CheckResult, Finding, Level, Verdict};

/// Why no certificate could be read: the connection never got that far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectProblem {
    /// The TCP connection failed; the text says how (`connection refused`, …).
    Refused(String),
    /// Nothing (or not enough) came back within the timeout.
    Timeout,
    /// TCP connected but TLS did not complete.
    Handshake(String),
    /// The host name did not resolve.
    Resolve(String),
    /// Our side is misconfigured (unreadable CA file, invalid server name).
    Config(String),
}

impl fmt::Display for ConnectProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectProblem::Refused(why) => f.write_str(why),
            ConnectProblem::Timeout => f.write_str("no answer in time"),
            ConnectProblem::Handshake(why) => write!(f, "TLS handshake failed: {why}"),
            ConnectProblem::Resolve(why) => f.write_str(why),
            ConnectProblem::Config(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ConnectProblem {}

/// Always ring, never a process-wide default another crate may have set.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system roots, loaded once (a few file reads on the first check) and
/// shared by every probe. Unreadable entries are logged and skipped: a
/// partly broken store should not stop every check.
pub fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for error in &loaded.errors {
                tracing::warn!(%error, "could not load some system root certificates");
            }
            let mut store = RootCertStore::empty();
            let (_, ignored) = store.add_parsable_certificates(loaded.certs);
            if ignored > 0 {
                tracing::warn!(ignored, "skipped unparsable system root certificates");
            }
            Arc::new(store)
        })
        .clone()
}

/// System roots plus the PEM certificates in `ca_file`, read on every call
/// so a rotated private CA is picked up without a restart.
pub async fn trust_roots(ca_file: Option<&Path>) -> Result<Arc<RootCertStore>, String> {
    let system = system_roots();
    let Some(path) = ca_file else {
        return Ok(system);
    };
    let pem = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot parse ca_file {}: {e}", path.display()))?;
    let mut store = (*system).clone();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "ca_file {} holds no usable certificate",
            path.display()
        ));
    }
    Ok(Arc::new(store))
}

/// A normal, verifying client configuration over `roots` (for HTTP checks).
pub fn client_config(roots: Arc<RootCertStore>) -> Result<ClientConfig, String> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

const NO_ROOTS: &str =
    "no trusted root certificates to verify against (the system store is empty and no ca_file is set)";

/// What the verifier saw during one handshake.
#[derive(Debug)]
struct Seen {
    leaf: CertificateDer<'static>,
    chain_len: usize,
    verify_error: Option<String>,
}

/// Records the presented chain and webpki's verdict on it, then accepts.
#[derive(Debug)]
struct Recorder {
    /// `None` when there are no roots at all (webpki refuses to build).
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    seen: Mutex<Option<Seen>>,
}

impl Recorder {
    fn new(roots: Arc<RootCertStore>) -> Recorder {
        let provider = provider();
        Recorder {
            webpki: WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .ok(),
            algorithms: provider.signature_verification_algorithms,
            seen: Mutex::new(None),
        }
    }

    fn take(&self) -> Option<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verify_error = match &self.webpki {
            Some(webpki) => webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .err()
                .map(|e| e.to_string()),
            None => Some(NO_ROOTS.to_owned()),
        };
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(Seen {
            leaf: end_entity.clone().into_owned(),
            chain_len: 1 + intermediates.len(),
            verify_error,
        });
        // Accepted on purpose: the error is reported as a finding, and the
        // connection is dropped right after the handshake.
        Ok(ServerCertVerified::assertion())
    }

    // The handshake signature is still checked for real: a server that
    // cannot prove it holds the key is not the one whose chain we report.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Connects to `host:port`, sends `server_name` as SNI, and reads the chain
/// presented, verified against the system roots plus `ca_file`. Resolution,
/// connect and handshake together are bounded by `timeout`.
pub async fn inspect(
    host: &str,
    port: u16,
    server_name: &str,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<CertFacts, ConnectProblem> {
    let roots = trust_roots(ca_file).await.map_err(ConnectProblem::Config)?;
    let name = ServerName::try_from(bare_host(server_name).to_owned())
        .map_err(|e| ConnectProblem::Config(format!("invalid server name {server_name:?}: {e}")))?;
    let recorder = Arc::new(Recorder::new(roots));
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectProblem::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    tokio::time::timeout(timeout, handshake(host, port, name, config))
        .await
        .map_err(|_| ConnectProblem::Timeout)??;
    let seen = recorder.take().ok_or_else(|| {
        ConnectProblem::Handshake("the server presented no certificate".to_owned())
    })?;
    facts(seen)
}

/// `[::1]` as written in a URL is `::1` to the resolver and to SNI.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

async fn handshake(
    host: &str,
    port: u16,
    name: ServerName<'static>,
    config: ClientConfig,
) -> Result<(), ConnectProblem> {
    let tcp = connect(bare_host(host), port).await?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map(drop)
        .map_err(handshake_problem)
}

/// Tries every address the name resolves to, as browsers do.
async fn connect(host: &str, port: u16) -> Result<TcpStream, ConnectProblem> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ConnectProblem::Resolve(format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            ConnectProblem::Refused("connection refused".to_owned())
        }
        Some(e) => ConnectProblem::Refused(format!("cannot connect: {e}")),
        None => ConnectProblem::Resolve(format!("{host} resolves to no address")),
    })
}

fn handshake_problem(e: io::Error) -> ConnectProblem {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let text = match tls {
        // Bytes that are not TLS records at all: usually plain HTTP or
        // another protocol on the port.
        Some(err @ rustls::Error::InvalidMessage(_)) => {
            format!("{err} (is something other than TLS listening?)")
        }
        Some(err) => err.to_string(),
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the handshake".to_owned()
        }
        None => e.to_string(),
    };
    ConnectProblem::Handshake(text)
}

fn facts(seen: Seen) -> Result<CertFacts, ConnectProblem> {
    let (subject, names, issuer, not_before, not_after) =
        cert::parse_leaf(&seen.leaf).map_err(ConnectProblem::Handshake)?;
    Ok(CertFacts {
        subject,
        names,
        issuer,
        not_before,
        not_after,
        chain_len: seen.chain_len,
        verify_error: seen.verify_error,
    })
}

/// A `tls` watcher's run: connection problems are one transient
/// `unreachable` finding; otherwise the certificate's findings.
pub async fn check(spec: &TlsSpec, now: DateTime<Utc>, timeout: Duration) -> CheckResult {
    let ca_file = spec.cert.ca_file.as_deref();
    match inspect(&spec.host, spec.port, &spec.server_name, ca_file, timeout).await {
        Ok(facts) => Ok(cert_verdict(
            &facts,
            &spec.server_name,
            spec.port,
            &spec.cert,
            now,
        )),
        Err(ConnectProblem::Config(reason)) => Err(CheckFailure::new(reason)),
        Err(problem) => Ok(unreachable_verdict(
            &spec.host, spec.port, &problem, timeout,
        )),
    }
}

/// The verdict on a certificate read from `host:port`.
pub fn cert_verdict(
    facts: &CertFacts,
    host: &str,
    port: u16,
    policy: &CertPolicy,
    now: DateTime<Utc>,
) -> Verdict {
    Verdict {
        findings: cert::findings(facts, host, port, policy, now),
        status: cert::status_line(facts, now),
        facts: serde_json::to_value(facts).unwrap_or_default(),
    }
}

/// One transient `unreachable` finding: a refused or silent port can be a
/// blip (a restart), so it pages only after consecutive runs show it.
pub fn unreachable_verdict(
    host: &str,
    port: u16,
    problem: &ConnectProblem,
    timeout: Duration,
) -> Verdict {
    let what = match problem {
        ConnectProblem::Timeout => {
            format!("no answer within {}", humantime::format_duration(timeout))
        }
        other => other.to_string(),
    };
    let hint = match problem {
        ConnectProblem::Refused(_) => " — is the server running and listening on this port?",
        ConnectProblem::Timeout => " — check the server and any firewall in between",
        ConnectProblem::Resolve(_) => " — check the domain's DNS and registration",
        ConnectProblem::Handshake(_) | ConnectProblem::Config(_) => "",
    };
    let details = json!({ "host": host, "port": port, "error": what });
    Verdict {
        findings: vec![Finding {
            code: "unreachable".to_owned(),
            level: Level::Critical,
            transient: true,
            summary: format!("{host}:{port}: {what}{hint}"),
            details: details.clone(),
        }],
        status: format!("unreachable: {what}"),
        facts: details,
    }
}
