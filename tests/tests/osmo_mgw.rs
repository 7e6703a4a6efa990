//! Osmocom's media gateway (osmo-mgw) on loopback, driven by raw MGCP from
//! the test: proves the harness and what the MGCP end-to-end test relies on
//! (AUEP, two CRCX legs on one rtpbridge endpoint, RTP bridged both ways
//! with payloads intact, MDCX of mode and remote address, DLCX freeing the
//! endpoint). Skipped loudly without osmo-mgw unless `CI` is set.
//!
//! Addresses used by no other test: osmo-mgw on 127.0.0.41 (MGCP 24270,
//! RTP 43000-43099, VTY 4243, CTRL 4267), the test's sockets on 127.0.0.42;
//! the start-failure test uses 127.0.0.45, the `rtp-accept-all` one
//! 127.0.0.46 (RTP 43110-43119); the namespace test has its own loopback.
#![allow(missing_docs)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use pinhole_tests::osmo_mgw::{
    MgcpClient, MgcpResponse, OsmoMgw, OsmoMgwConfig, OsmoMgwError, any_endpoint, endpoint,
    osmo_mgw_binary,
};
use pinhole_tests::rtp::{FlowStats, rtp_flow, rtp_pair};

const MGW_IP: &str = "127.0.0.41";
const MGCP_PORT: u16 = 24270;
const RTP_PORTS: (u16, u16) = (43000, 43099);
const TEST_IP: &str = "127.0.0.42";
const PACKETS: u16 = 50;
const INTERVAL: Duration = Duration::from_millis(2);

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a literal IP")
}

fn media_socket() -> Result<UdpSocket> {
    Ok(UdpSocket::bind(SocketAddr::new(ip(TEST_IP), 0))?)
}

/// The gateway's side of a leg: where the test sends that leg's RTP.
fn leg_addr(resp: &MgcpResponse) -> Result<SocketAddr> {
    let addr = resp
        .sdp_audio()
        .ok_or_else(|| format!("no audio address in\n{}", resp.raw))?;
    assert_eq!(addr.ip(), ip(MGW_IP), "{}", resp.raw);
    assert!(
        (RTP_PORTS.0..=RTP_PORTS.1).contains(&addr.port()),
        "{}",
        resp.raw
    );
    Ok(addr)
}

fn conn_id(resp: &MgcpResponse) -> Result<String> {
    Ok(resp
        .connection_id()
        .ok_or_else(|| format!("no I: in\n{}", resp.raw))?
        .to_owned())
}

fn flow(tx: &UdpSocket, to: SocketAddr, rx: &UdpSocket) -> Result<FlowStats> {
    Ok(rtp_flow(tx, to, rx, PACKETS, INTERVAL)?)
}

#[test]
fn osmo_mgw_bridges_two_legs() -> Result {
    let mgcp_addr = SocketAddr::new(ip(MGW_IP), MGCP_PORT);
    let Some(mgw) = OsmoMgw::start(mgcp_addr, ip(MGW_IP), RTP_PORTS)? else {
        return Ok(());
    };
    let log = || mgw.log();
    let mut ca = MgcpClient::bind(ip(TEST_IP), mgw.mgcp_addr())?;

    // AUEP: existing endpoints and the wildcard answer 200, a number
    // beyond `number endpoints` (16 = hex 10) and a foreign domain 500.
    for ep in [endpoint(1), endpoint(16), any_endpoint()] {
        assert_eq!(ca.auep(&ep)?.code, 200, "AUEP {ep}");
    }
    for ep in [endpoint(17), "rtpbridge/1@elsewhere".to_owned()] {
        assert_eq!(ca.auep(&ep)?.code, 500, "AUEP {ep}");
    }

    // Two legs on one endpoint; the wildcard CRCX names it in Z:.
    let (a, b) = (media_socket()?, media_socket()?);
    let call = "c0ffee01";
    let leg1 = ca.crcx(&any_endpoint(), call, "sendrecv", Some(a.local_addr()?))?;
    let ep = leg1
        .param("Z")
        .ok_or_else(|| format!("no Z: in\n{}", leg1.raw))?
        .to_owned();
    assert!(ep.starts_with("rtpbridge/") && ep.ends_with("@mgw"), "{ep}");
    let leg2 = ca.crcx(&ep, call, "sendrecv", Some(b.local_addr()?))?;
    let (addr1, addr2) = (leg_addr(&leg1)?, leg_addr(&leg2)?);
    let (id1, id2) = (conn_id(&leg1)?, conn_id(&leg2)?);
    assert_ne!(addr1, addr2);
    assert_ne!(id1, id2);
    assert_eq!(leg2.sdp_payload_types(), vec![0], "{}", leg2.raw);
    // An rtpbridge endpoint holds two connections, no more.
    let third = ca.command(
        "CRCX",
        &ep,
        &[("C", call), ("M", "sendrecv")],
        Some(&pinhole_tests::osmo_mgw::sdp_offer(a.local_addr()?)),
    )?;
    assert_eq!(third.code, 540, "{}", third.raw);

    // RTP both ways at once: into leg 1 out to b, into leg 2 out to a,
    // each leaving from the gateway port of the leg it goes out on.
    let r = rtp_pair(&a, &b, addr1, addr2, PACKETS, INTERVAL)?;
    assert!(r.a_to_b.is_complete(), "{r:?}\n{}", log());
    assert!(r.b_to_a.is_complete(), "{r:?}\n{}", log());
    assert_eq!(r.a_to_b.sources, vec![addr2]);
    assert_eq!(r.b_to_a.sources, vec![addr1]);

    // RTP from an address that is not the leg's remote one is dropped.
    let stranger = media_socket()?;
    let s = flow(&stranger, addr1, &b)?;
    assert_eq!((s.sent, s.received), (u32::from(PACKETS), 0), "{s:?}");

    // MDCX mode: leg 1 recvonly means the gateway no longer sends to a,
    // but what a sends still goes out to b.
    ca.mdcx(&ep, call, &id1, Some("recvonly"), None)?;
    let to_b = flow(&a, addr1, &b)?;
    assert!(to_b.is_complete(), "{to_b:?}");
    let to_a = flow(&b, addr2, &a)?;
    assert_eq!(
        (to_a.sent, to_a.received),
        (u32::from(PACKETS), 0),
        "{to_a:?}"
    );
    ca.mdcx(&ep, call, &id1, Some("sendrecv"), None)?;

    // MDCX remote address: leg 2 moves to a new socket b2; the gateway
    // keeps its port and now bridges a and b2, and drops the old b.
    let b2 = media_socket()?;
    let moved = ca.mdcx(&ep, call, &id2, Some("sendrecv"), Some(b2.local_addr()?))?;
    assert_eq!(leg_addr(&moved)?, addr2);
    let r = rtp_pair(&a, &b2, addr1, addr2, PACKETS, INTERVAL)?;
    assert!(r.a_to_b.is_complete() && r.b_to_a.is_complete(), "{r:?}");
    let old = flow(&b, addr2, &a)?;
    assert_eq!(old.received, 0, "{old:?}");
    // An unknown connection id is refused.
    let unknown = ca.command(
        "MDCX",
        &ep,
        &[("C", call), ("I", "DEADBEEF"), ("M", "sendrecv")],
        None,
    )?;
    assert_eq!(unknown.code, 515, "{}", unknown.raw);

    // DLCX of leg 1: 250 with connection statistics; after it nothing
    // crosses, and a second DLCX of it is refused.
    let gone = ca.dlcx(&ep, call, Some(&id1))?;
    assert_eq!(gone.code, 250, "{}", gone.raw);
    assert!(
        gone.param("P").is_some_and(|p| p.contains("PR=")),
        "{}",
        gone.raw
    );
    let after = flow(&a, addr1, &b2)?;
    assert_eq!(after.received, 0, "{after:?}");
    assert_eq!(ca.dlcx(&ep, call, Some(&id1))?.code, 515);
    // DLCX of the whole endpoint frees it: two new legs fit again.
    assert!(ca.dlcx(&ep, call, None)?.is_success());
    let again1 = ca.crcx(&ep, "c0ffee02", "sendrecv", Some(a.local_addr()?))?;
    let again2 = ca.crcx(&ep, "c0ffee02", "sendrecv", Some(b.local_addr()?))?;
    let r = rtp_pair(
        &a,
        &b,
        leg_addr(&again1)?,
        leg_addr(&again2)?,
        PACKETS,
        INTERVAL,
    )?;
    assert!(r.a_to_b.is_complete() && r.b_to_a.is_complete(), "{r:?}");
    assert!(ca.dlcx(&ep, "c0ffee02", None)?.is_success());
    Ok(())
}

#[test]
fn start_fails_loudly_when_the_mgcp_port_is_taken() -> Result {
    let taken = UdpSocket::bind("127.0.0.45:24270")?;
    let config = OsmoMgwConfig::new(taken.local_addr()?, ip("127.0.0.45"), (43100, 43109));
    match config.start() {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err("osmo-mgw started on a taken port".into()),
        Err(OsmoMgwError::Start { why, stderr }) => {
            assert!(why.contains("exited"), "{why}");
            assert!(!stderr.is_empty());
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[test]
fn accept_all_forwards_rtp_from_any_source() -> Result {
    let mgw_ip = ip("127.0.0.46");
    let config = OsmoMgwConfig::new(SocketAddr::new(mgw_ip, MGCP_PORT), mgw_ip, (43110, 43119))
        .accept_all(true);
    let Some(mgw) = config.start()? else {
        return Ok(());
    };
    let mut ca = MgcpClient::bind(ip(TEST_IP), mgw.mgcp_addr())?;
    let (a, b, stranger) = (media_socket()?, media_socket()?, media_socket()?);
    let ep = endpoint(2);
    let leg1 = ca.crcx(&ep, "c0ffee03", "sendrecv", Some(a.local_addr()?))?;
    ca.crcx(&ep, "c0ffee03", "sendrecv", Some(b.local_addr()?))?;
    let addr1 = leg1.sdp_audio().ok_or("no SDP")?;
    let s = flow(&stranger, addr1, &b)?;
    assert!(s.is_complete(), "{s:?}\n{}", mgw.log());
    Ok(())
}

/// A network namespace with its loopback up, deleted on drop.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Option<Self> {
        let ok = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ok(&["netns", "add", name]) {
            return None;
        }
        let ns = Self(name.to_owned());
        ok(&["-n", name, "link", "set", "lo", "up"]).then_some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn runs_inside_a_network_namespace() -> Result {
    if osmo_mgw_binary().is_none() {
        // The loopback test reports the missing binary.
        return Ok(());
    }
    let name = format!("pinhole-osmo-{}", std::process::id());
    let Some(ns) = Netns::create(&name) else {
        let bar = "!".repeat(72);
        let notice = format!(
            "\n{bar}\n!!! SKIPPED runs_inside_a_network_namespace: cannot create a network namespace (needs root)\n{bar}\n"
        );
        std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes())?;
        return Ok(());
    };
    // The namespace's own loopback: the same address as the loopback
    // test's gateway, another MGCP port, and no clash with it.
    let mgcp_addr = SocketAddr::new(ip(MGW_IP), MGCP_PORT + 1);
    let mut mgw = OsmoMgwConfig::new(mgcp_addr, ip(MGW_IP), RTP_PORTS)
        .netns(ns.0.clone())
        .probe_auep(false)
        .start()?
        .ok_or("osmo-mgw vanished")?;
    // It answers nobody out here: it really is in the namespace.
    let mut ca = MgcpClient::bind(ip(TEST_IP), mgcp_addr)?
        .timeout(Duration::from_millis(200))
        .tries(2);
    let err = ca.auep(&endpoint(1)).unwrap_err();
    assert!(matches!(err, OsmoMgwError::NoResponse { .. }), "{err}");
    assert_eq!(mgw.try_exit()?, None, "{}", mgw.log());
    let pid = mgw.pid();
    drop(mgw);
    // Dropped means killed and reaped (bounded wait for /proc to catch up).
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let t0 = Instant::now();
    while proc_dir.exists() && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!proc_dir.exists(), "osmo-mgw {pid} survived its drop");
    Ok(())
}
