//! MGCP through the real firewalls. The example call agent `mgcp_ca` runs
//! on the internet (the soft-switch's address) and connects `aaln/1` of a
//! gateway in corp1 with `aaln/1` of a gateway in corp2, both legs through
//! the MPR's MGCP port: Fig. 9 with an MGCP APS in each network in front of
//! the example gateway `mgcp_gw`, Fig. 10 with smart gateways
//! (`mgcp_smart_gw`, their own client engine) and no APS. The gateways send
//! test RTP while connected and count what arrives intact.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};

use super::Scenario;
use crate::bed::{APS_IP, MPR_IP, Ns, PHONE_IP, SSW_IP};
use crate::ctx::{
    APS_MEDIA_PORTS, ApsOptions, ApsProtocol, CORP, Ctx, MGCP_CA_PORT, MGCP_GW_PORT, MprOptions,
    PHONE_MEDIA_PORT, RELAY_PORTS, aps_mgcp, example_bin, metric, mpr_mgcp, rtp_line,
};

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "mgcp::fig9_aps_in_each_network",
        negative_control: false,
        known_bug: None,
        run: fig9,
    },
    Scenario {
        name: "mgcp::fig10_smart_gateways",
        negative_control: false,
        known_bug: None,
        run: fig10,
    },
];

/// How long the call agent waits before connecting (the gateways' RSIP
/// or registration first).
const CA_DELAY_SECS: u64 = 1;
/// How long it holds the call (test RTP both ways meanwhile).
const HOLD_SECS: u64 = 4;
/// How long the gateways run: the delay, the hold and slack for setup and
/// teardown (the call agent's retransmissions start at 500 ms).
const GW_SECS: u64 = CA_DELAY_SECS + HOLD_SECS + 5;
/// The smart gateways' media ports.
const SMART_MEDIA_PORTS: (u16, u16) = (PHONE_MEDIA_PORT, PHONE_MEDIA_PORT + 99);

/// The call agent, on the soft-switch's address in the internet namespace.
fn call_agent() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(SSW_IP), MGCP_CA_PORT)
}

/// Corp `i`'s gateway's domain (`gw1.corp1.example`): a child of the
/// network's domain, which routes it at the MPR.
fn gw_domain(i: usize) -> String {
    format!("gw{}.{}", i + 1, CORP[i].domain)
}

/// Corp `i`'s gateway's MGCP address (on the phone's address).
fn gw_mgcp(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(PHONE_IP[i]), MGCP_GW_PORT)
}

/// Corp `i`'s example gateway's RTP address.
fn gw_media(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(PHONE_IP[i]), PHONE_MEDIA_PORT)
}

/// Fig. 9: an MGCP APS in each network, the example gateway behind each
/// (its call agent is the APS; it announces itself with RSIP), the call
/// agent on the internet reaching both through the MPR.
fn fig9(ctx: &mut Ctx) -> Result<()> {
    let gw = example_bin("mgcp_gw")?;
    let ca = example_bin("mgcp_ca")?;
    ctx.start_mpr_with(MprOptions {
        mgcp_call_agent: Some(call_agent()),
        ..MprOptions::default()
    })?;
    for i in 0..2 {
        ctx.start_aps(
            i,
            ApsOptions {
                protocol: ApsProtocol::Mgcp {
                    gateways: vec![(gw_domain(i), gw_mgcp(i))],
                },
                ..ApsOptions::default()
            },
        )?;
    }
    let drops = ctx.drops()?;
    spawn_ca(ctx, &ca)?;
    for i in 0..2 {
        let args: Vec<String> = [
            "--domain",
            &gw_domain(i),
            "--mgcp",
            &gw_mgcp(i).to_string(),
            "--media",
            &gw_media(i).to_string(),
            "--call-agent",
            &aps_mgcp(i).to_string(),
            "--restart",
            "--secs",
            &GW_SECS.to_string(),
            "--expect-media",
        ]
        .map(String::from)
        .into();
        ctx.bed.spawn(&gw_name(i), Ns::Corp(i), &gw, &args)?;
    }
    let media_from = [0, 1].map(|i| (APS_IP[i], APS_MEDIA_PORTS));
    let signaling = [aps_mgcp(0), aps_mgcp(1)];
    call(ctx, media_from, signaling)?;
    // The gateways announced themselves to their APS; the RSIP reached the
    // call agent through the MPR (the gateways' own commands go to its
    // `call_agent`).
    let log = ctx.bed.log("ca");
    for i in 0..2 {
        let seen = log
            .lines()
            .any(|l| l.contains("verb: \"RSIP\"") && l.contains(&gw_domain(i)));
        ctx.note(format!(
            "corp{}'s gateway's RSIP (via APS{} and the MPR) {} the call agent",
            i + 1,
            i + 1,
            if seen { "reached" } else { "did NOT reach" }
        ));
        ensure!(
            seen,
            "the call agent saw no RSIP from {}:\n{log}",
            gw_domain(i)
        );
        let gw = ctx.bed.log(&gw_name(i));
        ensure!(
            ["\"CRCX\"", "\"DLCX\""].iter().all(|v| gw.contains(v))
                && (i == 1 || gw.contains("\"MDCX\"")),
            "corp{}'s gateway did not handle the call's commands:\n{gw}",
            i + 1
        );
        let m = ctx.metrics(Ns::Corp(i), crate::ctx::aps_metrics(i))?;
        let get = |e: &str| mgcp_counter(&m, e);
        ctx.note(format!(
            "APS{}: MGCP received {}, forwarded {}, SDP rewritten {}, pinholes {}, malformed {}",
            i + 1,
            get("received"),
            get("forwarded"),
            get("sdp_rewritten"),
            get("pinholes"),
            get("malformed"),
        ));
        ensure!(get("malformed") == 0.0, "APS{}: malformed MGCP", i + 1);
    }
    check_mpr(ctx)?;
    ctx.check_drops(drops)
}

/// Fig. 10: no APS; each smart gateway registers its MGCP socket and opens
/// its media pinholes itself before it answers.
fn fig10(ctx: &mut Ctx) -> Result<()> {
    let gw = example_bin("mgcp_smart_gw")?;
    let ca = example_bin("mgcp_ca")?;
    ctx.start_mpr_with(MprOptions {
        mgcp_call_agent: Some(call_agent()),
        ..MprOptions::default()
    })?;
    let drops = ctx.drops()?;
    for i in 0..2 {
        let args: Vec<String> = [
            "--mgcp",
            &gw_mgcp(i).to_string(),
            "--mpr",
            &mpr_mgcp().to_string(),
            "--network",
            CORP[i].id,
            "--credential",
            CORP[i].credential,
            "--domain",
            &gw_domain(i),
            "--media-ip",
            &PHONE_IP[i].to_string(),
            "--media-ports",
            &format!("{}-{}", SMART_MEDIA_PORTS.0, SMART_MEDIA_PORTS.1),
            "--secs",
            &(GW_SECS + 2).to_string(),
            "--firewall-idle-secs",
            &ctx.udp_timeout().as_secs().to_string(),
            "--expect-media",
        ]
        .map(String::from)
        .into();
        ctx.bed.spawn(&gw_name(i), Ns::Corp(i), &gw, &args)?;
    }
    for i in 0..2 {
        ctx.bed
            .wait_log(&gw_name(i), "registered", Duration::from_secs(15))?;
        let log = ctx.bed.log(&gw_name(i));
        let line = log
            .lines()
            .find(|l| l.starts_with("registered"))
            .unwrap_or_default();
        ctx.note(format!("corp{} smart gateway: {line}", i + 1));
    }
    spawn_ca(ctx, &ca)?;
    let media_from = [0, 1].map(|i| (PHONE_IP[i], SMART_MEDIA_PORTS));
    call(ctx, media_from, [gw_mgcp(0), gw_mgcp(1)])?;
    check_mpr(ctx)?;
    ctx.check_drops(drops)
}

fn gw_name(i: usize) -> String {
    format!("gw{}", i + 1)
}

/// Starts `mgcp_ca` connecting corp1's `aaln/1` (A) with corp2's (B), both
/// through the MPR's MGCP port.
fn spawn_ca(ctx: &mut Ctx, bin: &std::path::Path) -> Result<()> {
    let args: Vec<String> = [
        "--local",
        &call_agent().to_string(),
        "--a",
        &format!("aaln/1@{}", gw_domain(0)),
        "--a-via",
        &mpr_mgcp().to_string(),
        "--b",
        &format!("aaln/1@{}", gw_domain(1)),
        "--b-via",
        &mpr_mgcp().to_string(),
        "--delay-secs",
        &CA_DELAY_SECS.to_string(),
        "--hold-secs",
        &HOLD_SECS.to_string(),
    ]
    .map(String::from)
    .into();
    ctx.bed.spawn("ca", Ns::Inet, bin, &args)
}

/// The call, from the call agent's "call up" to both gateways' summaries:
/// the descriptions the call agent saw name relay legs, the firewalls show
/// the signaling pinholes (`signaling[i]` → the MPR's MGCP port) and the
/// media pinholes (from `media_from[i]`'s address and port range to relay
/// ports) opened from inside, the call ends cleanly, and each gateway got
/// at least 95 % of the other's test RTP intact.
fn call(
    ctx: &mut Ctx,
    media_from: [(std::net::Ipv4Addr, (u16, u16)); 2],
    signaling: [SocketAddr; 2],
) -> Result<()> {
    ctx.bed
        .wait_log("ca", "call up", Duration::from_secs(20))
        .with_context(|| format!("call agent:\n{}", ctx.bed.log("ca")))?;
    let up = ctx
        .bed
        .log("ca")
        .lines()
        .find(|l| l.starts_with("call up"))
        .unwrap_or_default()
        .to_owned();
    ctx.note(format!("call agent {}: {up}", call_agent()));
    // "call up: A receives at X, B at Y"
    let addrs: Vec<SocketAddr> = up
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    ensure!(addrs.len() == 2, "no two addresses in {up:?}");
    for a in &addrs {
        ensure!(
            a.ip() == IpAddr::V4(MPR_IP) && (RELAY_PORTS.0..=RELAY_PORTS.1).contains(&a.port()),
            "the call agent's description names {a}, not an MPR relay leg"
        );
    }
    // Media is flowing now; the pinholes are in the firewalls.
    std::thread::sleep(Duration::from_secs(1));
    ctx.check_pinholes("MGCP", signaling, mpr_mgcp(), media_from)?;
    let ok = ctx.bed.wait_exit("ca", Duration::from_secs(40))?;
    let log = ctx.bed.log("ca");
    ensure!(ok, "the call agent failed:\n{log}");
    ensure!(
        log.lines().any(|l| l == "call ended"),
        "the call agent did not end the call:\n{log}"
    );
    ctx.note("call agent: call ended (every connection deleted), exit 0");
    let mut rtp = Vec::new();
    for i in 0..2 {
        let name = gw_name(i);
        let ok = ctx
            .bed
            .wait_exit(&name, Duration::from_secs(GW_SECS + 10))?;
        let log = ctx.bed.log(&name);
        let line = rtp_line(&log);
        ctx.note(format!("corp{} gateway: {line}", i + 1));
        ensure!(ok, "corp{}'s gateway failed:\n{log}", i + 1);
        let r = rtp_summary(&line).ok_or_else(|| anyhow!("cannot read {line:?}"))?;
        ensure!(
            r.intact <= r.received,
            "{line:?}: more intact than received"
        );
        rtp.push(r);
    }
    for (to, from) in [(0, 1), (1, 0)] {
        let sent = rtp[from].sent;
        let got = rtp[to].intact;
        ensure!(
            sent > 0 && got * 100 >= sent * 95 && got <= sent,
            "corp{}'s gateway received {got} intact of the {sent} corp{}'s sent",
            to + 1,
            from + 1
        );
    }
    Ok(())
}

/// What a gateway's summary line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RtpSummary {
    sent: u64,
    received: u64,
    intact: u64,
}

/// Reads `RTP sent N (...), received M (... K intact)...`.
fn rtp_summary(line: &str) -> Option<RtpSummary> {
    let num_after = |key: &str| -> Option<u64> {
        let rest = line.split_once(key)?.1;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let before = line.split_once(" intact")?.0;
    Some(RtpSummary {
        sent: num_after("RTP sent ")?,
        received: num_after("received ")?,
        intact: before.rsplit([' ', '(']).next()?.parse().ok()?,
    })
}

/// The MGCP ALG's counter `event` in a metrics text (-1 when absent).
fn mgcp_counter(m: &str, event: &str) -> f64 {
    metric(
        m,
        &format!("pinhole_signaling_total{{protocol=\"mgcp\",event=\"{event}\"}}"),
    )
    .unwrap_or(-1.0)
}

/// The MPR's MGCP counters and relay, noted and checked: messages went
/// through, both gateways' descriptions were rewritten, nothing malformed.
fn check_mpr(ctx: &mut Ctx) -> Result<()> {
    let m = ctx.mpr()?;
    let relay = |k: &str| metric(&m, k).unwrap_or(-1.0);
    ctx.note(format!(
        "MPR relay: {} packets in, {} out, {} dropped (wrong source), {} (no peer)",
        relay("pinhole_relay_packets_total{direction=\"in\"}"),
        relay("pinhole_relay_packets_total{direction=\"out\"}"),
        relay("pinhole_relay_drops_total{reason=\"source\"}"),
        relay("pinhole_relay_drops_total{reason=\"no_peer\"}"),
    ));
    let get = |e: &str| mgcp_counter(&m, e);
    ctx.note(format!(
        "MPR MGCP: received {}, forwarded {}, SDP rewritten {}, calls {}, teardowns {}, malformed {}, no route {}",
        get("received"),
        get("forwarded"),
        get("sdp_rewritten"),
        get("calls"),
        get("teardowns"),
        get("malformed"),
        get("no_route"),
    ));
    ensure!(get("malformed") == 0.0, "the MPR saw malformed MGCP");
    ensure!(
        get("received") > 0.0 && get("forwarded") > 0.0,
        "the MPR's MGCP ALG forwarded nothing"
    );
    ensure!(
        get("sdp_rewritten") >= 2.0,
        "the MPR rewrote {} descriptions, want both gateways' answers",
        get("sdp_rewritten")
    );
    let relayed = metric(&m, "pinhole_relay_packets_total{direction=\"out\"}").unwrap_or(0.0);
    ensure!(relayed > 0.0, "the relay forwarded no media");
    Ok(())
}

/// Checks [`rtp_summary`] on both gateways' lines (the harness runs it
/// before any scenario).
pub(crate) fn self_test() -> Result<()> {
    let gw = rtp_summary(
        "RTP sent 201 (34572 bytes), received 199 (197 intact); commands [(\"CRCX\", 1)]",
    );
    ensure!(
        gw == Some(RtpSummary {
            sent: 201,
            received: 199,
            intact: 197
        }),
        "{gw:?}"
    );
    let smart = rtp_summary("RTP sent 5 (860 bytes), received 4 (688 bytes, 3 intact)");
    ensure!(
        smart
            == Some(RtpSummary {
                sent: 5,
                received: 4,
                intact: 3
            }),
        "{smart:?}"
    );
    ensure!(rtp_summary("RTP sent 5").is_none());
    Ok(())
}
