//! Fig. 9 for real: two example gateways, each behind an APS and a
//! firewall simulator, connected by the public call agent through the MPR.
//!
//! ```text
//! gw1 127.0.0.55 ── APS1 127.0.0.55 ─ FW1 127.0.0.51 ─┐
//!                                                      MPR 127.0.0.50 ── CA 127.0.0.57
//! gw2 127.0.0.56 ── APS2 127.0.0.56 ─ FW2 127.0.0.52 ─┘
//! ```
//!
//! Ports: MPR relay 46500–46519, ports B 46520–46529 (APS1) and
//! 46530–46539 (APS2), the gateways' RTP 46540 and 46541, MGCP 24275.

use std::net::SocketAddr;
use std::time::Duration;

use pinhole_examples::mgcp::gw::{Gateway, GwConfig};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::common::*;

const MPR_PORTS: (u16, u16) = (46500, 46519);
const APS_PORTS: [(u16, u16); 2] = [(46520, 46529), (46530, 46539)];
const MEDIA_PORTS: [u16; 2] = [46540, 46541];
const MGCP_PORT: u16 = 24275;
const DOMAINS: [&str; 2] = ["gw1.corp1.example", "gw2.corp2.example"];
const PACKETS: u32 = 100;
const INTERVAL: Duration = Duration::from_millis(10);

pub(crate) fn corps() -> [Corp; 2] {
    [
        Corp {
            id: "corp1",
            domains: vec!["corp1.example"],
            inside: [127, 0, 0, 55],
            public: [127, 0, 0, 51],
        },
        Corp {
            id: "corp2",
            domains: vec!["corp2.example"],
            inside: [127, 0, 0, 56],
            public: [127, 0, 0, 52],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fig9_gateways_behind_apss_call_through_the_mpr_with_rtp_both_ways() -> Res {
    let corps = corps();
    let mut ca = Ca::bind(MGCP_PORT).await?;
    let mpr = Mpr::start(MPR_PORTS, &corps, ca.local()?).await?;
    let mut apss = Vec::new();
    let mut gws = Vec::new();
    for (i, corp) in corps.iter().enumerate() {
        let sim = firewall(corp).await?;
        let mgcp = UdpSocket::bind((ip(corp.inside), MGCP_PORT)).await?;
        let media = UdpSocket::bind((ip(corp.inside), MEDIA_PORTS[i])).await?;
        let gw_addr = mgcp.local_addr()?;
        let gw = Gateway::new(GwConfig::new(DOMAINS[i], media.local_addr()?));
        apss.push(
            Aps::start(
                corp,
                sim,
                mpr.control,
                APS_PORTS[i],
                vec![(DOMAINS[i].to_owned(), gw_addr)],
            )
            .await?,
        );
        let (tx, rx) = watch::channel(Phase::Idle);
        gws.push((tx, tokio::spawn(run_gateway(gw, mgcp, media, INTERVAL, rx))));
    }

    // 810–885: CRCX A, CRCX B with A's relay address, MDCX A with B's,
    // each through the MPR and the APS (which opens the media pinholes).
    // The first CRCX is sent once more after its answer.
    let [ep1, ep2] = DOMAINS.map(|d| format!("aaln/1@{d}"));
    ca.connect_through(&mpr, MPR_PORTS, "F9E2E", &ep1, &ep2)
        .await?;

    // 890: RTP both ways.
    for (tx, _) in &gws {
        tx.send(Phase::Talk(PACKETS))?;
    }
    tokio::time::sleep(INTERVAL * PACKETS + Duration::from_millis(700)).await;

    // DLCX both; the MPR's legs go.
    ca.hang_up(&mpr).await?;

    let mut reports = Vec::new();
    for (tx, task) in gws {
        tx.send(Phase::Stop)?;
        reports.push(tokio::time::timeout(WAIT, task).await???);
    }
    for (i, r) in reports.iter().enumerate() {
        let other = &reports[1 - i];
        eprintln!(
            "fig9 gw{}: sent {}, received {} ({} intact), RTP to {:?}",
            i + 1,
            r.sent.packets,
            r.got.packets,
            r.got.intact,
            r.remote
        );
        assert_eq!(r.sent.packets, u64::from(PACKETS), "gw{}", i + 1);
        // At least 95 % intact, all from the other gateway.
        assert!(
            r.got.intact * 100 >= u64::from(PACKETS) * 95,
            "gw{}: {:?}",
            i + 1,
            r.got
        );
        assert!(r.got.intact <= other.sent.packets);
        // Inside, each gateway sends to its APS's port B, which the relay
        // maps to the MPR relay leg.
        let remote: SocketAddr = r.remote.ok_or("no RTP sent")?;
        assert_eq!(remote.ip(), ip(corps[i].inside));
        assert!((APS_PORTS[i].0..=APS_PORTS[i].1).contains(&remote.port()));
        assert!(
            r.handled.contains(&("CRCX".to_owned(), 1)),
            "{:?}",
            r.handled
        );
        assert!(
            r.handled.contains(&("DLCX".to_owned(), 1)),
            "{:?}",
            r.handled
        );
    }
    assert_clean("MPR", &mpr.counters().await?);
    for (i, a) in apss.iter().enumerate() {
        assert_clean(&format!("APS{}", i + 1), &a.counters().await?);
    }
    Ok(())
}
