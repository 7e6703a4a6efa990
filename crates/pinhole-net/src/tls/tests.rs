use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::testca::{self, TestCerts};
use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pinhole-tls-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn certs(&self, sub: &str) -> TestCerts {
        testca::generate(&self.0.join(sub), &names()).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names() -> Vec<String> {
    vec!["127.0.0.1".to_owned(), "mpr.pinhole.test".to_owned()]
}

/// What the server saw of one connection: the negotiated version, or the
/// handshake error.
type Accepted = Result<ProtocolVersion, std::io::Error>;

/// Accepts connections forever, each with the config current at its
/// accept, and echoes what each sends.
async fn serve(tls: Arc<ServerTls>) -> (SocketAddr, mpsc::UnboundedReceiver<Accepted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = TlsAcceptor::from(tls.config());
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut stream = match acceptor.accept(tcp).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let version = stream.get_ref().1.protocol_version();
                let _ = tx.send(version.ok_or_else(|| std::io::Error::other("no version")));
                let mut buf = [0u8; 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn connect(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = server_name("127.0.0.1").unwrap();
    timeout(WAIT, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// Sends `bytes` and reads them back; an error or EOF before all of them
/// came back is an error.
async fn echo(stream: &mut TlsStream<TcpStream>, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await?;
    let mut back = vec![0u8; bytes.len()];
    timeout(WAIT, stream.read_exact(&mut back))
        .await
        .map_err(|_| std::io::Error::other("echo timed out"))??;
    assert_eq!(back, bytes);
    Ok(())
}

/// Connects and echoes once: the client's negotiated version on success.
async fn connect_echo(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
) -> std::io::Result<ProtocolVersion> {
    let mut stream = connect(config, addr).await?;
    // TLS 1.3: the server checks a client certificate after the client
    // finished, so a refused client learns it at its first read.
    echo(&mut stream, b"INVITE sip:bob@example.com SIP/2.0\r\n").await?;
    stream
        .get_ref()
        .1
        .protocol_version()
        .ok_or_else(|| std::io::Error::other("no version"))
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Accepted>) -> Accepted {
    timeout(WAIT, rx.recv()).await.unwrap().unwrap()
}

fn roots(ca: &Path) -> RootCertStore {
    load_roots(ca).unwrap()
}

fn tls12_client(ca: &Path) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth();
    Arc::new(config)
}

#[tokio::test]
async fn tls13_handshake_and_echo() {
    let dir = TempDir::new();
    let certs = dir.certs("a");
    let server = ServerTls::load(&certs.mpr_cert, &certs.mpr_key, None, false).unwrap();
    let (addr, mut accepted) = serve(Arc::new(server)).await;
    let client = ClientTls::load(&certs.ca, None).unwrap();

    let version = connect_echo(client.config(), addr).await.unwrap();
    assert_eq!(version, ProtocolVersion::TLSv1_3);
    assert_eq!(next(&mut accepted).await.unwrap(), ProtocolVersion::TLSv1_3);
}

#[tokio::test]
async fn tls12_only_client_completes() {
    let dir = TempDir::new();
    let certs = dir.certs("a");
    let server = ServerTls::load(&certs.mpr_cert, &certs.mpr_key, None, false).unwrap();
    let (addr, mut accepted) = serve(Arc::new(server)).await;

    let version = connect_echo(tls12_client(&certs.ca), addr).await.unwrap();
    assert_eq!(version, ProtocolVersion::TLSv1_2);
    assert_eq!(next(&mut accepted).await.unwrap(), ProtocolVersion::TLSv1_2);
}

#[tokio::test]
async fn client_trusting_another_ca_fails() {
    let dir = TempDir::new();
    let certs = dir.certs("a");
    let other = dir.certs("b");
    let server = ServerTls::load(&certs.mpr_cert, &certs.mpr_key, None, false).unwrap();
    let (addr, mut accepted) = serve(Arc::new(server)).await;

    let client = ClientTls::load(&other.ca, None).unwrap();
    let err = connect(client.config(), addr).await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(next(&mut accepted).await.is_err());
}

#[tokio::test]
async fn wrong_server_name_fails() {
    let dir = TempDir::new();
    // The certificate names only a DNS name; the client asks for 127.0.0.1.
    let certs = testca::generate(&dir.0, &["mpr.pinhole.test".to_owned()]).unwrap();
    let server = ServerTls::load(&certs.mpr_cert, &certs.mpr_key, None, false).unwrap();
    let (addr, _accepted) = serve(Arc::new(server)).await;

    let client = ClientTls::load(&certs.ca, None).unwrap();
    assert!(connect(client.config(), addr).await.is_err());
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let dir = TempDir::new();
    let certs = dir.certs("a");
    let other = dir.certs("b");
    let server = ServerTls::load(&certs.mpr_cert, &certs.mpr_key, Some(&certs.ca), true).unwrap();
    let (addr, mut accepted) = serve(Arc::new(server)).await;

    // No client certificate.
    let anonymous = ClientTls::load(&certs.ca, None).unwrap();
    assert!(connect_echo(anonymous.config(), addr).await.is_err());
    assert!(next(&mut accepted).await.is_err());

    // The APS's certificate, signed by the CA.
    let aps = ClientTls::load(&certs.ca, Some((&certs.aps_cert, &certs.aps_key))).unwrap();
    assert_eq!(
        connect_echo(aps.config(), addr).await.unwrap(),
        ProtocolVersion::TLSv1_3
    );
    assert!(next(&mut accepted).await.is_ok());

    // A client certificate from another CA.
    let stranger = ClientTls::load(&certs.ca, Some((&other.aps_cert, &other.aps_key))).unwrap();
    assert!(connect_echo(stranger.config(), addr).await.is_err());
    assert!(next(&mut accepted).await.is_err());
}

#[tokio::test]
async fn optional_client_certificate_is_verified_when_offered() {
    let dir = TempDir::new();
    let certs = dir.certs("a");
    let other = dir.certs("b");
    let server = ServerTls::load(&certs.mpr_cert, &certs.mpr_key, Some(&certs.ca), false).unwrap();
    let (addr, mut accepted) = serve(Arc::new(server)).await;

    let anonymous = ClientTls::load(&certs.ca, None).unwrap();
    connect_echo(anonymous.config(), addr).await.unwrap();
    assert!(next(&mut accepted).await.is_ok());

    let aps = ClientTls::load(&certs.ca, Some((&certs.aps_cert, &certs.aps_key))).unwrap();
    connect_echo(aps.config(), addr).await.unwrap();
    assert!(next(&mut accepted).await.is_ok());

    let stranger = ClientTls::load(&certs.ca, Some((&other.aps_cert, &other.aps_key))).unwrap();
    assert!(connect_echo(stranger.config(), addr).await.is_err());
    assert!(next(&mut accepted).await.is_err());
}

fn copy_server_files(from: &TestCerts, to: &TestCerts) {
    std::fs::copy(&from.mpr_key, &to.mpr_key).unwrap();
    std::fs::copy(&from.mpr_cert, &to.mpr_cert).unwrap();
}

#[tokio::test]
async fn reload_swaps_the_certificate_for_new_handshakes_only() {
    let dir = TempDir::new();
    let live = dir.certs("live"); // the files the server is configured with
    let old = dir.certs("old");
    let new = dir.certs("new");
    copy_server_files(&old, &live);
    let server = Arc::new(ServerTls::load(&live.mpr_cert, &live.mpr_key, None, false).unwrap());
    let (addr, _accepted) = serve(Arc::clone(&server)).await;
    let trusts_old = ClientTls::load(&old.ca, None).unwrap();
    let trusts_new = ClientTls::load(&new.ca, None).unwrap();

    let mut open = connect(trusts_old.config(), addr).await.unwrap();
    echo(&mut open, b"before").await.unwrap();
    assert!(connect(trusts_new.config(), addr).await.is_err());

    copy_server_files(&new, &live);
    server.reload().unwrap();

    connect_echo(trusts_new.config(), addr).await.unwrap();
    assert!(connect(trusts_old.config(), addr).await.is_err());
    // The connection made before the reload is untouched.
    echo(&mut open, b"after the reload").await.unwrap();

    // A broken key file: the reload fails and the current config stays.
    std::fs::write(
        &live.mpr_key,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = server.reload().unwrap_err();
    assert_eq!(err.kind(), "bad_cert_key", "{err}");
    connect_echo(trusts_new.config(), addr).await.unwrap();
    echo(&mut open, b"still").await.unwrap();

    // Garbage that is not PEM at all.
    std::fs::write(&live.mpr_key, "garbage").unwrap();
    assert_eq!(server.reload().unwrap_err().kind(), "no_private_key");
    connect_echo(trusts_new.config(), addr).await.unwrap();
}

#[tokio::test]
async fn reload_swaps_the_client_ca() {
    let dir = TempDir::new();
    let srv = dir.certs("srv"); // the server's own certificate, never replaced
    let old = dir.certs("old");
    let new = dir.certs("new");
    let client_ca = dir.0.join("client-ca.pem");
    std::fs::copy(&old.ca, &client_ca).unwrap();
    let server =
        Arc::new(ServerTls::load(&srv.mpr_cert, &srv.mpr_key, Some(&client_ca), true).unwrap());
    let (addr, _accepted) = serve(Arc::clone(&server)).await;
    let old_aps = ClientTls::load(&srv.ca, Some((&old.aps_cert, &old.aps_key))).unwrap();
    let new_aps = ClientTls::load(&srv.ca, Some((&new.aps_cert, &new.aps_key))).unwrap();

    connect_echo(old_aps.config(), addr).await.unwrap();
    assert!(connect_echo(new_aps.config(), addr).await.is_err());

    std::fs::copy(&new.ca, &client_ca).unwrap();
    server.reload().unwrap();
    connect_echo(new_aps.config(), addr).await.unwrap();
    assert!(connect_echo(old_aps.config(), addr).await.is_err());
}

#[test]
fn load_errors_name_the_file() {
    let dir = TempDir::new();
    let certs = dir.certs("a");
    let missing = dir.0.join("missing.pem");

    let err = ServerTls::load(&missing, &certs.mpr_key, None, false).unwrap_err();
    assert!(
        matches!(&err, TlsError::Read { path, .. } if *path == missing),
        "{err:?}"
    );
    assert_eq!(err.kind(), "read");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    // A key file where a certificate should be: PEM, but no CERTIFICATE.
    let err = ServerTls::load(&certs.mpr_key, &certs.mpr_key, None, false).unwrap_err();
    assert!(
        matches!(&err, TlsError::NoCertificate { path } if *path == certs.mpr_key),
        "{err:?}"
    );
    assert_eq!(err.kind(), "no_certificate");
    assert!(err.to_string().contains("mpr.key"), "{err}");

    // A certificate where the key should be.
    let err = ServerTls::load(&certs.mpr_cert, &certs.mpr_cert, None, false).unwrap_err();
    assert!(
        matches!(&err, TlsError::NoPrivateKey { path } if *path == certs.mpr_cert),
        "{err:?}"
    );
    assert_eq!(err.kind(), "no_private_key");
    assert!(err.to_string().contains("mpr.pem"), "{err}");

    // The same through the client side.
    let err = ClientTls::load(&missing, None).unwrap_err();
    assert_eq!(err.kind(), "read");
    let err = ClientTls::load(&certs.ca_key, None).unwrap_err();
    assert_eq!(err.kind(), "no_certificate");
    let err = ClientTls::load(&certs.ca, Some((&certs.aps_cert, &certs.aps_cert))).unwrap_err();
    assert_eq!(err.kind(), "no_private_key");

    // A key that is not the certificate's.
    let err = ServerTls::load(&certs.mpr_cert, &certs.aps_key, None, false).unwrap_err();
    assert_eq!(err.kind(), "bad_cert_key", "{err}");
    assert!(err.to_string().contains("mpr.pem") && err.to_string().contains("aps.key"));

    // Broken PEM framing.
    let broken = dir.0.join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let err = ClientTls::load(&broken, None).unwrap_err();
    assert_eq!(err.kind(), "pem", "{err}");
    assert!(err.to_string().contains("broken.pem"), "{err}");

    // Mutual TLS needs a CA to check clients against.
    let err = ServerTls::load(&certs.mpr_cert, &certs.mpr_key, None, true).unwrap_err();
    assert_eq!(err.kind(), "no_client_ca");
}

#[test]
fn server_names() {
    assert_eq!(
        server_name("127.0.0.1").unwrap(),
        ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
    );
    assert_eq!(
        server_name("[::1]").unwrap(),
        ServerName::IpAddress(std::net::Ipv6Addr::LOCALHOST.into())
    );
    assert_eq!(server_name("::1").unwrap(), server_name("[::1]").unwrap());
    assert!(matches!(
        server_name("mpr.example.com").unwrap(),
        ServerName::DnsName(_)
    ));
    for bad in ["", "not a name", "mpr..example", "[mpr.example"] {
        let err = server_name(bad).unwrap_err();
        assert_eq!(err.kind(), "bad_server_name", "{bad:?}");
    }
}

#[cfg(unix)]
#[test]
fn generated_files_and_key_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let certs = dir.certs("a");
    for key in [&certs.ca_key, &certs.mpr_key, &certs.aps_key] {
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    for cert in [&certs.ca, &certs.mpr_cert, &certs.aps_cert] {
        assert!(!load_certs(cert).unwrap().is_empty());
    }
    assert_eq!(certs.mpr_cert, dir.0.join("a/mpr.pem"));
    // Generating again replaces the files (a new CA), keys still private.
    let again = dir.certs("a");
    assert_eq!(again, certs);
    let mode = std::fs::metadata(&again.mpr_key)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn in_memory_certificates_have_the_names_and_uses_asked_for() {
    use rustls::client::danger::ServerCertVerifier;
    let pem = testca::generate_in_memory(&names()).unwrap();
    // Parse with rustls's verifier: the server certificate is valid for
    // both names and for server auth only; the client one for client auth.
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.ca_cert.as_bytes()).unwrap())
        .unwrap();
    let roots = Arc::new(roots);
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), provider())
            .build()
            .unwrap();
    let mpr = CertificateDer::from_pem_slice(pem.mpr_cert.as_bytes()).unwrap();
    let aps = CertificateDer::from_pem_slice(pem.aps_cert.as_bytes()).unwrap();
    let now = rustls_pki_types::UnixTime::now();
    for name in ["127.0.0.1", "mpr.pinhole.test"] {
        verifier
            .verify_server_cert(&mpr, &[], &server_name(name).unwrap(), &[], now)
            .unwrap();
    }
    assert!(
        verifier
            .verify_server_cert(&mpr, &[], &server_name("other.test").unwrap(), &[], now)
            .is_err()
    );
    // The APS certificate is not a server certificate (EKU clientAuth).
    assert!(
        verifier
            .verify_server_cert(&aps, &[], &server_name("127.0.0.1").unwrap(), &[], now)
            .is_err()
    );
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .unwrap();
    client_verifier.verify_client_cert(&aps, &[], now).unwrap();
    assert!(client_verifier.verify_client_cert(&mpr, &[], now).is_err());
    // Valid now, and not for long: 30 days from now it has expired.
    let later = rustls_pki_types::UnixTime::since_unix_epoch(
        Duration::from_secs(now.as_secs()) + Duration::from_secs(31 * 24 * 3600),
    );
    assert!(
        client_verifier
            .verify_client_cert(&aps, &[], later)
            .is_err()
    );
    // Keys stay out of Debug output.
    assert!(!format!("{pem:?}").contains("PRIVATE KEY"));
    // A name that is neither an IP address nor a DNS name is refused.
    let err = testca::generate_in_memory(&["bad name!".to_owned()]).unwrap_err();
    assert_eq!(err.kind(), "bad_server_name");
}
