//! A smart MGCP gateway (Fig. 10, no APS): registers its MGCP socket with
//! the MPR's MGCP control port, answers the call agent's commands for
//! `aaln/1@DOMAIN` itself, opens a media pinhole with CMPH before it
//! answers a CRCX, and while a connection has a remote address sends test
//! RTP from its port through the pinhole to the relay, counting what
//! arrives. It runs for `--secs`, then prints what it sent and received;
//! with `--expect-media` it exits non-zero if no intact test RTP arrived.
//!
//! ```text
//! mgcp_smart_gw --mgcp 10.1.0.10:2427 --mpr 203.0.113.10:2727 --network corp1 \
//!     --credential corp1-secret --domain gw1.corp1.example \
//!     --media-ip 10.1.0.10 --media-ports 4000-4099 --secs 20 --expect-media
//! ```

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use pinhole_core::ports::PortRange;
use pinhole_examples::mgcp::smart::{SmartGw, SmartGwConfig};
use pinhole_net::driver::Direct;

/// A smart MGCP gateway for Pinhole (Fig. 10).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Our MGCP socket (registered with the MPR).
    #[arg(long)]
    mgcp: SocketAddr,
    /// The MPR's MGCP control address.
    #[arg(long)]
    mpr: SocketAddr,
    /// Our network's id at the MPR.
    #[arg(long)]
    network: String,
    /// The network's shared secret.
    #[arg(long, env = "PINHOLE_CREDENTIAL", hide_env_values = true)]
    credential: String,
    /// Our domain: the endpoint is `aaln/1@DOMAIN`.
    #[arg(long)]
    domain: String,
    /// The address our RTP ports are on.
    #[arg(long)]
    media_ip: IpAddr,
    /// Our RTP ports, `FIRST-LAST` (one pair per connection).
    #[arg(long, value_parser = parse_range)]
    media_ports: PortRange,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Fail unless intact test RTP arrived.
    #[arg(long)]
    expect_media: bool,
    /// The firewall's UDP idle timeout, in seconds (pinholes are refreshed
    /// within it).
    #[arg(long)]
    firewall_idle_secs: Option<u64>,
    /// RTP interval, in milliseconds.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
}

fn parse_range(s: &str) -> Result<PortRange, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}`: expected FIRST-LAST"))?;
    let port = |p: &str| p.trim().parse::<u16>().map_err(|e| format!("`{p}`: {e}"));
    PortRange::new(port(a)?, port(b)?).map_err(|e| format!("`{s}`: {e}"))
}

/// Seeds the engine's transaction ids: two gateways started together must
/// differ (the MPR takes a transaction id seen from another source as a
/// replay), so the pid and port take bits of their own, not XORed
/// (`pid ^ port` collides for consecutive pids and ports); the clock fills
/// the low bits.
fn seed(port: u16) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(std::process::id()) << 32 | u64::from(port) << 16 | u64::from(nanos & 0xffff)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mgcp_smart_gw: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let wait = Duration::from_secs(args.secs.max(1));
    let mut gw = SmartGw::start(
        SmartGwConfig {
            mgcp: args.mgcp,
            mpr: args.mpr,
            network: args.network.clone(),
            credential: args.credential.into_bytes(),
            domain: args.domain.clone(),
            media_ip: args.media_ip,
            media_ports: args.media_ports,
            firewall_idle: args.firewall_idle_secs.map(Duration::from_secs),
            seed: seed(args.mgcp.port()),
        },
        Arc::new(Direct),
    )
    .await?;
    let start = tokio::time::Instant::now();
    let pinhole = gw
        .wait_registered(wait)
        .await
        .context("registering with the MPR")?;
    println!(
        "registered {} as {}: signaling pinhole {pinhole}",
        gw.endpoint(),
        args.network
    );
    let left = wait.saturating_sub(start.elapsed());
    gw.run_for(left, Duration::from_millis(args.interval_ms.max(1)))
        .await?;
    let (sent, got, stats) = (gw.sent().clone(), gw.received().clone(), gw.stats());
    println!(
        "RTP sent {} ({} bytes), received {} ({} intact); pinholes {}, failures {}",
        sent.packets, sent.bytes, got.packets, got.intact, stats.pinholes, stats.pinhole_failures
    );
    gw.shutdown().await?;
    if args.expect_media && got.intact == 0 {
        bail!("no media arrived");
    }
    Ok(())
}
