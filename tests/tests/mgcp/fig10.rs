//! Fig. 10 for real: two smart gateways (`pinhole_examples::mgcp::smart`),
//! each behind a firewall simulator with no APS, connected by the public
//! call agent through the MPR.
//!
//! ```text
//! gw1 127.0.0.55 ─ FW1 127.0.0.51 ─┐
//!                                  MPR 127.0.0.50 ── CA 127.0.0.57
//! gw2 127.0.0.56 ─ FW2 127.0.0.52 ─┘
//! ```
//!
//! Ports: MPR relay 46550–46569, the gateways' RTP 46570–46573 and
//! 46574–46577, MGCP 24276.

use std::sync::Arc;
use std::time::Duration;

use pinhole_core::ports::PortRange;
use pinhole_examples::mgcp::smart::{SmartGw, SmartGwConfig};
use pinhole_net::driver::SimRouter;

use crate::common::*;

const MPR_PORTS: (u16, u16) = (46550, 46569);
const MEDIA_PORTS: [(u16, u16); 2] = [(46570, 46573), (46574, 46577)];
const MGCP_PORT: u16 = 24276;
const DOMAINS: [&str; 2] = ["gw1.corp1.example", "gw2.corp2.example"];
const PACKETS: u32 = 100;
const INTERVAL: Duration = Duration::from_millis(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fig10_smart_gateways_call_through_the_mpr_with_rtp_both_ways() -> Res {
    let corps = crate::fig9::corps();
    let mut ca = Ca::bind(MGCP_PORT).await?;
    let mpr = Mpr::start(MPR_PORTS, &corps, ca.local()?).await?;
    let mut gws = Vec::new();
    for (i, corp) in corps.iter().enumerate() {
        let sim = firewall(corp).await?;
        let mut gw = SmartGw::start(
            SmartGwConfig {
                mgcp: (ip(corp.inside), MGCP_PORT).into(),
                mpr: mpr.control,
                network: corp.id.to_owned(),
                credential: credential(corp.id),
                domain: DOMAINS[i].to_owned(),
                media_ip: ip(corp.inside),
                media_ports: PortRange::new(MEDIA_PORTS[i].0, MEDIA_PORTS[i].1)?,
                firewall_idle: None,
                seed: 10 + i as u64,
            },
            Arc::new(SimRouter::new(sim)),
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
        let pinhole = gw
            .wait_registered(WAIT)
            .await
            .map_err(|e| format!("{e:#}"))?;
        assert_eq!(pinhole.ip(), ip(corp.public));
        gws.push(gw);
    }

    // 910–955: CRCX A (A opens CMPH before it answers), CRCX B with A's
    // relay address, MDCX A with B's. The first CRCX is sent once more
    // after its answer.
    let (a, b) = ca
        .connect_through(
            &mpr,
            MPR_PORTS,
            "F10E2E",
            gws[0].endpoint(),
            gws[1].endpoint(),
        )
        .await?;

    // Each gateway sends to the relay address the call agent gave it: A to
    // where B receives and B to where A receives.
    let [g1, g2] = &mut gws[..] else {
        return Err("two gateways".into());
    };
    for (g, to, corp) in [(&mut *g1, b, &corps[0]), (&mut *g2, a, &corps[1])] {
        let c = g.wait_connected(WAIT).await.map_err(|e| format!("{e:#}"))?;
        assert_eq!(c.remote, Some(to), "{c:?}");
        // Its pinhole is on its firewall's public address.
        assert_eq!(c.pinhole.map(|p| p.ip()), Some(ip(corp.public)), "{c:?}");
    }
    let (s1, s2) = tokio::join!(g1.talk(PACKETS, INTERVAL), g2.talk(PACKETS, INTERVAL));
    s1.map_err(|e| format!("{e:#}"))?;
    s2.map_err(|e| format!("{e:#}"))?;
    let (l1, l2) = tokio::join!(
        g1.listen(Duration::from_millis(500)),
        g2.listen(Duration::from_millis(500))
    );
    l1.map_err(|e| format!("{e:#}"))?;
    l2.map_err(|e| format!("{e:#}"))?;
    for (i, g) in gws.iter().enumerate() {
        let other = &gws[1 - i];
        eprintln!(
            "fig10 gw{}: sent {}, received {} ({} intact)",
            i + 1,
            g.sent().packets,
            g.received().packets,
            g.received().intact
        );
        assert_eq!(g.sent().packets, u64::from(PACKETS));
        assert!(
            g.received().intact * 100 >= u64::from(PACKETS) * 95,
            "gw{}: {:?}",
            i + 1,
            g.received()
        );
        assert_eq!(g.received().ssrcs, [other.ssrc()]);
    }

    ca.hang_up(&mpr).await?;
    for (i, g) in gws.iter().enumerate() {
        assert!(g.connections().is_empty(), "gw{}", i + 1);
        let st = g.stats();
        assert!(
            st.pinholes >= 1 && st.pinhole_failures == 0,
            "gw{}: {st:?}",
            i + 1
        );
        assert_clean(&format!("gw{}", i + 1), &g.client().alg_counters().await?);
    }
    assert_clean("MPR", &mpr.counters().await?);
    for g in gws {
        g.shutdown().await.map_err(|e| format!("{e:#}"))?;
    }
    Ok(())
}
