//! H.248 through the real firewalls, with real peers nobody here wrote:
//! Erlang/OTP's megaco MGC on the internet (the soft-switch's address) and
//! an OTP megaco MG inside each corporate network (tests/megaco/*.escript,
//! docs/megaco.md). Fig. 13: an H.248 APS in each network is the MGs' MGC;
//! each MG registers (ServiceChange) through its APS and the MPR, which
//! gives it a gateway port of its own toward the MGC; the MGC's Add, Add,
//! Modify and Subtracts go through, and the MGs' RTP crosses both
//! firewalls through pinholes opened from inside only.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use pinhole_tests::megaco::through::{Expect, Span};
use pinhole_tests::megaco::{MgConfig, MgcConfig};

use super::Scenario;
use crate::bed::{APS_IP, MPR_IP, Ns, PHONE_IP, SSW_IP};
use crate::ctx::{
    APS_MEDIA_PORTS, ApsOptions, ApsProtocol, Ctx, H248_GATEWAY_PORTS, H248_PORT, MprOptions,
    PHONE_MEDIA_PORT, RELAY_PORTS, aps_h248, metric, mpr_h248,
};

pub(crate) const SCENARIOS: &[Scenario] = &[Scenario {
    name: "h248::fig13_aps_in_each_network",
    negative_control: false,
    known_bug: None,
    run: fig13,
}];

/// RTP each MG sends while the call is up, and how far apart.
const PACKETS: u32 = 50;
const INTERVAL: Duration = Duration::from_millis(20);
/// How long the MGC holds the call: every packet both ways, with slack.
const HOLD: Duration = Duration::from_millis(2500);
/// Bound on each escript's whole run.
const RUN: Duration = Duration::from_secs(40);

/// The MGC, on the soft-switch's address in the internet namespace.
fn mgc() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(SSW_IP), H248_PORT)
}

/// Corp `i`'s MG's H.248 address (on the phone's address).
fn mg_h248(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(PHONE_IP[i]), H248_PORT)
}

/// Corp `i`'s MG's RTP address.
fn mg_rtp(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(PHONE_IP[i]), PHONE_MEDIA_PORT)
}

/// The MGs' mIds: an address one and a domain one.
fn mids() -> [String; 2] {
    [
        format!("[{}]:{H248_PORT}", PHONE_IP[0]),
        "<mg2.corp2.example>".to_owned(),
    ]
}

/// Fig. 13: the MPR with its H.248 ALG toward the MGC, an H.248 APS in
/// each network (APS1 knows its MG from its configuration, APS2 learns it
/// from the MG's first message), the OTP MGC and MGs.
fn fig13(ctx: &mut Ctx) -> Result<()> {
    if !pinhole_tests::megaco::megaco_available() {
        // MgcConfig::start says why, loudly (an error under CI).
        MgcConfig::new(mgc()).start()?;
        ctx.note("SKIPPED: Erlang/OTP megaco is not installed");
        return Ok(());
    }
    ctx.start_mpr_with(MprOptions {
        h248_mgc: Some(mgc()),
        ..MprOptions::default()
    })?;
    let mids = mids();
    for i in 0..2 {
        let gateways = match i {
            0 => vec![(mids[0].clone(), mg_h248(0))],
            _ => Vec::new(),
        };
        ctx.start_aps(
            i,
            ApsOptions {
                protocol: ApsProtocol::H248 { gateways },
                ..ApsOptions::default()
            },
        )?;
    }
    let drops = ctx.drops()?;
    let dir = ctx.bed.dir.join("megaco");
    let mut mgc = MgcConfig::new(mgc())
        .mg_mids(&mids[0], &mids[1])
        .hold(HOLD)
        .max_run(RUN)
        .netns(ctx.bed.ns(Ns::Inet))
        .dir(&dir)
        .start()?
        .ok_or_else(|| anyhow!("megaco vanished"))?;
    let mut mgs = Vec::new();
    for (i, mid) in mids.iter().enumerate() {
        let mg = MgConfig::new(aps_h248(i), mg_h248(i), mid, mg_rtp(i))
            .packets(PACKETS)
            .interval(INTERVAL)
            .max_run(RUN)
            .netns(ctx.bed.ns(Ns::Corp(i)))
            .dir(dir.join(format!("mg{}", i + 1)))
            .start()?
            .ok_or_else(|| anyhow!("megaco vanished"))?;
        mgs.push(mg);
    }
    // While the call holds, its pinholes are in the firewalls.
    let wait_up = std::time::Instant::now() + Duration::from_secs(20);
    while !mgc.events().iter().any(|e| e.name == "modify_reply") {
        if std::time::Instant::now() > wait_up {
            return Err(anyhow!(
                "no Modify reply at the MGC within 20 s: {:?}",
                mgc.events()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let signaling = [aps_h248(0), aps_h248(1)];
    let media_from = [0, 1].map(|i| (APS_IP[i], APS_MEDIA_PORTS));
    ctx.check_pinholes("H.248", signaling, mpr_h248(), media_from)?;

    let report = mgc.wait(RUN)?.ensure_success().context("the MGC")?;
    let mut reports = Vec::new();
    for (i, mg) in mgs.iter_mut().enumerate() {
        let r = mg.wait(Duration::from_secs(10))?;
        reports.push(r.ensure_success().with_context(|| format!("MG{}", i + 1))?);
    }
    let reports: [_; 2] = reports.try_into().map_err(|_| anyhow!("two MG reports"))?;
    let expect = Expect {
        mids,
        gateway_ports: Span::new(
            IpAddr::V4(MPR_IP),
            H248_GATEWAY_PORTS.0..=H248_GATEWAY_PORTS.1,
        ),
        relay: Span::new(IpAddr::V4(MPR_IP), RELAY_PORTS.0..=RELAY_PORTS.1),
        media_from: [0, 1]
            .map(|i| Span::new(IpAddr::V4(APS_IP[i]), APS_MEDIA_PORTS.0..=APS_MEDIA_PORTS.1)),
        packets: PACKETS,
        min_percent: 95,
    };
    for line in expect.check(&report, &reports).map_err(|e| anyhow!(e))? {
        ctx.note(line);
    }
    check_mpr(ctx)?;
    ctx.check_drops(drops)
}

/// The MPR's H.248 counters and relay, noted and checked: the call went
/// through and came down, both gateways' descriptions were rewritten,
/// nothing malformed, every leg freed.
fn check_mpr(ctx: &mut Ctx) -> Result<()> {
    let key = |e: &str| format!("pinhole_signaling_total{{protocol=\"h248\",event=\"{e}\"}}");
    let m = ctx.wait_metric(
        Ns::Inet,
        crate::ctx::mpr_metrics(),
        "pinhole_legs_open 0",
        Duration::from_secs(10),
    )?;
    let get = |e: &str| metric(&m, &key(e)).unwrap_or(-1.0);
    let relay = |k: &str| metric(&m, k).unwrap_or(-1.0);
    ctx.note(format!(
        "MPR relay: {} packets in, {} out, {} dropped (wrong source); legs open 0",
        relay("pinhole_relay_packets_total{direction=\"in\"}"),
        relay("pinhole_relay_packets_total{direction=\"out\"}"),
        relay("pinhole_relay_drops_total{reason=\"source\"}"),
    ));
    ctx.note(format!(
        "MPR H.248: received {}, forwarded {}, SDP rewritten {}, calls {}, teardowns {}, malformed {}",
        get("received"),
        get("forwarded"),
        get("sdp_rewritten"),
        get("calls"),
        get("teardowns"),
        get("malformed"),
    ));
    for e in [
        "malformed",
        "sdp_errors",
        "plan_errors",
        "no_route",
        "unknown_mg",
        "mid_conflicts",
    ] {
        anyhow::ensure!(get(e) == 0.0, "MPR H.248 {e} = {}", get(e));
    }
    anyhow::ensure!(
        get("sdp_rewritten") >= 2.0,
        "SDP rewritten {}",
        get("sdp_rewritten")
    );
    anyhow::ensure!(get("teardowns") >= 1.0, "teardowns {}", get("teardowns"));
    anyhow::ensure!(
        relay("pinhole_relay_packets_total{direction=\"out\"}") > 0.0,
        "the relay forwarded no media"
    );
    Ok(())
}
