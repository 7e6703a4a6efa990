//! A minimal MGCP gateway on real sockets: one endpoint line (`aaln/1@DOMAIN`
//! by default), MGCP on `--mgcp`, RTP on `--media`. It answers the call
//! agent's commands ([`pinhole_examples::mgcp::gw`]), and while a connection
//! may send it sends test RTP to the connection's remote address, counting
//! what arrives. It runs for `--secs`, then prints what it sent and
//! received; it exits non-zero with `--expect-media` if no intact test RTP
//! arrived.
//!
//! ```text
//! mgcp_gw --domain gw1.corp1.example --mgcp 10.1.0.20:2427 --media 10.1.0.20:4000 \
//!     --call-agent 10.1.0.2:2727 --restart --secs 20 --expect-media
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use pinhole_examples::mgcp::gw::{Gateway, GwConfig};
use pinhole_examples::rtp::{self, Tally};
use tokio::net::UdpSocket;

/// A minimal MGCP gateway that sends and receives test RTP.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The gateway's domain (endpoints are `aaln/1@DOMAIN`).
    #[arg(long)]
    domain: String,
    /// Its MGCP socket.
    #[arg(long)]
    mgcp: SocketAddr,
    /// Its RTP socket (written into its descriptions).
    #[arg(long)]
    media: SocketAddr,
    /// Its call agent (an APS inside a corporate network): RSIP goes there.
    #[arg(long)]
    call_agent: Option<SocketAddr>,
    /// Send RSIP at start.
    #[arg(long, requires = "call_agent")]
    restart: bool,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Fail unless intact test RTP arrived.
    #[arg(long)]
    expect_media: bool,
    /// RTP interval, in milliseconds.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mgcp_gw: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let mgcp = UdpSocket::bind(args.mgcp).await?;
    let media = UdpSocket::bind(args.media).await?;
    let mut cfg = GwConfig::new(&args.domain, args.media);
    cfg.call_agent = args.call_agent;
    let mut gw = Gateway::new(cfg);
    if args.restart {
        gw.restart(Instant::now());
    }
    println!(
        "gateway {} up: MGCP {}, RTP {}",
        args.domain, args.mgcp, args.media
    );
    let ssrc = 0x6777_0000 | u32::from(args.media.port());
    let (mut sent, mut got) = (Tally::default(), Tally::default());
    let mut seq: u16 = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(args.secs);
    let mut tick = tokio::time::interval(Duration::from_millis(args.interval_ms.max(1)));
    let (mut buf, mut rbuf) = (vec![0u8; 65_536], vec![0u8; 2048]);
    loop {
        while let Some((to, bytes)) = gw.poll_transmit() {
            mgcp.send_to(&bytes, to).await?;
        }
        let timer = gw.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = tokio::time::sleep_until(end) => break,
            r = mgcp.recv_from(&mut buf) => {
                let (n, from) = r?;
                gw.handle_datagram(Instant::now(), from, &buf[..n]);
            }
            r = media.recv_from(&mut rbuf) => {
                let (n, _) = r?;
                got.add(&rbuf[..n]);
            }
            _ = tick.tick() => {
                if let Some(to) = gw.remote_media() {
                    let p = rtp::packet(ssrc, seq);
                    seq = seq.wrapping_add(1);
                    if media.send_to(&p, to).await.is_ok() {
                        sent.add(&p);
                    }
                }
            }
            () = async { match timer { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                gw.handle_timeout(Instant::now());
            }
        }
    }
    println!(
        "RTP sent {} ({} bytes), received {} ({} intact); commands {:?}",
        sent.packets, sent.bytes, got.packets, got.intact, gw.handled
    );
    if args.expect_media && got.intact == 0 {
        bail!("no media arrived");
    }
    Ok(())
}
