//! What the sipp tests share: a caller and a callee phone (a sipp process
//! plus the test's media socket each) and media checks.

use std::error::Error;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_net::firewall::{FirewallSim, SimConfig};
use pinhole_tests::rtp::{FlowStats, PairReport, rtp_flow, rtp_pair};
use pinhole_tests::sipp::sip::SipMessage;
use pinhole_tests::sipp::{Keys, Sipp, SippOutcome, SippRun, scenario};

pub(crate) type TestResult = Result<(), Box<dyn Error>>;

/// The caller's address (SIP and media); the callee's differs so that each
/// side's SDP is told apart.
pub(crate) const CALLER_IP: &str = "127.0.0.1";
pub(crate) const CALLEE_IP: &str = "127.0.0.2";
/// The callee's domain in the Request-URI and To.
pub(crate) const CALLEE_DOMAIN: &str = "corp2.example";
pub(crate) const CALLER_DOMAIN: &str = "corp1.example";
/// Each `<pause/>` of a scenario: a media phase. Long enough for the test
/// to notice the phase (polling) and run [`PACKETS`] × [`INTERVAL`] of RTP
/// with a wide margin on a busy machine.
pub(crate) const PAUSE: Duration = Duration::from_millis(2000);
/// The longest wait for a message.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// sipp's own bound on a whole run.
pub(crate) const SIPP_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const PACKETS: u16 = 25;
pub(crate) const INTERVAL: Duration = Duration::from_millis(20);

/// Whether `m` is a 200 to an INVITE.
pub(crate) fn is_final_invite_ok(m: &SipMessage) -> bool {
    m.status() == Some(200) && m.cseq().is_some_and(|(_, method)| method == "INVITE")
}

/// The firewall simulators of the tests through the MPR: corp1's in front
/// of 127.0.0.1 (the caller) and corp2's in front of 127.0.0.2 (the
/// callee), on the public addresses `public`; `adjust` sets the rest of
/// each one's configuration.
pub(crate) async fn firewalls(
    public: [[u8; 4]; 2],
    adjust: impl Fn(&mut SimConfig),
) -> Result<Vec<Arc<FirewallSim>>, Box<dyn Error>> {
    let mut sims = Vec::new();
    for (inside, public) in [[127, 0, 0, 1], [127, 0, 0, 2]].into_iter().zip(public) {
        let mut cfg = SimConfig {
            inside_ip: IpAddr::from(inside),
            public_ip: IpAddr::from(public),
            ..SimConfig::default()
        };
        adjust(&mut cfg);
        sims.push(Arc::new(FirewallSim::start(cfg).await?));
    }
    Ok(sims)
}

/// The MPR engine's configuration in the tests through the MPR: relay
/// ports `ports` on `ip`, keys seeded by `seed`, the control port
/// `control`, and corp1 and corp2 owning the caller's and the callee's
/// domains.
pub(crate) fn mpr_config(
    ip: IpAddr,
    seed: u8,
    ports: (u16, u16),
    control: u16,
) -> Result<mpr::Config, Box<dyn Error>> {
    let mut cfg = mpr::Config::new(ip, [seed; 32]);
    cfg.ports = PortRange::new(ports.0, ports.1)?;
    cfg.control_ports = vec![control];
    for (id, domain) in [("corp1", CALLER_DOMAIN), ("corp2", CALLEE_DOMAIN)] {
        let mut n = mpr::NetworkConfig::new(id, format!("{id}-secret").into_bytes());
        n.domains.push(domain.into());
        cfg.networks.push(n);
    }
    Ok(cfg)
}

/// One side: its sipp and the test's media socket it announces.
pub(crate) struct Phone {
    pub(crate) media: UdpSocket,
    pub(crate) media_addr: SocketAddr,
}

impl Phone {
    pub(crate) fn new(ip: &str) -> Result<Self, Box<dyn Error>> {
        let media = UdpSocket::bind((ip, 0))?;
        let media_addr = media.local_addr()?;
        Ok(Self { media, media_addr })
    }
}

/// A call between a sipp callee and a sipp caller, both started.
pub(crate) struct Call {
    pub(crate) caller: Phone,
    pub(crate) callee: Phone,
    pub(crate) uac: SippRun,
    pub(crate) uas: SippRun,
}

/// Where a run keeps its trace: under cargo's per-target temp dir, kept
/// after the test for a look at a failure.
pub(crate) fn run_dir(test: &str, side: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("sipp")
        .join(test)
        .join(side)
}

/// Options of a [`Call`].
pub(crate) struct Setup<'a> {
    pub(crate) test: &'a str,
    pub(crate) uas: &'a str,
    pub(crate) uac: &'a str,
    pub(crate) calls: u64,
    pub(crate) pause: Duration,
    pub(crate) timeout: Duration,
}

impl<'a> Setup<'a> {
    /// `uas_<flow>.xml` answering `uac_<flow>.xml`, one call.
    pub(crate) fn flow(test: &'a str, uas: &'a str, uac: &'a str) -> Self {
        Self {
            test,
            uas,
            uac,
            calls: 1,
            pause: PAUSE,
            timeout: SIPP_TIMEOUT,
        }
    }
}

impl Call {
    /// Starts the callee, then the caller sending straight to it.
    pub(crate) fn start(s: Setup<'_>) -> Result<Self, Box<dyn Error>> {
        let caller = Phone::new(CALLER_IP)?;
        let callee = Phone::new(CALLEE_IP)?;
        let uas = Sipp::uas(
            scenario(s.uas),
            SocketAddr::new(CALLEE_IP.parse()?, 0),
            Keys::new(callee.media_addr)
                .domain(CALLEE_DOMAIN)
                .from_domain(CALLER_DOMAIN),
        )
        .calls(s.calls)
        .pause(s.pause)
        .timeout(s.timeout)
        .dir(run_dir(s.test, "uas"))
        .spawn()?;
        let uac = Sipp::uac(
            scenario(s.uac),
            SocketAddr::new(CALLER_IP.parse()?, 0),
            uas.local_addr(),
            Keys::new(caller.media_addr)
                .domain(CALLEE_DOMAIN)
                .from_domain(CALLER_DOMAIN),
        )
        .calls(s.calls)
        .pause(s.pause)
        .timeout(s.timeout)
        .dir(run_dir(s.test, "uac"))
        .spawn()?;
        Ok(Self {
            caller,
            callee,
            uac,
            uas,
        })
    }

    /// RTP both ways: the caller sends to `caller_to` (the address the SDP
    /// the caller received names), the callee to `callee_to`.
    pub(crate) fn media_both_ways(
        &self,
        phase: &str,
        caller_to: SocketAddr,
        callee_to: SocketAddr,
    ) -> Result<PairReport, Box<dyn Error>> {
        let r = rtp_pair(
            &self.caller.media,
            &self.callee.media,
            caller_to,
            callee_to,
            PACKETS,
            INTERVAL,
        )?;
        assert_complete(phase, "caller → callee", &r.a_to_b);
        assert_complete(phase, "callee → caller", &r.b_to_a);
        Ok(r)
    }

    /// RTP from the caller only.
    pub(crate) fn media_from_caller(
        &self,
        phase: &str,
        caller_to: SocketAddr,
    ) -> Result<FlowStats, Box<dyn Error>> {
        let s = rtp_flow(
            &self.caller.media,
            caller_to,
            &self.callee.media,
            PACKETS,
            INTERVAL,
        )?;
        assert_complete(phase, "caller → callee", &s);
        Ok(s)
    }

    /// Waits for both sipps; both must report success.
    pub(crate) fn finish(self) -> Result<(SippOutcome, SippOutcome), Box<dyn Error>> {
        let uac = self.uac.wait()?;
        let uas = self.uas.wait()?;
        uac.ensure_success()?;
        uas.ensure_success()?;
        Ok((uac, uas))
    }
}

pub(crate) fn assert_complete(phase: &str, direction: &str, s: &FlowStats) {
    assert!(
        s.is_complete(),
        "{phase}: RTP {direction} incomplete: {s:?}"
    );
    assert_eq!(s.received, u32::from(PACKETS), "{phase}: {direction}");
}
