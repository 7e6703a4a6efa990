//! The topology: six network namespaces joined by veth pairs, two of them
//! firewalls running a real nftables ruleset (masquerade, stateful filter)
//! with a short UDP conntrack timeout. Created per scenario with a per-run
//! unique name prefix and torn down in `Drop` (also on panic).
//!
//! ```text
//!  corp1 (c1)              fw1 (f1)                     internet (in)                  fw2 (f2)             corp2 (c2)
//!  APS    10.1.0.2 ┐                                    br0 198.51.100.1/24
//!  phone  10.1.0.10├ eth0 ─ lan 10.1.0.1  wan .100.11 ─ ┤ lo: MPR 203.0.113.10       ├─ wan .100.12  lan 10.2.0.1 ─ eth0 ┤ APS 10.2.0.2
//!  phone2 10.1.0.11┘        nft: masquerade + filter    │     SSW 203.0.113.20       │   nft: same                      ┤ phone 10.2.0.10 ...
//!                                                       └─ third host (ex) 198.51.100.66
//! ```

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

/// The MPR's public address (on the internet namespace's loopback).
pub(crate) const MPR_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// A public peer (the soft-switch side) in the internet namespace.
pub(crate) const SSW_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
/// The internet router's address on the shared segment.
const INET_GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The firewalls' public (WAN) addresses.
pub(crate) const FW_WAN: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 11),
    Ipv4Addr::new(198, 51, 100, 12),
];
/// The third host on the internet (the injector of the negative control).
pub(crate) const EXT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 66);
/// Each corporate network's APS.
pub(crate) const APS_IP: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 1, 0, 2), Ipv4Addr::new(10, 2, 0, 2)];
/// Each corporate network's phone.
pub(crate) const PHONE_IP: [Ipv4Addr; 2] =
    [Ipv4Addr::new(10, 1, 0, 10), Ipv4Addr::new(10, 2, 0, 10)];
/// A second phone address in each corporate network.
pub(crate) const PHONE2_IP: [Ipv4Addr; 2] =
    [Ipv4Addr::new(10, 1, 0, 11), Ipv4Addr::new(10, 2, 0, 11)];

/// The comment on each firewall's drop rule for unsolicited inbound traffic.
pub(crate) const INBOUND_DROP: &str = "inbound dropped";

/// One namespace of the bed. Corporate networks and firewalls are numbered
/// 0 (corp1) and 1 (corp2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ns {
    /// A corporate network: its phones and (maybe) its APS.
    Corp(usize),
    /// A corporate network's firewall.
    Fw(usize),
    /// The internet router, the MPR and the public peers.
    Inet,
    /// A third host on the internet.
    Ext,
}

impl Ns {
    const ALL: [Self; 6] = [
        Self::Inet,
        Self::Ext,
        Self::Fw(0),
        Self::Fw(1),
        Self::Corp(0),
        Self::Corp(1),
    ];

    fn suffix(self) -> String {
        match self {
            Self::Corp(i) => format!("c{}", i + 1),
            Self::Fw(i) => format!("f{}", i + 1),
            Self::Inet => "in".into(),
            Self::Ext => "ex".into(),
        }
    }
}

/// The firewalls' conntrack timeout for established TCP connections.
///
/// Shorter than the APSs' registration refresh (2/3 of the 10 s UDP
/// timeout), so only their CRLF keepalives can hold a TLS connection.
pub(crate) const TCP_TIMEOUT: Duration = Duration::from_secs(6);

/// How a bed is built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BedOptions {
    /// The firewalls' UDP conntrack timeout (both `udp_timeout` and
    /// `udp_timeout_stream`).
    pub(crate) udp_timeout: Duration,
    /// Leave out the filter table (NAT stays): the negative controls' check
    /// that they would pass without the firewall.
    pub(crate) open_firewall: bool,
}

/// A live bed. Dropping it kills every process it started and deletes its
/// namespaces.
pub(crate) struct Bed {
    prefix: String,
    /// Where logs, configurations and sipp folders go.
    pub(crate) dir: PathBuf,
    /// How it was built.
    pub(crate) opts: BedOptions,
    children: Vec<(String, Child)>,
    created: Vec<String>,
}

impl Bed {
    /// Builds the topology: namespaces named `{prefix}-c1` etc.
    pub(crate) fn new(prefix: &str, dir: PathBuf, opts: BedOptions) -> Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut bed = Self {
            prefix: prefix.to_owned(),
            dir,
            opts,
            children: Vec::new(),
            created: Vec::new(),
        };
        bed.build()
            .with_context(|| format!("building bed {prefix}"))?;
        Ok(bed)
    }

    /// The namespace's name (for `ip netns exec`).
    pub(crate) fn ns(&self, n: Ns) -> String {
        format!("{}-{}", self.prefix, n.suffix())
    }

    fn build(&mut self) -> Result<()> {
        for n in Ns::ALL {
            let name = self.ns(n);
            // A leftover of a crashed run with the same prefix.
            if Path::new("/var/run/netns").join(&name).exists() {
                let _ = ip(&["netns", "del", &name]);
            }
            ip(&["netns", "add", &name])?;
            self.created.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        let (c1, c2, f1, f2, inet, ext) = (
            self.ns(Ns::Corp(0)),
            self.ns(Ns::Corp(1)),
            self.ns(Ns::Fw(0)),
            self.ns(Ns::Fw(1)),
            self.ns(Ns::Inet),
            self.ns(Ns::Ext),
        );
        // veth pairs, created straight inside the namespaces: no names in
        // the root namespace, so parallel beds cannot collide.
        for (a, a_if, b, b_if) in [
            (&c1, "eth0", &f1, "lan"),
            (&c2, "eth0", &f2, "lan"),
            (&f1, "wan", &inet, "fw1"),
            (&f2, "wan", &inet, "fw2"),
            (&ext, "eth0", &inet, "ext"),
        ] {
            ip(&[
                "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
            ])?;
        }
        ip(&["-n", &inet, "link", "add", "br0", "type", "bridge"])?;
        for port in ["fw1", "fw2", "ext"] {
            ip(&["-n", &inet, "link", "set", port, "master", "br0"])?;
        }
        let addrs: Vec<(&String, &str, String)> = vec![
            (&inet, "br0", format!("{INET_GW}/24")),
            (&inet, "lo", format!("{MPR_IP}/32")),
            (&inet, "lo", format!("{SSW_IP}/32")),
            (&ext, "eth0", format!("{EXT_IP}/24")),
            (&f1, "wan", format!("{}/24", FW_WAN[0])),
            (&f2, "wan", format!("{}/24", FW_WAN[1])),
            (&f1, "lan", "10.1.0.1/24".into()),
            (&f2, "lan", "10.2.0.1/24".into()),
            (&c1, "eth0", format!("{}/24", APS_IP[0])),
            (&c1, "eth0", format!("{}/24", PHONE_IP[0])),
            (&c1, "eth0", format!("{}/24", PHONE2_IP[0])),
            (&c2, "eth0", format!("{}/24", APS_IP[1])),
            (&c2, "eth0", format!("{}/24", PHONE_IP[1])),
            (&c2, "eth0", format!("{}/24", PHONE2_IP[1])),
        ];
        for (ns, dev, a) in &addrs {
            ip(&["-n", ns, "addr", "add", a, "dev", dev])?;
        }
        for (ns, dev) in [
            (&inet, "br0"),
            (&inet, "fw1"),
            (&inet, "fw2"),
            (&inet, "ext"),
            (&ext, "eth0"),
            (&f1, "wan"),
            (&f1, "lan"),
            (&f2, "wan"),
            (&f2, "lan"),
            (&c1, "eth0"),
            (&c2, "eth0"),
        ] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        let gw = INET_GW.to_string();
        for (ns, via) in [
            (&c1, "10.1.0.1"),
            (&c2, "10.2.0.1"),
            (&f1, &gw),
            (&f2, &gw),
            (&ext, &gw),
        ] {
            ip(&["-n", ns, "route", "add", "default", "via", via])?;
        }
        // The internet knows the way to the inside networks: harmless behind
        // NAT and a filter, and what lets the negative controls get through
        // once the filter is gone (direct SDP with private addresses).
        for (net, fw) in [("10.1.0.0/24", FW_WAN[0]), ("10.2.0.0/24", FW_WAN[1])] {
            ip(&["-n", &inet, "route", "add", net, "via", &fw.to_string()])?;
        }
        for n in [Ns::Inet, Ns::Fw(0), Ns::Fw(1)] {
            self.sysctl(n, "net/ipv4/ip_forward", "1")?;
        }
        for i in 0..2 {
            self.load_firewall(i)?;
        }
        Ok(())
    }

    /// The firewall's ruleset (see docs/netns.md).
    pub(crate) fn ruleset(&self) -> String {
        let filter = format!(
            r#"table inet pinhole_filter {{
    chain forward {{
        type filter hook forward priority filter; policy drop;
        ct state established,related counter accept comment "replies"
        iifname "lan" oifname "wan" counter accept comment "outbound"
        counter drop comment "{INBOUND_DROP}"
    }}
    chain input {{
        type filter hook input priority filter; policy drop;
        iifname "lo" accept
        ct state established,related accept
        iifname "lan" accept
        counter drop comment "to the firewall dropped"
    }}
}}
"#
        );
        let nat = r#"table ip pinhole_nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" counter masquerade comment "masquerade"
    }
}
"#;
        if self.opts.open_firewall {
            nat.to_owned()
        } else {
            format!("{filter}{nat}")
        }
    }

    fn load_firewall(&self, i: usize) -> Result<()> {
        let ns = self.ns(Ns::Fw(i));
        let rules = self.ruleset();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting nft")?;
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, rules.as_bytes()).context("writing to nft")?;
        }
        let out = child.wait_with_output().context("waiting for nft")?;
        ensure!(
            out.status.success(),
            "nft -f in {ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // These sysctls exist per namespace once conntrack is in use (the
        // NAT table above needs it).
        let secs = self.opts.udp_timeout.as_secs().to_string();
        for key in [
            "nf_conntrack_udp_timeout",
            "nf_conntrack_udp_timeout_stream",
        ] {
            self.sysctl(Ns::Fw(i), &format!("net/netfilter/{key}"), &secs)?;
        }
        // An idle TCP connection is forgotten after TCP_TIMEOUT (5 days by
        // default): what a corporate firewall does within minutes. The
        // APS's keepalives must keep its signaling connection alive.
        self.sysctl(
            Ns::Fw(i),
            "net/netfilter/nf_conntrack_tcp_timeout_established",
            &TCP_TIMEOUT.as_secs().to_string(),
        )?;
        // Strict, as such firewalls are: a segment of a connection whose
        // entry expired is not picked up again as established.
        self.sysctl(Ns::Fw(i), "net/netfilter/nf_conntrack_tcp_loose", "0")?;
        Ok(())
    }

    /// Writes a sysctl inside namespace `n` and reads it back.
    fn sysctl(&self, n: Ns, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{key}");
        let got = self.in_ns(n, || -> std::io::Result<String> {
            std::fs::write(&path, value)?;
            std::fs::read_to_string(&path)
        })??;
        ensure!(
            got.trim() == value,
            "sysctl {key} in {}: reads {got:?} after writing {value}",
            self.ns(n)
        );
        Ok(())
    }

    /// Runs `f` on a fresh thread that has entered namespace `n`: sockets it
    /// opens stay in `n` for their whole life.
    pub(crate) fn in_ns<T: Send>(&self, n: Ns, f: impl FnOnce() -> T + Send) -> Result<T> {
        let name = self.ns(n);
        std::thread::scope(|s| {
            s.spawn(|| -> Result<T> {
                let path = Path::new("/var/run/netns").join(&name);
                let fd =
                    File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                rustix::thread::move_into_link_name_space(
                    fd.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .with_context(|| format!("setns into {name}"))?;
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow!("thread in {name} panicked"))?
        })
    }

    /// A UDP socket bound to `addr` inside namespace `n`.
    pub(crate) fn udp(&self, n: Ns, addr: SocketAddr) -> Result<UdpSocket> {
        self.in_ns(n, || UdpSocket::bind(addr))?
            .with_context(|| format!("binding {addr} in {}", self.ns(n)))
    }

    /// Runs a command inside namespace `n` to completion and returns its
    /// stdout; a failure carries its stderr.
    pub(crate) fn exec(&self, n: Ns, program: &str, args: &[&str]) -> Result<String> {
        let ns = self.ns(n);
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, program])
            .args(args)
            .output()
            .with_context(|| format!("running {program} in {ns}"))?;
        ensure!(
            out.status.success(),
            "{program} {args:?} in {ns}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts a long-running process inside namespace `n`, its stdout and
    /// stderr going to `{dir}/{name}.log`. It is killed when the bed drops.
    pub(crate) fn spawn(
        &mut self,
        name: &str,
        n: Ns,
        program: &Path,
        args: &[String],
    ) -> Result<()> {
        let log = self.log_path(name);
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        // `ip netns exec` execs the program: the child's pid is its pid.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(n)])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} in {}", program.display(), self.ns(n)))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// The log file of a process started with [`Bed::spawn`].
    pub(crate) fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// The log so far.
    pub(crate) fn log(&self, name: &str) -> String {
        std::fs::read(self.log_path(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits (at most `timeout`) for process `name` to exit on its own and
    /// returns whether it succeeded.
    pub(crate) fn wait_exit(&mut self, name: &str, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let child = self
            .children
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
            .ok_or_else(|| anyhow!("no process {name}"))?;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() >= deadline {
                bail!("{name} still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls process `name`'s log until it contains `needle` (at most
    /// `timeout`); fails early if the process exited.
    pub(crate) fn wait_log(&mut self, name: &str, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log(name).contains(needle) {
                return Ok(());
            }
            let exited = self
                .children
                .iter_mut()
                .find(|(n, _)| n == name)
                .and_then(|(_, c)| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                bail!("{name} exited ({status}) before logging {needle:?}");
            }
            if Instant::now() >= deadline {
                bail!("{name} did not log {needle:?} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The firewall's UDP conntrack entries.
    pub(crate) fn conntrack(&self, fw: usize) -> Result<Vec<CtEntry>> {
        // conntrack -L prints its summary line on stderr.
        let out = self.exec(Ns::Fw(fw), "conntrack", &["-L", "-p", "udp"])?;
        Ok(out.lines().filter_map(CtEntry::parse).collect())
    }

    /// Packets counted by the firewall's rule with comment `comment`
    /// (0 when the rule is not loaded, as with an open firewall).
    pub(crate) fn counter(&self, fw: usize, comment: &str) -> Result<u64> {
        let rules = self.exec(Ns::Fw(fw), "nft", &["list", "ruleset"])?;
        let tag = format!("comment \"{comment}\"");
        Ok(rules
            .lines()
            .find(|l| l.contains(&tag))
            .and_then(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "packets")?;
                words.next()?.parse().ok()
            })
            .unwrap_or(0))
    }

    /// Both firewalls' rulesets with counters and conntrack tables: what a
    /// failing scenario leaves behind.
    pub(crate) fn diagnostics(&self) -> String {
        let mut s = String::new();
        for i in 0..2 {
            let ns = Ns::Fw(i);
            for (what, program, args) in [
                ("nft list ruleset", "nft", &["list", "ruleset"][..]),
                ("conntrack -L", "conntrack", &["-L"][..]),
            ] {
                s.push_str(&format!("--- fw{} {what}\n", i + 1));
                match self.exec(ns, program, args) {
                    Ok(out) => s.push_str(&out),
                    Err(e) => s.push_str(&format!("({e:#})\n")),
                }
            }
        }
        s
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl Drop for Bed {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for name in self.created.iter().rev() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// One UDP conntrack entry: the original direction's tuple, the reply
/// direction's tuple (its destination is the NAT mapping) and the seconds
/// left before it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CtEntry {
    /// Seconds until expiry.
    pub(crate) ttl: u64,
    /// Original direction: source.
    pub(crate) src: SocketAddr,
    /// Original direction: destination.
    pub(crate) dst: SocketAddr,
    /// Reply direction's destination: the public (mapped) address.
    pub(crate) mapped: SocketAddr,
    /// The whole line.
    pub(crate) line: String,
}

impl CtEntry {
    /// Parses `udp 17 8 src=a dst=b sport=p dport=q src=.. dst=.. sport=.. dport=.. ...`.
    fn parse(line: &str) -> Option<Self> {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"udp") {
            return None;
        }
        let ttl = words.get(2)?.parse().ok()?;
        let vals =
            |key: &str| -> Vec<&str> { words.iter().filter_map(|w| w.strip_prefix(key)).collect() };
        let (src, dst, sport, dport) = (vals("src="), vals("dst="), vals("sport="), vals("dport="));
        let addr = |ip: &[&str], port: &[&str], i: usize| -> Option<SocketAddr> {
            Some(SocketAddr::new(
                ip.get(i)?.parse::<IpAddr>().ok()?,
                port.get(i)?.parse().ok()?,
            ))
        };
        Some(Self {
            ttl,
            src: addr(&src, &sport, 0)?,
            dst: addr(&dst, &dport, 0)?,
            mapped: addr(&dst, &dport, 1)?,
            line: line.to_owned(),
        })
    }
}

/// Checks `CtEntry::parse` on a line as conntrack prints it.
pub(crate) fn self_test() -> Result<()> {
    let e = CtEntry::parse(
        "udp      17 8 src=10.1.0.2 dst=203.0.113.10 sport=5060 dport=5060 src=203.0.113.10 dst=198.51.100.11 sport=5060 dport=1024 [ASSURED] mark=0 use=1",
    )
    .ok_or_else(|| anyhow!("conntrack line did not parse"))?;
    ensure!(
        e.ttl == 8
            && e.src.to_string() == "10.1.0.2:5060"
            && e.mapped.to_string() == "198.51.100.11:1024",
        "{e:?}"
    );
    ensure!(CtEntry::parse("conntrack v1.4.7: 1 flow entries").is_none());
    Ok(())
}
