//! H.323 through the real firewalls (Fig. 15): the MPR with its H.323 ALG
//! on the internet, an H.323 APS in each network on its TCP connection to
//! the MPR opened from inside (kept alive well within the firewall's TCP
//! timeout), and two terminals nobody here wrote the codec of
//! (`h323_terminal`: every PDU encoded and decoded by rasn from the ITU
//! modules). Alice in corp1 calls bob in corp2 through APS1, the MPR and
//! APS2; every H.245 connection is opened toward the MPR, every media
//! pinhole from inside with CMPH before its OLC or OLC Ack leaves; RTP
//! crosses both firewalls both ways. Once with H.245 on its own
//! connections, once tunneled, once with fastStart.
//!
//! Fig. 16: no APS; each phone is a smart terminal (`h323_smart_terminal`:
//! the same terminal with its own H.323 ALG beside it in one process, on
//! the client driver), which registers its network with the MPR over a TCP
//! connection opened from the phone, opens its media pinholes with CMPH
//! from its own media port, and sends its RTP to the MPR's relay itself.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};

use super::Scenario;
use crate::bed::MPR_IP;
use crate::bed::{APS_IP, Ns, PHONE_IP};
use crate::ctx::{
    APS_MEDIA_PORTS, ApsOptions, ApsProtocol, CORP, Ctx, H323_PORT, MprOptions, PHONE_MEDIA_PORT,
    RELAY_PORTS, TLS_KEEPALIVE, aps_h323, example_bin, metric, mpr_h323,
};

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "h323::fig15_h245_on_its_own_connections",
        negative_control: false,
        known_bug: None,
        run: separate,
    },
    Scenario {
        name: "h323::fig15_h245_tunneled",
        negative_control: false,
        known_bug: None,
        run: tunneled,
    },
    Scenario {
        name: "h323::fig15_fast_start",
        negative_control: false,
        known_bug: None,
        run: fast_start,
    },
    Scenario {
        name: "h323::fig16_smart_terminals_h245_on_its_own_connections",
        negative_control: false,
        known_bug: None,
        run: smart_separate,
    },
    Scenario {
        name: "h323::fig16_smart_terminals_h245_tunneled",
        negative_control: false,
        known_bug: None,
        run: smart_tunneled,
    },
    Scenario {
        name: "h323::fig16_smart_terminals_fast_start",
        negative_control: false,
        known_bug: None,
        run: smart_fast_start,
    },
];

/// RTP each terminal sends (50 per second).
const PACKETS: u32 = 100;
/// Bound on each terminal's run.
const RUN: Duration = Duration::from_secs(40);

fn separate(ctx: &mut Ctx) -> Result<()> {
    fig15(ctx, "separate")
}

fn tunneled(ctx: &mut Ctx) -> Result<()> {
    fig15(ctx, "tunnel")
}

fn fast_start(ctx: &mut Ctx) -> Result<()> {
    fig15(ctx, "faststart")
}

fn smart_separate(ctx: &mut Ctx) -> Result<()> {
    fig16(ctx, "separate")
}

fn smart_tunneled(ctx: &mut Ctx) -> Result<()> {
    fig16(ctx, "tunnel")
}

fn smart_fast_start(ctx: &mut Ctx) -> Result<()> {
    fig16(ctx, "faststart")
}

/// Terminal `i`'s call-signaling address (on the phone's address).
fn terminal(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(PHONE_IP[i]), H323_PORT)
}

fn fig15(ctx: &mut Ctx, mode: &str) -> Result<()> {
    let bin = example_bin("h323_terminal")?;
    ctx.start_mpr_with(MprOptions {
        h323: true,
        ..MprOptions::default()
    })?;
    for (i, user) in ["alice", "bob"].into_iter().enumerate() {
        ctx.start_aps(
            i,
            ApsOptions {
                protocol: ApsProtocol::H323 {
                    aliases: vec![(user.to_owned(), terminal(i))],
                },
                ..ApsOptions::default()
            },
        )?;
    }
    let drops = ctx.drops()?;
    let media = |i: usize| SocketAddr::new(IpAddr::V4(PHONE_IP[i]), PHONE_MEDIA_PORT).to_string();
    let common = |alias: &str, i: usize| -> Vec<String> {
        [
            "--alias",
            alias,
            "--signal",
            &terminal(i).to_string(),
            "--media",
            &media(i),
            "--mode",
            mode,
            "--packets",
            &PACKETS.to_string(),
            "--expect",
            &(PACKETS * 9 / 10).to_string(),
            "--timeout-secs",
            &RUN.as_secs().to_string(),
        ]
        .map(String::from)
        .into()
    };
    ctx.bed
        .spawn("bob", Ns::Corp(1), &bin, &common("bob@corp2.example", 1))?;
    std::thread::sleep(Duration::from_millis(300));
    let mut caller = common("alice@corp1.example", 0);
    caller.extend(
        [
            "--call",
            "bob@corp2.example",
            "--via",
            &aps_h323(0).to_string(),
            "--hold-secs",
            "3",
        ]
        .map(String::from),
    );
    ctx.bed.spawn("alice", Ns::Corp(0), &bin, &caller)?;
    let mut reports = Vec::new();
    for (i, name) in ["alice", "bob"].into_iter().enumerate() {
        let ok = ctx.bed.wait_exit(name, RUN + Duration::from_secs(10))?;
        let log = ctx.bed.log(name);
        let line = log
            .lines()
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| anyhow!("{name} printed no report:\n{log}"))?
            .to_owned();
        ctx.note(format!("{name}: {line}"));
        ensure!(ok, "{name} failed (too little media?):\n{log}");
        let v = Json::parse(&line);
        let dest = v
            .get("media_dest")
            .ok_or_else(|| anyhow!("{name}: no media destination"))?;
        let dest: SocketAddr = dest.parse().context("media_dest")?;
        // Each terminal sends to its own APS's port B, never across.
        ensure!(
            dest.ip() == IpAddr::V4(APS_IP[i])
                && (APS_MEDIA_PORTS.0..=APS_MEDIA_PORTS.1).contains(&dest.port()),
            "{name} sends to {dest}, not to APS{}'s ports B",
            i + 1
        );
        reports.push(v);
    }
    check_mpr(ctx)?;
    ctx.check_drops(drops)
}

/// Fig. 16: the MPR, no APS; a smart terminal on each phone's address.
fn fig16(ctx: &mut Ctx, mode: &str) -> Result<()> {
    let bin = example_bin("h323_smart_terminal")?;
    ctx.start_mpr_with(MprOptions {
        h323: true,
        ..MprOptions::default()
    })?;
    let drops = ctx.drops()?;
    let udp_idle = ctx.udp_timeout().as_secs().to_string();
    let args = |alias: &str, i: usize| -> Vec<String> {
        let media = SocketAddr::new(IpAddr::V4(PHONE_IP[i]), PHONE_MEDIA_PORT);
        [
            "--alias",
            alias,
            "--signal",
            &terminal(i).to_string(),
            "--media",
            &media.to_string(),
            "--mode",
            mode,
            "--packets",
            &PACKETS.to_string(),
            "--expect",
            &(PACKETS * 9 / 10).to_string(),
            "--timeout-secs",
            &RUN.as_secs().to_string(),
            "--mpr",
            &mpr_h323().to_string(),
            "--network",
            CORP[i].id,
            "--credential",
            CORP[i].credential,
            "--domain",
            CORP[i].domain,
            "--firewall-idle-secs",
            &udp_idle,
            // Within the firewall's TCP timeout.
            "--keepalive-secs",
            &TLS_KEEPALIVE.as_secs().to_string(),
        ]
        .map(String::from)
        .into()
    };
    ctx.bed
        .spawn("bob", Ns::Corp(1), &bin, &args("bob@corp2.example", 1))?;
    // Bob registered (his route at the MPR) before alice calls.
    ctx.wait_metric(
        Ns::Inet,
        crate::ctx::mpr_metrics(),
        "pinhole_routes_live 1\n",
        Duration::from_secs(15),
    )?;
    let mut caller = args("alice@corp1.example", 0);
    caller.extend(["--call", "bob@corp2.example", "--hold-secs", "3"].map(String::from));
    ctx.bed.spawn("alice", Ns::Corp(0), &bin, &caller)?;
    for name in ["alice", "bob"] {
        let ok = ctx.bed.wait_exit(name, RUN + Duration::from_secs(20))?;
        let log = ctx.bed.log(name);
        let line = log
            .lines()
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| anyhow!("{name} printed no report:\n{log}"))?
            .to_owned();
        ctx.note(format!("{name}: {line}"));
        ensure!(ok, "{name} failed (too little media?):\n{log}");
        let v = Json::parse(&line);
        let dest = v
            .get("media_dest")
            .ok_or_else(|| anyhow!("{name}: no media destination"))?;
        let dest: SocketAddr = dest.parse().context("media_dest")?;
        // A smart terminal sends to the MPR's relay itself.
        ensure!(
            dest.ip() == IpAddr::V4(MPR_IP)
                && (RELAY_PORTS.0..=RELAY_PORTS.1).contains(&dest.port()),
            "{name} sends to {dest}, not to the MPR's relay ports"
        );
        ensure!(
            line.contains(&format!("\"rtp_sources\":[\"{dest}\"]")),
            "{name}: its RTP came from elsewhere than the relay port it sends to"
        );
        ensure!(
            v.get("mode") == Some(mode),
            "{name} ran {:?}, not {mode}",
            v.get("mode")
        );
    }
    check_mpr(ctx)?;
    ctx.check_drops(drops)
}

/// The MPR's H.323 counters, and every relay leg closed after the release.
fn check_mpr(ctx: &mut Ctx) -> Result<()> {
    let key = |e: &str| format!("pinhole_signaling_total{{protocol=\"h323\",event=\"{e}\"}}");
    let m = ctx.wait_metric(
        Ns::Inet,
        crate::ctx::mpr_metrics(),
        "pinhole_legs_open 0",
        Duration::from_secs(10),
    )?;
    let get = |e: &str| metric(&m, &key(e)).unwrap_or(-1.0);
    ctx.note(format!(
        "MPR H.323: received {}, forwarded {}, calls {}, media rewritten {}, H.245 connected {}, refused {}, released {}",
        get("received"),
        get("forwarded"),
        get("calls"),
        get("media_rewritten"),
        get("h245_connected"),
        get("h245_refused"),
        get("released"),
    ));
    ensure!(
        get("calls") == 1.0 && get("released") == 1.0,
        "one call, released"
    );
    ensure!(get("h245_refused") == 0.0, "no H.245 connection refused");
    Ok(())
}

/// The flat string fields of the terminal's one-line JSON report.
struct Json(Vec<(String, String)>);

impl Json {
    fn parse(line: &str) -> Self {
        let mut out = Vec::new();
        for part in line.trim_matches(|c| c == '{' || c == '}').split(",\"") {
            if let Some((k, v)) = part.split_once("\":") {
                let k = k.trim_matches('"').to_owned();
                let v = v.trim_matches('"').to_owned();
                out.push((k, v));
            }
        }
        Self(out)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
