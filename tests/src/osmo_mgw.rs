//! Runs Osmocom's media gateway, osmo-mgw (Debian package `osmo-mgw`), as
//! a real MGCP gateway that nobody here wrote, and talks raw MGCP to it.
//!
//! [`OsmoMgw::start`] writes a minimal config (MGCP, RTP, VTY and CTRL all
//! on loopback addresses the test picks; log to stderr), starts osmo-mgw in
//! the foreground, waits until it answers an AUEP and kills it on drop.
//! [`OsmoMgwConfig::netns`] runs it inside a network namespace instead
//! (`ip netns exec NS osmo-mgw ...`). [`MgcpClient`] sends one command at a
//! time and parses the answer just enough for a test (code, parameters,
//! SDP): deliberately small raw text, independent of the MGCP parser the
//! ALG uses. `docs/osmo-mgw.md` lists what osmo-mgw accepts and how it
//! forwards RTP.
//!
//! ```no_run
//! use pinhole_tests::osmo_mgw::{MgcpClient, OsmoMgw, endpoint};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let Some(mgw) = OsmoMgw::start(
//!     "127.0.0.41:24270".parse()?,
//!     "127.0.0.41".parse()?,
//!     (43000, 43099),
//! )?
//! else {
//!     return Ok(()); // not installed, not CI: skipped loudly
//! };
//! let mut ca = MgcpClient::bind("127.0.0.42".parse()?, mgw.mgcp_addr())?;
//! let leg = ca.crcx(&endpoint(1), "call1", "sendrecv", Some("127.0.0.42:40000".parse()?))?;
//! println!("send RTP to {:?}", leg.sdp_audio());
//! # Ok(())
//! # }
//! ```

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The environment variable naming the osmo-mgw binary; unset, `osmo-mgw`
/// is looked up on `PATH`.
pub const OSMO_MGW_ENV: &str = "OSMO_MGW";

/// The endpoint domain the generated config sets (`domain mgw`); osmo-mgw
/// rejects endpoint names with any other domain.
pub const DOMAIN: &str = "mgw";

/// How long a fresh osmo-mgw may take to answer its first AUEP.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// How often the harness polls the process while waiting.
const POLL: Duration = Duration::from_millis(20);
/// The notice osmo-mgw logs once its MGCP socket is bound.
const READY_LINE: &str = "Configured for MGCP, listen on";

/// What went wrong running osmo-mgw or talking MGCP to it.
#[derive(Debug, thiserror::Error)]
pub enum OsmoMgwError {
    /// No osmo-mgw binary, and `CI` is set.
    #[error(
        "osmo-mgw not found and CI is set: install the osmo-mgw package (.ci/run does) or set {OSMO_MGW_ENV}"
    )]
    NotFound,
    /// The RTP port range is empty or outside what osmo-mgw accepts.
    #[error("bad RTP port range {0}-{1}: osmo-mgw needs 1024 <= first < last")]
    BadPortRange(u16, u16),
    /// A file, socket or process operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the harness was doing.
        what: &'static str,
        /// The file, binary or address concerned.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// osmo-mgw exited, or did not answer, at start-up.
    #[error("osmo-mgw did not start ({why}); stderr: {stderr}")]
    Start {
        /// Exit status or other reason.
        why: String,
        /// The end of osmo-mgw's stderr.
        stderr: String,
    },
    /// No MGCP response within the retries.
    #[error("no MGCP response from {to} to {verb} {transaction} after {tries} tries")]
    NoResponse {
        /// The gateway.
        to: SocketAddr,
        /// The command.
        verb: String,
        /// Its transaction id.
        transaction: u32,
        /// Sends made.
        tries: u32,
    },
    /// A response that is not MGCP.
    #[error("bad MGCP response: {0}")]
    BadResponse(String),
    /// A response code other than the one expected.
    #[error("{verb} {endpoint}: expected {expected}, got {got}")]
    Unexpected {
        /// The command.
        verb: String,
        /// Its endpoint.
        endpoint: String,
        /// What the caller wanted (e.g. "2xx").
        expected: String,
        /// The response line received.
        got: String,
    },
}

/// The osmo-mgw binary: `$OSMO_MGW` if set, else `osmo-mgw` on `PATH`.
pub fn osmo_mgw_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(OSMO_MGW_ENV) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("osmo-mgw"))
        .find(|p| p.is_file())
}

/// The name of rtpbridge endpoint `n` (1-based) in the config's domain,
/// e.g. `rtpbridge/1@mgw`. osmo-mgw numbers endpoints in hexadecimal:
/// endpoint 10 is `rtpbridge/a@mgw`.
pub fn endpoint(n: u16) -> String {
    format!("rtpbridge/{n:x}@{DOMAIN}")
}

/// The wildcard endpoint: a CRCX to it picks a free endpoint and names it
/// in the response's `Z:` parameter.
pub fn any_endpoint() -> String {
    format!("rtpbridge/*@{DOMAIN}")
}

/// How to run osmo-mgw. [`OsmoMgwConfig::new`] sets the addresses;
/// adjust, then [`start`](Self::start).
#[derive(Clone, Debug)]
pub struct OsmoMgwConfig {
    mgcp_addr: SocketAddr,
    rtp_ip: IpAddr,
    rtp_ports: (u16, u16),
    vty_port: u16,
    endpoints: u16,
    accept_all: bool,
    log_level: String,
    netns: Option<String>,
    probe_auep: bool,
    dir: Option<PathBuf>,
}

impl OsmoMgwConfig {
    /// MGCP on `mgcp_addr`, RTP on `rtp_ip` with ports from
    /// `rtp_ports.0` to `rtp_ports.1` (each connection takes an even RTP
    /// port and the odd RTCP port above it). The VTY listens on
    /// `mgcp_addr`'s IP, port 4243, and CTRL on the same IP, port 4267
    /// (osmo-mgw has no knob for the CTRL port): two gateways at once need
    /// two MGCP IPs.
    pub fn new(mgcp_addr: SocketAddr, rtp_ip: IpAddr, rtp_ports: (u16, u16)) -> Self {
        Self {
            mgcp_addr,
            rtp_ip,
            rtp_ports,
            vty_port: 4243,
            endpoints: 16,
            accept_all: false,
            log_level: "notice".into(),
            netns: None,
            probe_auep: true,
            dir: None,
        }
    }

    /// The VTY's telnet port (default 4243; 0 means the default too).
    pub fn vty_port(mut self, port: u16) -> Self {
        self.vty_port = port;
        self
    }

    /// How many rtpbridge endpoints exist (default 16: `rtpbridge/1@mgw`
    /// to `rtpbridge/10@mgw`, hexadecimal).
    pub fn endpoints(mut self, n: u16) -> Self {
        self.endpoints = n.max(1);
        self
    }

    /// `rtp-accept-all 1`: forward RTP from any source. By default
    /// osmo-mgw drops RTP whose source address and port differ from the
    /// connection's remote (SDP) address.
    pub fn accept_all(mut self, on: bool) -> Self {
        self.accept_all = on;
        self
    }

    /// Log level for every category (`debug`, `info`, `notice` (default),
    /// `error`, `fatal`). `debug` logs every RTP packet.
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = level.into();
        self
    }

    /// Runs osmo-mgw inside network namespace `ns` (`ip netns exec`).
    pub fn netns(mut self, ns: impl Into<String>) -> Self {
        self.netns = Some(ns.into());
        self
    }

    /// Whether [`start`](Self::start) waits for an AUEP answer sent from
    /// the test's own namespace (default true). Turn it off when the MGCP
    /// address is not reachable from there (a namespace without a route
    /// back); start then waits only for osmo-mgw's "listening" log line.
    pub fn probe_auep(mut self, on: bool) -> Self {
        self.probe_auep = on;
        self
    }

    /// Where the config and logs go; emptied first. Default: a fresh
    /// folder under the system temp dir.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The config file text.
    pub fn config_text(&self) -> String {
        let mut c = String::new();
        let ip = self.mgcp_addr.ip();
        let _ = writeln!(c, "! written by pinhole-tests (tests/src/osmo_mgw.rs)");
        let _ = writeln!(c, "log stderr");
        let _ = writeln!(c, " logging filter all 1");
        let _ = writeln!(c, " logging color 0");
        let _ = writeln!(c, " logging print category 1");
        let _ = writeln!(c, " logging print level 1");
        let _ = writeln!(c, " logging timestamp 0");
        let _ = writeln!(c, " logging level set-all {}", self.log_level);
        // The READY_LINE notice is in category lmgcp: keep it visible.
        if matches!(self.log_level.as_str(), "error" | "fatal") {
            let _ = writeln!(c, " logging level lmgcp notice");
        }
        let _ = writeln!(c, "line vty");
        let _ = writeln!(c, " bind {ip} {}", self.vty_port);
        let _ = writeln!(c, "ctrl");
        let _ = writeln!(c, " bind {ip}");
        let _ = writeln!(c, "mgcp");
        let _ = writeln!(c, " domain {DOMAIN}");
        let _ = writeln!(c, " bind ip {ip}");
        let _ = writeln!(c, " bind port {}", self.mgcp_addr.port());
        match self.rtp_ip {
            IpAddr::V4(v4) => {
                let _ = writeln!(c, " rtp bind-ip {v4}");
            }
            IpAddr::V6(v6) => {
                let _ = writeln!(c, " rtp bind-ip-v6 {v6}");
            }
        }
        let _ = writeln!(
            c,
            " rtp port-range {} {}",
            self.rtp_ports.0, self.rtp_ports.1
        );
        let _ = writeln!(c, " number endpoints {}", self.endpoints);
        let _ = writeln!(c, " rtp-accept-all {}", u8::from(self.accept_all));
        c
    }

    /// The command line, binary first.
    fn command_line(&self, binary: &Path, config: &Path) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(ns) = &self.netns {
            a.extend(["ip".into(), "netns".into(), "exec".into(), ns.clone()]);
        }
        a.push(binary.display().to_string());
        // -s: no colour codes in the log.
        a.extend(["-s".into(), "-c".into(), config.display().to_string()]);
        a
    }

    /// Starts osmo-mgw. `Ok(None)` when it is not installed and `CI` is
    /// unset (after a loud skip notice naming the calling test's thread); with
    /// `CI` set a missing binary is [`OsmoMgwError::NotFound`].
    pub fn start(self) -> Result<Option<OsmoMgw>, OsmoMgwError> {
        let Some(binary) = osmo_mgw_binary() else {
            if std::env::var_os("CI").is_some() {
                return Err(OsmoMgwError::NotFound);
            }
            skip_notice("osmo-mgw not found (apt-get install osmo-mgw, or set OSMO_MGW)");
            return Ok(None);
        };
        let (first, last) = self.rtp_ports;
        if first < 1024 || first >= last {
            return Err(OsmoMgwError::BadPortRange(first, last));
        }
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => fresh_temp_dir(),
        };
        let io_err = |what, path: &Path| {
            let path = path.display().to_string();
            move |source| OsmoMgwError::Io { what, path, source }
        };
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err("emptying", &dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let config = dir.join("osmo-mgw.cfg");
        std::fs::write(&config, self.config_text()).map_err(io_err("writing", &config))?;
        let line = self.command_line(&binary, &config);
        std::fs::write(dir.join("command.txt"), line.join(" ") + "\n")
            .map_err(io_err("writing", &dir.join("command.txt")))?;
        let stderr_path = dir.join("stderr.log");
        let stdout_path = dir.join("stdout.log");
        let (program, args) = line.split_first().ok_or_else(|| OsmoMgwError::Start {
            why: "empty command line".into(),
            stderr: String::new(),
        })?;
        let child = Command::new(program)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).map_err(io_err("creating", &stdout_path))?)
            .stderr(File::create(&stderr_path).map_err(io_err("creating", &stderr_path))?)
            .spawn()
            .map_err(io_err("starting", Path::new(program)))?;
        let mut mgw = OsmoMgw {
            child,
            exit: None,
            mgcp_addr: self.mgcp_addr,
            rtp_ip: self.rtp_ip,
            rtp_ports: self.rtp_ports,
            dir,
        };
        mgw.until_ready(self.probe_auep)?;
        Ok(Some(mgw))
    }
}

/// A running osmo-mgw. Dropping it kills the process.
#[derive(Debug)]
pub struct OsmoMgw {
    child: Child,
    exit: Option<ExitStatus>,
    mgcp_addr: SocketAddr,
    rtp_ip: IpAddr,
    rtp_ports: (u16, u16),
    dir: PathBuf,
}

impl OsmoMgw {
    /// [`OsmoMgwConfig::new`] then [`OsmoMgwConfig::start`] with the
    /// defaults: MGCP on `mgcp_addr`, RTP on `rtp_ip` in `rtp_ports`.
    pub fn start(
        mgcp_addr: SocketAddr,
        rtp_ip: IpAddr,
        rtp_ports: (u16, u16),
    ) -> Result<Option<Self>, OsmoMgwError> {
        OsmoMgwConfig::new(mgcp_addr, rtp_ip, rtp_ports).start()
    }

    /// Where osmo-mgw takes MGCP commands.
    pub fn mgcp_addr(&self) -> SocketAddr {
        self.mgcp_addr
    }

    /// The address its RTP sockets bind to.
    pub fn rtp_ip(&self) -> IpAddr {
        self.rtp_ip
    }

    /// Its RTP port range, inclusive.
    pub fn rtp_ports(&self) -> (u16, u16) {
        self.rtp_ports
    }

    /// The folder holding `osmo-mgw.cfg`, `command.txt`, `stderr.log`
    /// (the log) and `stdout.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// osmo-mgw's process id (with a namespace, of `ip`, which execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log written so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("stderr.log"))
    }

    /// The exit status, if osmo-mgw has exited (it should not, by itself).
    pub fn try_exit(&mut self) -> Result<Option<ExitStatus>, OsmoMgwError> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().map_err(|source| OsmoMgwError::Io {
                what: "polling osmo-mgw in",
                path: self.dir.display().to_string(),
                source,
            })?;
        }
        Ok(self.exit)
    }

    fn start_error(&self, why: String) -> OsmoMgwError {
        OsmoMgwError::Start {
            why,
            stderr: tail(&self.log(), 1500).to_owned(),
        }
    }

    /// Waits for the "listening" log line, then (if `probe`) for an AUEP
    /// answer; fails early if osmo-mgw exits (bad config, port taken).
    fn until_ready(&mut self, probe: bool) -> Result<(), OsmoMgwError> {
        let deadline = Instant::now() + READY_WITHIN;
        let mut client = None;
        loop {
            if let Some(status) = self.try_exit()? {
                return Err(self.start_error(format!("exited with {status}")));
            }
            if self.log().contains(READY_LINE) {
                if !probe {
                    return Ok(());
                }
                if client.is_none() {
                    let local = if self.mgcp_addr.is_ipv4() {
                        IpAddr::from([127, 0, 0, 1])
                    } else {
                        IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                    };
                    let c = MgcpClient::bind(local, self.mgcp_addr)?
                        .timeout(Duration::from_millis(200))
                        .tries(1);
                    client = Some(c);
                }
                if let Some(c) = client.as_mut()
                    && c.command("AUEP", &endpoint(1), &[], None)
                        .is_ok_and(|r| r.code == 200)
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(self.start_error(format!(
                    "no AUEP answer on {} within {READY_WITHIN:?}",
                    self.mgcp_addr
                )));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for OsmoMgw {
    fn drop(&mut self) {
        if self.exit.is_none() {
            // Already gone is fine: nothing left to stop.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One MGCP response, split just enough for a test.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MgcpResponse {
    /// Response code (200, 250, 5xx).
    pub code: u16,
    /// Transaction id echoed.
    pub transaction: u32,
    /// The rest of the response line (e.g. "OK").
    pub comment: String,
    /// Parameter lines as (name, value), in order, names as sent.
    pub params: Vec<(String, String)>,
    /// The SDP after the blank line, if any.
    pub sdp: Option<String>,
    /// The whole response text.
    pub raw: String,
}

impl MgcpResponse {
    /// Parses a response datagram.
    ///
    /// ```
    /// use pinhole_tests::osmo_mgw::MgcpResponse;
    ///
    /// let r = MgcpResponse::parse(
    ///     b"200 7 OK\r\nI: 1A\r\n\r\nv=0\r\nc=IN IP4 127.0.0.41\r\nm=audio 43000 RTP/AVP 0\r\n",
    /// )?;
    /// assert_eq!((r.code, r.connection_id()), (200, Some("1A")));
    /// assert_eq!(r.sdp_audio(), Some("127.0.0.41:43000".parse().unwrap()));
    /// # Ok::<(), pinhole_tests::osmo_mgw::OsmoMgwError>(())
    /// ```
    pub fn parse(datagram: &[u8]) -> Result<Self, OsmoMgwError> {
        let raw = std::str::from_utf8(datagram)
            .map_err(|e| OsmoMgwError::BadResponse(format!("not UTF-8: {e}")))?
            .to_owned();
        // Header and SDP are split by the first empty line (CRLF or LF).
        let (head, sdp) = match raw
            .find("\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| raw.find("\n\n").map(|i| (i, 2)))
        {
            Some((i, n)) => (
                raw.get(..i).unwrap_or_default(),
                raw.get(i + n..)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            None => (raw.as_str(), None),
        };
        let mut lines = head.lines();
        let first = lines.next().unwrap_or_default();
        let mut words = first.splitn(3, ' ');
        let bad = || OsmoMgwError::BadResponse(format!("response line {first:?}"));
        let code = words
            .next()
            .and_then(|w| w.parse::<u16>().ok())
            .filter(|c| (100..1000).contains(c))
            .ok_or_else(bad)?;
        let transaction = words
            .next()
            .and_then(|w| w.parse::<u32>().ok())
            .ok_or_else(bad)?;
        let comment = words.next().unwrap_or_default().to_owned();
        let params = lines
            .filter(|l| !l.is_empty())
            .map(|l| match l.split_once(':') {
                Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
                None => (l.trim().to_owned(), String::new()),
            })
            .collect();
        Ok(Self {
            code,
            transaction,
            comment,
            params,
            sdp,
            raw,
        })
    }

    /// The first value of parameter `name` (case-insensitive), e.g. `I`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The connection id (`I:`).
    pub fn connection_id(&self) -> Option<&str> {
        self.param("I")
    }

    /// The audio address in the SDP: the `c=` address (media-level if
    /// present, else session-level) and the `m=audio` port.
    pub fn sdp_audio(&self) -> Option<SocketAddr> {
        sdp_audio(self.sdp.as_deref()?)
    }

    /// The payload types of the SDP's `m=audio` line.
    pub fn sdp_payload_types(&self) -> Vec<u8> {
        let sdp = self.sdp.as_deref().unwrap_or_default();
        sdp.lines()
            .find_map(|l| l.trim_end().strip_prefix("m=audio "))
            .map(|rest| {
                rest.split_whitespace()
                    .skip(2)
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True for a 2xx code.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// The audio address of an SDP body (see [`MgcpResponse::sdp_audio`]).
pub fn sdp_audio(sdp: &str) -> Option<SocketAddr> {
    #[derive(PartialEq)]
    enum Section {
        Session,
        FirstAudio,
        Other,
    }
    let mut section = Section::Session;
    let (mut session_ip, mut media_ip, mut port) = (None, None, None);
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            section = if m.starts_with("audio ") && port.is_none() {
                port = m.split_whitespace().nth(1).and_then(|p| p.parse().ok());
                Section::FirstAudio
            } else {
                Section::Other
            };
        } else if let Some(c) = line.strip_prefix("c=") {
            let ip = c
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.parse::<IpAddr>().ok());
            match section {
                Section::Session => session_ip = ip,
                Section::FirstAudio => media_ip = ip,
                Section::Other => {}
            }
        }
    }
    Some(SocketAddr::new(media_ip.or(session_ip)?, port?))
}

/// A minimal SDP offering PCMU (payload type 0) at `media`, as a call
/// agent puts in a CRCX or MDCX (RemoteConnectionDescriptor).
pub fn sdp_offer(media: SocketAddr) -> String {
    let (family, ip) = match media.ip() {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    format!(
        "v=0\r\no=- 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n",
        media.port()
    )
}

/// Formats one MGCP command: `VERB tid endpoint MGCP 1.0`, the parameter
/// lines, and the SDP after a blank line. Lines end in CRLF.
pub fn format_command(
    verb: &str,
    transaction: u32,
    endpoint: &str,
    params: &[(&str, &str)],
    sdp: Option<&str>,
) -> String {
    let mut m = format!("{verb} {transaction} {endpoint} MGCP 1.0\r\n");
    for (name, value) in params {
        let _ = write!(m, "{name}: {value}\r\n");
    }
    if let Some(sdp) = sdp {
        m.push_str("\r\n");
        m.push_str(sdp);
    }
    m
}

/// A call agent's MGCP socket: one command at a time, retransmitted (same
/// transaction id, as MGCP wants) until answered or out of tries.
#[derive(Debug)]
pub struct MgcpClient {
    socket: UdpSocket,
    gateway: SocketAddr,
    next_transaction: u32,
    timeout: Duration,
    tries: u32,
}

impl MgcpClient {
    /// A client on `local_ip` (any port) talking to `gateway`. Defaults:
    /// 500 ms per try, 3 tries.
    pub fn bind(local_ip: IpAddr, gateway: SocketAddr) -> Result<Self, OsmoMgwError> {
        let socket =
            UdpSocket::bind(SocketAddr::new(local_ip, 0)).map_err(|source| OsmoMgwError::Io {
                what: "binding MGCP client on",
                path: local_ip.to_string(),
                source,
            })?;
        // Different processes and clients start at different ids.
        static N: AtomicU32 = AtomicU32::new(1);
        let start = (std::process::id() % 10_000) * 1000 + N.fetch_add(1000, Ordering::Relaxed);
        Ok(Self {
            socket,
            gateway,
            next_transaction: start % 900_000_000 + 1,
            timeout: Duration::from_millis(500),
            tries: 3,
        })
    }

    /// How long each try waits for the answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a command is sent before giving up (at least 1).
    pub fn tries(mut self, tries: u32) -> Self {
        self.tries = tries.max(1);
        self
    }

    /// The client's own address.
    pub fn local_addr(&self) -> Result<SocketAddr, OsmoMgwError> {
        self.socket.local_addr().map_err(|source| OsmoMgwError::Io {
            what: "reading address of",
            path: "MGCP client".into(),
            source,
        })
    }

    /// Sends one command and returns the response with its transaction id
    /// (whatever the code). Datagrams with other ids are ignored.
    pub fn command(
        &mut self,
        verb: &str,
        endpoint: &str,
        params: &[(&str, &str)],
        sdp: Option<&str>,
    ) -> Result<MgcpResponse, OsmoMgwError> {
        let transaction = self.next_transaction;
        self.next_transaction = self.next_transaction.wrapping_add(1).max(1);
        let text = format_command(verb, transaction, endpoint, params, sdp);
        let io_err = |what| {
            let path = self.gateway.to_string();
            move |source| OsmoMgwError::Io { what, path, source }
        };
        let mut buf = [0u8; 4096];
        for _ in 0..self.tries {
            self.socket
                .send_to(text.as_bytes(), self.gateway)
                .map_err(io_err("sending MGCP to"))?;
            let deadline = Instant::now() + self.timeout;
            // Bounded by the deadline: stray datagrams cannot keep us here.
            while let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            {
                self.socket
                    .set_read_timeout(Some(left))
                    .map_err(io_err("setting timeout for"))?;
                let n = match self.socket.recv_from(&mut buf) {
                    Ok((n, from)) if from == self.gateway => n,
                    Ok(_) => continue,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    // ICMP port unreachable from an earlier send: not up yet.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(io_err("receiving MGCP from")(e)),
                };
                let Ok(resp) = MgcpResponse::parse(buf.get(..n).unwrap_or_default()) else {
                    continue;
                };
                if resp.transaction == transaction {
                    return Ok(resp);
                }
            }
        }
        Err(OsmoMgwError::NoResponse {
            to: self.gateway,
            verb: verb.to_owned(),
            transaction,
            tries: self.tries,
        })
    }

    /// [`command`](Self::command), failing unless the code is 2xx.
    pub fn expect_success(
        &mut self,
        verb: &str,
        endpoint: &str,
        params: &[(&str, &str)],
        sdp: Option<&str>,
    ) -> Result<MgcpResponse, OsmoMgwError> {
        let resp = self.command(verb, endpoint, params, sdp)?;
        if resp.is_success() {
            Ok(resp)
        } else {
            Err(OsmoMgwError::Unexpected {
                verb: verb.to_owned(),
                endpoint: endpoint.to_owned(),
                expected: "2xx".into(),
                got: resp.raw.lines().next().unwrap_or_default().to_owned(),
            })
        }
    }

    /// AUEP: audits an endpoint (200 if it exists).
    pub fn auep(&mut self, endpoint: &str) -> Result<MgcpResponse, OsmoMgwError> {
        self.command("AUEP", endpoint, &[], None)
    }

    /// CRCX in `mode` (e.g. `sendrecv`) for `call_id`, with an SDP naming
    /// `remote` as the far end's media address when given. Fails unless
    /// 2xx.
    pub fn crcx(
        &mut self,
        endpoint: &str,
        call_id: &str,
        mode: &str,
        remote: Option<SocketAddr>,
    ) -> Result<MgcpResponse, OsmoMgwError> {
        let sdp = remote.map(sdp_offer);
        self.expect_success(
            "CRCX",
            endpoint,
            &[("C", call_id), ("M", mode), ("L", "p:20, a:PCMU")],
            sdp.as_deref(),
        )
    }

    /// MDCX of `connection_id`: a new mode and/or remote media address.
    /// Fails unless 2xx.
    pub fn mdcx(
        &mut self,
        endpoint: &str,
        call_id: &str,
        connection_id: &str,
        mode: Option<&str>,
        remote: Option<SocketAddr>,
    ) -> Result<MgcpResponse, OsmoMgwError> {
        let sdp = remote.map(sdp_offer);
        let mut params = vec![("C", call_id), ("I", connection_id)];
        if let Some(mode) = mode {
            params.push(("M", mode));
        }
        self.expect_success("MDCX", endpoint, &params, sdp.as_deref())
    }

    /// DLCX of one connection, or of all on the endpoint when
    /// `connection_id` is `None` (whatever the code).
    pub fn dlcx(
        &mut self,
        endpoint: &str,
        call_id: &str,
        connection_id: Option<&str>,
    ) -> Result<MgcpResponse, OsmoMgwError> {
        let mut params = vec![("C", call_id)];
        if let Some(id) = connection_id {
            params.push(("I", id));
        }
        self.command("DLCX", endpoint, &params, None)
    }
}

/// Prints a skip notice straight to the process's stderr (libtest hides
/// eprintln! output of passing tests, and a skip must be seen).
fn skip_notice(why: &str) {
    // libtest names each test's thread after the test.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("osmo-mgw test");
    let bar = "!".repeat(72);
    let notice = format!("\n{bar}\n!!! SKIPPED {test}: {why}\n{bar}\n");
    let _ = io::stderr().write_all(notice.as_bytes());
}

/// A fresh, unique folder under the system temp dir.
fn fresh_temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("pinhole-osmo-mgw-{}-{n}", std::process::id()))
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `max` bytes of `s`, cut on a char boundary.
fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Verbatim from osmo-mgw 1.10 (Debian 1.10.0+dfsg1-3).
    const CRCX_200: &str = "200 1005 OK\r\nZ: rtpbridge/1@mgw\r\nI: EE6A8C6C\r\n\r\n\
        v=0\r\no=- EE6A8C6C 23 IN IP4 127.0.0.41\r\ns=-\r\nc=IN IP4 127.0.0.41\r\n\
        t=0 0\r\nm=audio 43000 RTP/AVP 0\r\na=ptime:20\r\n";

    #[test]
    fn parses_a_real_crcx_answer() {
        let r = MgcpResponse::parse(CRCX_200.as_bytes()).unwrap();
        assert_eq!(
            (r.code, r.transaction, r.comment.as_str()),
            (200, 1005, "OK")
        );
        assert_eq!(r.param("z"), Some("rtpbridge/1@mgw"));
        assert_eq!(r.connection_id(), Some("EE6A8C6C"));
        assert_eq!(r.sdp_audio(), Some("127.0.0.41:43000".parse().unwrap()));
        assert_eq!(r.sdp_payload_types(), vec![0]);
        assert!(r.is_success());
    }

    #[test]
    fn parses_answers_without_sdp() {
        let r = MgcpResponse::parse(b"250 7 OK\r\nP: PS=5, OS=860, PR=28\r\n").unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.param("P"), Some("PS=5, OS=860, PR=28"));
        assert_eq!(r.sdp, None);
        let r = MgcpResponse::parse(b"515 9 FAIL\r\n").unwrap();
        assert!(!r.is_success());
        assert_eq!(r.sdp_audio(), None);
        for bad in [&b""[..], b"OK 1 2", b"200 x OK", b"99 1 OK", b"\xff\xfe"] {
            assert!(MgcpResponse::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn media_level_connection_wins() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n";
        assert_eq!(sdp_audio(sdp), Some("10.0.0.2:4000".parse().unwrap()));
        assert_eq!(sdp_audio("c=IN IP4 10.0.0.1\n"), None);
        let offer = sdp_offer("[::1]:5004".parse().unwrap());
        assert_eq!(sdp_audio(&offer), Some("[::1]:5004".parse().unwrap()));
    }

    #[test]
    fn commands_are_formatted_with_crlf_and_sdp() {
        let sdp = sdp_offer("127.0.0.42:40000".parse().unwrap());
        let m = format_command(
            "CRCX",
            12,
            "rtpbridge/*@mgw",
            &[("C", "c1"), ("M", "sendrecv")],
            Some(&sdp),
        );
        assert!(
            m.starts_with(
                "CRCX 12 rtpbridge/*@mgw MGCP 1.0\r\nC: c1\r\nM: sendrecv\r\n\r\nv=0\r\n"
            ),
            "{m}"
        );
        assert!(m.contains("c=IN IP4 127.0.0.42\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"));
        assert_eq!(
            format_command("AUEP", 1, "rtpbridge/1@mgw", &[], None),
            "AUEP 1 rtpbridge/1@mgw MGCP 1.0\r\n"
        );
    }

    #[test]
    fn endpoint_names_are_hex() {
        assert_eq!(endpoint(1), "rtpbridge/1@mgw");
        assert_eq!(endpoint(10), "rtpbridge/a@mgw");
        assert_eq!(endpoint(16), "rtpbridge/10@mgw");
        assert_eq!(any_endpoint(), "rtpbridge/*@mgw");
    }

    #[test]
    fn config_binds_everything_where_asked() {
        let c = OsmoMgwConfig::new(
            "127.0.0.41:24270".parse().unwrap(),
            "127.0.0.41".parse().unwrap(),
            (43000, 43099),
        )
        .accept_all(true);
        let text = c.config_text();
        for want in [
            "log stderr\n",
            " bind 127.0.0.41 4243\n",
            "ctrl\n bind 127.0.0.41\n",
            " domain mgw\n",
            " bind ip 127.0.0.41\n bind port 24270\n",
            " rtp bind-ip 127.0.0.41\n",
            " rtp port-range 43000 43099\n",
            " rtp-accept-all 1\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        let line = c
            .clone()
            .netns("corp1")
            .command_line(Path::new("/usr/bin/osmo-mgw"), Path::new("/t/c.cfg"));
        assert_eq!(
            line.join(" "),
            "ip netns exec corp1 /usr/bin/osmo-mgw -s -c /t/c.cfg"
        );
        let line = c.command_line(Path::new("osmo-mgw"), Path::new("c.cfg"));
        assert_eq!(line.join(" "), "osmo-mgw -s -c c.cfg");
    }

    #[test]
    fn bad_port_ranges_are_refused_before_starting() {
        if osmo_mgw_binary().is_none() {
            return;
        }
        for range in [(43010, 43000), (43000, 43000), (80, 90)] {
            let err = OsmoMgw::start(
                "127.0.0.41:24279".parse().unwrap(),
                "127.0.0.41".parse().unwrap(),
                range,
            )
            .unwrap_err();
            assert!(matches!(err, OsmoMgwError::BadPortRange(..)), "{err}");
        }
    }

    #[test]
    fn no_answer_is_a_bounded_error() {
        // A socket that never answers.
        let silent = UdpSocket::bind("127.0.0.42:0").unwrap();
        let mut c = MgcpClient::bind("127.0.0.42".parse().unwrap(), silent.local_addr().unwrap())
            .unwrap()
            .timeout(Duration::from_millis(50))
            .tries(2);
        let t0 = Instant::now();
        let err = c.auep(&endpoint(1)).unwrap_err();
        assert!(
            matches!(err, OsmoMgwError::NoResponse { tries: 2, .. }),
            "{err}"
        );
        assert!(t0.elapsed() < Duration::from_secs(2));
        // Both tries reached the wire, with the same transaction id.
        let mut buf = [0u8; 512];
        silent
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (n1, _) = silent.recv_from(&mut buf).unwrap();
        let first = buf[..n1].to_vec();
        let (n2, _) = silent.recv_from(&mut buf).unwrap();
        assert_eq!(first, buf[..n2].to_vec());
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("hello", 3), "llo");
        assert_eq!(tail("aé", 1), "");
    }

    proptest! {
        #[test]
        fn parse_never_panics(d in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = MgcpResponse::parse(&d);
        }

        #[test]
        fn sdp_audio_never_panics(s in "[a-z=0-9 ./:\r\n]{0,200}") {
            let _ = sdp_audio(&s);
        }

        #[test]
        fn formatted_offers_round_trip(port in 1u16.., a in 1u8..255) {
            let media = SocketAddr::new(IpAddr::from([127, 0, 0, a]), port);
            prop_assert_eq!(sdp_audio(&sdp_offer(media)), Some(media));
        }
    }
}
