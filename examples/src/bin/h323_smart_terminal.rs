//! An H.323 smart terminal (Fig. 16, no APS; `pinhole_examples::h323::smart`):
//! the terminal of `h323_terminal` with its own H.323 ALG beside it in one
//! process. The ALG's client driver registers the network with the MPR
//! over one TCP connection opened from here, the terminal sends its SETUP
//! to the ALG (`--alg-port` on its IP) and connects its H.245 to the ALG's
//! pool (`--h245-ports`), the ALG opens each media pinhole with CMPH from
//! the terminal's media port, and the terminal's RTP goes to and comes from
//! the MPR's relay through the driver. With `--call` it calls that h323-ID;
//! without, it answers one SETUP on `--signal`.
//!
//! Prints the one JSON line of `h323_terminal` and exits 0 when at least
//! `--expect` RTP packets arrived. Logs go to stderr (`RUST_LOG`).
//!
//! ```text
//! h323_smart_terminal --alias bob@corp2.example --signal 10.2.0.10:1720 --media 10.2.0.10:6000 \
//!     --mpr 203.0.113.10:1720 --network corp2 --credential corp2-secret --domain corp2.example
//! h323_smart_terminal --alias alice@corp1.example --signal 10.1.0.10:1720 --media 10.1.0.10:6000 \
//!     --mpr 203.0.113.10:1720 --network corp1 --credential corp1-secret --domain corp1.example \
//!     --call bob@corp2.example --mode tunnel --expect 90
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pinhole_examples::h323::smart::{ALG_PORT, H245_PORTS, SmartConfig, run};
use pinhole_examples::h323::{Config, Mode};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, span};

/// An H.323 smart terminal for one call (caller or callee), Fig. 16.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Our h323-ID, e.g. alice@corp1.example.
    #[arg(long)]
    alias: String,
    /// The terminal's own call-signalling address (TCP): the callee
    /// listens on it.
    #[arg(long)]
    signal: SocketAddr,
    /// Our RTP address (a fixed port; RTCP on the next one). The ALG's
    /// relay binds both once their pinhole opens.
    #[arg(long)]
    media: SocketAddr,
    /// Call this h323-ID (else: wait for one SETUP).
    #[arg(long)]
    call: Option<String>,
    /// How H.245 runs.
    #[arg(long, value_enum, default_value_t = Mode::Separate)]
    mode: Mode,
    /// RTP packets to send (50 per second, 160-byte payloads).
    #[arg(long, default_value_t = 100)]
    packets: u32,
    /// Caller: seconds the call stays up after our media started.
    #[arg(long, default_value_t = 3)]
    hold_secs: u64,
    /// Exit 0 only when at least this many RTP packets arrived.
    #[arg(long, default_value_t = 1)]
    expect: u64,
    /// Bound on the call's run, in seconds (after the registration).
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Seeds the call reference, GUIDs, MSD number, SSRC and the engine
    /// (default: from the process and the port).
    #[arg(long)]
    seed: Option<u64>,
    /// The MPR's H.323 address (its control port and TCP listener).
    #[arg(long)]
    mpr: SocketAddr,
    /// Our network's id at the MPR.
    #[arg(long)]
    network: String,
    /// The network's shared secret.
    #[arg(long, env = "PINHOLE_CREDENTIAL", hide_env_values = true)]
    credential: String,
    /// A subscriber domain to claim (repeatable).
    #[arg(long)]
    domain: Vec<String>,
    /// The ALG's port on the signal IP (its signaling socket and the
    /// listener the terminal sends its SETUP to).
    #[arg(long, default_value_t = ALG_PORT)]
    alg_port: u16,
    /// The ALG's H.245 listeners on the signal IP, `FIRST-LAST`.
    #[arg(long, value_parser = parse_ports, default_value_t = Ports(H245_PORTS.0, H245_PORTS.1))]
    h245_ports: Ports,
    /// The firewall's UDP idle timeout, in seconds (registration and
    /// pinholes are refreshed within it).
    #[arg(long)]
    firewall_idle_secs: Option<u64>,
    /// Keepalive on the TCP connection to the MPR, in seconds (below the
    /// firewall's TCP timeout).
    #[arg(long, default_value_t = 25)]
    keepalive_secs: u64,
    /// How long to wait for the registration, in seconds.
    #[arg(long, default_value_t = 15)]
    register_secs: u64,
}

/// A port range.
#[derive(Clone, Copy, Debug)]
struct Ports(u16, u16);

impl std::fmt::Display for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

fn parse_ports(s: &str) -> Result<Ports, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}`: expected FIRST-LAST"))?;
    let port = |p: &str| p.trim().parse::<u16>().map_err(|e| format!("`{p}`: {e}"));
    let (a, b) = (port(a)?, port(b)?);
    if a == 0 || a > b || b - a >= 1024 {
        return Err(format!("`{s}`: 1 to 1024 ports, FIRST <= LAST"));
    }
    Ok(Ports(a, b))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let level = match std::env::var("RUST_LOG").unwrap_or_default().as_str() {
        "trace" => Level::TRACE,
        "debug" => Level::DEBUG,
        "warn" => Level::WARN,
        "error" => Level::ERROR,
        _ => Level::INFO,
    };
    let _ = tracing::subscriber::set_global_default(Stderr(level));
    let ip = args.signal.ip();
    let terminal = Config {
        alias: args.alias.clone(),
        signal: args.signal,
        call: args.call.clone(),
        via: None,
        h245: None,
        offer_h245: true,
        media: args.media,
        mode: args.mode,
        packets: args.packets,
        hold: Duration::from_secs(args.hold_secs),
        timeout: Duration::from_secs(args.timeout_secs),
        seed: args
            .seed
            .unwrap_or_else(|| pinhole_examples::process_seed(args.signal.port())),
    };
    let mut cfg = SmartConfig::new(
        terminal,
        args.mpr,
        &args.network,
        args.credential.as_bytes(),
    );
    cfg.domains = args.domain.clone();
    cfg.alg = SocketAddr::new(ip, args.alg_port);
    cfg.h245_pool = (args.h245_ports.0..=args.h245_ports.1)
        .map(|p| SocketAddr::new(ip, p))
        .collect();
    cfg.firewall_idle = args.firewall_idle_secs.map(Duration::from_secs);
    cfg.keepalive = Duration::from_secs(args.keepalive_secs.max(1));
    cfg.register_within = Duration::from_secs(args.register_secs.max(1));
    match run(cfg).await {
        Ok(report) => {
            println!("{}", report.to_json());
            if report.received >= args.expect {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "h323_smart_terminal: {} RTP packets received, {} expected",
                    report.received, args.expect
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("h323_smart_terminal: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A minimal `tracing` subscriber: one line per event on stderr.
struct Stderr(Level);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= &self.0
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, e: &Event<'_>) {
        let m = e.metadata();
        let mut line = Line(format!("{} {}:", m.level(), m.target()));
        e.record(&mut line);
        eprintln!("{}", line.0);
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}
