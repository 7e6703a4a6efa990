//! A smart-terminal SIP user agent (Fig. 12, no APS): registers its SIP
//! socket with the MPR, then either calls (`--call sip:user@domain`) or
//! waits for a call (`--answer`); opens its media pinhole with CMPH, sends
//! and receives test RTP through the MPR relay, and hangs up (caller) or
//! waits for the BYE (callee). Exits non-zero unless the call came up and
//! media arrived.
//!
//! ```text
//! sip_smart_ua --sip 10.2.0.10:5060 --mpr 203.0.113.10:5060 --network corp2 \
//!     --credential corp2-secret --media 10.2.0.10:6000 --aor bob@corp2.example --answer
//! sip_smart_ua --sip 10.1.0.10:5060 --mpr 203.0.113.10:5060 --network corp1 \
//!     --credential corp1-secret --media 10.1.0.10:4000 --aor alice@corp1.example \
//!     --call sip:bob@corp2.example
//! ```
//!
//! With `--tls-ca ca.pem` (and `--mpr` the MPR's TLS address) the terminal
//! keeps one TLS connection to the MPR, opened from inside, for its
//! Registration, CMPH reserves and SIP (issue 13).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;
use pinhole_examples::smart::{SmartUa, SmartUaConfig};
use pinhole_net::driver::Direct;

/// A smart-terminal SIP user agent for Pinhole (Fig. 12).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Our SIP socket (registered with the MPR).
    #[arg(long)]
    sip: SocketAddr,
    /// The MPR's SIP / control address.
    #[arg(long)]
    mpr: SocketAddr,
    /// Our network's id at the MPR.
    #[arg(long)]
    network: String,
    /// The network's shared secret.
    #[arg(long, env = "PINHOLE_CREDENTIAL", hide_env_values = true)]
    credential: String,
    /// Our media socket (port A; a fixed port).
    #[arg(long)]
    media: SocketAddr,
    /// Our address of record, user@domain.
    #[arg(long)]
    aor: String,
    /// Call this SIP URI.
    #[arg(long, conflicts_with = "answer", required_unless_present = "answer")]
    call: Option<String>,
    /// Wait for a call and answer it.
    #[arg(long)]
    answer: bool,
    /// RTP packets to send once the call is up.
    #[arg(long, default_value_t = 100)]
    packets: u32,
    /// Interval between RTP packets, in milliseconds.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// How long to wait for registration, the call, and its end, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Signal over one TLS connection to the MPR (then --mpr is its TLS
    /// address, port 5061), verifying it against this CA file (PEM).
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sip_smart_ua: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let wait = Duration::from_secs(args.timeout_secs);
    let mut ua = SmartUa::start(
        SmartUaConfig {
            aor: args.aor.clone(),
            sip: args.sip,
            mpr: args.mpr,
            network: args.network.clone(),
            credential: args.credential.into_bytes(),
            media: args.media,
            seed: pinhole_examples::process_seed(args.media.port()),
            tls_ca: args.tls_ca.clone(),
        },
        Arc::new(Direct),
    )
    .await?;
    let pinhole = ua.wait_registered(wait).await?;
    println!(
        "registered {} as {}: signaling pinhole {pinhole}",
        args.aor, args.network
    );
    let interval = Duration::from_millis(args.interval_ms);
    let result = match &args.call {
        Some(target) => {
            let to = ua.call(target, wait).await?;
            println!(
                "call up: our pinhole {:?}, our RTP goes to {to}",
                ua.local_media()
            );
            ua.talk(args.packets, interval).await?;
            ua.listen(Duration::from_millis(300)).await?;
            ua.hangup(wait).await
        }
        None => {
            println!("waiting for a call");
            let to = ua.answer(wait).await?;
            println!(
                "call up: our pinhole {:?}, our RTP goes to {to}",
                ua.local_media()
            );
            ua.talk(args.packets, interval).await?;
            ua.wait_ended(wait).await
        }
    };
    let (sent, got) = (ua.sent().clone(), ua.received().clone());
    println!(
        "RTP sent {} ({} bytes), received {} ({} bytes, {} intact)",
        sent.packets, sent.bytes, got.packets, got.bytes, got.intact
    );
    let why = result?;
    println!("call ended: {why:?}");
    ua.shutdown().await?;
    if got.intact == 0 {
        bail!("no media arrived");
    }
    Ok(())
}
