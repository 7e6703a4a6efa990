//! Fig. 11 for real: sipp phones in two corporate networks, each behind its
//! own userspace firewall simulator with an APS (`pinhole-net` drivers with
//! the SIP proxies of `pinhole-sip`), and the MPR with its SIP proxy on the
//! "public" loopback address. Every SIP message and every RTP packet crosses
//! real sockets; the phones see only their APS.
//!
//! ```text
//! caller 127.0.0.1 ── APS1 127.0.0.1 ─ FW1 127.0.0.21 ─┐
//!                                                      MPR 127.0.0.23
//! callee 127.0.0.2 ── APS2 127.0.0.2 ─ FW2 127.0.0.22 ─┘
//! ```

use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinhole_core::alg;
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::types::Transport;
use pinhole_core::wire::Protocol;
use pinhole_net::driver::mpr::MprAlg;
use pinhole_net::driver::{SimRouter, Streaming, client as client_driver, mpr as mpr_driver};
use pinhole_net::firewall::FirewallSim;
use pinhole_net::relay::{Relay, RelayConfig};
use pinhole_net::tls::{ClientTls, ServerTls, testca};
use pinhole_sip::alg::{Aps, ApsConfig, Mpr, MprConfig};
use pinhole_tests::sipp::sip::SipMessage;
use pinhole_tests::sipp::{Keys, Sipp, scenario, sipp_or_skip};

use crate::common::*;

const MPR_IP: [u8; 4] = [127, 0, 0, 23];
/// Where APS1's and APS2's media ports B are bound in the Fig. 11 tests.
pub(crate) const APS_MEDIA_IPS: [[u8; 4]; 2] = [[127, 0, 0, 24], [127, 0, 0, 25]];

/// The deployment: its runtime, the MPR and both APSs, both firewalls.
pub(crate) struct Bed {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) mpr: mpr_driver::MprHandle,
    pub(crate) aps1: client_driver::ClientHandle,
    pub(crate) aps2: client_driver::ClientHandle,
    pub(crate) aps1_sig: SocketAddr,
    pub(crate) fw: [Arc<FirewallSim>; 2],
    _keep: Vec<Box<dyn std::any::Any>>,
}

/// Port ranges and timers of a [`Bed`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct BedConfig {
    /// First MPR relay port; also seeds the keys.
    pub(crate) base: u16,
    /// MPR relay ports, from `base`.
    pub(crate) mpr_ports: u16,
    /// Media ports B of each APS: APS1's right after the MPR's, then
    /// APS2's.
    pub(crate) aps_ports: u16,
    /// How long freed relay ports and ports B rest before reuse.
    pub(crate) quarantine: Duration,
    /// Where APS1's and APS2's media ports B are bound; `None`: on the
    /// APS's own (SIP) address.
    pub(crate) media_ips: Option<[IpAddr; 2]>,
    /// The firewall simulators' UDP idle timeout (the APSs are told it and
    /// refresh within it) and how long a closed mapping's port stays bound.
    pub(crate) firewall_idle: Duration,
    pub(crate) firewall_linger: Duration,
    /// How the APSs reach the MPR: UDP, or one mutual-TLS connection each
    /// (issue 13; the MPR then also listens for TCP on its SIP address and
    /// TLS on a port of its own, with certificates made for the run).
    pub(crate) upstream: Transport,
    /// APS2 sends calls to the callee over TCP (`inside_transport`).
    pub(crate) callee_tcp: bool,
}

impl BedConfig {
    /// The Fig. 11 tests' layout: three ranges of 200 ports from `base`,
    /// the default 30 s quarantine. Ports B sit on addresses of their own:
    /// the ranges lie in Linux's ephemeral range, and sockets bound to port
    /// 0 on the phones' addresses could take them first.
    pub(crate) fn fig11(base: u16) -> Self {
        Self {
            base,
            mpr_ports: 200,
            aps_ports: 200,
            quarantine: Duration::from_secs(30),
            media_ips: Some(APS_MEDIA_IPS.map(IpAddr::from)),
            firewall_idle: Duration::from_secs(30),
            firewall_linger: Duration::from_secs(30),
            upstream: Transport::Udp,
            callee_tcp: false,
        }
    }
}

/// TLS for a bed: the MPR's server config (mutual TLS) and the APSs'
/// client config, from certificates made for this run in `dir`.
fn tls_for(
    dir: &std::path::Path,
    mpr_ip: IpAddr,
) -> Result<(Streaming, Streaming), Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    let certs = testca::generate(dir, &[mpr_ip.to_string()])?;
    let server = Arc::new(ServerTls::load(
        &certs.mpr_cert,
        &certs.mpr_key,
        Some(&certs.ca),
        true,
    )?);
    let client = ClientTls::load(&certs.ca, Some((&certs.aps_cert, &certs.aps_key)))?;
    Ok((
        Streaming {
            server_tls: Some(Arc::new(move || server.config())),
            ..Streaming::default()
        },
        Streaming {
            client_tls: Some(client.config()),
            ..Streaming::default()
        },
    ))
}

/// Port ranges of one test: MPR relay legs, then APS1's and APS2's media
/// ports B, each 200 wide from `base`. Tests run in parallel, so each gets
/// its own.
fn bed(base: u16, callee: SocketAddr) -> Result<Bed, Box<dyn Error>> {
    bed_with(BedConfig::fig11(base), callee)
}

/// The deployment with the given port ranges; APS2 sends calls to
/// `callee`. Its runtime threads are called `pinhole-bed` (the relays'
/// own threads `pinhole-relay-N`), so a load test can tell their CPU time
/// from its own.
pub(crate) fn bed_with(c: BedConfig, callee: SocketAddr) -> Result<Bed, Box<dyn Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pinhole-bed")
        .enable_all()
        .build()?;
    let base = c.base;
    let (mpr, mpr_out, aps, fw, aps1_sig) = rt.block_on(async {
        let sims = firewalls([[127, 0, 0, 21], [127, 0, 0, 22]], |f| {
            f.udp_idle_timeout = c.firewall_idle;
            f.expired_linger = c.firewall_linger;
        })
        .await?;
        let control = tokio::net::UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await?;
        let control_addr = control.local_addr()?;
        let mut cfg = mpr_config(
            IpAddr::from(MPR_IP),
            base as u8,
            (base, base + c.mpr_ports - 1),
            control_addr.port(),
        )?;
        cfg.timers.port_quarantine = c.quarantine;
        let mut proxy = MprConfig::new(control_addr, [base.to_le_bytes()[0]; 32]);
        // Where the APSs connect: the control socket, or the TLS listener.
        let mut upstream_addr = control_addr;
        let mut tls = None;
        if c.upstream == Transport::Tls {
            upstream_addr = std::net::TcpListener::bind((IpAddr::from(MPR_IP), 0))?.local_addr()?;
            cfg.control_ports.push(upstream_addr.port());
            proxy.tls = Some(upstream_addr);
            tls = Some(tls_for(
                &std::env::temp_dir()
                    .join(format!("pinhole-bed-certs-{}-{base}", std::process::id())),
                IpAddr::from(MPR_IP),
            )?);
        }
        let engine = mpr::Engine::new(cfg, Instant::now())?;
        let (relay, relay_events) = Relay::start(RelayConfig::default())?;
        let alg = MprAlg::new(control_addr, Box::new(Mpr::new(proxy)));
        let (mpr, mpr_out) = match &tls {
            Some((server, _)) => {
                mpr_driver::spawn_streaming(
                    engine,
                    vec![Arc::new(control)],
                    relay,
                    relay_events,
                    vec![
                        alg.listen(control_addr, Transport::Tcp)
                            .listen(upstream_addr, Transport::Tls),
                    ],
                    server,
                )
                .await?
            }
            None => mpr_driver::spawn_with(
                engine,
                vec![Arc::new(control)],
                relay,
                relay_events,
                vec![alg],
            )?,
        };
        let mut aps = Vec::new();
        let mut aps1_sig = None;
        for (i, (net, ip)) in [("corp1", CALLER_IP), ("corp2", CALLEE_IP)]
            .into_iter()
            .enumerate()
        {
            let ip: IpAddr = ip.parse()?;
            let sig = tokio::net::UdpSocket::bind((ip, 0)).await?;
            let sig_addr = sig.local_addr()?;
            if i == 0 {
                aps1_sig = Some(sig_addr);
            }
            let mut ccfg = client::Config::new(
                net,
                format!("{net}-secret").into_bytes(),
                Protocol::Sip,
                sig_addr,
                upstream_addr,
                [base as u8 + i as u8 + 1; 32],
            );
            ccfg.firewall_idle_timeout = c.firewall_idle;
            ccfg.upstream = c.upstream;
            let engine = client::Engine::new(ccfg, Instant::now())?;
            let (relay, relay_events) = Relay::start(RelayConfig::default())?;
            let first = base + c.mpr_ports + c.aps_ports * i as u16;
            let media_ip = c.media_ips.and_then(|m| m.get(i).copied()).unwrap_or(ip);
            let mut pc = ApsConfig::new(
                sig_addr,
                media_ip,
                PortRange::new(first, first + c.aps_ports - 1)?,
                [base as u8 + 7 + i as u8; 32],
            );
            pc.port_quarantine = c.quarantine;
            if i == 1 {
                pc.inside_default = Some(callee);
                if c.callee_tcp {
                    pc.inside_transport = Transport::Tcp;
                }
            }
            let router = Arc::new(SimRouter::new(Arc::clone(&sims[i])));
            let alg = Some(Box::new(Aps::new(pc)) as Box<dyn alg::ClientSignaling>);
            let (h, out) = match &tls {
                Some((_, client)) => {
                    let streams = client_driver::ClientStreams {
                        streaming: client.clone(),
                        upstream: client_driver::Upstream {
                            backoff_min: Duration::from_millis(200),
                            ..client_driver::Upstream::default()
                        },
                        listen_tcp: true,
                        listen_also: Vec::new(),
                        framer: None,
                    };
                    client_driver::spawn_streaming(
                        engine,
                        Arc::new(sig),
                        relay,
                        relay_events,
                        router,
                        alg,
                        &streams,
                    )
                    .await?
                }
                None => client_driver::spawn_with(
                    engine,
                    Arc::new(sig),
                    relay,
                    relay_events,
                    router,
                    alg,
                )?,
            };
            aps.push((h, out));
        }
        let fw = [Arc::clone(&sims[0]), Arc::clone(&sims[1])];
        Ok::<_, Box<dyn Error>>((mpr, mpr_out, aps, fw, aps1_sig.ok_or("no APS1")?))
    })?;
    let mut aps = aps.into_iter();
    let (aps1, out1) = aps.next().ok_or("APS1")?;
    let (aps2, out2) = aps.next().ok_or("APS2")?;
    let bed = Bed {
        rt,
        mpr,
        aps1,
        aps2,
        aps1_sig,
        fw,
        _keep: vec![Box::new(mpr_out), Box::new(out1), Box::new(out2)],
    };
    // Fig. 6 first: both networks registered.
    let deadline = Instant::now() + WAIT;
    while !bed.rt.block_on(async {
        Ok::<_, std::io::Error>(
            bed.aps1.registered_pinhole().await?.is_some()
                && bed.aps2.registered_pinhole().await?.is_some(),
        )
    })? {
        if Instant::now() > deadline {
            return Err("the APSs did not register".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(bed)
}

impl Bed {
    pub(crate) fn legs_open(&self) -> Result<u64, Box<dyn Error>> {
        Ok(self.rt.block_on(self.mpr.stats())?.legs_open)
    }

    /// Waits until the MPR has no leg open (a teardown freed them).
    pub(crate) fn wait_legs_freed(&self) -> Result<(), Box<dyn Error>> {
        let deadline = Instant::now() + WAIT;
        while self.legs_open()? > 0 {
            if Instant::now() > deadline {
                return Err(format!("{} legs still open", self.legs_open()?).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub(crate) fn counter(&self, which: usize, name: &str) -> Result<u64, Box<dyn Error>> {
        let c = self.rt.block_on(async {
            match which {
                0 => self.mpr.alg_counters().await,
                1 => self.aps1.alg_counters().await,
                _ => self.aps2.alg_counters().await,
            }
        })?;
        Ok(alg::counter(&c, Protocol::Sip, name))
    }
}

/// The callee sipp first (APS2 forwards to it), then the deployment, then
/// the caller sipp sending to APS1.
fn start(
    test: &str,
    base: u16,
    uas: &str,
    uac: &str,
    pause: Duration,
) -> Result<(Bed, Call), Box<dyn Error>> {
    let caller = Phone::new(CALLER_IP)?;
    let callee = Phone::new(CALLEE_IP)?;
    let uas = Sipp::uas(
        scenario(uas),
        SocketAddr::new(CALLEE_IP.parse()?, 0),
        Keys::new(callee.media_addr)
            .domain(CALLEE_DOMAIN)
            .from_domain(CALLER_DOMAIN),
    )
    .pause(pause)
    .timeout(SIPP_TIMEOUT)
    .dir(run_dir(test, "uas"))
    .spawn()?;
    let bed = bed(base, uas.local_addr())?;
    let uac = Sipp::uac(
        scenario(uac),
        SocketAddr::new(CALLER_IP.parse()?, 0),
        bed.aps1_sig,
        Keys::new(caller.media_addr)
            .domain(CALLEE_DOMAIN)
            .from_domain(CALLER_DOMAIN),
    )
    .pause(pause)
    .timeout(SIPP_TIMEOUT)
    .dir(run_dir(test, "uac"))
    .spawn()?;
    Ok((
        bed,
        Call {
            caller,
            callee,
            uac,
            uas,
        },
    ))
}

#[test]
fn fig11_basic_call_media_both_ways_and_bye_frees_the_legs() -> TestResult {
    if !sipp_or_skip("fig11_basic_call") {
        return Ok(());
    }
    let (bed, mut call) = start(
        "fig11_basic",
        50_000,
        "uas_basic.xml",
        "uac_basic.xml",
        PAUSE,
    )?;
    let offer = call.uas.wait_received_sdps(1, WAIT)?.remove(0);
    let answer = call.uac.wait_received_sdps(1, WAIT)?.remove(0);
    // Each phone sees only its own APS's media port B.
    let to_callee = answer.audio_addr().ok_or("no address in the answer")?;
    let to_caller = offer.audio_addr().ok_or("no address in the offer")?;
    assert_eq!(
        to_callee.ip(),
        IpAddr::from(APS_MEDIA_IPS[0]),
        "caller told APS1's port B"
    );
    assert_eq!(
        to_caller.ip(),
        IpAddr::from(APS_MEDIA_IPS[1]),
        "callee told APS2's port B"
    );
    assert_ne!(to_callee, call.callee.media_addr);
    assert!(is_final_invite_ok(&answer.message), "{}", answer.message);
    assert!(bed.legs_open()? >= 2, "the MPR relays the call");

    call.media_both_ways("answered", to_callee, to_caller)?;
    // Both firewalls passed the media in only after the pinholes existed.
    for fw in &bed.fw {
        assert!(fw.counters().inbound_passed >= u64::from(PACKETS));
    }

    let (uac, uas) = call.finish()?;
    assert_eq!((uac.calls_successful, uac.calls_failed), (1, 0));
    assert_eq!((uas.calls_successful, uas.calls_failed), (1, 0));
    bed.wait_legs_freed()?;
    assert!(bed.counter(0, "sdp_rewritten")? >= 2);
    assert_eq!(bed.counter(0, "malformed")?, 0);
    assert!(bed.counter(1, "pinholes")? >= 1 && bed.counter(2, "pinholes")? >= 1);
    Ok(())
}

#[test]
fn fig11_hold_and_resume() -> TestResult {
    if !sipp_or_skip("fig11_hold") {
        return Ok(());
    }
    let (bed, mut call) = start("fig11_hold", 50_600, "uas_hold.xml", "uac_hold.xml", PAUSE)?;
    let at_callee = call.uas.wait_received_sdps(1, WAIT)?;
    let at_caller = call.uac.wait_received_sdps(1, WAIT)?;
    let (to_callee, to_caller) = (
        at_caller[0].audio_addr().ok_or("answer")?,
        at_callee[0].audio_addr().ok_or("offer")?,
    );
    call.media_both_ways("before hold", to_callee, to_caller)?;

    let at_callee = call.uas.wait_received_sdps(2, WAIT)?;
    let at_caller = call.uac.wait_received_sdps(2, WAIT)?;
    // The re-INVITE keeps the same relay path: same ports B on both sides.
    assert_eq!(at_callee[1].audio_addr(), Some(to_caller));
    assert_eq!(at_caller[1].audio_addr(), Some(to_callee));
    call.media_from_caller("on hold", to_callee)?;

    let at_callee = call.uas.wait_received_sdps(3, WAIT)?;
    let at_caller = call.uac.wait_received_sdps(3, WAIT)?;
    call.media_both_ways(
        "resumed",
        at_caller[2].audio_addr().ok_or("resume answer")?,
        at_callee[2].audio_addr().ok_or("resume offer")?,
    )?;
    call.finish()?;
    bed.wait_legs_freed()?;
    Ok(())
}

#[test]
fn fig11_early_media() -> TestResult {
    if !sipp_or_skip("fig11_early") {
        return Ok(());
    }
    let (bed, mut call) = start(
        "fig11_early",
        51_200,
        "uas_early.xml",
        "uac_early.xml",
        PAUSE,
    )?;
    let offer = call.uas.wait_received_sdps(1, WAIT)?.remove(0);
    let early = call.uac.wait_received_sdps(1, WAIT)?.remove(0);
    assert_eq!(early.message.status(), Some(183));
    let (to_callee, to_caller) = (
        early.audio_addr().ok_or("183")?,
        offer.audio_addr().ok_or("offer")?,
    );
    call.media_both_ways("early (183)", to_callee, to_caller)?;
    assert!(
        !call.uac.received()?.iter().any(is_final_invite_ok),
        "the 200 came before the early media ended"
    );
    let answer = call.uac.wait_received_sdps(2, WAIT)?.remove(1);
    assert!(is_final_invite_ok(&answer.message));
    assert_eq!(
        answer.audio_addr(),
        Some(to_callee),
        "the 200 keeps the early path"
    );
    call.media_both_ways("answered", to_callee, to_caller)?;
    call.finish()?;
    bed.wait_legs_freed()?;
    Ok(())
}

#[test]
fn fig11_cancel_frees_the_legs() -> TestResult {
    if !sipp_or_skip("fig11_cancel") {
        return Ok(());
    }
    let (bed, mut call) = start(
        "fig11_cancel",
        51_800,
        "uas_cancel.xml",
        "uac_cancel.xml",
        Duration::from_millis(300),
    )?;
    let offer = call.uas.wait_received_sdps(1, WAIT)?.remove(0);
    assert_eq!(
        offer.audio_addr().map(|a| a.ip()),
        Some(IpAddr::from(APS_MEDIA_IPS[1]))
    );
    let (uac, uas) = call.finish()?;
    let codes: Vec<_> = uac.received.iter().filter_map(SipMessage::status).collect();
    assert!(codes.ends_with(&[200, 487]), "{codes:?}");
    let methods: Vec<_> = uas.received.iter().filter_map(SipMessage::method).collect();
    assert_eq!(methods, ["INVITE", "CANCEL", "ACK"]);
    bed.wait_legs_freed()?;
    Ok(())
}

#[test]
fn fig11_late_offer() -> TestResult {
    if !sipp_or_skip("fig11_late") {
        return Ok(());
    }
    let (bed, mut call) = start("fig11_late", 52_400, "uas_late.xml", "uac_late.xml", PAUSE)?;
    // The offer is in the 200, the answer in the ACK.
    let offer = call.uac.wait_received_sdps(1, WAIT)?.remove(0);
    let answer = call.uas.wait_received_sdps(1, WAIT)?.remove(0);
    assert!(is_final_invite_ok(&offer.message), "{}", offer.message);
    assert_eq!(answer.message.method(), Some("ACK"));
    call.media_both_ways(
        "answered",
        offer.audio_addr().ok_or("offer")?,
        answer.audio_addr().ok_or("answer")?,
    )?;
    call.finish()?;
    bed.wait_legs_freed()?;
    Ok(())
}
