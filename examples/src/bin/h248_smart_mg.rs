//! A smart H.248 media gateway (Fig. 14, no APS): registers its H.248
//! socket with the MPR's H.248 control address, announces itself to the
//! MGC through the MPR (ServiceChange Restart, sent again until answered),
//! answers the MGC's Add, Modify, Subtract and AuditValue in the text
//! encoding of each request, opens a media pinhole with CMPH from its RTP
//! port before its Add reply leaves (`pinhole_h248`'s ALG in its smart
//! gateway mode does that), and while a termination has a `Remote` sends
//! test RTP to it, counting what arrives. It prints `registered ...`,
//! then `EVENT` and `RESULT` lines in the format of
//! `tests/megaco/mg.escript` (docs/megaco.md), and the summary line
//! `RTP sent N (B bytes), received M (B bytes, K intact); ...`. It runs
//! for `--secs` (or until `--calls` terminations were subtracted); with
//! `--expect-media` it exits non-zero if no intact test RTP arrived.
//!
//! ```text
//! h248_smart_mg --h248 10.1.0.10:2944 --mpr 203.0.113.10:2944 --network corp1 \
//!     --credential corp1-secret --mid '<mg1.corp1.example>' \
//!     --media-ip 10.1.0.10 --media-ports 4000-4099 --secs 20 --expect-media
//! ```

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use pinhole_core::ports::PortRange;
use pinhole_examples::h248::mg::MgEvent;
use pinhole_examples::h248::smart::{SmartMg, SmartMgConfig};
use pinhole_net::driver::Direct;

/// A smart H.248 media gateway for Pinhole (Fig. 14).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Our H.248 socket (registered with the MPR).
    #[arg(long)]
    h248: SocketAddr,
    /// The MPR's H.248 control address (its `[h248] local`).
    #[arg(long)]
    mpr: SocketAddr,
    /// Our network's id at the MPR.
    #[arg(long)]
    network: String,
    /// The network's shared secret.
    #[arg(long, env = "PINHOLE_CREDENTIAL", hide_env_values = true)]
    credential: String,
    /// Our mId: `[IP]:PORT`, `<domain.name>[:PORT]` or a device name.
    #[arg(long)]
    mid: String,
    /// The address our RTP ports are on.
    #[arg(long)]
    media_ip: IpAddr,
    /// Our RTP ports, `FIRST-LAST` (one pair per termination).
    #[arg(long, value_parser = parse_range)]
    media_ports: PortRange,
    /// How long to run at most, in seconds.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Stop once this many terminations were subtracted (and their late
    /// RTP counted); failing if fewer were by `--secs`.
    #[arg(long)]
    calls: Option<u32>,
    /// RTP packets per termination at most (default: while it lives).
    #[arg(long)]
    packets: Option<u32>,
    /// Fail unless intact test RTP arrived.
    #[arg(long)]
    expect_media: bool,
    /// The firewall's UDP idle timeout, in seconds (the registration and
    /// pinholes are refreshed within it).
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

/// RTP still counted after the last Subtract.
const DRAIN: Duration = Duration::from_millis(200);

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("h248_smart_mg: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let wait = Duration::from_secs(args.secs.max(1));
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut mg = SmartMg::start(
        SmartMgConfig {
            h248: args.h248,
            mpr: args.mpr,
            network: args.network.clone(),
            credential: args.credential.into_bytes(),
            mid: args.mid.clone(),
            media_ip: args.media_ip,
            media_ports: args.media_ports,
            firewall_idle: args.firewall_idle_secs.map(Duration::from_secs),
            packets: args.packets,
            seed: pinhole_examples::process_seed(args.h248.port()),
        },
        Arc::new(Direct),
    )
    .await?;
    let start = tokio::time::Instant::now();
    let pinhole = mg
        .wait_registered(wait)
        .await
        .context("registering with the MPR")?;
    println!(
        "registered {} as {}: signaling pinhole {pinhole}",
        args.mid, args.network
    );
    let subtracted = |mg: &SmartMg| mg.terminations().iter().filter(|t| t.subtracted).count();
    let enough = |mg: &SmartMg| args.calls.is_some_and(|n| subtracted(mg) >= n as usize);
    // Short slices, so that events are printed as they happen.
    let slice = Duration::from_millis(50);
    while !enough(&mg) {
        let left = wait.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        mg.run_for(left.min(slice), interval, enough).await?;
        print_events(&mut mg);
    }
    if enough(&mg) {
        let left = wait.saturating_sub(start.elapsed());
        mg.run_for(left.min(DRAIN), interval, |_| false).await?;
        print_events(&mut mg);
    }
    for t in mg.terminations() {
        println!("{}", t.result_line());
    }
    let (sent, got) = (mg.sent(), mg.received());
    let (pinholes, failures) = mg.pinholes().await?;
    println!(
        "RTP sent {} ({} bytes), received {} ({} bytes, {} intact); pinholes {pinholes}, failures {failures}",
        sent.packets, sent.bytes, got.packets, got.bytes, got.intact
    );
    let announced = mg.announced();
    let done = subtracted(&mg);
    mg.shutdown().await?;
    if !announced {
        bail!("the MGC never answered the ServiceChange");
    }
    if let Some(n) = args.calls
        && done < n as usize
    {
        bail!("timeout: {done} of {n} terminations subtracted within {wait:?}");
    }
    if args.expect_media && got.intact == 0 {
        bail!("no media arrived");
    }
    Ok(())
}

/// The gateway's events as `tests/megaco/mg.escript` prints them.
fn print_events(mg: &mut SmartMg) {
    let text = |a: Option<SocketAddr>| a.map_or("none".to_owned(), |r| r.to_string());
    while let Some(e) = mg.poll_event() {
        match e {
            MgEvent::Registered { version } => println!("EVENT registered version={version}"),
            MgEvent::Refused { code } => println!("EVENT refused code={code}"),
            MgEvent::Added {
                call,
                context,
                termination,
                media,
                remote,
            } => println!(
                "EVENT add call={call} context={context} termination={termination} local={media} remote={}",
                text(remote)
            ),
            MgEvent::Modified {
                call,
                context,
                termination,
                remote,
            } => println!(
                "EVENT modify call={call} context={context} termination={termination} remote={}",
                text(remote)
            ),
            MgEvent::Subtracted {
                call,
                context,
                termination,
                request,
            } => println!(
                "EVENT subtract call={call} context={context} termination={termination} request={request}"
            ),
        }
    }
}
