//! For tests that run the `pinhole` daemons (or any binary) as child
//! processes: free loopback ports, configuration files, a child that dies
//! with the test, and the `/metrics` endpoint.
//!
//! ```
//! use pinhole_tests::daemon;
//!
//! let sip = daemon::free_udp("127.0.0.1");
//! assert_eq!(sip.ip().to_string(), "127.0.0.1");
//! let cfg = daemon::write_config("pinhole-doctest", "aps.toml", &format!("signaling = \"{sip}\"\n"));
//! assert!(std::fs::read_to_string(cfg).unwrap().contains(&sip.to_string()));
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A UDP port on `ip` that was free a moment ago (bound, then released).
pub fn free_udp(ip: &str) -> SocketAddr {
    UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Writes `text` to `name` in the temporary folder `{dir}-{pid}` (one per
/// test process, so parallel test binaries do not share files) and
/// returns its path.
pub fn write_config(dir: &str, name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{dir}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The environment variable naming a `pinhole` binary for tests outside
/// the `pinhole` package (which cannot use `CARGO_BIN_EXE_pinhole`).
pub const PINHOLE_BIN_ENV: &str = "PINHOLE_BIN";

/// The `pinhole` binary, for tests of other packages: `$PINHOLE_BIN` when
/// set; else cargo builds it now (`cargo build -p pinhole --bin pinhole`,
/// in the test's own target folder and profile, a no-op when it is up to
/// date) and it is found next to the test's executable
/// (`<target>/<profile>/deps/<test>` → `<target>/<profile>/pinhole`).
/// Built once per test process; an error says why it is missing.
pub fn pinhole_binary() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os(PINHOLE_BIN_ENV) {
            return Ok(PathBuf::from(p));
        }
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| format!("{} is not in <target>/<profile>/deps", exe.display()))?;
        let target = profile_dir
            .parent()
            .ok_or_else(|| format!("{} has no target folder", profile_dir.display()))?;
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(["build", "--quiet", "-p", "pinhole", "--bin", "pinhole"])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .arg("--target-dir")
            .arg(target);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => {}
        }
        let status = cmd.status().map_err(|e| {
            format!("cannot run cargo to build pinhole ({e}); set {PINHOLE_BIN_ENV}")
        })?;
        if !status.success() {
            return Err(format!("cargo build -p pinhole: {status}"));
        }
        let bin = profile_dir.join("pinhole");
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "{} missing after the build; set {PINHOLE_BIN_ENV}",
                bin.display()
            ))
        }
    })
    .clone()
}

/// A child process killed and reaped when dropped, so a failing test
/// leaves nothing running.
pub struct Daemon(Option<Child>);

impl Daemon {
    /// Starts `cmd` (panics when it cannot start).
    pub fn spawn(cmd: &mut Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        Self(Some(child))
    }

    /// Starts `{bin} {args…} --config {config}`, its stdout discarded and
    /// its stderr as `stderr` says.
    pub fn with_config(bin: &str, args: &[&str], config: &Path, stderr: Stdio) -> Self {
        Self::spawn(
            Command::new(bin)
                .args(args)
                .arg("--config")
                .arg(config)
                .stdout(Stdio::null())
                .stderr(stderr),
        )
    }

    /// The child's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits at most `within` for the exit (then kills
    /// it and panics). Returns the exit status and, if the child's stderr
    /// was piped, all it wrote there.
    pub fn sigterm_and_wait(&mut self, within: Duration) -> (ExitStatus, String) {
        let mut child = self.0.take().expect("the daemon is still running");
        // The shell's builtin kill: no procps needed on minimal images.
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", child.id())])
            .status()
            .unwrap();
        assert!(ok.success());
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > within {
                let _ = child.kill();
                panic!("no exit within {} s of SIGTERM", within.as_secs());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            e.read_to_string(&mut err).unwrap();
        }
        (status, err)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One `GET /metrics` of the daemon's metrics endpoint at `addr`: the whole
/// HTTP response, status line included.
pub fn scrape_metrics(addr: SocketAddr) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Scrapes `addr` every 50 ms until the text contains `line` and returns
/// that text; panics after `within`.
pub fn wait_metric(addr: SocketAddr, line: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(m) = scrape_metrics(addr)
            && m.contains(line)
        {
            return m;
        }
        assert!(Instant::now() < deadline, "no {line:?} at {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the sample `key` (its name and labels, as printed) in a
/// metrics text.
///
/// ```
/// let text = "pinhole_up 1\npinhole_relay_packets_total{direction=\"in\"} 42\n";
/// let key = "pinhole_relay_packets_total{direction=\"in\"}";
/// assert_eq!(pinhole_tests::daemon::metric(text, key), Some(42.0));
/// assert_eq!(pinhole_tests::daemon::metric(text, "pinhole_u"), None);
/// ```
pub fn metric(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn metrics_are_fetched_with_one_get_and_waited_for() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            // The first scrape finds nothing yet, the second the line.
            for body in ["pinhole_up 0\n", "pinhole_up 1\n"] {
                let (mut s, _) = listener.accept().unwrap();
                let mut req = [0u8; 256];
                let n = s.read(&mut req).unwrap();
                assert!(req[..n].starts_with(b"GET /metrics HTTP/1.1\r\n"));
                let _ = write!(s, "HTTP/1.1 200 OK\r\n\r\n{body}");
            }
        });
        let m = wait_metric(addr, "pinhole_up 1", Duration::from_secs(10));
        assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
        assert_eq!(metric(&m, "pinhole_up"), Some(1.0));
        server.join().unwrap();
        assert!(scrape_metrics(addr).is_err(), "nobody listens any more");
    }

    #[test]
    fn a_daemon_stops_on_sigterm_and_hands_back_its_stderr() {
        let mut d = Daemon::spawn(
            Command::new("sh")
                .args([
                    "-c",
                    "trap 'echo bye >&2; exit 0' TERM; echo up >&2; while :; do sleep 0.05; done",
                ])
                .stderr(Stdio::piped()),
        );
        std::thread::sleep(Duration::from_millis(300));
        let (status, err) = d.sigterm_and_wait(Duration::from_secs(10));
        assert!(status.success(), "{status}");
        assert_eq!(err, "up\nbye\n");
    }

    #[test]
    fn a_dropped_daemon_is_killed() {
        let d = Daemon::spawn(Command::new("sleep").arg("30"));
        let pid = d.0.as_ref().unwrap().id();
        drop(d);
        let alive = Command::new("sh")
            .args(["-c", &format!("kill -0 {pid} 2>/dev/null")])
            .status()
            .unwrap();
        assert!(!alive.success(), "pid {pid} still runs");
    }
}
