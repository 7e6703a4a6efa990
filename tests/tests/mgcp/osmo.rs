//! A real gateway through the MPR and the APS: osmo-mgw inside a network
//! behind the firewall simulator bridges two public phones. The call agent
//! creates two connections on one rtpbridge endpoint in one call (osmo-mgw
//! wants the same `C:`), the first with P1's SDP and the second with P2's;
//! RTP goes P1 → MPR → firewall → APS → osmo conn 1 → osmo conn 2 → APS →
//! firewall → MPR → P2, and back. Skipped loudly without osmo-mgw unless
//! `CI` is set.
//!
//! ```text
//! osmo-mgw 127.0.0.58 ── APS 127.0.0.58 ─ FW 127.0.0.53 ── MPR 127.0.0.50 ── CA, P1, P2 127.0.0.57
//! ```
//!
//! Ports: MPR relay 46580–46599, osmo-mgw MGCP 24277 and RTP 46600–46619
//! (VTY 4243 and CTRL 4267 on its own address), ports B 46640–46649.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use pinhole_tests::osmo_mgw::{MgcpClient, MgcpResponse, OsmoMgw, endpoint};
use pinhole_tests::rtp::rtp_pair;

use crate::common::*;

const MPR_PORTS: (u16, u16) = (46580, 46599);
const MGW_IP: [u8; 4] = [127, 0, 0, 58];
const MGCP_PORT: u16 = 24277;
const RTP_PORTS: (u16, u16) = (46600, 46619);
const APS_PORTS: (u16, u16) = (46640, 46649);
const PACKETS: u16 = 100;
const INTERVAL: Duration = Duration::from_millis(5);

fn corp() -> Corp {
    Corp {
        id: "corp3",
        domains: vec!["mgw"],
        inside: MGW_IP,
        public: [127, 0, 0, 53],
    }
}

fn relay_of(r: &MgcpResponse) -> Res<SocketAddr> {
    let a = r
        .sdp_audio()
        .ok_or_else(|| format!("no audio address in\n{}", r.raw))?;
    assert!(is_relay(a, MPR_PORTS), "not a relay address:\n{}", r.raw);
    Ok(a)
}

/// Waits until the MPR has `n` relay legs open.
fn wait_legs(rt: &tokio::runtime::Runtime, mpr: &Mpr, n: u64) -> Res {
    let until = Instant::now() + WAIT;
    loop {
        let open = rt.block_on(mpr.legs_open())?;
        if open == n {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!("{open} legs open, not {n}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn osmo_mgw_behind_the_aps_bridges_two_public_phones_through_the_mpr() -> Res {
    let mgcp_addr = SocketAddr::new(ip(MGW_IP), MGCP_PORT);
    let Some(mgw) = OsmoMgw::start(mgcp_addr, ip(MGW_IP), RTP_PORTS)? else {
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let probe = UdpSocket::bind((ip(CA_IP), 0))?;
    let ca_addr = probe.local_addr()?;
    drop(probe);
    let corp = corp();
    let (mpr, aps) = rt.block_on(async {
        let mpr = Mpr::start(MPR_PORTS, std::slice::from_ref(&corp), ca_addr).await?;
        let sim = firewall(&corp).await?;
        let aps = Aps::start(
            &corp,
            sim,
            mpr.control,
            APS_PORTS,
            vec![("mgw".to_owned(), mgcp_addr)],
        )
        .await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((mpr, aps))
    })?;
    let mut ca = MgcpClient::bind(ip(CA_IP), mpr.control)?.timeout(Duration::from_secs(1));
    let p1 = UdpSocket::bind((ip(CA_IP), 0))?;
    let p2 = UdpSocket::bind((ip(CA_IP), 0))?;
    let ep = endpoint(1);
    let call = "4F5";

    let c1 = ca.crcx(&ep, call, "sendrecv", Some(p1.local_addr()?))?;
    let to1 = relay_of(&c1)?;
    let c2 = ca.crcx(&ep, call, "sendrecv", Some(p2.local_addr()?))?;
    let to2 = relay_of(&c2)?;
    assert_ne!(to1, to2, "{}\n{}", c1.raw, c2.raw);
    assert_eq!(rt.block_on(mpr.legs_open())?, 4);

    // P1 sends to conn 1's relay address, P2 to conn 2's; osmo-mgw's
    // 1-byte probes count as foreign.
    let r = rtp_pair(&p1, &p2, to1, to2, PACKETS, INTERVAL)?;
    eprintln!(
        "osmo-mgw: P1→P2 {} of {} ({} foreign, {} damaged), P2→P1 {} of {} ({} foreign, {} damaged)",
        r.a_to_b.received,
        r.a_to_b.sent,
        r.a_to_b.foreign,
        r.a_to_b.payload_errors,
        r.b_to_a.received,
        r.b_to_a.sent,
        r.b_to_a.foreign,
        r.b_to_a.payload_errors
    );
    for (dir, f) in [("P1→P2", &r.a_to_b), ("P2→P1", &r.b_to_a)] {
        assert_eq!(f.sent, u32::from(PACKETS), "{dir}");
        assert_eq!(f.payload_errors, 0, "{dir}: {f:?}\n{}", mgw.log());
        assert!(
            f.received * 100 >= u32::from(PACKETS) * 95,
            "{dir}: {f:?}\n{}",
            mgw.log()
        );
        // Everything arrives from the MPR's relay.
        assert!(
            f.sources.iter().all(|s| is_relay(*s, MPR_PORTS)),
            "{dir}: {f:?}"
        );
    }

    // DLCX of connection 1 frees its legs only; DLCX of the endpoint the
    // rest.
    let i1 = c1.connection_id().ok_or("no I: in the first answer")?;
    let d = ca.dlcx(&ep, call, Some(i1))?;
    assert_eq!(d.code, 250, "{}", d.raw);
    wait_legs(&rt, &mpr, 2)?;
    let d = ca.dlcx(&ep, call, None)?;
    assert!(d.is_success(), "{}", d.raw);
    wait_legs(&rt, &mpr, 0)?;
    let (mc, ac) = rt.block_on(async {
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((
            mpr.counters().await?,
            aps.counters().await?,
        ))
    })?;
    assert_clean("MPR", &mc);
    assert_clean("APS", &ac);
    Ok(())
}
