//! The `pinhole` binary: run a Media Proxy Router (`pinhole mpr`), an
//! Application Proxy Server (`pinhole aps`), the self-contained loopback
//! demonstration (`pinhole demo`), or decode a control, SIP, MGCP or
//! H.248 message or a capture (`pinhole inspect`) and print it as JSON,
//! or rewrite a message's media addresses (`pinhole rewrite`).
//!
//! Every subcommand has `--help`. Logs go to stderr through `tracing`,
//! human-readable by default or one JSON object per line with
//! `--log-format json`; `RUST_LOG` overrides `--log-level`. WARN and
//! ERROR lines are limited per callsite (`--log-burst` per `--log-interval-secs`, the rest
//! counted in one summary line; `pinhole_net::logs`). The daemons stop
//! gracefully on SIGTERM or SIGINT. See `docs/operations.md` for deployment,
//! the configuration reference and the metrics.

mod capture;
mod config;
mod daemon;
mod demo;
mod h323;
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
    /// WARN and ERROR lines of one callsite (one place in the code) that
    /// pass per interval; the rest are counted and reported in one summary
    /// line (target `pinhole::logs`). INFO lines are never limited. 0: no
    /// limit.
    #[arg(long, default_value_t = 5, global = true)]
    log_burst: u32,
    /// The interval of `--log-burst`, in seconds.
    #[arg(long, default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    log_interval_secs: u64,
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
    /// Write a throwaway CA and certificates for tests and the demo into
    /// DIR: ca.pem (+ ca.key), mpr.pem + mpr.key (a server certificate
    /// naming each --name, IP addresses as IP names), aps.pem + aps.key (a
    /// client certificate for mutual TLS). Valid for 30 days; generate
    /// them where they are used, never check them in.
    Certs {
        /// Where to write them (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// A name the MPR's certificate carries: its IP address or DNS
        /// name (repeat for several).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
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
        (
            None,
            Cmd::Demo { .. } | Cmd::Inspect { .. } | Cmd::Rewrite { .. } | Cmd::Certs { .. },
        ) => "warn".to_owned(),
        (None, _) => "info".to_owned(),
    };
    let rule = pinhole_net::logs::Rule {
        burst: cli.log_burst,
        interval: std::time::Duration::from_secs(cli.log_interval_secs),
        ..Default::default()
    };
    let log_limit = match init_logs(cli.log_format, &default_level, rule) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pinhole: {e:#}");
            return ExitCode::from(2);
        }
    };
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
            Cmd::Mpr { config } => daemon::run_mpr(&config, log_limit.as_ref())
                .await
                .map(|()| true),
            Cmd::Aps { config } => daemon::run_aps(&config, log_limit.as_ref())
                .await
                .map(|()| true),
            Cmd::Demo { json, seconds } => demo::run(json, seconds).await,
            Cmd::Inspect { file } => inspect::run(&file),
            Cmd::Certs { out, names } => certs(&out, &names),
            Cmd::Rewrite { to, file } => inspect::rewrite(&file, to),
        }
    });
    // Do not wait for sockets' reader tasks; the drivers are done.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    // What was suppressed since the last summary is reported before exit.
    if let Some(l) = &log_limit {
        l.flush_all();
    }
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

/// `pinhole certs`: the test CA and certificates, and where they went.
fn certs(out: &std::path::Path, names: &[String]) -> anyhow::Result<bool> {
    use anyhow::Context;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let c = pinhole_net::tls::testca::generate(out, names)?;
    for p in [&c.ca, &c.mpr_cert, &c.mpr_key, &c.aps_cert, &c.aps_key] {
        println!("{}", p.display());
    }
    Ok(true)
}

/// Installs the logger: `RUST_LOG` (else `default_level`) filters, then
/// lines are limited per callsite by `rule` (returned to be flushed; none
/// when `rule.burst` is 0), then written to stderr in `format`.
fn init_logs(
    format: LogFormat,
    default_level: &str,
    rule: pinhole_net::logs::Rule,
) -> anyhow::Result<Option<pinhole_net::logs::LogLimit>> {
    use tracing_subscriber::fmt;
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = log_filter(std::env::var("RUST_LOG").ok(), default_level, rule)?;
    let out = fmt::layer().with_writer(std::io::stderr);
    let out = match format {
        LogFormat::Human => out.boxed(),
        LogFormat::Json => out.json().boxed(),
    };
    let limit = rule
        .limits()
        .then(|| pinhole_net::logs::LogLimit::new(rule));
    let out = match &limit {
        Some(l) => l.layer(out).boxed(),
        None => out,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(out)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    Ok(limit)
}

/// `rust_log` (when set and not empty) or `default_level`; with a limit,
/// the summaries (WARN, `pinhole::logs`) pass even at `--log-level error`,
/// unless the directives name their target: they only ever report lines
/// that passed the filter.
fn log_filter(
    rust_log: Option<String>,
    default_level: &str,
    rule: pinhole_net::logs::Rule,
) -> anyhow::Result<tracing_subscriber::EnvFilter> {
    use pinhole_net::logs::TARGET;
    use tracing_subscriber::EnvFilter;
    let (spec, filter) = match rust_log {
        Some(s) if !s.is_empty() => {
            let f = EnvFilter::try_new(&s)?;
            (s, f)
        }
        _ => {
            let f = EnvFilter::try_new(default_level)
                .map_err(|e| anyhow::anyhow!("--log-level {default_level:?}: {e}"))?;
            (default_level.to_owned(), f)
        }
    };
    if !rule.limits() || spec.contains(TARGET) {
        return Ok(filter);
    }
    Ok(filter.add_directive(format!("{TARGET}=warn").parse()?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use pinhole_net::logs::{Rule, TARGET};
    use tracing_subscriber::layer::SubscriberExt;

    use super::log_filter;

    /// The messages that pass `filter`.
    fn passed(filter: tracing_subscriber::EnvFilter) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = out.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || WriteTo(o.clone()));
        let subscriber = tracing_subscriber::registry().with(filter).with(fmt);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: TARGET, "a summary");
            tracing::warn!(target: "pinhole_sip::alg::mpr", "a warning");
            tracing::error!(target: "pinhole_sip::alg::mpr", "an error");
        });
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    struct WriteTo(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for WriteTo {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn summaries_pass_a_stricter_level_unless_named() {
        let limited = Rule::default();
        let unlimited = Rule {
            burst: 0,
            ..Rule::default()
        };
        let out = passed(log_filter(None, "error", limited).unwrap());
        assert!(
            out.contains("a summary") && out.contains("an error"),
            "{out}"
        );
        assert!(!out.contains("a warning"), "{out}");
        let out = passed(log_filter(Some("error".into()), "info", limited).unwrap());
        assert!(
            out.contains("a summary") && !out.contains("a warning"),
            "{out}"
        );
        // Named: the operator's word.
        let spec = format!("error,{TARGET}=off");
        let out = passed(log_filter(Some(spec), "info", limited).unwrap());
        assert!(
            !out.contains("a summary") && out.contains("an error"),
            "{out}"
        );
        // No limit, no summaries: the filter is the operator's as given.
        let out = passed(log_filter(None, "error", unlimited).unwrap());
        assert!(!out.contains("a summary"), "{out}");
        // RUST_LOG empty: the level.
        let out = passed(log_filter(Some(String::new()), "warn", limited).unwrap());
        assert!(out.contains("a warning"), "{out}");
        assert!(log_filter(None, "pinhole=loud", limited).is_err());
    }
}
