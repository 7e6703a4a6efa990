//! A test CA and the MPR's and an APS's certificates, made with rcgen at
//! test or demo time.
//!
//! Nothing generated here is checked in, so nothing in the repository
//! expires: the certificates are valid from a day ago (clock skew between
//! hosts) to 30 days from now. Keys are ECDSA P-256.
//!
//! | file | what |
//! | --- | --- |
//! | `ca.pem`, `ca.key` | the CA, CN `pinhole test CA` |
//! | `mpr.pem`, `mpr.key` | the MPR's server certificate, signed by the CA: one SAN per name (IP literals as IP SANs, others as DNS names), EKU serverAuth |
//! | `aps.pem`, `aps.key` | an APS's client certificate, signed by the CA: CN `pinhole-aps`, EKU clientAuth |

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

use super::TlsError;

/// How long before now the certificates start: clock skew between hosts.
const BACKDATE: Duration = Duration::from_secs(24 * 3600);
/// How long after now they end.
const LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// The files [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCerts {
    /// `ca.pem`: the CA certificate (the APS's trust anchor, and the MPR's
    /// client CA for mutual TLS).
    pub ca: PathBuf,
    /// `ca.key`: the CA's private key.
    pub ca_key: PathBuf,
    /// `mpr.pem`: the MPR's server certificate.
    pub mpr_cert: PathBuf,
    /// `mpr.key`: its private key.
    pub mpr_key: PathBuf,
    /// `aps.pem`: the APS's client certificate.
    pub aps_cert: PathBuf,
    /// `aps.key`: its private key.
    pub aps_key: PathBuf,
}

/// The same certificates and keys as PEM text, from [`generate_in_memory`].
#[derive(Clone, PartialEq, Eq)]
pub struct TestCertsPem {
    /// The CA certificate.
    pub ca_cert: String,
    /// The CA's private key (PKCS#8).
    pub ca_key: String,
    /// The MPR's server certificate.
    pub mpr_cert: String,
    /// Its private key (PKCS#8).
    pub mpr_key: String,
    /// The APS's client certificate.
    pub aps_cert: String,
    /// Its private key (PKCS#8).
    pub aps_key: String,
}

impl std::fmt::Debug for TestCertsPem {
    // Test keys, but keys: a stray `{:?}` in a log must not print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCertsPem").finish_non_exhaustive()
    }
}

/// Makes a CA, a server certificate for `mpr_names` and a client
/// certificate, all in memory. A name that is neither an IP address nor a
/// valid DNS name is [`TlsError::BadServerName`]: no client could match it.
pub fn generate_in_memory(mpr_names: &[String]) -> Result<TestCertsPem, TlsError> {
    // rcgen takes any ASCII as a DNS name; check with the client's parser.
    for name in mpr_names {
        super::server_name(name)?;
    }
    let now = SystemTime::now();
    let not_before = datetime(now.checked_sub(BACKDATE).unwrap_or(now));
    let not_after = datetime(now.checked_add(LIFETIME).unwrap_or(now));

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pinhole test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    // `new` makes IP SANs of IP literals and DNS SANs of the rest.
    let mut mpr_params = CertificateParams::new(mpr_names.to_vec())?;
    mpr_params.distinguished_name = rcgen::DistinguishedName::new();
    mpr_params
        .distinguished_name
        .push(DnType::CommonName, "pinhole-mpr");
    mpr_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    mpr_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    mpr_params.use_authority_key_identifier_extension = true;
    mpr_params.not_before = not_before;
    mpr_params.not_after = not_after;
    let mpr_key = KeyPair::generate()?;
    let mpr_cert = mpr_params.signed_by(&mpr_key, &issuer)?;

    let mut aps_params = CertificateParams::default();
    aps_params.distinguished_name = rcgen::DistinguishedName::new();
    aps_params
        .distinguished_name
        .push(DnType::CommonName, "pinhole-aps");
    aps_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    aps_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    aps_params.use_authority_key_identifier_extension = true;
    aps_params.not_before = not_before;
    aps_params.not_after = not_after;
    let aps_key = KeyPair::generate()?;
    let aps_cert = aps_params.signed_by(&aps_key, &issuer)?;

    Ok(TestCertsPem {
        ca_cert: ca_cert.pem(),
        ca_key: ca_pem,
        mpr_cert: mpr_cert.pem(),
        mpr_key: mpr_key.serialize_pem(),
        aps_cert: aps_cert.pem(),
        aps_key: aps_key.serialize_pem(),
    })
}

/// Makes the certificates of [`generate_in_memory`] (same errors) and writes them into
/// `dir` (created if missing; files of the same names are replaced). Key
/// files are mode 0600 on unix.
///
/// Each file is written beside its final name and renamed into place, so
/// a daemon reloading meanwhile reads the old file or the new one, never
/// half of one (it may still pair an old certificate with a new key; that
/// reload fails and the old config stays).
pub fn generate(dir: &Path, mpr_names: &[String]) -> Result<TestCerts, TlsError> {
    let pem = generate_in_memory(mpr_names)?;
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let certs = TestCerts {
        ca: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        mpr_cert: dir.join("mpr.pem"),
        mpr_key: dir.join("mpr.key"),
        aps_cert: dir.join("aps.pem"),
        aps_key: dir.join("aps.key"),
    };
    write(&certs.ca, &pem.ca_cert, false)?;
    write(&certs.ca_key, &pem.ca_key, true)?;
    // Key before certificate: a reload between the two fails (mismatch)
    // rather than serving anything unexpected.
    write(&certs.mpr_key, &pem.mpr_key, true)?;
    write(&certs.mpr_cert, &pem.mpr_cert, false)?;
    write(&certs.aps_key, &pem.aps_key, true)?;
    write(&certs.aps_cert, &pem.aps_cert, false)?;
    Ok(certs)
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        // Created private, never readable by others even for a moment.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(err)?;
    #[cfg(unix)]
    if secret {
        // `mode` applies only to a new file; a stale `.tmp` keeps its own.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)
}

/// `SystemTime` as rcgen's date type; a clock before 1970 (or past the
/// year 9999) is clamped, which only matters on a broken clock.
fn datetime(t: SystemTime) -> OffsetDateTime {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
