//! The MGCP bed: the MPR driver with [`mgcp::Mpr`] on its control socket,
//! firewall simulators, APS client drivers with [`mgcp::Aps`], gateways in
//! tokio tasks, and the call agent on the public side.
//!
//! Addresses (used by no other test): the MPR on 127.0.0.50; the
//! firewalls' public sides 127.0.0.51 (corp1), .52 (corp2), .53 (the
//! osmo-mgw corp); inside hosts 127.0.0.55 (corp1), .56 (corp2), .58
//! (osmo-mgw corp); the call agent and public phones 127.0.0.57. Each test
//! has its own port ranges (see its module).

use std::collections::HashMap;
use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_core::alg::{self, AlgCounters};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::wire::Protocol;
use pinhole_examples::mgcp::ca::{CaEvent, CallAgent, Leg};
use pinhole_examples::mgcp::gw::Gateway;
use pinhole_examples::rtp::{self, Tally};
use pinhole_mgcp::alg::{self as mgcp, ApsConfig, MprConfig};
use pinhole_net::driver::mpr::MprAlg;
use pinhole_net::driver::{client as client_driver, mpr as mpr_driver};
use pinhole_net::firewall::FirewallSim;
use pinhole_net::relay::{Relay, RelayConfig};
use pinhole_tests::sim::{self, Lan};
use tokio::net::UdpSocket;
use tokio::sync::watch;

pub(crate) type Res<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

pub(crate) const MPR_IP: [u8; 4] = [127, 0, 0, 50];
pub(crate) const CA_IP: [u8; 4] = [127, 0, 0, 57];
/// Every wait of the tests is bounded by this.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

/// A corporate network of the bed: its id, the domain the MPR gives it,
/// its firewall's inside (also the inside hosts') and public addresses.
#[derive(Clone, Debug)]
pub(crate) struct Corp {
    pub(crate) id: &'static str,
    pub(crate) domains: Vec<&'static str>,
    pub(crate) inside: [u8; 4],
    pub(crate) public: [u8; 4],
}

pub(crate) fn credential(net: &str) -> Vec<u8> {
    format!("{net}-secret").into_bytes()
}

/// A firewall simulator for `corp`.
pub(crate) async fn firewall(corp: &Corp) -> Res<Arc<FirewallSim>> {
    Ok(sim::firewall(ip(corp.inside), ip(corp.public)).await?)
}

/// The MPR: its driver with the MGCP ALG on its control socket, relay
/// ports `ports` on [`MPR_IP`]; `corps` are its networks.
pub(crate) struct Mpr {
    pub(crate) handle: mpr_driver::MprHandle,
    pub(crate) control: SocketAddr,
    _out: mpr_driver::MprOutputs,
}

impl Mpr {
    pub(crate) async fn start(ports: (u16, u16), corps: &[Corp], ca: SocketAddr) -> Res<Self> {
        let control = UdpSocket::bind((ip(MPR_IP), 0)).await?;
        let control_addr = control.local_addr()?;
        let mut cfg = mpr::Config::new(ip(MPR_IP), [ports.0 as u8; 32]);
        cfg.ports = PortRange::new(ports.0, ports.1)?;
        cfg.control_ports = vec![control_addr.port()];
        for c in corps {
            let mut n = mpr::NetworkConfig::new(c.id, credential(c.id));
            n.domains.extend(c.domains.iter().map(|d| (*d).to_owned()));
            cfg.networks.push(n);
        }
        let engine = mpr::Engine::new(cfg, Instant::now())?;
        let (relay, relay_events) = Relay::start(RelayConfig {
            workers: 1,
            ..RelayConfig::default()
        })?;
        let mut mc = MprConfig::new(control_addr);
        mc.call_agent = Some(ca);
        let (handle, out) = mpr_driver::spawn_with(
            engine,
            vec![Arc::new(control)],
            relay,
            relay_events,
            vec![MprAlg::new(control_addr, Box::new(mgcp::Mpr::new(mc)))],
        )?;
        Ok(Self {
            handle,
            control: control_addr,
            _out: out,
        })
    }

    pub(crate) async fn legs_open(&self) -> Res<u64> {
        Ok(self.handle.stats().await?.legs_open)
    }

    /// Waits until no relay leg is left.
    pub(crate) async fn wait_legs_freed(&self) -> Res {
        Ok(sim::wait_legs(&self.handle, 0, WAIT).await?)
    }

    pub(crate) async fn counters(&self) -> Res<AlgCounters> {
        Ok(self.handle.alg_counters().await?)
    }
}

/// An APS of `corp` (MGCP on `inside:0`, ports B `ports` on the same
/// address) in front of `gateways`.
pub(crate) struct Aps {
    pub(crate) handle: client_driver::ClientHandle,
    _out: client_driver::ClientOutputs,
}

impl Aps {
    pub(crate) async fn start(
        corp: &Corp,
        sim: Arc<FirewallSim>,
        mpr: SocketAddr,
        ports: (u16, u16),
        gateways: Vec<(String, SocketAddr)>,
    ) -> Res<Self> {
        let sig = UdpSocket::bind((ip(corp.inside), 0)).await?;
        let sig_addr = sig.local_addr()?;
        let ccfg = client::Config::new(
            corp.id,
            credential(corp.id),
            Protocol::Mgcp,
            sig_addr,
            mpr,
            [ports.0 as u8 ^ 0x11; 32],
        );
        let engine = client::Engine::new(ccfg, Instant::now())?;
        let (relay, relay_events) = Relay::start(RelayConfig {
            workers: 1,
            ..RelayConfig::default()
        })?;
        let mut ac = ApsConfig::new(
            sig_addr,
            ip(corp.inside),
            PortRange::new(ports.0, ports.1)?,
            [ports.0 as u8 ^ 0x22; 32],
        );
        ac.gateways = gateways;
        let (handle, out) = client_driver::spawn_with(
            engine,
            Arc::new(sig),
            relay,
            relay_events,
            Lan::shared(sim, [ip(corp.inside)]),
            Some(Box::new(mgcp::Aps::new(ac))),
        )?;
        sim::wait_registered(&handle, WAIT)
            .await
            .map_err(|e| format!("the APS of {}: {e}", corp.id))?;
        Ok(Self { handle, _out: out })
    }

    pub(crate) async fn counters(&self) -> Res<AlgCounters> {
        Ok(self.handle.alg_counters().await?)
    }
}

/// An ALG's counters that say something went wrong.
pub(crate) fn assert_clean(who: &str, c: &AlgCounters) {
    for name in [
        "malformed",
        "sdp_errors",
        "plan_errors",
        "no_route",
        "unknown_endpoint",
        "pinhole_failures",
    ] {
        assert_eq!(
            alg::counter(c, Protocol::Mgcp, name),
            0,
            "{who}: {name} in {c:?}"
        );
    }
}

/// What a gateway task is told to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Answer commands only.
    Idle,
    /// Send this many RTP packets to the remote, one per interval.
    Talk(u32),
    /// Return.
    Stop,
}

/// What a gateway task saw.
#[derive(Debug, Default)]
pub(crate) struct GwReport {
    pub(crate) sent: Tally,
    pub(crate) got: Tally,
    /// Where its RTP went.
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) handled: Vec<(String, u32)>,
}

/// The sans-IO example gateway on real sockets, until told to stop (at
/// most a minute).
pub(crate) async fn run_gateway(
    mut gw: Gateway,
    mgcp: UdpSocket,
    media: UdpSocket,
    interval: Duration,
    mut phase: watch::Receiver<Phase>,
) -> Res<GwReport> {
    let mut r = GwReport::default();
    let ssrc = 0x6777_0000 | u32::from(gw.config().media.port());
    let mut seq: u16 = 0;
    let mut left = 0u32;
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut tick = tokio::time::interval(interval);
    let (mut buf, mut rbuf) = (vec![0u8; 65_536], vec![0u8; 2048]);
    loop {
        while let Some((to, bytes)) = gw.poll_transmit() {
            mgcp.send_to(&bytes, to).await?;
        }
        let timer = gw.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = tokio::time::sleep_until(end) => break,
            ch = phase.changed() => {
                if ch.is_err() {
                    break;
                }
                match *phase.borrow_and_update() {
                    Phase::Stop => break,
                    Phase::Talk(n) => left = n,
                    Phase::Idle => {}
                }
            }
            got = mgcp.recv_from(&mut buf) => {
                let (n, from) = got?;
                gw.handle_datagram(Instant::now(), from, buf.get(..n).unwrap_or_default());
            }
            got = media.recv_from(&mut rbuf) => {
                let (n, _) = got?;
                r.got.add(rbuf.get(..n).unwrap_or_default());
            }
            _ = tick.tick() => {
                if left > 0 && let Some(to) = gw.remote_media() {
                    let p = rtp::packet(ssrc, seq);
                    seq = seq.wrapping_add(1);
                    left -= 1;
                    media.send_to(&p, to).await?;
                    r.sent.add(&p);
                    r.remote = Some(to);
                }
            }
            () = async {
                match timer {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => gw.handle_timeout(Instant::now()),
        }
    }
    r.handled = gw.handled.clone();
    Ok(r)
}

/// The call agent on a public socket; every datagram it gets is kept.
pub(crate) struct Ca {
    pub(crate) ca: CallAgent,
    pub(crate) sock: UdpSocket,
    /// Every datagram that arrived, in order.
    pub(crate) got: Vec<Vec<u8>>,
    /// Transaction ids of commands to send a second time, once answered:
    /// a retransmission (RFC 3435 §3.5) of a command already done.
    pub(crate) resend: HashMap<u32, Vec<u8>>,
    /// Transaction ids of the commands sent a second time.
    pub(crate) resent: Vec<u32>,
    /// The first command with each of these verbs goes into `resend`.
    pub(crate) resend_verbs: Vec<&'static str>,
}

impl Ca {
    pub(crate) async fn bind(port: u16) -> Res<Self> {
        let sock = UdpSocket::bind((ip(CA_IP), port)).await?;
        let local = sock.local_addr()?;
        Ok(Self {
            ca: CallAgent::new(local, u32::from(port)),
            sock,
            got: Vec::new(),
            resend: HashMap::new(),
            resent: Vec::new(),
            resend_verbs: Vec::new(),
        })
    }

    pub(crate) fn local(&self) -> Res<SocketAddr> {
        Ok(self.sock.local_addr()?)
    }

    /// Runs the call agent until an event `stop` takes (returned), or
    /// [`WAIT`].
    pub(crate) async fn pump(&mut self, stop: impl Fn(&CaEvent) -> bool) -> Res<CaEvent> {
        let until = tokio::time::Instant::now() + WAIT;
        let mut buf = vec![0u8; 65_536];
        loop {
            while let Some((to, bytes)) = self.ca.poll_transmit() {
                if let Ok(m) = pinhole_mgcp::Message::parse(&bytes)
                    && let Some(v) = m.verb()
                    && let Some(k) = self
                        .resend_verbs
                        .iter()
                        .position(|x| x.eq_ignore_ascii_case(v.as_str()))
                {
                    self.resend_verbs.remove(k);
                    self.resend.insert(m.transaction_id(), bytes.clone());
                }
                self.sock.send_to(&bytes, to).await?;
            }
            while let Some(e) = self.ca.poll_event() {
                if stop(&e) {
                    return Ok(e);
                }
            }
            let timer = self.ca.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                () = tokio::time::sleep_until(until) => {
                    return Err(format!("no call agent event within {WAIT:?}").into());
                }
                r = self.sock.recv_from(&mut buf) => {
                    let (n, from) = r?;
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    self.ca.handle_datagram(Instant::now(), from, &bytes);
                    // Answered: send the command again, once.
                    if let Ok(m) = pinhole_mgcp::Message::parse(&bytes)
                        && m.response().is_some()
                        && let Some(cmd) = self.resend.remove(&m.transaction_id())
                    {
                        self.sock.send_to(&cmd, from).await?;
                        self.resent.push(m.transaction_id());
                    }
                    self.got.push(bytes);
                }
                () = async {
                    match timer {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => self.ca.handle_timeout(Instant::now()),
            }
        }
    }

    /// Takes datagrams for `d`, answering what the call agent answers.
    pub(crate) async fn settle(&mut self, d: Duration) -> Res {
        match tokio::time::timeout(d, self.pump(|_| false)).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Ok(()),
        }
    }

    /// Connects endpoints `a` and `b` through the MPR, the first CRCX sent
    /// once more after its answer, and checks what Figs. 9 and 10 both
    /// check: the call agent sees two MPR relay addresses in `ports`, the
    /// MPR has two legs open, and the resent CRCX got its first answer
    /// again. Returns the relay addresses (where A receives, where B does).
    pub(crate) async fn connect_through(
        &mut self,
        mpr: &Mpr,
        ports: (u16, u16),
        call_id: &str,
        a: &str,
        b: &str,
    ) -> Res<(SocketAddr, SocketAddr)> {
        self.resend_verbs = vec!["CRCX"];
        self.ca
            .connect(
                Instant::now(),
                call_id,
                Leg::new(a, mpr.control),
                Leg::new(b, mpr.control),
            )
            .map_err(|e| e.to_string())?;
        let up = self
            .pump(|e| matches!(e, CaEvent::Connected { .. } | CaEvent::Failed { .. }))
            .await?;
        let CaEvent::Connected { a, b } = up else {
            return Err(format!("the call did not come up: {up:?}").into());
        };
        // The call agent sees only MPR relay addresses.
        assert!(is_relay(a, ports) && is_relay(b, ports), "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(mpr.legs_open().await?, 2);
        // The retransmitted CRCX got the first answer again, byte for byte.
        self.settle(Duration::from_millis(300)).await?;
        let txid = *self.resent.first().ok_or("no CRCX was sent again")?;
        let answers = self.responses(txid);
        assert!(
            answers.len() >= 2,
            "{} answers to CRCX {txid}",
            answers.len()
        );
        assert!(answers.iter().all(|r| *r == answers[0]), "{answers:?}");
        Ok((a, b))
    }

    /// Hangs up (DLCX both) and waits for the MPR's legs to go.
    pub(crate) async fn hang_up(&mut self, mpr: &Mpr) -> Res {
        self.ca.hangup(Instant::now());
        let end = self
            .pump(|e| matches!(e, CaEvent::Ended | CaEvent::Failed { .. }))
            .await?;
        assert_eq!(end, CaEvent::Ended);
        mpr.wait_legs_freed().await
    }

    /// The responses that arrived with transaction id `txid`.
    pub(crate) fn responses(&self, txid: u32) -> Vec<&[u8]> {
        self.got
            .iter()
            .filter(|b| {
                pinhole_mgcp::Message::parse(b)
                    .is_ok_and(|m| m.response().is_some() && m.transaction_id() == txid)
            })
            .map(Vec::as_slice)
            .collect()
    }
}

/// True if `a` is an MPR relay address in `ports`.
pub(crate) fn is_relay(a: SocketAddr, ports: (u16, u16)) -> bool {
    a.ip() == ip(MPR_IP) && (ports.0..=ports.1).contains(&a.port())
}
