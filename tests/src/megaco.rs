//! Runs real H.248 (MEGACO) peers that nobody here wrote: a media gateway
//! controller and media gateways built on Erlang/OTP's `megaco`
//! application (Debian packages `erlang-megaco` and `erlang-base`), as the
//! small escripts `tests/megaco/mgc.escript` and `tests/megaco/mg.escript`.
//! `docs/megaco.md` describes the escripts, their arguments and the
//! ladder they drive.
//!
//! [`MgcConfig::start`] runs the MGC and waits until its socket is bound;
//! [`MgConfig::start`] runs one MG, which registers with a ServiceChange
//! Restart on its own. Once both MGs are registered the MGC sets up
//! `--calls` calls (Add to MG1 with a CHOOSE Local, Add to MG2 with MG1's
//! Local as Remote, Modify of MG1 with MG2's Local as Remote, hold,
//! Subtract of both) while the MGs send RTP to their Remotes and count what
//! arrives. [`Mgc::wait`] and [`Mg::wait`] collect the exit status and the
//! escripts' machine-readable lines into an [`MgcReport`] and
//! [`MgReport`]s (one [`MgResult`] per call) for the test to assert on.
//!
//! Every address and port is an argument, so Pinhole's MPR and APS can sit
//! between the peers; [`MgcConfig::netns`] and [`MgConfig::netns`] run a
//! peer inside a network namespace (`ip netns exec NS escript ...`).
//!
//! # What the MGC sees as an MG's address
//!
//! OTP's megaco keys each association on the MG's **mId** (the MID in the
//! message header), not on its transport address. The first message from
//! an unknown mId creates the association, and megaco stores that
//! datagram's *source address* as where the MGC's own requests (Add,
//! Modify, Subtract) go; a reply always goes to the source of the request
//! it answers. The MID's own address (`[IP]:PORT`) is never used for
//! sending. [`ServiceChange::peer`] is that stored address: with nothing
//! in between it is the MG's `--local` socket; behind Pinhole it is
//! whatever address the MPR relays the MG's ServiceChange from. Two MGs
//! must therefore use two different MIDs, even behind one relay address.
//!
//! The MG side connects with megaco's `preliminary_mid` unless
//! [`MgConfig::mgc_mid`] names the MGC's MID, and learns the MGC's MID from
//! the ServiceChange reply. It sends to `--mgc` only.
//!
//! Each run is bounded: the escripts time out every wait (`--max-ms`),
//! [`Mgc::wait`]/[`Mg::wait`] kill the process when their own timeout
//! passes, and dropping an [`Mgc`] or [`Mg`] kills its process. Without
//! `escript` or the megaco application, `start` prints a loud SKIP and
//! returns `Ok(None)`, unless the `CI` environment variable is set, where
//! it is an error.
//!
//! ```no_run
//! use std::time::Duration;
//! use pinhole_tests::megaco::{MgConfig, MgcConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let Some(mut mgc) = MgcConfig::new("127.0.0.70:29400".parse()?)
//!     .mg_mids("[127.0.0.71]:29401", "<mg2.example>")
//!     .hold(Duration::from_millis(1000))
//!     .start()?
//! else {
//!     return Ok(()); // not installed, not CI: skipped loudly
//! };
//! let mgc_addr = mgc.listen_addr();
//! let mg = |local: &str, mid: &str, rtp: &str| -> Result<_, Box<dyn std::error::Error>> {
//!     Ok(MgConfig::new(mgc_addr, local.parse()?, mid, rtp.parse()?)
//!         .packets(50)
//!         .interval(Duration::from_millis(10)))
//! };
//! let mut mg1 = mg("127.0.0.71:29401", "[127.0.0.71]:29401", "127.0.0.71:45000")?
//!     .start()?
//!     .expect("installed");
//! let mut mg2 = mg("127.0.0.72:29402", "<mg2.example>", "127.0.0.72:45002")?
//!     .start()?
//!     .expect("installed");
//! let report = mgc.wait(Duration::from_secs(15))?.ensure_success()?;
//! let r1 = mg1.wait(Duration::from_secs(5))?.ensure_success()?;
//! let r2 = mg2.wait(Duration::from_secs(5))?.ensure_success()?;
//! assert_eq!(report.add(1, 1).map(|a| a.local), Some("127.0.0.71:45000".parse()?));
//! println!("{} RTP packets reached MG1", r1.results[0].rtp_received);
//! # let _ = r2;
//! # Ok(())
//! # }
//! ```

pub mod through;

use std::fs::File;
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The environment variable naming the escript binary; unset, `escript`
/// is looked up on `PATH`.
pub const ESCRIPT_ENV: &str = "ESCRIPT";

/// How long a fresh MGC may take to bind its socket (about 1 s on an idle
/// machine: the VM starts, then the escript compiles itself).
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How often the harness polls a process and its output.
const POLL: Duration = Duration::from_millis(20);
/// The line the MGC prints once its socket is bound.
const READY_EVENT: &str = "listening";

/// What went wrong running the megaco escripts.
#[derive(Debug, thiserror::Error)]
pub enum MegacoError {
    /// No escript or no megaco application, and `CI` is set.
    #[error(
        "escript or Erlang/OTP's megaco not found and CI is set: install erlang-megaco and erlang-base (.ci/run does) or set {ESCRIPT_ENV}"
    )]
    NotFound,
    /// A file or process operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the harness was doing.
        what: &'static str,
        /// The file or binary concerned.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The MGC exited, or did not bind its socket, at start-up.
    #[error("{who} did not start ({why}); stderr: {stderr}")]
    Start {
        /// "mgc" or "mg MID".
        who: String,
        /// Exit status or other reason.
        why: String,
        /// The end of the escript's stderr.
        stderr: String,
    },
    /// The process did not exit within the wait's timeout (it was killed).
    #[error("{who} still running after {after:?} (killed); stdout: {stdout}; stderr: {stderr}")]
    Timeout {
        /// "mgc" or "mg MID".
        who: String,
        /// The wait's timeout.
        after: Duration,
        /// The end of its stdout.
        stdout: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// An EVENT or RESULT line the harness cannot read.
    #[error("bad line from {who}: {line:?} ({why})")]
    BadLine {
        /// "mgc" or "mg MID".
        who: String,
        /// The line.
        line: String,
        /// What is wrong with it.
        why: String,
    },
    /// The run finished but not successfully (see `ensure_success`).
    #[error("{0}")]
    Failed(String),
}

/// The escript binary: `$ESCRIPT` if set, else `escript` on `PATH`.
pub fn escript_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(ESCRIPT_ENV) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("escript"))
        .find(|p| p.is_file())
}

/// The path of an escript shipped in `tests/megaco/`, e.g.
/// `script("mgc.escript")`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("megaco")
        .join(name)
}

/// True when escript runs and loads the megaco application
/// (`mgc.escript --check`); probed once per process.
pub fn megaco_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let Some(escript) = escript_binary() else {
            return false;
        };
        Command::new(escript)
            .arg(script("mgc.escript"))
            .arg("--check")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `Ok(true)` when the escripts can run; otherwise a loud skip notice and
/// `Ok(false)`, or [`MegacoError::NotFound`] when `CI` is set.
fn available_or_skip() -> Result<bool, MegacoError> {
    if megaco_available() {
        return Ok(true);
    }
    if std::env::var_os("CI").is_some() {
        return Err(MegacoError::NotFound);
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("megaco test");
    let bar = "!".repeat(72);
    let notice = format!(
        "\n{bar}\n!!! SKIPPED {test}: escript or Erlang/OTP's megaco not found \
         (apt-get install erlang-megaco erlang-base, or set {ESCRIPT_ENV})\n{bar}\n"
    );
    // Straight to the process's stderr: libtest hides eprintln! output of
    // passing tests, and a skip must be seen.
    let _ = io::stderr().write_all(notice.as_bytes());
    Ok(false)
}

/// The H.248 text encoding a peer sends (it decodes either).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Encoding {
    /// `megaco_pretty_text_encoder`: long tokens, indented.
    #[default]
    Pretty,
    /// `megaco_compact_text_encoder`: short tokens (`!/1`, `A=`, `MF=`).
    Compact,
}

impl Encoding {
    fn arg(self) -> &'static str {
        match self {
            Self::Pretty => "pretty",
            Self::Compact => "compact",
        }
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// How to run the MGC. [`MgcConfig::new`] sets the listening address;
/// adjust, then [`start`](Self::start).
#[derive(Clone, Debug)]
pub struct MgcConfig {
    listen: SocketAddr,
    mid: Option<String>,
    calls: u32,
    hold: Duration,
    encoding: Encoding,
    termination: Option<String>,
    mg_mids: Option<(String, String)>,
    wait: Duration,
    request: Duration,
    max: Duration,
    netns: Option<String>,
    dir: Option<PathBuf>,
}

impl MgcConfig {
    /// An MGC listening on `listen` (IPv4). Defaults: MID `[IP]:PORT` of
    /// `listen`, 1 call, 1 s hold, pretty text, termination `$`, MGs
    /// assigned in the order they register, 10 s for both to register,
    /// 3 s per request (three sends), 25 s for the whole run.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            mid: None,
            calls: 1,
            hold: Duration::from_secs(1),
            encoding: Encoding::Pretty,
            termination: None,
            mg_mids: None,
            wait: Duration::from_secs(10),
            request: Duration::from_secs(3),
            max: Duration::from_secs(25),
            netns: None,
            dir: None,
        }
    }

    /// The MGC's own MID, in H.248 text (`[IP]:PORT`, `<name>:PORT`,
    /// `<name>` or a device name).
    pub fn mid(mut self, mid: impl Into<String>) -> Self {
        self.mid = Some(mid.into());
        self
    }

    /// How many calls, one after another, on the same two MGs.
    pub fn calls(mut self, n: u32) -> Self {
        self.calls = n.max(1);
        self
    }

    /// How long each call stays up between the Modify and the Subtracts.
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    /// The encoding the MGC sends.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The termination the Adds name (default `$`: the MG chooses).
    pub fn termination(mut self, name: impl Into<String>) -> Self {
        self.termination = Some(name.into());
        self
    }

    /// Which registering MID is MG1 (Added first, without Remote) and
    /// which MG2; without this, the order the ServiceChanges arrive in.
    pub fn mg_mids(mut self, mg1: impl Into<String>, mg2: impl Into<String>) -> Self {
        self.mg_mids = Some((mg1.into(), mg2.into()));
        self
    }

    /// How long the MGC waits for both MGs to register.
    pub fn wait_registrations(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// How long one request may go unanswered (sent three times within).
    pub fn request_timeout(mut self, request: Duration) -> Self {
        self.request = request;
        self
    }

    /// The escript's bound on its whole run (`--max-ms`).
    pub fn max_run(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Runs the MGC inside network namespace `ns` (`ip netns exec`).
    pub fn netns(mut self, ns: impl Into<String>) -> Self {
        self.netns = Some(ns.into());
        self
    }

    /// Where stdout and stderr go (`mgc.stdout`, `mgc.stderr`); created
    /// if missing. Default: a fresh folder under the system temp dir.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The escript's arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["--listen".to_owned(), self.listen.to_string()];
        if let Some(mid) = &self.mid {
            a.extend(["--mid".to_owned(), mid.clone()]);
        }
        a.extend([
            "--calls".to_owned(),
            self.calls.to_string(),
            "--hold-ms".to_owned(),
            ms(self.hold),
            "--encoding".to_owned(),
            self.encoding.arg().to_owned(),
        ]);
        if let Some(t) = &self.termination {
            a.extend(["--termination".to_owned(), t.clone()]);
        }
        if let Some((mg1, mg2)) = &self.mg_mids {
            a.extend([
                "--mg1-mid".to_owned(),
                mg1.clone(),
                "--mg2-mid".to_owned(),
                mg2.clone(),
            ]);
        }
        a.extend([
            "--wait-ms".to_owned(),
            ms(self.wait),
            "--request-ms".to_owned(),
            ms(self.request),
            "--max-ms".to_owned(),
            ms(self.max),
        ]);
        a
    }

    /// The full command line with `escript` as the binary.
    pub fn command_line(&self, escript: &Path) -> Vec<String> {
        command_line(
            escript,
            self.netns.as_deref(),
            &script("mgc.escript"),
            self.args(),
        )
    }

    /// Starts the MGC and waits until it listens (its `EVENT listening`
    /// line). `Ok(None)`: not installed and `CI` unset (skipped loudly).
    pub fn start(&self) -> Result<Option<Mgc>, MegacoError> {
        if !available_or_skip()? {
            return Ok(None);
        }
        let escript = escript_binary().ok_or(MegacoError::NotFound)?;
        let dir = self.dir.clone().unwrap_or_else(|| fresh_temp_dir("mgc"));
        let mut proc = Proc::spawn("mgc".to_owned(), &self.command_line(&escript), &dir, "mgc")?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if proc.events().iter().any(|e| e.name == READY_EVENT) {
                break;
            }
            if let Some(status) = proc.try_wait()? {
                return Err(proc.start_error(format!("exited with {status}")));
            }
            if Instant::now() >= deadline {
                return Err(proc.start_error(format!("not listening within {READY_WITHIN:?}")));
            }
            std::thread::sleep(POLL);
        }
        Ok(Some(Mgc {
            proc,
            listen: self.listen,
        }))
    }
}

/// How to run one MG. [`MgConfig::new`] sets the addresses and MID;
/// adjust, then [`start`](Self::start).
#[derive(Clone, Debug)]
pub struct MgConfig {
    mgc: SocketAddr,
    local: SocketAddr,
    mid: String,
    rtp: SocketAddr,
    sdp_ip: Option<IpAddr>,
    packets: u32,
    interval: Duration,
    calls: u32,
    encoding: Encoding,
    mgc_mid: Option<String>,
    drain: Duration,
    request: Duration,
    max: Duration,
    netns: Option<String>,
    dir: Option<PathBuf>,
}

impl MgConfig {
    /// An MG with its signalling socket on `local`, registering as `mid`
    /// with the MGC at `mgc`, with its RTP socket on `rtp` (all IPv4).
    /// Defaults: 50 packets 20 ms apart, 1 call, pretty text, the MGC's
    /// MID learnt from its reply, 100 ms drain, 3 s per request, 25 s for
    /// the whole run.
    pub fn new(
        mgc: SocketAddr,
        local: SocketAddr,
        mid: impl Into<String>,
        rtp: SocketAddr,
    ) -> Self {
        Self {
            mgc,
            local,
            mid: mid.into(),
            rtp,
            sdp_ip: None,
            packets: 50,
            interval: Duration::from_millis(20),
            calls: 1,
            encoding: Encoding::Pretty,
            mgc_mid: None,
            drain: Duration::from_millis(100),
            request: Duration::from_secs(3),
            max: Duration::from_secs(25),
            netns: None,
            dir: None,
        }
    }

    /// The IP the Local SDP names (default: the RTP socket's).
    pub fn sdp_ip(mut self, ip: IpAddr) -> Self {
        self.sdp_ip = Some(ip);
        self
    }

    /// RTP packets sent per call.
    pub fn packets(mut self, n: u32) -> Self {
        self.packets = n;
        self
    }

    /// Time between two RTP packets.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How many calls the MG serves before exiting.
    pub fn calls(mut self, n: u32) -> Self {
        self.calls = n.max(1);
        self
    }

    /// The encoding the MG sends.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The MGC's MID, when the MG should connect knowing it.
    pub fn mgc_mid(mut self, mid: impl Into<String>) -> Self {
        self.mgc_mid = Some(mid.into());
        self
    }

    /// How long RTP is still counted after a Subtract.
    pub fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// How long one request may go unanswered (sent three times within).
    pub fn request_timeout(mut self, request: Duration) -> Self {
        self.request = request;
        self
    }

    /// The escript's bound on its whole run (`--max-ms`).
    pub fn max_run(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Runs the MG inside network namespace `ns` (`ip netns exec`).
    pub fn netns(mut self, ns: impl Into<String>) -> Self {
        self.netns = Some(ns.into());
        self
    }

    /// Where stdout and stderr go (`mg-<port>.stdout`, `.stderr`, by the
    /// signalling port); created if missing. Default: a fresh folder
    /// under the system temp dir.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The escript's arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--mgc".to_owned(),
            self.mgc.to_string(),
            "--local".to_owned(),
            self.local.to_string(),
            "--mid".to_owned(),
            self.mid.clone(),
            "--rtp-ip".to_owned(),
            self.rtp.ip().to_string(),
            "--rtp-port".to_owned(),
            self.rtp.port().to_string(),
        ];
        if let Some(ip) = self.sdp_ip {
            a.extend(["--sdp-ip".to_owned(), ip.to_string()]);
        }
        if let Some(mid) = &self.mgc_mid {
            a.extend(["--mgc-mid".to_owned(), mid.clone()]);
        }
        a.extend([
            "--packets".to_owned(),
            self.packets.to_string(),
            "--interval-ms".to_owned(),
            ms(self.interval),
            "--calls".to_owned(),
            self.calls.to_string(),
            "--encoding".to_owned(),
            self.encoding.arg().to_owned(),
            "--drain-ms".to_owned(),
            ms(self.drain),
            "--request-ms".to_owned(),
            ms(self.request),
            "--max-ms".to_owned(),
            ms(self.max),
        ]);
        a
    }

    /// The full command line with `escript` as the binary.
    pub fn command_line(&self, escript: &Path) -> Vec<String> {
        command_line(
            escript,
            self.netns.as_deref(),
            &script("mg.escript"),
            self.args(),
        )
    }

    /// Starts the MG (it registers with the MGC by itself, retrying).
    /// `Ok(None)`: not installed and `CI` unset (skipped loudly).
    pub fn start(&self) -> Result<Option<Mg>, MegacoError> {
        if !available_or_skip()? {
            return Ok(None);
        }
        let escript = escript_binary().ok_or(MegacoError::NotFound)?;
        let dir = self.dir.clone().unwrap_or_else(|| fresh_temp_dir("mg"));
        let proc = Proc::spawn(
            format!("mg {}", self.mid),
            &self.command_line(&escript),
            &dir,
            &format!("mg-{}", self.local.port()),
        )?;
        Ok(Some(Mg { proc }))
    }
}

fn command_line(
    escript: &Path,
    netns: Option<&str>,
    script: &Path,
    args: Vec<String>,
) -> Vec<String> {
    let mut line = Vec::new();
    if let Some(ns) = netns {
        line.extend(["ip", "netns", "exec", ns].map(str::to_owned));
    }
    line.push(escript.display().to_string());
    line.push(script.display().to_string());
    line.extend(args);
    line
}

/// A running escript with its output in files; killed on drop.
#[derive(Debug)]
struct Proc {
    who: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    exit: Option<ExitStatus>,
}

impl Proc {
    fn spawn(who: String, line: &[String], dir: &Path, stem: &str) -> Result<Self, MegacoError> {
        let io_err = |what, path: &Path| {
            let path = path.display().to_string();
            move |source| MegacoError::Io { what, path, source }
        };
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let stdout = dir.join(format!("{stem}.stdout"));
        let stderr = dir.join(format!("{stem}.stderr"));
        let out = File::create(&stdout).map_err(io_err("creating", &stdout))?;
        let err = File::create(&stderr).map_err(io_err("creating", &stderr))?;
        let (bin, args) = line
            .split_first()
            .unwrap_or_else(|| unreachable!("non-empty"));
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io_err("starting", Path::new(bin)))?;
        Ok(Self {
            who,
            child,
            stdout,
            stderr,
            exit: None,
        })
    }

    fn stdout_text(&self) -> String {
        read_lossy(&self.stdout)
    }

    fn stderr_text(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// The EVENT lines so far (unreadable ones skipped).
    fn events(&self) -> Vec<Event> {
        self.stdout_text()
            .lines()
            .filter_map(|l| Event::parse(l).ok())
            .collect()
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>, MegacoError> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().map_err(|source| MegacoError::Io {
                what: "waiting for",
                path: self.who.clone(),
                source,
            })?;
        }
        Ok(self.exit)
    }

    /// Waits for the exit, killing the process after `timeout`.
    fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, MegacoError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(MegacoError::Timeout {
                    who: self.who.clone(),
                    after: timeout,
                    stdout: tail(&self.stdout_text(), 2000).to_owned(),
                    stderr: tail(&self.stderr_text(), 2000).to_owned(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    fn kill(&mut self) {
        if self.exit.is_none() {
            // Already gone is fine: nothing left to stop.
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }

    fn start_error(&mut self, why: String) -> MegacoError {
        self.kill();
        MegacoError::Start {
            who: self.who.clone(),
            why,
            stderr: tail(&self.stderr_text(), 2000).to_owned(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running MGC (see [`MgcConfig::start`]); killed on drop.
#[derive(Debug)]
pub struct Mgc {
    proc: Proc,
    listen: SocketAddr,
}

impl Mgc {
    /// The address the MGC listens on (where MGs send).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The EVENT lines printed so far.
    pub fn events(&self) -> Vec<Event> {
        self.proc.events()
    }

    /// The file holding the MGC's stdout (its EVENT lines).
    pub fn stdout_path(&self) -> &Path {
        &self.proc.stdout
    }

    /// Waits for the MGC to exit (killing it after `timeout`) and reads
    /// its report, whatever the exit status.
    pub fn wait(&mut self, timeout: Duration) -> Result<MgcReport, MegacoError> {
        let status = self.proc.wait(timeout)?;
        MgcReport::parse(&self.proc.stdout_text(), &self.proc.stderr_text(), status)
    }
}

/// A running MG (see [`MgConfig::start`]); killed on drop.
#[derive(Debug)]
pub struct Mg {
    proc: Proc,
}

impl Mg {
    /// The EVENT lines printed so far.
    pub fn events(&self) -> Vec<Event> {
        self.proc.events()
    }

    /// The file holding the MG's stdout (its EVENT and RESULT lines).
    pub fn stdout_path(&self) -> &Path {
        &self.proc.stdout
    }

    /// Waits for the MG to exit (killing it after `timeout`) and reads
    /// its RESULT lines, whatever the exit status.
    pub fn wait(&mut self, timeout: Duration) -> Result<MgReport, MegacoError> {
        let status = self.proc.wait(timeout)?;
        MgReport::parse(
            &self.proc.who,
            &self.proc.stdout_text(),
            &self.proc.stderr_text(),
            status,
        )
    }
}

/// One `EVENT name key=value ...` line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    /// The word after `EVENT`.
    pub name: String,
    /// The `key=value` fields, in order.
    pub fields: Vec<(String, String)>,
}

impl Event {
    /// Parses one line; `Err` with the reason when it is not an EVENT.
    ///
    /// ```
    /// use pinhole_tests::megaco::Event;
    ///
    /// let e = Event::parse("EVENT add_reply call=1 mg=2 local=127.0.0.72:45002").unwrap();
    /// assert_eq!((e.name.as_str(), e.get("mg")), ("add_reply", Some("2")));
    /// ```
    pub fn parse(line: &str) -> Result<Self, String> {
        let rest = line
            .trim_end()
            .strip_prefix("EVENT ")
            .ok_or("not an EVENT line")?;
        let mut words = rest.split(' ');
        let name = words.next().filter(|n| !n.is_empty()).ok_or("no name")?;
        let fields = fields(words)?;
        Ok(Self {
            name: name.to_owned(),
            fields,
        })
    }

    /// The value of field `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn fields<'a>(words: impl Iterator<Item = &'a str>) -> Result<Vec<(String, String)>, String> {
    words
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("field {w:?} without ="))
        })
        .collect()
}

/// A field of an event, parsed; `BadLine` when missing or unreadable.
fn field<T: FromStr>(who: &str, e: &Event, key: &str) -> Result<T, MegacoError> {
    let bad = |why: String| MegacoError::BadLine {
        who: who.to_owned(),
        line: format!("EVENT {} {:?}", e.name, e.fields),
        why,
    };
    e.get(key)
        .ok_or_else(|| bad(format!("no {key}=")))?
        .parse()
        .map_err(|_| bad(format!("unreadable {key}=")))
}

/// A ServiceChange the MGC answered.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServiceChange {
    /// The slot the MG got: 1 or 2.
    pub mg: u8,
    /// The MG's mId as in the message header (text form).
    pub mid: String,
    /// The MG's transport address as megaco stored it: the source of the
    /// MG's first message (see the module docs).
    pub peer: SocketAddr,
    /// The method (`restart`).
    pub method: String,
}

/// An Add reply: where an MG's termination receives RTP.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AddReply {
    /// The call (1-based).
    pub call: u32,
    /// 1 or 2.
    pub mg: u8,
    /// The context the MG chose.
    pub context: u32,
    /// The termination the MG chose (e.g. `rtp/1`).
    pub termination: String,
    /// The reply's Local SDP address (c= and m=audio).
    pub local: SocketAddr,
    /// The Remote sent in the Add (MG2's Add carries MG1's Local).
    pub remote: Option<SocketAddr>,
}

/// A Modify reply.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ModifyReply {
    /// The call.
    pub call: u32,
    /// 1 or 2.
    pub mg: u8,
    /// The context.
    pub context: u32,
    /// The termination the reply names.
    pub termination: String,
    /// The Remote the Modify carried.
    pub remote: SocketAddr,
}

/// A Subtract reply.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SubtractReply {
    /// The call.
    pub call: u32,
    /// 1 or 2.
    pub mg: u8,
    /// The context.
    pub context: u32,
    /// The termination the Subtract named (`*` for the whole context).
    pub request: String,
    /// The terminations the reply lists.
    pub terminations: Vec<String>,
}

/// What the MGC printed, and how it exited.
#[derive(Clone, Debug)]
pub struct MgcReport {
    /// The exit status.
    pub status: ExitStatus,
    /// The `ERROR` line on stderr, if any (without `ERROR `).
    pub error: Option<String>,
    /// The MGC's own MID (from `EVENT listening`).
    pub mid: Option<String>,
    /// The megaco application's version.
    pub megaco_version: Option<String>,
    /// The ServiceChanges, first registration of each MG.
    pub service_changes: Vec<ServiceChange>,
    /// The Add replies.
    pub adds: Vec<AddReply>,
    /// The Modify replies.
    pub modifies: Vec<ModifyReply>,
    /// The Subtract replies.
    pub subtracts: Vec<SubtractReply>,
    /// `EVENT done calls=N`: every call finished.
    pub done_calls: Option<u32>,
    /// Every EVENT line.
    pub events: Vec<Event>,
}

impl MgcReport {
    /// Reads the MGC's stdout and stderr.
    pub fn parse(stdout: &str, stderr: &str, status: ExitStatus) -> Result<Self, MegacoError> {
        let who = "mgc";
        let mut r = Self {
            status,
            error: error_line(stderr),
            mid: None,
            megaco_version: None,
            service_changes: Vec::new(),
            adds: Vec::new(),
            modifies: Vec::new(),
            subtracts: Vec::new(),
            done_calls: None,
            events: Vec::new(),
        };
        for line in stdout.lines().filter(|l| l.starts_with("EVENT ")) {
            let e = Event::parse(line).map_err(|why| MegacoError::BadLine {
                who: who.to_owned(),
                line: line.to_owned(),
                why,
            })?;
            match e.name.as_str() {
                "listening" => {
                    r.mid = e.get("mid").map(str::to_owned);
                    r.megaco_version = e.get("megaco").map(str::to_owned);
                }
                "servicechange" if e.get("repeat").is_none() => {
                    r.service_changes.push(ServiceChange {
                        mg: field(who, &e, "mg")?,
                        mid: field(who, &e, "mid")?,
                        peer: field(who, &e, "peer")?,
                        method: field(who, &e, "method")?,
                    });
                }
                "add_reply" => r.adds.push(AddReply {
                    call: field(who, &e, "call")?,
                    mg: field(who, &e, "mg")?,
                    context: field(who, &e, "context")?,
                    termination: field(who, &e, "termination")?,
                    local: field(who, &e, "local")?,
                    remote: match e.get("remote") {
                        Some(_) => Some(field(who, &e, "remote")?),
                        None => None,
                    },
                }),
                "modify_reply" => r.modifies.push(ModifyReply {
                    call: field(who, &e, "call")?,
                    mg: field(who, &e, "mg")?,
                    context: field(who, &e, "context")?,
                    termination: field(who, &e, "termination")?,
                    remote: field(who, &e, "remote")?,
                }),
                "subtract_reply" => r.subtracts.push(SubtractReply {
                    call: field(who, &e, "call")?,
                    mg: field(who, &e, "mg")?,
                    context: field(who, &e, "context")?,
                    request: field(who, &e, "request")?,
                    terminations: e
                        .get("terminations")
                        .unwrap_or_default()
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect(),
                }),
                "done" => r.done_calls = Some(field(who, &e, "calls")?),
                _ => {}
            }
            r.events.push(e);
        }
        Ok(r)
    }

    /// The ServiceChange of MG `mg` (1 or 2).
    pub fn service_change(&self, mg: u8) -> Option<&ServiceChange> {
        self.service_changes.iter().find(|s| s.mg == mg)
    }

    /// The Add reply of `call` from MG `mg`.
    pub fn add(&self, call: u32, mg: u8) -> Option<&AddReply> {
        self.adds.iter().find(|a| a.call == call && a.mg == mg)
    }

    /// Ok when the MGC exited 0 after `EVENT done`; else `Failed` with
    /// its error and the steps it reached.
    pub fn ensure_success(self) -> Result<Self, MegacoError> {
        if self.status.success() && self.done_calls.is_some() {
            return Ok(self);
        }
        let steps: Vec<&str> = self.events.iter().map(|e| e.name.as_str()).collect();
        Err(MegacoError::Failed(format!(
            "mgc exited with {} ({}); events: [{}]",
            self.status,
            self.error.as_deref().unwrap_or("no ERROR line"),
            steps.join(", ")
        )))
    }
}

/// One call as an MG saw it: its `RESULT` line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MgResult {
    /// The call (1-based, counted by this MG).
    pub call: u32,
    /// The context the MG chose.
    pub context: u32,
    /// The termination.
    pub termination: String,
    /// RTP packets sent to the Remote.
    pub rtp_sent: u32,
    /// Valid RTP (version 2) packets received on the RTP socket.
    pub rtp_received: u32,
    /// Other datagrams received on the RTP socket.
    pub rtp_bad: u32,
    /// The Remote it sent to (`None`: it never got one).
    pub remote: Option<SocketAddr>,
    /// Every source address datagrams came from, in order first seen.
    pub from: Vec<SocketAddr>,
    /// False when the MG timed out before the Subtract.
    pub subtracted: bool,
}

impl MgResult {
    /// Parses one `RESULT ...` line.
    ///
    /// ```
    /// use pinhole_tests::megaco::MgResult;
    ///
    /// let r = MgResult::parse(
    ///     "RESULT call=1 context=1 termination=rtp/1 rtp_sent=50 rtp_received=49 \
    ///      rtp_bad=0 remote=127.0.0.72:45002 from=127.0.0.72:45002 subtracted=true",
    /// )
    /// .unwrap();
    /// assert_eq!((r.rtp_sent, r.rtp_received), (50, 49));
    /// assert_eq!(r.from, vec!["127.0.0.72:45002".parse().unwrap()]);
    /// ```
    pub fn parse(line: &str) -> Result<Self, String> {
        let rest = line
            .trim_end()
            .strip_prefix("RESULT ")
            .ok_or("not a RESULT line")?;
        let f = fields(rest.split(' '))?;
        let get = |k: &str| {
            f.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| format!("no {k}="))
        };
        let num = |k: &str| -> Result<u32, String> {
            get(k)?.parse().map_err(|_| format!("unreadable {k}="))
        };
        let addr = |s: &str| -> Result<SocketAddr, String> {
            s.parse().map_err(|_| format!("unreadable address {s:?}"))
        };
        Ok(Self {
            call: num("call")?,
            context: num("context")?,
            termination: get("termination")?.to_owned(),
            rtp_sent: num("rtp_sent")?,
            rtp_received: num("rtp_received")?,
            rtp_bad: num("rtp_bad")?,
            remote: match get("remote")? {
                "none" => None,
                a => Some(addr(a)?),
            },
            from: get("from")?
                .split(',')
                .filter(|a| !a.is_empty())
                .map(addr)
                .collect::<Result<_, _>>()?,
            subtracted: get("subtracted")? == "true",
        })
    }
}

/// What an MG printed, and how it exited.
#[derive(Clone, Debug)]
pub struct MgReport {
    /// The exit status.
    pub status: ExitStatus,
    /// The `ERROR` line on stderr, if any (without `ERROR `).
    pub error: Option<String>,
    /// True once the MGC answered the ServiceChange (`EVENT registered`).
    pub registered: bool,
    /// One per call, in the order they ended.
    pub results: Vec<MgResult>,
    /// Every EVENT line.
    pub events: Vec<Event>,
}

impl MgReport {
    /// Reads an MG's stdout and stderr; `who` names it in errors.
    pub fn parse(
        who: &str,
        stdout: &str,
        stderr: &str,
        status: ExitStatus,
    ) -> Result<Self, MegacoError> {
        let bad = |line: &str, why: String| MegacoError::BadLine {
            who: who.to_owned(),
            line: line.to_owned(),
            why,
        };
        let mut r = Self {
            status,
            error: error_line(stderr),
            registered: false,
            results: Vec::new(),
            events: Vec::new(),
        };
        for line in stdout.lines() {
            if line.starts_with("RESULT ") {
                r.results
                    .push(MgResult::parse(line).map_err(|why| bad(line, why))?);
            } else if line.starts_with("EVENT ") {
                let e = Event::parse(line).map_err(|why| bad(line, why))?;
                r.registered |= e.name == "registered";
                r.events.push(e);
            }
        }
        Ok(r)
    }

    /// Ok when the MG exited 0 with every call subtracted; else `Failed`.
    pub fn ensure_success(self) -> Result<Self, MegacoError> {
        if self.status.success()
            && !self.results.is_empty()
            && self.results.iter().all(|r| r.subtracted)
        {
            return Ok(self);
        }
        let steps: Vec<&str> = self.events.iter().map(|e| e.name.as_str()).collect();
        Err(MegacoError::Failed(format!(
            "mg exited with {} ({}); events: [{}]; results: {:?}",
            self.status,
            self.error.as_deref().unwrap_or("no ERROR line"),
            steps.join(", "),
            self.results
        )))
    }
}

fn error_line(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("ERROR "))
        .map(str::to_owned)
}

/// A fresh, unique folder under the system temp dir.
fn fresh_temp_dir(what: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("pinhole-megaco-{what}-{}-{n}", std::process::id()))
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
    use std::os::unix::process::ExitStatusExt;

    /// Verbatim from a loopback run with megaco 4.4.2 (OTP 25).
    const MGC_OUT: &str = "\
EVENT listening addr=127.0.0.70:29400 mid=[127.0.0.70]:29400 encoding=pretty megaco=4.4.2
EVENT servicechange mg=1 mid=<mg2.example> peer=127.0.0.72:29402 method=restart reason=901
EVENT servicechange mg=2 mid=[127.0.0.71]:29401 peer=127.0.0.71:29401 method=restart reason=901
EVENT add_reply call=1 mg=1 context=1 termination=rtp/1 local=127.0.0.72:45002
EVENT add_reply call=1 mg=2 context=1 termination=rtp/1 local=127.0.0.71:45000 remote=127.0.0.72:45002
EVENT modify_reply call=1 mg=1 context=1 termination=rtp/1 remote=127.0.0.71:45000
EVENT subtract_reply call=1 mg=1 context=1 request=rtp/1 terminations=rtp/1
EVENT subtract_reply call=1 mg=2 context=1 request=* terminations=rtp/1
EVENT done calls=1
";

    #[test]
    fn parses_an_mgc_run() {
        let r = MgcReport::parse(MGC_OUT, "", ExitStatus::from_raw(0)).unwrap();
        assert_eq!(r.mid.as_deref(), Some("[127.0.0.70]:29400"));
        assert_eq!(r.megaco_version.as_deref(), Some("4.4.2"));
        let sc = r.service_change(1).unwrap();
        assert_eq!(
            (sc.mid.as_str(), sc.peer),
            ("<mg2.example>", "127.0.0.72:29402".parse().unwrap())
        );
        let add2 = r.add(1, 2).unwrap();
        assert_eq!(add2.local, "127.0.0.71:45000".parse().unwrap());
        assert_eq!(add2.remote, Some("127.0.0.72:45002".parse().unwrap()));
        assert_eq!(r.add(1, 1).unwrap().remote, None);
        assert_eq!(r.modifies.len(), 1);
        assert_eq!(r.subtracts[1].request, "*");
        assert_eq!(r.subtracts[1].terminations, vec!["rtp/1".to_owned()]);
        assert_eq!(r.done_calls, Some(1));
        assert!(r.ensure_success().is_ok());
    }

    #[test]
    fn failures_keep_the_reason() {
        let out = "EVENT listening addr=127.0.0.70:29400 mid=x megaco=4.4.2\n";
        let err = "ERROR timeout: 1 of 2 MGs registered within 10000 ms\n";
        let r = MgcReport::parse(out, err, ExitStatus::from_raw(1 << 8)).unwrap();
        assert_eq!(
            r.error.as_deref(),
            Some("timeout: 1 of 2 MGs registered within 10000 ms")
        );
        let e = r.ensure_success().unwrap_err().to_string();
        assert!(e.contains("1 of 2 MGs") && e.contains("listening"), "{e}");
        let bad = MgcReport::parse(
            "EVENT add_reply call=1 mg=1 local=nowhere\n",
            "",
            ExitStatus::from_raw(0),
        );
        assert!(matches!(bad, Err(MegacoError::BadLine { .. })), "{bad:?}");
    }

    #[test]
    fn parses_mg_results() {
        let out = "EVENT started local=127.0.0.71:29401 mid=[127.0.0.71]:29401\n\
            EVENT registered version=1\n\
            RESULT call=1 context=1 termination=rtp/1 rtp_sent=20 rtp_received=0 rtp_bad=2 \
            remote=none from=127.0.0.9:1,127.0.0.8:2 subtracted=false\n";
        let r =
            MgReport::parse("mg", out, "ERROR timeout\n", ExitStatus::from_raw(1 << 8)).unwrap();
        assert!(r.registered);
        let res = &r.results[0];
        assert_eq!((res.rtp_sent, res.rtp_bad, res.remote), (20, 2, None));
        assert_eq!(res.from.len(), 2);
        assert!(!res.subtracted);
        assert!(r.ensure_success().is_err());
        for bad in ["RESULT call=x", "RESULT call", "EVENT x", "nothing"] {
            assert!(MgResult::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_lines_carry_every_address() {
        let mgc = MgcConfig::new("127.0.0.70:29400".parse().unwrap())
            .mg_mids("[127.0.0.71]:29401", "<mg2.example>")
            .encoding(Encoding::Compact)
            .netns("public");
        let line = mgc.command_line(Path::new("escript")).join(" ");
        assert!(line.starts_with("ip netns exec public escript "), "{line}");
        for want in [
            "mgc.escript --listen 127.0.0.70:29400",
            "--mg1-mid [127.0.0.71]:29401 --mg2-mid <mg2.example>",
            "--encoding compact",
        ] {
            assert!(line.contains(want), "{want:?} missing from {line}");
        }
        let mg = MgConfig::new(
            "127.0.0.70:29400".parse().unwrap(),
            "127.0.0.71:29401".parse().unwrap(),
            "[127.0.0.71]:29401",
            "127.0.0.71:45000".parse().unwrap(),
        )
        .sdp_ip("192.0.2.1".parse().unwrap())
        .interval(Duration::from_millis(10));
        let line = mg.command_line(Path::new("escript")).join(" ");
        assert!(line.starts_with("escript "), "{line}");
        for want in [
            "--mgc 127.0.0.70:29400 --local 127.0.0.71:29401 --mid [127.0.0.71]:29401",
            "--rtp-ip 127.0.0.71 --rtp-port 45000 --sdp-ip 192.0.2.1",
            "--interval-ms 10",
        ] {
            assert!(line.contains(want), "{want:?} missing from {line}");
        }
    }
}
