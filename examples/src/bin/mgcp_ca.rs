//! A minimal MGCP call agent on real sockets: connects endpoint A and
//! endpoint B (CRCX A, CRCX B with A's description, MDCX A with B's; each
//! endpoint's commands go to its `--*-via` address: the MPR, or the gateway
//! itself), holds the call for `--hold-secs`, then deletes both
//! connections. Gateways' NTFY and RSIP are answered 200. Exits non-zero
//! unless the call came up and was torn down cleanly.
//!
//! ```text
//! mgcp_ca --local 203.0.113.5:2727 \
//!     --a aaln/1@gw1.corp1.example --a-via 203.0.113.10:2727 \
//!     --b aaln/1@gw2.corp2.example --b-via 203.0.113.10:2727 --hold-secs 5
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use pinhole_examples::mgcp::ca::{CaEvent, CallAgent, Leg};
use tokio::net::UdpSocket;

/// A minimal MGCP call agent.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Our MGCP socket.
    #[arg(long)]
    local: SocketAddr,
    /// Endpoint A (`aaln/1@gw1.corp1.example`).
    #[arg(long)]
    a: String,
    /// Where A's commands go.
    #[arg(long)]
    a_via: SocketAddr,
    /// Endpoint B.
    #[arg(long)]
    b: String,
    /// Where B's commands go.
    #[arg(long)]
    b_via: SocketAddr,
    /// The call id (`C:`).
    #[arg(long, default_value = "A3C47F21456789F0")]
    call: String,
    /// How long to hold the call, in seconds.
    #[arg(long, default_value_t = 5)]
    hold_secs: u64,
    /// Seconds to wait before connecting (for gateways to register).
    #[arg(long, default_value_t = 0)]
    delay_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mgcp_ca: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let sock = UdpSocket::bind(args.local).await?;
    let mut ca = CallAgent::new(args.local, std::process::id());
    let wait = |d| tokio::time::Instant::now() + d;
    pump(
        &sock,
        &mut ca,
        wait(Duration::from_secs(args.delay_secs)),
        |_| false,
    )
    .await?;
    ca.connect(
        Instant::now(),
        &args.call,
        Leg::new(&args.a, args.a_via),
        Leg::new(&args.b, args.b_via),
    )?;
    let up = pump(&sock, &mut ca, wait(Duration::from_secs(30)), |e| {
        matches!(e, CaEvent::Connected { .. } | CaEvent::Failed { .. })
    })
    .await?;
    match up {
        Some(CaEvent::Connected { a, b }) => println!("call up: A receives at {a}, B at {b}"),
        other => bail!("call did not come up: {other:?}"),
    }
    pump(
        &sock,
        &mut ca,
        wait(Duration::from_secs(args.hold_secs)),
        |_| false,
    )
    .await?;
    ca.hangup(Instant::now());
    let end = pump(&sock, &mut ca, wait(Duration::from_secs(30)), |e| {
        matches!(e, CaEvent::Ended | CaEvent::Failed { .. })
    })
    .await?;
    match end {
        Some(CaEvent::Ended) => println!("call ended"),
        other => bail!("hangup failed: {other:?}"),
    }
    Ok(())
}

/// Runs the call agent until `until`, or until an event `stop` accepts
/// (returned). Other events are printed.
async fn pump(
    sock: &UdpSocket,
    ca: &mut CallAgent,
    until: tokio::time::Instant,
    stop: impl Fn(&CaEvent) -> bool,
) -> Result<Option<CaEvent>> {
    let mut buf = vec![0u8; 65_536];
    loop {
        while let Some((to, bytes)) = ca.poll_transmit() {
            sock.send_to(&bytes, to).await?;
        }
        while let Some(e) = ca.poll_event() {
            if stop(&e) {
                return Ok(Some(e));
            }
            println!("event: {e:?}");
        }
        let timer = ca.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = tokio::time::sleep_until(until) => return Ok(None),
            r = sock.recv_from(&mut buf) => {
                let (n, from) = r?;
                ca.handle_datagram(Instant::now(), from, &buf[..n]);
            }
            () = async { match timer { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                ca.handle_timeout(Instant::now());
            }
        }
    }
}
