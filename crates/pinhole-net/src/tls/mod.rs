//! TLS for signaling over TCP (issue 13), with rustls and its ring provider:
//! no OpenSSL, no C build.
//!
//! - [`ServerTls`]: the MPR's server side (and an APS's phone side): its
//!   certificate and key from PEM files named in the config, optionally a
//!   client CA for mutual TLS, and [`ServerTls::reload`] for SIGHUP: new
//!   handshakes get the new certificate, open connections keep theirs.
//! - [`ClientTls`]: the APS toward the MPR: the MPR verified against a CA
//!   file, optionally a client certificate. Mutual TLS only says which APS
//!   connects; the network's credential still authenticates the
//!   Registration.
//! - [`server_name`]: the name the client checks the MPR's certificate
//!   against, an IP literal or a DNS name.
//! - [`testca`]: a test CA and MPR/APS certificates made at test or demo
//!   time, so nothing checked in ever expires.
//!
//! TLS 1.3 and 1.2 only. Every config names its crypto provider
//! ([`rustls::crypto::ring`]), so nothing depends on a process-wide default.
//!
//! # Example
//!
//! ```
//! use pinhole_net::tls::{self, testca, ClientTls, ServerTls};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("pinhole-tls-doc-{}", std::process::id()));
//! let certs = testca::generate(&dir, &["127.0.0.1".to_owned(), "mpr.example".to_owned()])?;
//!
//! // The MPR: its certificate, and mutual TLS with the APS's CA.
//! let server = ServerTls::load(&certs.mpr_cert, &certs.mpr_key, Some(&certs.ca), true)?;
//! // The APS: trusts the test CA, presents its own certificate.
//! let client = ClientTls::load(&certs.ca, Some((&certs.aps_cert, &certs.aps_key)))?;
//!
//! // Each accepted connection takes the current config, so a reload applies
//! // to the next handshake.
//! let _acceptor = tokio_rustls::TlsAcceptor::from(server.config());
//! let _connector = tokio_rustls::TlsConnector::from(client.config());
//! let _name = tls::server_name("127.0.0.1")?;
//!
//! // SIGHUP: read the same files again.
//! server.reload()?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

pub mod testca;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The versions every config allows: TLS 1.3 and 1.2, nothing older.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A TLS configuration that cannot be loaded. Each message names the file.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file could not be written ([`testca::generate`]).
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is not valid PEM.
    #[error("{}: bad PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser found.
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM file holds no `CERTIFICATE` section.
    #[error("{}: no certificate in the PEM file", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file holds no private key section (PKCS#8, PKCS#1 or SEC1).
    #[error("{}: no private key in the PEM file", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused a CA certificate.
    #[error("{}: bad CA certificate: {source}", path.display())]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// rustls refused a certificate chain and key: unparsable, or a key
    /// that does not match the certificate.
    #[error("{} with key {}: {source}", cert.display(), key.display())]
    BadCertKey {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built from the CA file.
    #[error("{}: client CA: {source}", path.display())]
    ClientVerifier {
        /// The client CA file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::server::VerifierBuilderError,
    },
    /// Client certificates are required but no client CA file is named.
    #[error("client certificates are required but no client CA file is configured")]
    NoClientCa,
    /// Not an IP address literal nor a valid DNS name.
    #[error("{name:?} is not an IP address or a DNS name")]
    BadServerName {
        /// The name as given.
        name: String,
    },
    /// rustls refused the protocol versions with the ring provider (an
    /// internal invariant: ring supports both).
    #[error("TLS versions: {0}")]
    Versions(rustls::Error),
    /// rcgen could not make a test certificate ([`testca`]): a name that is
    /// neither an IP address nor a valid DNS name, or a key failure.
    #[error("generating test certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

impl TlsError {
    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Write { .. } => "write",
            Self::Pem { .. } => "pem",
            Self::NoCertificate { .. } => "no_certificate",
            Self::NoPrivateKey { .. } => "no_private_key",
            Self::BadCa { .. } => "bad_ca",
            Self::BadCertKey { .. } => "bad_cert_key",
            Self::ClientVerifier { .. } => "client_verifier",
            Self::NoClientCa => "no_client_ca",
            Self::BadServerName { .. } => "bad_server_name",
            Self::Versions(_) => "versions",
            Self::Generate(_) => "generate",
        }
    }
}

/// The server side's TLS config, from files it can read again.
///
/// Holds the current [`ServerConfig`] behind a lock; [`ServerTls::reload`]
/// builds a new one from the same files and swaps it in. A connection
/// keeps the config it was accepted with, so a reload never touches an
/// open connection (or its calls).
#[derive(Debug)]
pub struct ServerTls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    require_client_cert: bool,
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Loads the certificate chain (`cert`, PEM, leaf first) and its private
    /// key (`key`, PEM).
    ///
    /// With `client_ca`, clients may present a certificate, which must be
    /// signed by that CA; with `require_client_cert` too, they must (mutual
    /// TLS). `require_client_cert` without `client_ca` is
    /// [`TlsError::NoClientCa`].
    pub fn load(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        require_client_cert: bool,
    ) -> Result<Self, TlsError> {
        let config = build_server(cert, key, client_ca, require_client_cert)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            client_ca: client_ca.map(Path::to_owned),
            require_client_cert,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The current config. Take it for each accepted connection
    /// (`TlsAcceptor::from(tls.config())`, an `Arc` clone) so a reload
    /// applies to the next handshake; an acceptor built once keeps the
    /// certificate it was built with.
    pub fn config(&self) -> Arc<ServerConfig> {
        // A poisoned lock still holds a whole Arc: writers only swap it.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the same files again (on SIGHUP) and swaps in the new
    /// certificate, key and client CA for new handshakes. Open connections
    /// are untouched. On error the old config stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build_server(
            &self.cert,
            &self.key,
            self.client_ca.as_deref(),
            self.require_client_cert,
        )?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        Ok(())
    }
}

/// The client side's TLS config: the APS toward the MPR.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// Trusts the CA certificates in `ca` (PEM) for the server and, with
    /// `client_cert` (certificate chain, key; PEM files), presents that
    /// certificate when the server asks. No ALPN.
    pub fn load(ca: &Path, client_cert: Option<(&Path, &Path)>) -> Result<Self, TlsError> {
        let roots = load_roots(ca)?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(TlsError::Versions)?
            .with_root_certificates(roots);
        let config = match client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = load_certs(cert)?;
                let key_der = load_key(key)?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|source| TlsError::BadCertKey {
                        cert: cert.to_owned(),
                        key: key.to_owned(),
                        source,
                    })?
            }
        };
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The config to hand a `tokio_rustls::TlsConnector`.
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }
}

/// The name a client verifies the server's certificate against: an IP
/// address literal (`127.0.0.1`, `::1` or `[::1]`, matched against the
/// certificate's IP SANs) or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    // A bracketed IPv6 literal, as in a URI or `[::1]:5061`'s host part.
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::BadServerName {
        name: host.to_owned(),
    })
}

/// The one provider every config uses, named rather than process-wide.
fn provider() -> Arc<CryptoProvider> {
    // Deprecated since rustls 0.23.48 only because ring has no post-quantum
    // key exchange; the alternative, aws-lc-rs, needs cmake and a long C
    // build. X25519 and the NIST curves remain.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_server(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    require_client_cert: bool,
) -> Result<ServerConfig, TlsError> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::Versions)?;
    let builder = match (client_ca, require_client_cert) {
        (None, true) => return Err(TlsError::NoClientCa),
        (None, false) => builder.with_no_client_auth(),
        (Some(ca), required) => builder.with_client_cert_verifier(client_verifier(ca, required)?),
    };
    builder
        .with_single_cert(chain, key_der)
        .map_err(|source| TlsError::BadCertKey {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })
}

fn client_verifier(ca: &Path, required: bool) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let roots = Arc::new(load_roots(ca)?);
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
    let builder = if required {
        builder
    } else {
        // Verified when offered; a client without one still connects.
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|source| TlsError::ClientVerifier {
        path: ca.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every `CERTIFICATE` section of a PEM file, in order; other sections
/// (a key kept in the same file) are skipped.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key section of a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        source => TlsError::Pem {
            path: path.to_owned(),
            source,
        },
    })
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}
