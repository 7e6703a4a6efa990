//! An H.323 terminal for one call (`pinhole_examples::h323`): with `--call`
//! it calls that h323-ID by sending the SETUP to `--via` (a proxy, the APS
//! or the MPR, or the callee itself); without, it answers one SETUP on
//! `--signal`. H.245 on its own connection (`--mode separate`), tunnelled
//! (`tunnel`), or none with fastStart (`faststart`; a callee follows the
//! SETUP). RTP both ways, then the caller releases after `--hold-secs`.
//! Every PDU is encoded and decoded by rasn from the ITU modules.
//!
//! Prints one JSON line (role, mode, alias, sent, received, rtp_sources,
//! media_dest, released_by, messages) and exits 0 when at least `--expect`
//! RTP packets arrived. Logs go to stderr (`RUST_LOG=debug|info|warn`).
//!
//! ```text
//! h323_terminal --alias bob@corp2.example --signal 10.2.0.10:1720 --media 10.2.0.10:6000
//! h323_terminal --alias alice@corp1.example --signal 10.1.0.10:1720 --media 10.1.0.10:4000 \
//!     --call bob@corp2.example --via 10.1.0.1:1720 --mode tunnel --expect 90
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pinhole_examples::h323::{Config, Mode, run};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, span};

/// An H.323 terminal for one call (caller or callee).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Our h323-ID, e.g. alice@corp1.example.
    #[arg(long)]
    alias: String,
    /// Our call-signalling address (TCP): the callee listens on it.
    #[arg(long)]
    signal: SocketAddr,
    /// Our RTP address (a fixed port; RTCP on the next one).
    #[arg(long)]
    media: SocketAddr,
    /// Call this h323-ID (else: wait for one SETUP).
    #[arg(long, requires = "via")]
    call: Option<String>,
    /// Where the SETUP goes: the APS, the MPR, or the callee.
    #[arg(long, requires = "call")]
    via: Option<SocketAddr>,
    /// How H.245 runs.
    #[arg(long, value_enum, default_value_t = Mode::Separate)]
    mode: Mode,
    /// Our H.245 listener in separate mode (default: the signal IP, any port).
    #[arg(long)]
    h245: Option<SocketAddr>,
    /// Caller, separate mode: no h245Address in the SETUP (wait for the
    /// callee's or a proxy's FACILITY startH245).
    #[arg(long)]
    no_h245_address: bool,
    /// RTP packets to send (50 per second, 160-byte payloads).
    #[arg(long, default_value_t = 100)]
    packets: u32,
    /// Caller: seconds the call stays up after our media started.
    #[arg(long, default_value_t = 3)]
    hold_secs: u64,
    /// Exit 0 only when at least this many RTP packets arrived.
    #[arg(long, default_value_t = 1)]
    expect: u64,
    /// Bound on the whole run, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Seeds the call reference, GUIDs, MSD number and SSRC (default: from
    /// the process and the port).
    #[arg(long)]
    seed: Option<u64>,
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
    let cfg = Config {
        alias: args.alias.clone(),
        signal: args.signal,
        call: args.call.clone(),
        via: args.via,
        h245: args.h245,
        offer_h245: !args.no_h245_address,
        media: args.media,
        mode: args.mode,
        packets: args.packets,
        hold: Duration::from_secs(args.hold_secs),
        timeout: Duration::from_secs(args.timeout_secs),
        seed: args
            .seed
            .unwrap_or_else(|| pinhole_examples::process_seed(args.signal.port())),
    };
    match run(cfg).await {
        Ok(report) => {
            println!("{}", report.to_json());
            if report.received >= args.expect {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "h323_terminal: {} RTP packets received, {} expected",
                    report.received, args.expect
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("h323_terminal: {e:#}");
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
