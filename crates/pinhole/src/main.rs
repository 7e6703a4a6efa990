//! The `pinhole` binary: run a Media Proxy Router (`pinhole mpr`), an
//! Application Proxy Server (`pinhole aps`), the self-contained loopback
//! demonstration (`pinhole demo`), or decode a control, SIP, MGCP or
//! H.248 message or a capture (`pinhole inspect`) and print it as JSON.
//!
//! Every subcommand has `--help`. Logs go to stderr through `tracing`,
//! human-readable by default or one JSON object per line with
//! `--log-format json`; `RUST_LOG` overrides `--log-level`. The daemons stop
//! gracefully on SIGTERM or SIGINT. See `docs/operations.md` for deployment,
//! the configuration reference and the metrics.

mod capture;
mod config;
mod daemon;
mod demo;
mod inspect;
mod metrics;
mod mgcp;
mod seed;
mod sip;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Pinhole: voice and video across corporate firewalls, every pinhole opened from the inside.
#[derive(Parser, Debug)]
#[command(name = "pinhole", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); `RUST_LOG` overrides it.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a Media Proxy Router on the public side (until SIGTERM/SIGINT).
    Mpr {
        /// The TOML configuration file (see crates/pinhole/examples/mpr.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run an Application Proxy Server inside a firewall (until SIGTERM/SIGINT).
    Aps {
        /// The TOML configuration file (see crates/pinhole/examples/aps.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// In one process, on loopback and without root: an MPR, two corporate
    /// networks behind simulated firewalls (an APS with a phone, and a smart
    /// terminal), a call between them and real RTP both ways. Exits 0 only if
    /// media arrived both ways.
    Demo {
        /// Print only the summary, as one JSON object on one line.
        #[arg(long)]
        json: bool,
        /// Seconds of media each way.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=30))]
        seconds: u64,
    },
    /// Decode one message and print it as one JSON line: a Pinhole control
    /// message (STUN-framed, raw bytes or a hex dump), a SIP message, an
    /// MGCP datagram (one line per piggybacked message) or an H.248 text
    /// message (one line per transaction, reply, pending or ack). Given a
    /// pcap or pcapng capture, print one line per message in it (SIP over
    /// UDP, TCP, WebSocket or SCTP; MGCP over UDP; H.248 over UDP 2944 and
    /// 2945). Exits 0 if it decoded.
    Inspect {
        /// The file (`-` for stdin).
        file: PathBuf,
    },
    /// Rewrite every media address in one SIP message, MGCP datagram or
    /// H.248 message (every Local and Remote group) to ADDR with
    /// consecutive ports from PORT (RTCP on the odd port after each), fix
    /// SIP's Content-Length, and print the message. Exits 0 if it rewrote.
    Rewrite {
        /// Where the media should go.
        #[arg(long)]
        to: std::net::SocketAddr,
        /// The file (`-` for stdin).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match (&cli.log_level, &cli.cmd) {
        (Some(l), _) => l.clone(),
        // The demo prints its own ladder; only problems go to the log.
        (None, Cmd::Demo { .. } | Cmd::Inspect { .. } | Cmd::Rewrite { .. }) => "warn".to_owned(),
        (None, _) => "info".to_owned(),
    };
    if let Err(e) = init_logs(cli.log_format, &default_level) {
        eprintln!("pinhole: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pinhole: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log_format = cli.log_format;
    let result = runtime.block_on(async {
        match cli.cmd {
            Cmd::Mpr { config } => daemon::run_mpr(&config).await.map(|()| true),
            Cmd::Aps { config } => daemon::run_aps(&config).await.map(|()| true),
            Cmd::Demo { json, seconds } => demo::run(json, seconds).await,
            Cmd::Inspect { file } => inspect::run(&file),
            Cmd::Rewrite { to, file } => inspect::rewrite(&file, to),
        }
    });
    // Do not wait for sockets' reader tasks; the drivers are done.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            match log_format {
                LogFormat::Json => tracing::error!("{e:#}"),
                LogFormat::Human => eprintln!("pinhole: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat, default_level: &str) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.is_empty() => EnvFilter::try_new(s)?,
        _ => EnvFilter::try_new(default_level)
            .map_err(|e| anyhow::anyhow!("--log-level {default_level:?}: {e}"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let r = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
