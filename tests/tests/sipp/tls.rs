//! Issue 13 for real: the Fig. 11 call with sipp phones speaking SIP over
//! TCP (`-t t1`) to their APS, each APS keeping one TLS connection to the
//! MPR opened from inside through its firewall simulator (which passes TCP
//! only outward), the MPR's route for each network pointing at that
//! connection. Media both ways; then APS1's connection is cut mid-call
//! (as a firewall that forgot it would): the APS reconnects with back-off
//! and registers over the new connection, the call's media goes on
//! untouched, and its BYE later crosses the new connection.
//!
//! ```text
//! caller 127.0.0.1 ─TCP─ APS1 ═TLS═ FW1 127.0.0.21 ═╗
//!                                                   MPR 127.0.0.23 (UDP, TCP, TLS)
//! callee 127.0.0.2 ─TCP─ APS2 ═TLS═ FW2 127.0.0.22 ═╝
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
use pinhole_net::driver::client::Upstream;
use pinhole_net::driver::mpr::MprAlg;
use pinhole_net::driver::{SimRouter, Streaming, client as client_driver, mpr as mpr_driver};
use pinhole_net::firewall::FirewallSim;
use pinhole_net::relay::{Relay, RelayConfig};
use pinhole_net::tls::{ClientTls, ServerTls, testca};
use pinhole_sip::alg::{Aps, ApsConfig, Mpr, MprConfig};
use pinhole_tests::sipp::{Keys, Sipp, SippRun, scenario, sipp_or_skip};

use crate::common::*;

const MPR_IP: [u8; 4] = [127, 0, 0, 23];
const APS_MEDIA_IPS: [[u8; 4]; 2] = [[127, 0, 0, 24], [127, 0, 0, 25]];
/// Relay ports, then APS1's and APS2's ports B, 200 each.
const BASE: u16 = 55_000;

struct Bed {
    rt: tokio::runtime::Runtime,
    mpr: mpr_driver::MprHandle,
    aps: [client_driver::ClientHandle; 2],
    aps1_sig: SocketAddr,
    _fw: [Arc<FirewallSim>; 2],
    _keep: Vec<Box<dyn std::any::Any>>,
}

/// A TCP port free on `ip` now (the listener is dropped at once).
fn free_tcp(ip: IpAddr) -> Result<SocketAddr, Box<dyn Error>> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?)
}

fn bed(test: &str, callee: SocketAddr) -> Result<Bed, Box<dyn Error>> {
    let dir = run_dir(test, "certs");
    std::fs::create_dir_all(&dir)?;
    let mpr_ip = IpAddr::from(MPR_IP);
    let certs = testca::generate(&dir, &[mpr_ip.to_string()])?;
    let server = Arc::new(ServerTls::load(
        &certs.mpr_cert,
        &certs.mpr_key,
        Some(&certs.ca),
        true,
    )?);
    let client_tls = ClientTls::load(&certs.ca, Some((&certs.aps_cert, &certs.aps_key)))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pinhole-bed")
        .enable_all()
        .build()?;
    let (mpr, mpr_out, aps, fw, aps1_sig) = rt.block_on(async {
        let sims = firewalls([[127, 0, 0, 21], [127, 0, 0, 22]], |_| {}).await?;
        let control = tokio::net::UdpSocket::bind((mpr_ip, 0)).await?;
        let control_addr = control.local_addr()?;
        let tls_addr = free_tcp(mpr_ip)?;
        let mut cfg = mpr_config(mpr_ip, 61, (BASE, BASE + 199), control_addr.port())?;
        cfg.control_ports.push(tls_addr.port());
        let engine = mpr::Engine::new(cfg, Instant::now())?;
        let (relay, relay_events) = Relay::start(RelayConfig::default())?;
        let mut pc = MprConfig::new(control_addr, [61; 32]);
        pc.tls = Some(tls_addr);
        let source = Arc::clone(&server);
        let streaming = Streaming {
            server_tls: Some(Arc::new(move || source.config())),
            ..Streaming::default()
        };
        let (mpr, mpr_out) = mpr_driver::spawn_streaming(
            engine,
            vec![Arc::new(control)],
            relay,
            relay_events,
            vec![
                MprAlg::new(control_addr, Box::new(Mpr::new(pc)))
                    .listen(control_addr, Transport::Tcp)
                    .listen(tls_addr, Transport::Tls),
            ],
            &streaming,
        )
        .await?;
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
                tls_addr,
                [62 + i as u8; 32],
            );
            ccfg.upstream = Transport::Tls;
            let engine = client::Engine::new(ccfg, Instant::now())?;
            let (relay, relay_events) = Relay::start(RelayConfig::default())?;
            let first = BASE + 200 + 200 * i as u16;
            let mut pc = ApsConfig::new(
                sig_addr,
                IpAddr::from(APS_MEDIA_IPS[i]),
                PortRange::new(first, first + 199)?,
                [64 + i as u8; 32],
            );
            if i == 1 {
                pc.inside_default = Some(callee);
                pc.inside_transport = Transport::Tcp;
            }
            let streaming = Streaming {
                client_tls: Some(client_tls.config()),
                ..Streaming::default()
            };
            let router = Arc::new(SimRouter::new(Arc::clone(&sims[i])));
            let up = Upstream {
                backoff_min: Duration::from_millis(200),
                ..Upstream::default()
            };
            let (h, out) = client_driver::spawn_streaming(
                engine,
                Arc::new(sig),
                relay,
                relay_events,
                router,
                Some(Box::new(Aps::new(pc))),
                &client_driver::ClientStreams {
                    streaming,
                    upstream: up,
                    listen_tcp: true,
                },
            )
            .await?;
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
        aps: [aps1, aps2],
        aps1_sig,
        _fw: fw,
        _keep: vec![Box::new(mpr_out), Box::new(out1), Box::new(out2)],
    };
    bed.wait_registered()?;
    Ok(bed)
}

impl Bed {
    fn wait_registered(&self) -> Result<(), Box<dyn Error>> {
        let deadline = Instant::now() + WAIT;
        while !self.rt.block_on(async {
            Ok::<_, std::io::Error>(
                self.aps[0].registered_pinhole().await?.is_some()
                    && self.aps[1].registered_pinhole().await?.is_some(),
            )
        })? {
            if Instant::now() > deadline {
                return Err("the APSs did not register over TLS".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn legs_open(&self) -> Result<u64, Box<dyn Error>> {
        Ok(self.rt.block_on(self.mpr.stats())?.legs_open)
    }

    fn counter(&self, which: usize, name: &str) -> Result<u64, Box<dyn Error>> {
        let c = self.rt.block_on(async {
            match which {
                0 => self.mpr.alg_counters().await,
                1 => self.aps[0].alg_counters().await,
                _ => self.aps[1].alg_counters().await,
            }
        })?;
        Ok(alg::counter(&c, Protocol::Sip, name))
    }
}

fn phones(test: &str, uas: &str) -> Result<(Phone, Phone, SippRun), Box<dyn Error>> {
    let caller = Phone::new(CALLER_IP)?;
    let callee = Phone::new(CALLEE_IP)?;
    let uas = Sipp::uas(
        scenario(uas),
        SocketAddr::new(CALLEE_IP.parse()?, 0),
        Keys::new(callee.media_addr)
            .domain(CALLEE_DOMAIN)
            .from_domain(CALLER_DOMAIN),
    )
    .tcp()
    .pause(Duration::from_secs(4))
    .timeout(SIPP_TIMEOUT)
    .dir(run_dir(test, "uas"))
    .spawn()?;
    Ok((caller, callee, uas))
}

#[test]
fn tls_upstream_tcp_phones_media_both_ways_and_a_reconnect_mid_call() -> TestResult {
    if !sipp_or_skip("tls_upstream") {
        return Ok(());
    }
    let test = "tls_upstream";
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (caller, callee, uas) = phones(test, "uas_basic.xml")?;
    let bed = bed(test, uas.local_addr())?;
    let uac = Sipp::uac(
        scenario("uac_basic.xml"),
        SocketAddr::new(CALLER_IP.parse()?, 0),
        bed.aps1_sig,
        Keys::new(caller.media_addr)
            .domain(CALLEE_DOMAIN)
            .from_domain(CALLER_DOMAIN),
    )
    .tcp()
    .pause(Duration::from_secs(4))
    .timeout(SIPP_TIMEOUT)
    .dir(run_dir(test, "uac"))
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
    assert_eq!(to_callee.ip(), IpAddr::from(APS_MEDIA_IPS[0]));
    assert_eq!(to_caller.ip(), IpAddr::from(APS_MEDIA_IPS[1]));
    assert!(bed.legs_open()? >= 2, "the MPR relays the call");
    call.media_both_ways("answered", to_callee, to_caller)?;

    // The signaling went over streams only: TLS up, TCP to the phones.
    let links = bed.rt.block_on(bed.mpr.link_counters())?;
    assert!(links.streams.accepted >= 2, "{links:?}");
    assert!(links.streams.messages_in >= 4, "{links:?}");

    // Cut APS1's connection mid-call: it reopens and registers again.
    let before = bed.rt.block_on(bed.aps[0].stats())?.registrations_ok;
    assert!(bed.rt.block_on(bed.aps[0].drop_upstream())?);
    let deadline = Instant::now() + WAIT;
    while bed.rt.block_on(bed.aps[0].stats())?.registrations_ok <= before {
        if Instant::now() > deadline {
            return Err("APS1 did not register over a new connection".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let up = bed.rt.block_on(bed.aps[0].link_counters())?;
    assert_eq!(up.reconnects, 1, "{up:?}");
    // The call's media never depended on the connection.
    call.media_both_ways("after the reconnect", to_callee, to_caller)?;

    // The BYE (after sipp's pause) crosses the new connection; the legs go.
    let (uac, uas) = call.finish()?;
    assert_eq!((uac.calls_successful, uac.calls_failed), (1, 0));
    assert_eq!((uas.calls_successful, uas.calls_failed), (1, 0));
    let deadline = Instant::now() + WAIT;
    while bed.legs_open()? > 0 {
        if Instant::now() > deadline {
            return Err("legs still open after the BYE".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(bed.counter(0, "malformed")?, 0);
    assert!(bed.counter(1, "pinholes")? >= 1 && bed.counter(2, "pinholes")? >= 1);
    Ok(())
}
