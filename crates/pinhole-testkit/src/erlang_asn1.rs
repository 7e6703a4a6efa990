//! A second, independent oracle for the H.323 ALG's aligned-PER walker:
//! Erlang/OTP's `asn1` compiles the ITU modules (H.225.0 v6, H.235, H.245
//! v13, from `tests/corpus/asn1`) to an aligned-PER codec, and the filter
//! `tools/h323-erlang/h323_oracle.erl` decodes a PDU with it and reports
//! every unicast IPv4/IPv6 transport address in encoding order, with the
//! ASN.1 field that holds it, plus a hash of the decoded value with those
//! addresses masked ([`Report::norm`]).
//!
//! Nested PDUs are decoded in place and their addresses reported where they
//! stand: `fastStart` elements (`OpenLogicalChannel`), `h245Control` and
//! `parallelH245Control` elements (`MultimediaSystemControlMessage`).
//!
//! ```no_run
//! use pinhole_testkit::erlang_asn1::{Kind, Oracle, available};
//!
//! if !available() {
//!     eprintln!("skipped: erl is not installed");
//!     return;
//! }
//! let mut oracle = Oracle::start().unwrap(); // compiles once, cached
//! let report = oracle.inspect(Kind::H245, &[0x20, 0x80]).unwrap();
//! assert!(report.addresses.is_empty());
//! ```
//!
//! Needs `erl` and `escript` (Debian `erlang-base`) and the `asn1` and
//! `compiler` applications (`erlang-asn1`). The codec is compiled (about 20
//! seconds) once into a cache folder keyed by a hash of the sources and of
//! the `erl` launcher: `$PINHOLE_ERLANG_CACHE`, or else
//! `pinhole-erlang-asn1` in the system's temporary folder. A build goes to a
//! private folder renamed into place, so concurrent test processes never see
//! half a build.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

/// The PDU type a byte string holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// H.225.0 `H323-UserInformation`: the Q.931 User-user information
    /// element's data after its protocol discriminator (see
    /// [`user_information`]).
    UserInformation,
    /// H.225.0 `RasMessage`.
    Ras,
    /// H.245 `MultimediaSystemControlMessage` (a TPKT payload on an H.245
    /// channel, or an `h245Control` element).
    H245,
    /// H.245 `OpenLogicalChannel` (one `fastStart` element).
    OpenLogicalChannel,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Self::UserInformation => "uuie",
            Self::Ras => "ras",
            Self::H245 => "h245",
            Self::OpenLogicalChannel => "olc",
        }
    }
}

/// One unicast IPv4/IPv6 transport address in a decoded PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The ASN.1 identifier of the component whose type is the
    /// `TransportAddress` (for an element of a `SEQUENCE OF`, that field):
    /// `h245Address`, `sourceCallSignalAddress`, `mediaChannel`,
    /// `callSignalAddress`, `transportID`, ...
    pub field: String,
    /// The dotted chain of identifiers from the PDU down to that component,
    /// an element of a `SEQUENCE OF` as `name[i]`, nested PDUs included,
    /// e.g. `h323-uu-pdu.h323-message-body.setup.fastStart[1].
    /// reverseLogicalChannelParameters.multiplexParameters.
    /// h2250LogicalChannelParameters.mediaChannel`.
    pub path: String,
    /// H.225.0 `ip`, H.245 `network`.
    pub ip: IpAddr,
    /// H.225.0 `port`, H.245 `tsapIdentifier`.
    pub port: u16,
}

/// What the oracle made of a PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Every unicast IPv4 (`ipAddress`, `iPAddress`) and IPv6
    /// (`ip6Address`, `iP6Address`) transport address, in encoding order;
    /// not `ipSourceRoute`, IPX, multicast, NSAP, NetBIOS or non-standard.
    pub addresses: Vec<Found>,
    /// 32 hex digits: a hash of the decoded value (nested PDUs decoded in
    /// place) with the ip and port of every address in
    /// [`addresses`](Self::addresses) masked. Equal for two PDUs exactly
    /// when their decoded values differ in nothing but those addresses.
    /// What a decoder drops is not in it: padding bits, and extension
    /// additions unknown to these module versions; compare
    /// [`reencodes_identically`](Self::reencodes_identically) too.
    pub norm: String,
    /// Whether re-encoding each decoded value (the PDU and every nested PDU)
    /// gives back its bytes. Real encoders built on older module versions
    /// write shorter extension bitmaps, so `false` is common and no error.
    pub reencodes_identically: bool,
    /// Where re-encoding differed: `.` for the PDU itself, else the path of
    /// the nested PDU. Empty when [`reencodes_identically`](Self::reencodes_identically).
    pub reencode_differs: Vec<String>,
}

/// Whether `erl` and `escript` are on the `PATH` (tests skip, saying so,
/// where they are not).
pub fn available() -> bool {
    which("erl").is_some() && which("escript").is_some()
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `tools/h323-erlang` in this repository.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/h323-erlang")
}

/// The compiled codec and filter (`.beam` files), built on first use and
/// cached; later calls in the process return the same answer.
pub fn codec_dir() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

const SOURCES: [&str; 3] = [
    "h225/H323-MESSAGES-h2250v6.asn",
    "h235/H235-SECURITY-MESSAGES.asn",
    "h245/MULTIMEDIA-SYSTEM-CONTROL-h245v13.asn",
];
const STAMP: &str = "complete";

fn build() -> Result<PathBuf, String> {
    let tools = tools_dir();
    let asn1 = crate::corpus::shared_dir().join("asn1");
    let erl = which("erl").ok_or("erl is not on the PATH")?;
    let mut key = Fnv::new();
    for path in [tools.join("build.escript"), tools.join("h323_oracle.erl")]
        .into_iter()
        .chain(SOURCES.iter().map(|s| asn1.join(s)))
        // The launcher names the runtime's version (erts-x.y.z).
        .chain([std::fs::canonicalize(&erl).unwrap_or(erl)])
    {
        let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        key.write(&bytes);
    }
    let root = std::env::var_os("PINHOLE_ERLANG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("pinhole-erlang-asn1"));
    let dir = root.join(format!("{:016x}", key.finish()));
    if dir.join(STAMP).is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    // Private to this process (a leftover of a dead one with the same id
    // is cleared first).
    let tmp = root.join(format!("{:016x}.tmp-{}", key.finish(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = Command::new("escript")
        .arg(tools.join("build.escript"))
        .arg(&asn1)
        .arg(&tmp)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running escript: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!(
            "building the Erlang codec failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(tmp.join(STAMP), b"").map_err(|e| format!("stamping {}: {e}", tmp.display()))?;
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process won the race: its build is as good as ours.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join(STAMP).is_file() {
            return Err(format!("could not move the build into {}", dir.display()));
        }
    }
    Ok(dir)
}

/// 64-bit FNV-1a: a cache key stable across processes and toolchains.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().chain(&(bytes.len() as u64).to_le_bytes()) {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The running filter (an `erl` child process, killed on drop).
///
/// A failure of the process itself (it died, or answered out of protocol)
/// panics: only the oracle's verdict on a PDU is an `Err`.
#[derive(Debug)]
pub struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    /// Builds the codec if need be ([`codec_dir`]) and starts the filter.
    pub fn start() -> Result<Self, String> {
        let dir = codec_dir()?;
        let mut child = Command::new("erl")
            .args(["-noinput", "-pa"])
            .arg(&dir)
            .args(["-s", "h323_oracle", "main"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting erl: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut oracle = Self {
            child,
            stdin,
            stdout,
        };
        let ready = oracle.read_line();
        if !ready.starts_with("ready ") {
            return Err(format!("the filter did not start: {ready:?}"));
        }
        Ok(oracle)
    }

    /// Decodes `per` as a `kind` PDU: its addresses and norm, or the
    /// decoder's reason for rejecting it (also for a nested PDU, naming
    /// where).
    pub fn inspect(&mut self, kind: Kind, per: &[u8]) -> Result<Report, String> {
        let line = request(kind, per);
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|()| self.stdin.flush())
            .expect("writing to the Erlang filter");
        parse(&self.read_line())
    }

    /// [`inspect`](Self::inspect) for many PDUs, pipelined (the requests
    /// are written by a second thread while the answers are read).
    pub fn inspect_many(&mut self, pdus: &[(Kind, &[u8])]) -> Vec<Result<Report, String>> {
        let Self { stdin, stdout, .. } = self;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut out = std::io::BufWriter::new(&mut *stdin);
                for &(kind, per) in pdus {
                    out.write_all(request(kind, per).as_bytes())
                        .expect("writing to the Erlang filter");
                }
                out.flush().expect("writing to the Erlang filter");
            });
            pdus.iter().map(|_| parse(&read_line(stdout))).collect()
        })
    }

    fn read_line(&mut self) -> String {
        read_line(&mut self.stdout)
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    match stdout.read_line(&mut line) {
        Ok(0) => panic!("the Erlang filter exited"),
        Ok(_) => line.trim_end().to_owned(),
        Err(e) => panic!("reading from the Erlang filter: {e}"),
    }
}

fn request(kind: Kind, per: &[u8]) -> String {
    let mut line = String::with_capacity(per.len() * 2 + 8);
    line.push_str(kind.word());
    line.push(' ');
    for b in per {
        line.push_str(&format!("{b:02x}"));
    }
    line.push('\n');
    line
}

/// One answer line: `ok NORM REENC ADDR*` or `err REASON`.
fn parse(line: &str) -> Result<Report, String> {
    if let Some(reason) = line.strip_prefix("err ") {
        return Err(reason.to_owned());
    }
    let mut words = line
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("the Erlang filter said {line:?}"))
        .split(' ');
    let norm = words.next().expect("a norm").to_owned();
    let reencode_differs: Vec<String> = match words.next().expect("a re-encode flag") {
        "same" => Vec::new(),
        other => other
            .strip_prefix("differs:")
            .unwrap_or_else(|| panic!("a re-encode flag, not {other:?}"))
            .split(',')
            .map(str::to_owned)
            .collect(),
    };
    let addresses = words
        .map(|word| {
            let (path, at) = word
                .split_once('=')
                .unwrap_or_else(|| panic!("an address, not {word:?}"));
            let at: SocketAddr = at
                .parse()
                .unwrap_or_else(|e| panic!("an address, not {word:?}: {e}"));
            let last = path.rsplit('.').next().unwrap_or(path);
            Found {
                field: last.split('[').next().unwrap_or(last).to_owned(),
                path: path.to_owned(),
                ip: at.ip(),
                port: at.port(),
            }
        })
        .collect();
    Ok(Report {
        addresses,
        norm,
        reencodes_identically: reencode_differs.is_empty(),
        reencode_differs,
    })
}

/// The TPKT frames (RFC 1006: `03 00 len16` and the payload) in `bytes`,
/// as payloads; `None` if a header is broken or a frame cut short.
pub fn tpkt_payloads(mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let [3, _, hi, lo, ..] = *bytes else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < 4 || len > bytes.len() {
            return None;
        }
        out.push(&bytes[4..len]);
        bytes = &bytes[len..];
    }
    Some(out)
}

/// The `H323-UserInformation` bytes in a Q.931 message (H.225.0): the data
/// of the User-user information element (0x7E, two-octet length) after its
/// protocol discriminator (0x05).
pub fn user_information(q931: &[u8]) -> Option<&[u8]> {
    if q931.first() != Some(&0x08) {
        return None;
    }
    let call_ref = usize::from(*q931.get(1)? & 0x0f);
    let mut at = 2 + call_ref + 1; // message type
    while at < q931.len() {
        let id = q931[at];
        if id & 0x80 != 0 {
            at += 1;
        } else if id == 0x7e {
            let len = usize::from(u16::from_be_bytes([*q931.get(at + 1)?, *q931.get(at + 2)?]));
            let data = q931.get(at + 3..at + 3 + len)?;
            return match data {
                [0x05, per @ ..] => Some(per),
                _ => None,
            };
        } else {
            at += 2 + usize::from(*q931.get(at + 1)?);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn oracle() -> Option<Oracle> {
        if !available() {
            eprintln!("skipped: erl/escript not on the PATH (Debian erlang-base, erlang-asn1)");
            return None;
        }
        Some(Oracle::start().unwrap())
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The PDUs of a corpus message file, each with its kind.
    fn corpus_pdus(name: &str) -> Vec<(Kind, Vec<u8>)> {
        let path = crate::corpus::shared_dir().join("h323/msg").join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        tpkt_payloads(&bytes)
            .unwrap_or_else(|| panic!("{name}: broken TPKT"))
            .into_iter()
            .map(|payload| match user_information(payload) {
                Some(per) => (Kind::UserInformation, per.to_vec()),
                None => {
                    assert_ne!(payload[0], 0x08, "{name}: Q.931 without User-user data");
                    (Kind::H245, payload.to_vec())
                }
            })
            .collect()
    }

    fn only_pdu(name: &str) -> (Kind, Vec<u8>) {
        let mut pdus = corpus_pdus(name);
        assert_eq!(pdus.len(), 1, "{name}");
        pdus.pop().unwrap()
    }

    /// `(field, "ip:port")` pairs.
    fn addresses(report: &Report) -> Vec<(&str, String)> {
        report
            .addresses
            .iter()
            .map(|f| (f.field.as_str(), SocketAddr::new(f.ip, f.port).to_string()))
            .collect()
    }

    /// Where each found address's ip and port stand in `per`: aligned PER
    /// writes an IPv4/IPv6 transport address as the octet-aligned ip octets
    /// followed by the port's two octets (in a nested PDU too, the OCTET
    /// STRING holding it being octet-aligned). The k-th address with a
    /// given value is taken to be its k-th occurrence, checked to be as
    /// many as there are addresses with that value.
    fn spans(per: &[u8], found: &[Found]) -> Vec<std::ops::Range<usize>> {
        let needle = |f: &Found| {
            let mut bytes = match f.ip {
                IpAddr::V4(ip) => ip.octets().to_vec(),
                IpAddr::V6(ip) => ip.octets().to_vec(),
            };
            bytes.extend(f.port.to_be_bytes());
            bytes
        };
        found
            .iter()
            .enumerate()
            .map(|(n, f)| {
                let needle = needle(f);
                let at: Vec<usize> = per
                    .windows(needle.len())
                    .enumerate()
                    .filter(|(_, w)| *w == needle)
                    .map(|(i, _)| i)
                    .collect();
                let same = found.iter().filter(|g| needle_eq(g, f)).count();
                assert_eq!(at.len(), same, "{f:?} at {at:?}");
                let k = found[..n].iter().filter(|g| needle_eq(g, f)).count();
                at[k]..at[k] + needle.len()
            })
            .collect()
    }

    fn needle_eq(a: &Found, b: &Found) -> bool {
        (a.ip, a.port) == (b.ip, b.port)
    }

    #[test]
    fn erlang_every_corpus_message_decodes() {
        let Some(mut oracle) = oracle() else { return };
        let files = crate::corpus::files("h323/msg", ".tpkt").unwrap();
        assert_eq!(files.len(), 16);
        let mut pdus = 0;
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            for (kind, per) in corpus_pdus(&name) {
                let report = oracle
                    .inspect(kind, &per)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(report.norm.len(), 32, "{name}");
                pdus += 1;
            }
        }
        assert_eq!(pdus, 17);
    }

    #[test]
    fn erlang_addresses_match_the_captures() {
        // The values are tshark's reading of the captures the messages come
        // from (wiki-rtp_example.pcap frames 4, 10, 28, 31, 32;
        // wiki-jul23-fastbusy-...pcap frames 7047, 7069).
        let Some(mut oracle) = oracle() else { return };
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "wiki-rtp_example-f4-setup.tpkt",
                &[
                    ("destCallSignalAddress", "10.1.6.18:1720"),
                    ("sourceCallSignalAddress", "10.1.3.143:32803"),
                ],
            ),
            ("wiki-rtp_example-f6-callProceeding.tpkt", &[]),
            ("wiki-rtp_example-f8-alerting.tpkt", &[]),
            (
                "wiki-rtp_example-f10-connect-h245Address.tpkt",
                &[("h245Address", "10.1.6.18:1232")],
            ),
            (
                "wiki-rtp_example-f28-h245-OLC.tpkt",
                &[("mediaControlChannel", "10.1.3.143:5001")],
            ),
            (
                "wiki-rtp_example-f29-h245-OLC.tpkt",
                &[("mediaControlChannel", "10.1.6.18:2007")],
            ),
            (
                "wiki-rtp_example-f31-h245-OLCAck.tpkt",
                &[
                    ("mediaChannel", "10.1.3.143:5000"),
                    ("mediaControlChannel", "10.1.3.143:5001"),
                ],
            ),
            (
                "wiki-rtp_example-f32-h245-OLCAck.tpkt",
                &[
                    ("mediaChannel", "10.1.6.18:2006"),
                    ("mediaControlChannel", "10.1.6.18:2007"),
                ],
            ),
            (
                "wiki-jul23-f7047-setup-fastStart-tunnelling.tpkt",
                &[
                    ("destCallSignalAddress", "177.168.209.10:1720"),
                    ("sourceCallSignalAddress", "135.16.177.5:31261"),
                    ("mediaControlChannel", "135.16.177.5:17811"),
                    ("mediaChannel", "135.16.177.5:17810"),
                    ("mediaControlChannel", "135.16.177.5:17811"),
                ],
            ),
            (
                "wiki-jul23-f7069-connect-fastStart-h245Address.tpkt",
                &[
                    ("h245Address", "177.168.209.10:58818"),
                    ("mediaChannel", "135.16.170.94:17568"),
                    ("mediaControlChannel", "135.16.170.94:17569"),
                    ("mediaChannel", "135.16.177.5:17810"),
                    ("mediaControlChannel", "135.16.170.94:17569"),
                ],
            ),
            ("wiki-jul23-f14150-releaseComplete.tpkt", &[]),
            ("wiki-jul23-f7636-information.tpkt", &[]),
            ("wiki-jul23-f7084-h245-TCS.tpkt", &[]),
        ];
        for (name, want) in cases {
            let (kind, per) = only_pdu(name);
            let report = oracle.inspect(kind, &per).unwrap();
            let want: Vec<(&str, String)> = want.iter().map(|&(f, a)| (f, a.to_owned())).collect();
            assert_eq!(addresses(&report), want, "{name}");
        }
        // Paths: a fastStart element's addresses stand under it.
        let (kind, per) = only_pdu("wiki-jul23-f7047-setup-fastStart-tunnelling.tpkt");
        let report = oracle.inspect(kind, &per).unwrap();
        let paths: Vec<&str> = report.addresses.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "h323-uu-pdu.h323-message-body.setup.destCallSignalAddress",
                "h323-uu-pdu.h323-message-body.setup.sourceCallSignalAddress",
                "h323-uu-pdu.h323-message-body.setup.fastStart[0].forwardLogicalChannelParameters.multiplexParameters.h2250LogicalChannelParameters.mediaControlChannel",
                "h323-uu-pdu.h323-message-body.setup.fastStart[1].reverseLogicalChannelParameters.multiplexParameters.h2250LogicalChannelParameters.mediaChannel",
                "h323-uu-pdu.h323-message-body.setup.fastStart[1].reverseLogicalChannelParameters.multiplexParameters.h2250LogicalChannelParameters.mediaControlChannel",
            ]
        );
        // This Cisco Setup's encoder knew an older H.225.0 (a shorter
        // extension bitmap): decodes, but does not re-encode identically.
        assert_eq!(report.reencode_differs, ["."]);
        // The fastStart elements on their own: `02` (two elements), `13`
        // (19 octets), the first, `1e` (30 octets), the second.
        let first = spans(&per, &report.addresses)[2].start - 12;
        assert_eq!(per[first - 2..first], [0x02, 0x13]);
        let olc = oracle
            .inspect(Kind::OpenLogicalChannel, &per[first..first + 19])
            .unwrap();
        assert_eq!(
            addresses(&olc),
            [("mediaControlChannel", "135.16.177.5:17811".to_owned())]
        );
        assert_eq!(per[first + 19], 0x1e);
        let olc = oracle
            .inspect(Kind::OpenLogicalChannel, &per[first + 20..first + 50])
            .unwrap();
        assert_eq!(
            addresses(&olc),
            [
                ("mediaChannel", "135.16.177.5:17810".to_owned()),
                ("mediaControlChannel", "135.16.177.5:17811".to_owned()),
            ]
        );
        assert_eq!(
            olc.addresses[0].path,
            "reverseLogicalChannelParameters.multiplexParameters.h2250LogicalChannelParameters.mediaChannel"
        );
    }

    // Made with the Erlang codec itself (asn1ct encode): a RAS
    // RegistrationRequest with IPv4 and IPv6 callSignalAddress, a rasAddress
    // and a transportID alias; the rtp_example Connect with the frame 31
    // OpenLogicalChannelAck in h245Control; the rtp_example Setup with the
    // frame 28 OpenLogicalChannel in parallelH245Control.
    const RRQ: &str = "0E800006060008914A0006000200C000020106B83020010DB800000000000000000000000106B80100C000020106B700000240040061006C006900630065810700C633640713C40000000000340B0002000100010001000100";
    const CONNECT_H245_CONTROL: &str = "22C0060008914A0003000A01061204D022C0000000000333313069005200F8FDF93ECD9ED6119AB20004762220171D0C001100C0FEF93ECD9ED6119AB20004762220170100010010C001001D011B22C000640480145C00000A01061207D6000A01061207D703000180";
    const SETUP_PARALLEL_H245: &str = "20A8060008914A0004014006006D002E006A0065006D0065006322C00900003D1443616C6C67656E33323320706F67616373616D00000A302E39616C706861340000000A01061206B800F8FDF93ECD9ED6119AB200047622201700D50D800407000A01038F80231100C0FEF93ECD9ED6119AB200047622201701000100010001001501130300003C0C201D800A040001000A01061207D710800100";

    #[test]
    fn erlang_ras_ipv6_and_tunnelled_h245() {
        let Some(mut oracle) = oracle() else { return };
        let rrq = oracle.inspect(Kind::Ras, &hex(RRQ)).unwrap();
        assert_eq!(
            addresses(&rrq),
            [
                ("callSignalAddress", "192.0.2.1:1720".to_owned()),
                ("callSignalAddress", "[2001:db8::1]:1720".to_owned()),
                ("rasAddress", "192.0.2.1:1719".to_owned()),
                ("transportID", "198.51.100.7:5060".to_owned()),
            ]
        );
        assert_eq!(
            rrq.addresses[1].path,
            "registrationRequest.callSignalAddress[1]"
        );
        assert_eq!(
            rrq.addresses[3].path,
            "registrationRequest.terminalAlias[1].transportID"
        );
        assert!(rrq.reencodes_identically);

        let connect = oracle
            .inspect(Kind::UserInformation, &hex(CONNECT_H245_CONTROL))
            .unwrap();
        assert_eq!(
            addresses(&connect),
            [
                ("h245Address", "10.1.6.18:1232".to_owned()),
                ("mediaChannel", "10.1.6.18:2006".to_owned()),
                ("mediaControlChannel", "10.1.6.18:2007".to_owned()),
            ]
        );
        assert!(
            connect.addresses[1]
                .path
                .starts_with("h323-uu-pdu.h245Control[0].response.openLogicalChannelAck.")
        );
        // The tunnelled OLCAck is the capture's, from an older encoder.
        assert_eq!(connect.reencode_differs, ["h323-uu-pdu.h245Control[0]"]);

        let setup = oracle
            .inspect(Kind::UserInformation, &hex(SETUP_PARALLEL_H245))
            .unwrap();
        assert_eq!(
            addresses(&setup),
            [
                ("destCallSignalAddress", "10.1.6.18:1720".to_owned()),
                ("sourceCallSignalAddress", "10.1.3.143:32803".to_owned()),
                ("mediaControlChannel", "10.1.6.18:2007".to_owned()),
            ]
        );
        assert!(setup.addresses[2].path.starts_with(
            "h323-uu-pdu.h323-message-body.setup.parallelH245Control[0].request.openLogicalChannel."
        ));

        // A nested PDU that does not decode makes the whole an error naming it.
        let mut broken = hex(CONNECT_H245_CONTROL);
        let olc_ack = spans(&broken, &connect.addresses)[1].start;
        // The OLCAck's first octet (its CHOICE indexes) sits 8 before: 22 C0 00 64 04 80 14 5C 00 00 then ip.
        broken[olc_ack - 10] = 0xff;
        let err = oracle.inspect(Kind::UserInformation, &broken).unwrap_err();
        assert!(
            err.starts_with("nested h323-uu-pdu.h245Control[0]: "),
            "{err}"
        );
    }

    #[test]
    fn erlang_norm_sees_all_but_the_addresses() {
        let Some(mut oracle) = oracle() else { return };
        for name in [
            "wiki-rtp_example-f4-setup.tpkt",
            "wiki-jul23-f7047-setup-fastStart-tunnelling.tpkt",
            "wiki-jul23-f7069-connect-fastStart-h245Address.tpkt",
            "wiki-rtp_example-f31-h245-OLCAck.tpkt",
        ] {
            let (kind, per) = only_pdu(name);
            let original = oracle.inspect(kind, &per).unwrap();
            let spans = spans(&per, &original.addresses);
            // Any byte of an address flipped: same norm, that one address
            // changed, the others not.
            for (n, range) in spans.iter().enumerate() {
                for at in range.clone() {
                    let mut changed = per.clone();
                    changed[at] ^= 0x5a;
                    let report = oracle.inspect(kind, &changed).unwrap();
                    assert_eq!(report.norm, original.norm, "{name} byte {at}");
                    assert_eq!(report.reencode_differs, original.reencode_differs);
                    assert_eq!(report.addresses.len(), original.addresses.len());
                    for (i, (a, b)) in report.addresses.iter().zip(&original.addresses).enumerate()
                    {
                        assert_eq!(a.field, b.field);
                        assert_eq!(a.path, b.path);
                        assert_eq!(i == n, (a.ip, a.port) != (b.ip, b.port), "{name} byte {at}");
                    }
                }
            }
            // Any other byte flipped: an error, or another norm or
            // re-encoding. The exception is an octet that no decoder reads:
            // the filler of an open type holding an empty encoding (X.691
            // 11.2.1: a NULL extension addition is `01 00`), when the PDU
            // already did not re-encode identically.
            let others: Vec<Vec<u8>> = (0..per.len())
                .filter(|at| !spans.iter().any(|r| r.contains(at)))
                .map(|at| {
                    let mut changed = per.clone();
                    changed[at] ^= 0xff;
                    changed
                })
                .collect();
            let batch: Vec<(Kind, &[u8])> = others.iter().map(|c| (kind, c.as_slice())).collect();
            let mut unseen = Vec::new();
            for (changed, result) in others.iter().zip(oracle.inspect_many(&batch)) {
                if let Ok(report) = result
                    && report.norm == original.norm
                    && report.reencode_differs == original.reencode_differs
                {
                    unseen.push(changed.iter().zip(&per).position(|(a, b)| a != b).unwrap());
                }
            }
            eprintln!(
                "{name}: {} bytes, flips seen by neither norm nor re-encoding: {unseen:?}",
                per.len()
            );
            for &at in &unseen {
                assert_eq!(per[at - 1..=at], [0x01, 0x00], "{name} byte {at}");
                assert!(!original.reencodes_identically, "{name} byte {at}");
            }
        }
    }

    #[test]
    fn erlang_errors_keep_the_filter_going() {
        let Some(mut oracle) = oracle() else { return };
        assert!(oracle.inspect(Kind::H245, &[]).is_err());
        let err = oracle.inspect(Kind::H245, &[0xff]).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        let err = oracle
            .inspect(Kind::H245, &[0x20, 0x80, 0x00, 0x00])
            .unwrap_err();
        assert_eq!(err, "21 bits after the value"); // 16, and 5 of padding
        let msd_ack = oracle.inspect(Kind::H245, &[0x20, 0x80]).unwrap();
        assert!(msd_ack.addresses.is_empty());
        assert!(msd_ack.reencodes_identically);
    }

    #[test]
    // Wall-clock time of a real process: what is measured.
    #[allow(clippy::disallowed_methods)]
    fn erlang_throughput() {
        let Some(mut oracle) = oracle() else { return };
        let (kind, per) = only_pdu("wiki-jul23-f7047-setup-fastStart-tunnelling.tpkt");
        let n = 2000;
        let batch = vec![(kind, per.as_slice()); n];
        oracle.inspect_many(&batch[..200]); // warm up
        let start = Instant::now();
        let results = oracle.inspect_many(&batch);
        let pipelined = n as f64 / start.elapsed().as_secs_f64();
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().is_ok_and(|r| r.addresses.len() == 5))
        );
        let start = Instant::now();
        for _ in 0..n / 4 {
            oracle.inspect(kind, &per).unwrap();
        }
        let one_by_one = (n / 4) as f64 / start.elapsed().as_secs_f64();
        eprintln!(
            "Erlang oracle, the {}-byte Cisco Setup with 2 fastStart elements: {pipelined:.0} lines/s pipelined, {one_by_one:.0} lines/s one at a time",
            per.len()
        );
    }
}
