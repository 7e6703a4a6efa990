//! Runs sipp (the `sip-tester` package) as the phones of an end-to-end
//! test. sipp does the signalling only; the test owns the media sockets and
//! passes their address to the scenario with `-key` (see [`Keys`] and
//! `tests/sipp/README.md`). While sipp runs, the harness reads its message
//! trace to learn the SDP it *received* — the address the test must send
//! RTP to, as rewritten by whatever sits between the phones — and at the end
//! it collects sipp's exit code and call counters into a [`SippOutcome`].
//!
//! Every run is bounded: sipp gets `-timeout` with `-timeout_error`, the
//! harness kills it shortly after that, and a dropped [`SippRun`] kills its
//! sipp.
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::time::Duration;
//! use pinhole_tests::sipp::{Keys, Sipp, scenario, sipp_or_skip};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! if !sipp_or_skip("doc example") {
//!     return Ok(());
//! }
//! let callee_media = UdpSocket::bind("127.0.0.2:0")?;
//! let caller_media = UdpSocket::bind("127.0.0.1:0")?;
//! let mut uas = Sipp::uas(
//!     scenario("uas_basic.xml"),
//!     "127.0.0.2:0".parse()?,
//!     Keys::new(callee_media.local_addr()?),
//! )
//! .spawn()?;
//! let mut uac = Sipp::uac(
//!     scenario("uac_basic.xml"),
//!     "127.0.0.1:0".parse()?,
//!     uas.local_addr(),
//!     Keys::new(caller_media.local_addr()?).domain("corp2.example"),
//! )
//! .pause(Duration::from_secs(2))
//! .spawn()?;
//! let offer = uas.wait_received_sdps(1, Duration::from_secs(5))?;
//! let answer = uac.wait_received_sdps(1, Duration::from_secs(5))?;
//! // ... send RTP to answer[0].audio_addr() and offer[0].audio_addr() ...
//! uac.wait()?.ensure_success()?;
//! uas.wait()?.ensure_success()?;
//! # let _ = (offer, answer);
//! # Ok(())
//! # }
//! ```

pub mod sdp;
pub mod sip;
pub mod stats;
pub mod trace;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use self::sdp::{Sdp, SdpError};
use self::sip::{SipError, SipMessage};

/// The environment variable that names the sipp binary; unset, `sipp` is
/// looked up on `PATH`.
pub const SIPP_ENV: &str = "SIPP";

/// SIP ports the harness picks from when asked to bind port 0 (sipp's own
/// "0" means 5060 and up, which a proxy under test may want).
pub const SIP_PORTS: std::ops::RangeInclusive<u16> = 35000..=35999;

/// How long after sipp's own `-timeout` the harness kills it.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long a fresh sipp may take to bind its SIP socket.
const READY_WITHIN: Duration = Duration::from_secs(3);
/// How often the harness polls the trace and the process.
const POLL: Duration = Duration::from_millis(10);
/// sipp's exit code when it cannot bind its socket (-2).
const EXIT_BIND_FAILED: i32 = 254;

/// What went wrong driving sipp.
#[derive(Debug, thiserror::Error)]
pub enum SippError {
    /// No sipp binary.
    #[error("sipp not found: install sip-tester or set {SIPP_ENV}")]
    NotFound,
    /// The scenario file is missing.
    #[error("scenario {0} does not exist")]
    NoScenario(PathBuf),
    /// A file or process operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the harness was doing.
        what: &'static str,
        /// The file or binary concerned.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Every port tried in [`SIP_PORTS`] was taken.
    #[error("no free UDP port in {SIP_PORTS:?} on {0}")]
    NoFreePort(IpAddr),
    /// sipp exited, or never bound its socket, at start-up.
    #[error("sipp {scenario} did not start ({why}); stderr: {stderr}")]
    Start {
        /// Scenario file name.
        scenario: String,
        /// Exit code or other reason.
        why: String,
        /// The end of sipp's stderr.
        stderr: String,
    },
    /// A wait for a message ran out of time or sipp exited first.
    #[error("sipp {scenario}: {why} while waiting for {what}; received so far: [{seen}]")]
    Wait {
        /// Scenario file name.
        scenario: String,
        /// What the test waited for.
        what: String,
        /// "timed out after ..." or "sipp exited with ...".
        why: String,
        /// Labels of the messages received so far.
        seen: String,
    },
    /// A received message in the trace is not SIP.
    #[error("{path}: received message #{index} is not SIP: {source}")]
    BadSip {
        /// The trace file.
        path: PathBuf,
        /// Index among received messages.
        index: usize,
        /// Why.
        source: SipError,
    },
    /// A received SDP body does not parse.
    #[error("{path}: SDP in received {label}: {source}")]
    BadSdp {
        /// The trace file.
        path: PathBuf,
        /// The message it came in.
        label: String,
        /// Why.
        source: SdpError,
    },
    /// The outcome was not a success (see [`SippOutcome::ensure_success`]).
    #[error("{0}")]
    Failed(String),
}

/// The sipp binary: `$SIPP` if set, else `sipp` on `PATH`.
pub fn sipp_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(SIPP_ENV) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("sipp"))
        .find(|p| p.is_file())
}

/// True when sipp is available. Otherwise, outside CI, prints a loud skip
/// notice naming `test` and returns false; when the `CI` environment
/// variable is set, a missing sipp is a failure and this panics.
pub fn sipp_or_skip(test: &str) -> bool {
    if sipp_binary().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: sipp is not installed and CI is set: install the sip-tester package (.ci/run does) or set {SIPP_ENV}"
    );
    let bar = "!".repeat(72);
    let notice = format!(
        "\n{bar}\n!!! SKIPPED {test}: sipp not found (apt-get install sip-tester, or set {SIPP_ENV})\n{bar}\n"
    );
    // Straight to the process's stderr: libtest hides eprintln! output of
    // passing tests, and a skip must be seen.
    let _ = io::Write::write_all(&mut io::stderr(), notice.as_bytes());
    false
}

/// The path of a scenario shipped in `tests/sipp/`, e.g.
/// `scenario("uac_basic.xml")`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sipp")
        .join(name)
}

/// The `-key` values a scenario reads. [`Keys::new`] sets the media keys
/// `mip`, `mport` and `mipver` from the test's media socket and defaults
/// the callee domain `domain` to `callee.example` and the caller domain
/// `from_domain` to `caller.example`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Keys {
    pairs: Vec<(String, String)>,
}

impl Keys {
    /// Keys announcing `media` as this phone's RTP address.
    pub fn new(media: SocketAddr) -> Self {
        let version = if media.is_ipv4() { "4" } else { "6" };
        Self { pairs: Vec::new() }
            .set("mip", media.ip().to_string())
            .set("mport", media.port().to_string())
            .set("mipver", version)
            .set("domain", "callee.example")
            .set("from_domain", "caller.example")
    }

    /// Sets the callee's domain (Request-URI and To).
    pub fn domain(self, domain: impl Into<String>) -> Self {
        self.set("domain", domain)
    }

    /// Sets the caller's domain (From).
    pub fn from_domain(self, domain: impl Into<String>) -> Self {
        self.set("from_domain", domain)
    }

    /// Sets any key, replacing an earlier value.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((key, value)),
        }
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy, Debug)]
enum Role {
    Uas,
    Uac { remote: SocketAddr },
}

/// A sipp run to start: scenario, role, addresses, keys and limits. Build
/// it with [`Sipp::uas`] or [`Sipp::uac`], adjust it, then
/// [`spawn`](Sipp::spawn) it.
#[derive(Clone, Debug)]
pub struct Sipp {
    scenario: PathBuf,
    role: Role,
    bind: SocketAddr,
    keys: Keys,
    service: String,
    calls: u64,
    rate: Option<u32>,
    pause: Duration,
    timeout: Duration,
    dir: Option<PathBuf>,
    args: Vec<OsString>,
    netns: Option<String>,
    tcp: bool,
}

impl Sipp {
    /// A callee (server) on `bind`. Port 0 picks a free port in
    /// [`SIP_PORTS`]; [`SippRun::local_addr`] tells which.
    pub fn uas(scenario: impl Into<PathBuf>, bind: SocketAddr, keys: Keys) -> Self {
        Self::new(scenario.into(), Role::Uas, bind, keys)
    }

    /// A caller on `bind` sending every request to `remote` (the callee, or
    /// the proxy in front of it).
    pub fn uac(
        scenario: impl Into<PathBuf>,
        bind: SocketAddr,
        remote: SocketAddr,
        keys: Keys,
    ) -> Self {
        Self::new(scenario.into(), Role::Uac { remote }, bind, keys)
    }

    fn new(scenario: PathBuf, role: Role, bind: SocketAddr, keys: Keys) -> Self {
        Self {
            scenario,
            role,
            bind,
            keys,
            service: "service".into(),
            calls: 1,
            rate: None,
            pause: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            dir: None,
            args: Vec::new(),
            netns: None,
            tcp: false,
        }
    }

    /// Runs sipp inside the named network namespace (`ip netns exec NAME
    /// sipp ...`; needs root). Give `bind` an explicit port: port 0 probes
    /// for a free port in the caller's own namespace.
    /// SIP over one TCP connection (`-t t1`) instead of UDP. Debian's
    /// sipp is built without TLS, so TCP is the stream it speaks.
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// Runs sipp inside network namespace `name`.
    pub fn netns(mut self, name: impl Into<String>) -> Self {
        self.netns = Some(name.into());
        self
    }

    /// Calls to make or answer before exiting (`-m`, default 1).
    pub fn calls(mut self, n: u64) -> Self {
        self.calls = n;
        self
    }

    /// New calls per second (`-r`; sipp's default is 10).
    pub fn rate(mut self, per_second: u32) -> Self {
        self.rate = Some(per_second);
        self
    }

    /// Length of each `<pause/>` — the media phases (`-d`, default 1 s).
    pub fn pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// sipp's global timeout (`-timeout`, with `-timeout_error`; default
    /// 30 s). The harness kills sipp a few seconds after it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The user part of the Request-URI (`-s`, default `service`).
    pub fn service(mut self, user: impl Into<String>) -> Self {
        self.service = user.into();
        self
    }

    /// Where sipp runs and writes its trace, statistics and output; emptied
    /// first. Default: a fresh folder under the system temp dir.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Appends a raw sipp argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts sipp and waits until it has bound its SIP socket. With port 0
    /// a port taken in the meantime by someone else is retried on another.
    pub fn spawn(self) -> Result<SippRun, SippError> {
        let binary = sipp_binary().ok_or(SippError::NotFound)?;
        let scenario = std::path::absolute(&self.scenario).map_err(|source| SippError::Io {
            what: "resolving scenario",
            path: self.scenario.clone(),
            source,
        })?;
        if !scenario.is_file() {
            return Err(SippError::NoScenario(scenario));
        }
        let name = scenario
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => fresh_temp_dir(&name),
        };
        let dir = std::path::absolute(&dir).map_err(|source| SippError::Io {
            what: "resolving",
            path: dir.clone(),
            source,
        })?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| SippError::Io {
                what: "emptying",
                path: dir.clone(),
                source,
            })?;
        }
        std::fs::create_dir_all(&dir).map_err(|source| SippError::Io {
            what: "creating",
            path: dir.clone(),
            source,
        })?;

        let ip = self.bind.ip();
        let auto_port = self.bind.port() == 0;
        let attempts = if auto_port { 5 } else { 1 };
        let mut last_error = None;
        for _ in 0..attempts {
            let port = if auto_port {
                pick_port(ip)?
            } else {
                self.bind.port()
            };
            let local = SocketAddr::new(ip, port);
            let mut run = self.start(&binary, &scenario, &name, &dir, local)?;
            match run.until_ready() {
                Ok(()) => return Ok(run),
                Err(e) => {
                    let retry =
                        auto_port && run.exit.and_then(|s| s.code()) == Some(EXIT_BIND_FAILED);
                    last_error = Some(e);
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last_error.unwrap_or(SippError::NoFreePort(ip)))
    }

    /// [`spawn`](Self::spawn) then [`SippRun::wait`].
    pub fn run(self) -> Result<SippOutcome, SippError> {
        self.spawn()?.wait()
    }

    fn command_args(&self, scenario: &Path, local: SocketAddr) -> Vec<OsString> {
        let ip = local.ip().to_string();
        let mut a: Vec<OsString> = vec!["-sf".into(), scenario.into()];
        if let Role::Uac { remote } = self.role {
            a.push(remote.to_string().into());
        }
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let plain: [&str; 3] = ["-bind_local", "-nostdin", "-timeout_error"];
        a.extend(plain.iter().map(OsString::from));
        let pairs: Vec<(&str, String)> = vec![
            ("-i", ip.clone()),
            ("-p", local.port().to_string()),
            // sipp's control and RTP echo sockets: keep them on loopback too.
            ("-ci", ip.clone()),
            ("-mi", ip),
            ("-t", if self.tcp { "t1" } else { "u1" }.into()),
            ("-m", self.calls.to_string()),
            ("-timeout", ms(self.timeout)),
            ("-d", self.pause.as_millis().to_string()),
            ("-s", self.service.clone()),
            ("-message_file", "messages.log".into()),
            ("-error_file", "errors.log".into()),
            ("-stf", "stats.csv".into()),
        ];
        for (k, v) in pairs {
            a.push(k.into());
            a.push(v.into());
        }
        a.extend(
            ["-trace_msg", "-trace_err", "-trace_stat"]
                .iter()
                .map(OsString::from),
        );
        if let Some(r) = self.rate {
            a.push("-r".into());
            a.push(r.to_string().into());
        }
        for (k, v) in &self.keys.pairs {
            a.push("-key".into());
            a.push(k.into());
            a.push(v.into());
        }
        a.extend(self.args.iter().cloned());
        a
    }

    fn start(
        &self,
        binary: &Path,
        scenario: &Path,
        name: &str,
        dir: &Path,
        local: SocketAddr,
    ) -> Result<SippRun, SippError> {
        let io_err = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| SippError::Io { what, path, source }
        };
        let screen = dir.join("screen.log");
        let stderr = dir.join("stderr.log");
        let args = self.command_args(scenario, local);
        std::fs::write(dir.join("command.txt"), render_command(binary, &args))
            .map_err(io_err("writing", &dir.join("command.txt")))?;
        let mut command = match &self.netns {
            // `ip netns exec` execs sipp, so the child's pid is sipp's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str()]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(File::create(&screen).map_err(io_err("creating", &screen))?)
            .stderr(File::create(&stderr).map_err(io_err("creating", &stderr))?)
            .spawn()
            .map_err(io_err("starting", binary))?;
        Ok(SippRun {
            child,
            exit: None,
            scenario: name.to_owned(),
            local,
            calls: self.calls,
            started: Instant::now(),
            kill_at: Instant::now() + self.timeout + KILL_GRACE,
            dir: dir.to_path_buf(),
            netns: self.netns.is_some(),
            tcp: self.tcp,
        })
    }
}

/// A running sipp. Dropping it kills sipp.
#[derive(Debug)]
pub struct SippRun {
    child: Child,
    exit: Option<ExitStatus>,
    scenario: String,
    local: SocketAddr,
    calls: u64,
    started: Instant,
    kill_at: Instant,
    dir: PathBuf,
    netns: bool,
    tcp: bool,
}

impl SippRun {
    /// The address sipp's SIP socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// sipp's process id (to read its CPU time from `/proc` while it runs).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The folder holding `messages.log`, `errors.log`, `stats.csv`,
    /// `screen.log`, `stderr.log` and `command.txt`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The message trace file.
    pub fn messages_path(&self) -> PathBuf {
        self.dir.join("messages.log")
    }

    /// The trace as written so far.
    pub fn trace(&self) -> Result<trace::Trace, SippError> {
        let path = self.messages_path();
        match std::fs::read(&path) {
            Ok(bytes) => Ok(trace::parse(&bytes)),
            // sipp creates the file with its first message.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(trace::Trace::default()),
            Err(source) => Err(SippError::Io {
                what: "reading",
                path,
                source,
            }),
        }
    }

    /// The SIP messages received so far.
    pub fn received(&self) -> Result<Vec<SipMessage>, SippError> {
        received_messages(&self.trace()?, &self.messages_path())
    }

    /// The SDP bodies received so far, in order.
    pub fn received_sdps(&self) -> Result<Vec<ReceivedSdp>, SippError> {
        sdps_of(&self.received()?, &self.messages_path())
    }

    /// Polls the received messages until `check` returns `Some`, for at
    /// most `timeout`; fails early if sipp exits first. `what` names the
    /// awaited thing in the error.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&[SipMessage]) -> Result<Option<T>, SippError>,
    ) -> Result<T, SippError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Look at the process first: a trace read after sipp is seen to
            // have exited is complete.
            let exited = self.poll_exit()?;
            let received = self.received()?;
            if let Some(found) = check(&received)? {
                return Ok(found);
            }
            let why = if let Some(status) = exited {
                Some(format!("sipp exited with {status}"))
            } else if Instant::now() >= deadline {
                Some(format!("timed out after {timeout:?}"))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(SippError::Wait {
                    scenario: self.scenario.clone(),
                    what: what.to_owned(),
                    why,
                    seen: labels(&received),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until at least `n` SDP bodies have been received and returns
    /// them all.
    pub fn wait_received_sdps(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSdp>, SippError> {
        let path = self.messages_path();
        self.wait_until(&format!("{n} received SDP bodies"), timeout, |msgs| {
            let sdps = sdps_of(msgs, &path)?;
            Ok((sdps.len() >= n).then_some(sdps))
        })
    }

    /// Waits for the first received message for which `pred` holds.
    pub fn wait_received(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&SipMessage) -> bool,
    ) -> Result<SipMessage, SippError> {
        self.wait_until(what, timeout, |msgs| {
            Ok(msgs.iter().find(|m| pred(m)).cloned())
        })
    }

    /// Waits for sipp to exit (killing it once its timeout plus a grace has
    /// passed) and gathers the outcome.
    pub fn wait(mut self) -> Result<SippOutcome, SippError> {
        let mut killed = false;
        let status = loop {
            if let Some(s) = self.poll_exit()? {
                break s;
            }
            if Instant::now() >= self.kill_at {
                killed = true;
                // Ignore "already exited": the wait below reports either way.
                let _ = self.child.kill();
                let s = self.child.wait().map_err(|source| SippError::Io {
                    what: "waiting for",
                    path: self.dir.clone(),
                    source,
                })?;
                self.exit = Some(s);
                break s;
            }
            std::thread::sleep(POLL);
        };
        self.outcome(status, killed)
    }

    /// The exit status, if sipp has exited.
    fn poll_exit(&mut self) -> Result<Option<ExitStatus>, SippError> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().map_err(|source| SippError::Io {
                what: "polling sipp in",
                path: self.dir.clone(),
                source,
            })?;
        }
        Ok(self.exit)
    }

    /// Waits until sipp holds its SIP socket (it binds at start-up, before
    /// any call).
    fn until_ready(&mut self) -> Result<(), SippError> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.poll_exit()? {
                // A run this short can still be a clean one (a UAC with no
                // pause answered at once): only a failure is an error here.
                if status.success() {
                    return Ok(());
                }
                return Err(self.start_error(format!("exited with {status}")));
            }
            let bound = if self.netns {
                // The namespace's table, seen through sipp's own /proc entry.
                in_proc_net(
                    self.local,
                    &format!("/proc/{}/net", self.child.id()),
                    self.tcp,
                )
                .unwrap_or(false)
            } else {
                bound_by_someone(self.local, self.tcp)
            };
            if bound {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(
                    self.start_error(format!("{} not bound after {READY_WITHIN:?}", self.local))
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn start_error(&self, why: String) -> SippError {
        SippError::Start {
            scenario: self.scenario.clone(),
            why,
            stderr: tail(&read_lossy(&self.dir.join("stderr.log")), 1500),
        }
    }

    fn outcome(&self, status: ExitStatus, killed: bool) -> Result<SippOutcome, SippError> {
        let messages = self.messages_path();
        let mut notes = Vec::new();
        let counts = match std::fs::read_to_string(self.dir.join("stats.csv")) {
            Ok(csv) => stats::parse(&csv)
                .map_err(|e| notes.push(format!("stats.csv: {e}")))
                .ok(),
            Err(e) => {
                notes.push(format!("stats.csv: {e}"));
                None
            }
        };
        let trace = self.trace()?;
        let received = received_messages(&trace, &messages)?;
        let received_sdps = sdps_of(&received, &messages)?;
        let exit_code = status.code();
        if killed {
            notes.push(format!(
                "killed by the harness after {:?}",
                self.started.elapsed()
            ));
        }
        if exit_code != Some(0) {
            notes.push(format!("exit {status}"));
        }
        let counts = counts.unwrap_or_default();
        if counts.failed > 0 || counts.successful != self.calls {
            notes.push(format!(
                "{} of {} calls successful, {} failed",
                counts.successful, self.calls, counts.failed
            ));
        }
        Ok(SippOutcome {
            scenario: self.scenario.clone(),
            success: notes.is_empty(),
            exit_code,
            killed,
            calls_expected: self.calls,
            calls_successful: counts.successful,
            calls_failed: counts.failed,
            received,
            received_sdps,
            notes,
            stderr: tail(&read_lossy(&self.dir.join("stderr.log")), 1500),
            errors: tail(&read_lossy(&self.dir.join("errors.log")), 3000),
            messages,
            dir: self.dir.clone(),
        })
    }
}

impl Drop for SippRun {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // Best effort: nothing to report to from a destructor.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An SDP body sipp received and the message that carried it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReceivedSdp {
    /// The carrying message (INVITE, 183, 200, ACK, ...).
    pub message: SipMessage,
    /// Its SDP.
    pub sdp: Sdp,
}

impl ReceivedSdp {
    /// Where the first audio stream wants its RTP.
    pub fn audio_addr(&self) -> Option<SocketAddr> {
        self.sdp.audio_addr()
    }
}

/// How a sipp run ended.
#[derive(Clone, Debug)]
pub struct SippOutcome {
    /// Scenario file name.
    pub scenario: String,
    /// Exit code 0, not killed, every expected call successful, none failed.
    pub success: bool,
    /// sipp's exit code (`None` if killed by a signal).
    pub exit_code: Option<i32>,
    /// The harness had to kill sipp.
    pub killed: bool,
    /// The `-m` value.
    pub calls_expected: u64,
    /// `SuccessfulCall(C)` from the statistics file.
    pub calls_successful: u64,
    /// `FailedCall(C)` from the statistics file.
    pub calls_failed: u64,
    /// Every SIP message sipp received, in order.
    pub received: Vec<SipMessage>,
    /// Every SDP body sipp received, in order.
    pub received_sdps: Vec<ReceivedSdp>,
    /// Why the run is not a success (empty when it is).
    pub notes: Vec<String>,
    /// The end of sipp's stderr.
    pub stderr: String,
    /// The end of sipp's error trace (unexpected messages).
    pub errors: String,
    /// The message trace file.
    pub messages: PathBuf,
    /// The run's folder.
    pub dir: PathBuf,
}

impl SippOutcome {
    /// `Ok` on success, else an error carrying [`summary`](Self::summary).
    pub fn ensure_success(&self) -> Result<&Self, SippError> {
        if self.success {
            Ok(self)
        } else {
            Err(SippError::Failed(self.summary()))
        }
    }

    /// A multi-line account: verdict, notes, received messages, the end of
    /// stderr and of the error trace, and where the files are.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "sipp {}: {} (exit {:?}, {} of {} calls successful, {} failed)\n",
            self.scenario,
            if self.success { "success" } else { "FAILED" },
            self.exit_code,
            self.calls_successful,
            self.calls_expected,
            self.calls_failed
        );
        for n in &self.notes {
            let _ = writeln!(s, "  - {n}");
        }
        let _ = writeln!(s, "  received: [{}]", labels(&self.received));
        if !self.stderr.trim().is_empty() {
            let _ = writeln!(s, "  stderr:\n{}", self.stderr.trim_end());
        }
        if !self.errors.trim().is_empty() {
            let _ = writeln!(s, "  errors.log:\n{}", self.errors.trim_end());
        }
        let _ = write!(s, "  files: {}", self.dir.display());
        s
    }
}

/// The received entries of `trace` as SIP messages (keep-alive blank
/// datagrams skipped).
fn received_messages(trace: &trace::Trace, path: &Path) -> Result<Vec<SipMessage>, SippError> {
    trace
        .entries
        .iter()
        .filter(|e| e.direction == trace::Direction::Received)
        .filter(|e| !e.bytes.iter().all(u8::is_ascii_whitespace))
        .enumerate()
        .map(|(index, e)| {
            SipMessage::parse(&e.bytes).map_err(|source| SippError::BadSip {
                path: path.to_path_buf(),
                index,
                source,
            })
        })
        .collect()
}

fn sdps_of(messages: &[SipMessage], path: &Path) -> Result<Vec<ReceivedSdp>, SippError> {
    messages
        .iter()
        .filter(|m| m.has_sdp())
        .map(|m| {
            let sdp = Sdp::parse(&m.body).map_err(|source| SippError::BadSdp {
                path: path.to_path_buf(),
                label: m.to_string(),
                source,
            })?;
            Ok(ReceivedSdp {
                message: m.clone(),
                sdp,
            })
        })
        .collect()
}

fn labels(messages: &[SipMessage]) -> String {
    messages
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when some socket is bound to `addr` (sipp, once it is up). Reads
/// `/proc/net/udp*` where there is one: probing by binding the address
/// ourselves could, for an instant, take it from a sipp about to bind it.
fn bound_by_someone(addr: SocketAddr, tcp: bool) -> bool {
    in_proc_net(addr, "/proc/net", tcp).unwrap_or_else(|| {
        let r = if tcp {
            std::net::TcpListener::bind(addr).map(drop)
        } else {
            UdpSocket::bind(addr).map(drop)
        };
        matches!(r, Err(e) if e.kind() == io::ErrorKind::AddrInUse)
    })
}

/// Whether Linux lists `addr` as a bound UDP (or, with `tcp`, TCP) socket in the `udp`/`udp6` (`tcp`/`tcp6`)
/// tables under `dir` (`/proc/net`, or `/proc/PID/net` for another
/// process's network namespace); `None` without procfs. The kernel prints
/// each 32-bit word of the address in host byte order.
fn in_proc_net(addr: SocketAddr, dir: &str, tcp: bool) -> Option<bool> {
    let proto = if tcp { "tcp" } else { "udp" };
    let (file, ip) = match addr.ip() {
        IpAddr::V4(ip) => (
            proto.to_owned(),
            format!("{:08X}", u32::from_ne_bytes(ip.octets())),
        ),
        IpAddr::V6(ip) => (
            format!("{proto}6"),
            ip.octets()
                .chunks_exact(4)
                .map(|w| {
                    format!(
                        "{:08X}",
                        <[u8; 4]>::try_from(w).map_or(0, u32::from_ne_bytes)
                    )
                })
                .collect(),
        ),
    };
    let want = format!("{ip}:{:04X}", addr.port());
    let table = std::fs::read_to_string(format!("{dir}/{file}")).ok()?;
    Some(
        table
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some(want.as_str())),
    )
}

/// A port in [`SIP_PORTS`] free on `ip` right now. Successive calls in one
/// process walk the range from a per-process offset, so parallel tests do
/// not pick the same port.
fn pick_port(ip: IpAddr) -> Result<u16, SippError> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static BASE: OnceLock<u32> = OnceLock::new();
    let span = u32::from(SIP_PORTS.end() - SIP_PORTS.start()) + 1;
    let base = *BASE.get_or_init(|| std::process::id().wrapping_mul(7919) % span);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let offset = u16::try_from(base.wrapping_add(n) % span).unwrap_or(0);
        let port = SIP_PORTS.start() + offset;
        // Free for both, so a TCP run (`-t t1`) can take it too.
        if UdpSocket::bind((ip, port)).is_ok() && std::net::TcpListener::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(SippError::NoFreePort(ip))
}

fn fresh_temp_dir(scenario: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "pinhole-sipp-{}-{n}-{scenario}",
        std::process::id()
    ))
}

fn render_command(binary: &Path, args: &[OsString]) -> String {
    let mut s = binary.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s.push('\n');
    s
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `max` bytes of `s`, cut at a character boundary.
fn tail(s: &str, max: usize) -> String {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s.get(start..).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_default_and_override() {
        let k = Keys::new("127.0.0.2:36010".parse().unwrap()).domain("corp2.example");
        assert_eq!(k.get("mip"), Some("127.0.0.2"));
        assert_eq!(k.get("mport"), Some("36010"));
        assert_eq!(k.get("mipver"), Some("4"));
        assert_eq!(k.get("domain"), Some("corp2.example"));
        assert_eq!(k.get("from_domain"), Some("caller.example"));
        let k = Keys::new("[::1]:9".parse().unwrap())
            .set("mport", "10")
            .set("extra", "x");
        assert_eq!((k.get("mip"), k.get("mipver")), (Some("::1"), Some("6")));
        assert_eq!(k.get("mport"), Some("10"));
        assert_eq!(k.get("extra"), Some("x"));
        assert_eq!(k.pairs.iter().filter(|(n, _)| n == "mport").count(), 1);
    }

    #[test]
    fn command_line_carries_addresses_limits_and_keys() {
        let keys = Keys::new("127.0.0.1:36000".parse().unwrap());
        let s = Sipp::uac(
            "x.xml",
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.2:35001".parse().unwrap(),
            keys,
        )
        .calls(3)
        .rate(5)
        .pause(Duration::from_millis(1500))
        .timeout(Duration::from_secs(7))
        .service("bob")
        .arg("-nr");
        let args: Vec<String> = s
            .command_args(Path::new("/s/x.xml"), "127.0.0.1:35002".parse().unwrap())
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        for want in [
            "-sf /s/x.xml 127.0.0.2:35001 ",
            "-i 127.0.0.1 -p 35002 ",
            "-ci 127.0.0.1 -mi 127.0.0.1 ",
            "-t u1 -m 3 -timeout 7000ms -d 1500 -s bob ",
            "-r 5 ",
            "-key mip 127.0.0.1 -key mport 36000 -key mipver 4 ",
            "-timeout_error",
            "-trace_msg",
        ] {
            assert!(line.contains(want), "{want:?} missing from {line}");
        }
        assert!(line.ends_with(" -nr"), "{line}");
        // A UAS has no remote address.
        let uas = Sipp::uas(
            "x.xml",
            "127.0.0.2:0".parse().unwrap(),
            Keys::new("127.0.0.2:1".parse().unwrap()),
        );
        let args = uas.command_args(Path::new("/s/x.xml"), "127.0.0.2:35003".parse().unwrap());
        assert_eq!(
            args.get(2).map(|a| a.to_string_lossy().into_owned()),
            Some("-bind_local".into())
        );
    }

    #[test]
    fn picked_ports_are_in_range_and_distinct() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = pick_port(ip).unwrap();
        let b = pick_port(ip).unwrap();
        assert!(SIP_PORTS.contains(&a) && SIP_PORTS.contains(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn bound_ports_are_seen() {
        let s = UdpSocket::bind("127.0.0.3:0").unwrap();
        let addr = s.local_addr().unwrap();
        assert!(bound_by_someone(addr, false));
        let l = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
        let taddr = l.local_addr().unwrap();
        assert!(bound_by_someone(taddr, true));
        if Path::new("/proc/net/tcp").exists() {
            assert_eq!(in_proc_net(taddr, "/proc/net", true), Some(true));
            drop(l);
            assert_eq!(in_proc_net(taddr, "/proc/net", true), Some(false));
        }
        if Path::new("/proc/net/udp").exists() {
            assert_eq!(in_proc_net(addr, "/proc/net", false), Some(true));
            // The same table through a process's own entry (how a sipp run
            // in another network namespace is watched).
            let own = format!("/proc/{}/net", std::process::id());
            assert_eq!(in_proc_net(addr, &own, false), Some(true));
            drop(s);
            assert_eq!(in_proc_net(addr, "/proc/net", false), Some(false));
        }
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("hello", 3), "llo");
        assert_eq!(tail("hi", 10), "hi");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aéb", 2), "b");
    }

    #[test]
    fn missing_scenario_is_an_error() {
        if sipp_binary().is_none() {
            return;
        }
        let keys = Keys::new("127.0.0.1:9".parse().unwrap());
        let err = Sipp::uas("/nonexistent/uas.xml", "127.0.0.1:0".parse().unwrap(), keys)
            .spawn()
            .unwrap_err();
        assert!(matches!(err, SippError::NoScenario(_)), "{err}");
    }
}
