//! H.248 through the real firewalls, with real peers nobody here wrote:
//! Erlang/OTP's megaco MGC on the internet (the soft-switch's address) and
//! an OTP megaco MG inside each corporate network (tests/megaco/*.escript,
//! docs/megaco.md). Fig. 13: an H.248 APS in each network is the MGs' MGC;
//! each MG registers (ServiceChange) through its APS and the MPR, which
//! gives it a gateway port of its own toward the MGC; the MGC's Add, Add,
//! Modify and Subtracts go through, and the MGs' RTP crosses both
//! firewalls through pinholes opened from inside only. Fig. 14: no APS;
//! each network's gateway is the smart MG `h248_smart_mg` (the example
//! binary: the H.248 ALG in smart gateway mode beside a gateway in one
//! process), which registers its H.248 socket with the MPR and opens its
//! media pinholes with CMPH from its own RTP port; the MGC is OTP's.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use pinhole_tests::megaco::through::{Expect, Span};
use pinhole_tests::megaco::{MgConfig, MgReport, Mgc, MgcConfig};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use super::Scenario;
use crate::bed::{APS_IP, MPR_IP, Ns, PHONE_IP, SSW_IP};
use crate::ctx::{
    APS_MEDIA_PORTS, ApsOptions, ApsProtocol, CORP, Ctx, H248_GATEWAY_PORTS, H248_PORT, MprOptions,
    PHONE_MEDIA_PORT, RELAY_PORTS, aps_h248, example_bin, metric, mpr_h248,
};

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "h248::fig13_aps_in_each_network",
        negative_control: false,
        known_bug: None,
        run: fig13,
    },
    Scenario {
        name: "h248::fig14_smart_gateways",
        negative_control: false,
        known_bug: None,
        run: fig14,
    },
];

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
    wait_call_up(&mgc)?;
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

/// Waits until the MGC has modified MG1 (both Adds answered: the call is
/// up), and a little longer so media flows.
fn wait_call_up(mgc: &Mgc) -> Result<()> {
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while !mgc.events().iter().any(|e| e.name == "modify_reply") {
        if std::time::Instant::now() > until {
            return Err(anyhow!(
                "no Modify reply at the MGC within 20 s: {:?}",
                mgc.events()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    Ok(())
}

/// The smart gateways' RTP ports.
const SMART_MEDIA_PORTS: (u16, u16) = (PHONE_MEDIA_PORT, PHONE_MEDIA_PORT + 99);

/// Fig. 14: the MPR with its H.248 ALG, no APS, a smart MG in each
/// network registering itself, OTP's MGC on the internet.
fn fig14(ctx: &mut Ctx) -> Result<()> {
    if !pinhole_tests::megaco::megaco_available() {
        MgcConfig::new(mgc()).start()?;
        ctx.note("SKIPPED: Erlang/OTP megaco is not installed");
        return Ok(());
    }
    let bin = example_bin("h248_smart_mg")?;
    ctx.start_mpr_with(MprOptions {
        h248_mgc: Some(mgc()),
        ..MprOptions::default()
    })?;
    let drops = ctx.drops()?;
    let mids = mids();
    let dir = ctx.bed.dir.join("megaco");
    let mut mgc = MgcConfig::new(mgc())
        .mg_mids(&mids[0], &mids[1])
        .hold(HOLD)
        .max_run(RUN)
        .netns(ctx.bed.ns(Ns::Inet))
        .dir(&dir)
        .start()?
        .ok_or_else(|| anyhow!("megaco vanished"))?;
    for (i, mid) in mids.iter().enumerate() {
        let args: Vec<String> = [
            "--h248",
            &mg_h248(i).to_string(),
            "--mpr",
            &mpr_h248().to_string(),
            "--network",
            CORP[i].id,
            "--credential",
            CORP[i].credential,
            "--mid",
            mid,
            "--media-ip",
            &PHONE_IP[i].to_string(),
            "--media-ports",
            &format!("{}-{}", SMART_MEDIA_PORTS.0, SMART_MEDIA_PORTS.1),
            "--secs",
            &RUN.as_secs().to_string(),
            "--calls",
            "1",
            "--packets",
            &PACKETS.to_string(),
            "--interval-ms",
            &INTERVAL.as_millis().to_string(),
            "--firewall-idle-secs",
            &ctx.udp_timeout().as_secs().to_string(),
            "--expect-media",
        ]
        .map(String::from)
        .into();
        ctx.bed.spawn(&smart_name(i), Ns::Corp(i), &bin, &args)?;
    }
    wait_call_up(&mgc)?;
    let media_from = [0, 1].map(|i| (PHONE_IP[i], SMART_MEDIA_PORTS));
    ctx.check_pinholes("H.248", [mg_h248(0), mg_h248(1)], mpr_h248(), media_from)?;

    let report = mgc.wait(RUN)?.ensure_success().context("the MGC")?;
    let mut reports = Vec::new();
    for i in 0..2 {
        let name = smart_name(i);
        let ok = ctx.bed.wait_exit(&name, Duration::from_secs(15))?;
        let log = ctx.bed.log(&name);
        anyhow::ensure!(ok, "corp{}'s smart MG failed:\n{log}", i + 1);
        let summary = log
            .lines()
            .find(|l| l.starts_with("RTP sent "))
            .unwrap_or("(no summary)")
            .to_owned();
        ctx.note(format!("corp{} smart MG: {summary}", i + 1));
        anyhow::ensure!(
            summary.ends_with("pinholes 1, failures 0"),
            "corp{}'s smart MG: {summary}",
            i + 1
        );
        let r = MgReport::parse(&name, &log, "", ExitStatus::from_raw(0))?
            .ensure_success()
            .with_context(|| format!("corp{}'s smart MG", i + 1))?;
        reports.push(r);
    }
    let reports: [_; 2] = reports.try_into().map_err(|_| anyhow!("two MG reports"))?;
    // The smart MGs send to the relay and hear from it.
    let relay = Span::new(IpAddr::V4(MPR_IP), RELAY_PORTS.0..=RELAY_PORTS.1);
    let expect = Expect {
        mids,
        gateway_ports: Span::new(
            IpAddr::V4(MPR_IP),
            H248_GATEWAY_PORTS.0..=H248_GATEWAY_PORTS.1,
        ),
        relay: relay.clone(),
        media_from: [relay.clone(), relay],
        packets: PACKETS,
        min_percent: 95,
    };
    for line in expect.check(&report, &reports).map_err(|e| anyhow!(e))? {
        ctx.note(line);
    }
    check_mpr(ctx)?;
    ctx.check_drops(drops)
}

fn smart_name(i: usize) -> String {
    format!("smart-mg{}", i + 1)
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
