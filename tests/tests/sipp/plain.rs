//! Unmodified phones without an APS: two sipp phones, each behind its own
//! userspace firewall simulator, register through the MPR with a
//! soft-switch (a stand-in registrar on the "public" side), then call. The
//! MPR learns each phone's NAT binding from the registrar's 2xx, routes the
//! INVITE to it, and its relay legs latch onto the phones' firewall
//! addresses when their RTP starts.
//!
//! ```text
//! caller sipp 127.0.0.1:53900 ─ FW1 127.0.0.36 ─┐
//!                                               MPR 127.0.0.31 (relay 53600–53799) ── soft-switch 127.0.0.38
//! callee sipp 127.0.0.2:53902 ─ FW2 127.0.0.37 ─┘
//! ```

use std::error::Error;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pinhole_core::alg::{self, AlgCounters};
use pinhole_core::mpr;
use pinhole_core::wire::Protocol;
use pinhole_net::driver::mpr::{self as mpr_driver, MprAlg};
use pinhole_net::relay::{Relay, RelayConfig};
use pinhole_sip::alg::{Mpr, MprConfig};
use pinhole_sip::{HeaderName, Message};
use pinhole_tests::sipp::{Keys, Sipp, scenario, sipp_or_skip};

use crate::common::*;

const MPR_IP: [u8; 4] = [127, 0, 0, 31];
const SOFTSWITCH_IP: [u8; 4] = [127, 0, 0, 38];
const CALLER_SIP: u16 = 53_900;
const CALLEE_SIP: u16 = 53_902;
const RELAY: (u16, u16) = (53_600, 53_799);

/// A registrar that accepts every REGISTER for 300 s (it would
/// authenticate; the MPR trusts only its 2xx) and answers OPTIONS.
async fn softswitch(sock: tokio::net::UdpSocket, registers: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, from)) = sock.recv_from(&mut buf).await {
        let req = &buf[..n];
        let Ok(m) = Message::parse(req) else {
            continue;
        };
        let Some(method) = m.method() else {
            continue;
        };
        let mut out = b"SIP/2.0 200 OK\r\n".to_vec();
        for h in m.headers() {
            let line = |out: &mut Vec<u8>, extra: &[u8]| {
                out.extend_from_slice(&req[h.name_span.clone()]);
                out.extend_from_slice(b": ");
                out.extend_from_slice(m.value(h));
                out.extend_from_slice(extra);
                out.extend_from_slice(b"\r\n");
            };
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    line(&mut out, b"");
                }
                HeaderName::To => line(&mut out, b";tag=ss1"),
                HeaderName::Contact if method == "REGISTER" => line(&mut out, b";expires=300"),
                _ => {}
            }
        }
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        if method == "REGISTER" {
            registers.fetch_add(1, Ordering::Relaxed);
        }
        if sock.send_to(&out, from).await.is_err() {
            return;
        }
    }
}

fn counter(c: &AlgCounters, name: &str) -> u64 {
    alg::counter(c, Protocol::Sip, name)
}

/// Reads and drops whatever waits on `sock` (the latching primers).
fn drain(sock: &UdpSocket) -> Result<(), Box<dyn Error>> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut buf = [0u8; 2048];
    for _ in 0..100 {
        if sock.recv_from(&mut buf).is_err() {
            break;
        }
    }
    sock.set_read_timeout(None)?;
    Ok(())
}

#[test]
fn plain_sipp_phones_register_through_the_mpr_and_call_with_latched_media() -> TestResult {
    if !sipp_or_skip("plain_phones") {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let registers = Arc::new(AtomicU64::new(0));
    let (mpr, _mpr_out, mpr_sip, fw, switch) = rt.block_on(async {
        let sims = firewalls([[127, 0, 0, 36], [127, 0, 0, 37]], |_| {}).await?;
        let ss = tokio::net::UdpSocket::bind((IpAddr::from(SOFTSWITCH_IP), 0)).await?;
        let ss_addr = ss.local_addr()?;
        let switch = tokio::spawn(softswitch(ss, Arc::clone(&registers)));
        let control = tokio::net::UdpSocket::bind((IpAddr::from(MPR_IP), 0)).await?;
        let control_addr = control.local_addr()?;
        let cfg = mpr_config(IpAddr::from(MPR_IP), 38, RELAY, control_addr.port())?;
        let engine = mpr::Engine::new(cfg, Instant::now())?;
        let (relay, relay_events) = Relay::start(RelayConfig::default())?;
        let mut pc = MprConfig::new(control_addr, [38; 32]);
        pc.registrar = Some(ss_addr);
        let (mpr, out) = mpr_driver::spawn_with(
            engine,
            vec![Arc::new(control)],
            relay,
            relay_events,
            vec![MprAlg::new(control_addr, Box::new(Mpr::new(pc)))],
        )?;
        Ok::<_, Box<dyn Error>>((mpr, out, control_addr, sims, switch))
    })?;
    let alg = |name: &str| -> Result<u64, Box<dyn Error>> {
        Ok(counter(&rt.block_on(mpr.alg_counters())?, name))
    };

    let caller = Phone::new(CALLER_IP)?;
    let callee = Phone::new(CALLEE_IP)?;
    let caller_sip = SocketAddr::new(CALLER_IP.parse()?, CALLER_SIP);
    let callee_sip = SocketAddr::new(CALLEE_IP.parse()?, CALLEE_SIP);
    // Each phone reaches the MPR through its firewall's route.
    let caller_route = fw[0].route(caller_sip, mpr_sip)?;
    let callee_route = fw[1].route(callee_sip, mpr_sip)?;

    // Both register from the port they will use for the call.
    for (bind, route, user, domain, media, side) in [
        (
            caller_sip,
            caller_route,
            "caller",
            CALLER_DOMAIN,
            caller.media_addr,
            "reg_caller",
        ),
        (
            callee_sip,
            callee_route,
            "service",
            CALLEE_DOMAIN,
            callee.media_addr,
            "reg_callee",
        ),
    ] {
        Sipp::uac(
            scenario("register.xml"),
            bind,
            route,
            Keys::new(media).domain(domain),
        )
        .service(user)
        .timeout(WAIT)
        .dir(run_dir("plain_phones", side))
        .run()?
        .ensure_success()?;
    }
    assert_eq!(
        registers.load(Ordering::Relaxed),
        2,
        "both reached the registrar"
    );
    assert_eq!(alg("bindings")?, 2, "both bindings learned from the 2xx");

    let uas = Sipp::uas(
        scenario("uas_basic.xml"),
        callee_sip,
        Keys::new(callee.media_addr)
            .domain(CALLEE_DOMAIN)
            .from_domain(CALLER_DOMAIN),
    )
    .pause(PAUSE)
    .timeout(SIPP_TIMEOUT)
    .dir(run_dir("plain_phones", "uas"))
    .spawn()?;
    let uac = Sipp::uac(
        scenario("uac_basic.xml"),
        caller_sip,
        caller_route,
        Keys::new(caller.media_addr)
            .domain(CALLEE_DOMAIN)
            .from_domain(CALLER_DOMAIN),
    )
    .pause(PAUSE)
    .timeout(SIPP_TIMEOUT)
    .dir(run_dir("plain_phones", "uac"))
    .spawn()?;
    let mut call = Call {
        caller,
        callee,
        uac,
        uas,
    };
    let offer = call.uas.wait_received_sdps(1, WAIT)?.remove(0);
    let answer = call.uac.wait_received_sdps(1, WAIT)?.remove(0);
    let to_callee = answer.audio_addr().ok_or("no address in the answer")?;
    let to_caller = offer.audio_addr().ok_or("no address in the offer")?;
    let relay_ip = IpAddr::from(MPR_IP);
    assert_eq!(to_callee.ip(), relay_ip, "the caller is told a relay port");
    assert_eq!(to_caller.ip(), relay_ip, "the callee is told a relay port");
    assert_ne!(to_callee, to_caller);

    // The phones send to the relay through their firewalls; each leg
    // latches onto its phone's firewall address at the first packet.
    let caller_to = fw[0].route(call.caller.media_addr, to_callee)?;
    let callee_to = fw[1].route(call.callee.media_addr, to_caller)?;
    call.caller.media.send_to(b"prime", caller_to)?;
    call.callee.media.send_to(b"prime", callee_to)?;
    std::thread::sleep(Duration::from_millis(100));
    drain(&call.caller.media)?;
    drain(&call.callee.media)?;
    assert_eq!(rt.block_on(mpr.stats())?.latches, 2, "both legs latched");
    call.media_both_ways("answered", caller_to, callee_to)?;
    for f in &fw {
        assert!(f.counters().inbound_passed >= u64::from(PACKETS));
    }

    let (uac, uas) = call.finish()?;
    assert_eq!((uac.calls_successful, uas.calls_successful), (1, 1));
    let deadline = Instant::now() + WAIT;
    while rt.block_on(mpr.stats())?.legs_open > 0 {
        if Instant::now() > deadline {
            return Err("the BYE did not free the relay legs".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(alg("malformed")?, 0);
    assert!(alg("sdp_rewritten")? >= 2);
    switch.abort();
    rt.block_on(mpr.stop())?;
    Ok(())
}
