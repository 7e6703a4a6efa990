//! `pinhole mpr` and `pinhole aps`: load and check the configuration, bind
//! every socket (failing at start), run the driver, log its events, serve
//! metrics, and stop gracefully on SIGTERM or SIGINT (the APS deregisters
//! first, so the MPR drops its route at once).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use pinhole_core::types::Transport;
use pinhole_core::{client, mpr};
use pinhole_h248::alg as h248_alg;
use pinhole_h323::alg as h323_alg;
use pinhole_mgcp::alg as mgcp_alg;
use pinhole_net::driver::{Direct, Streaming, client as client_driver, mpr as mpr_driver};
use pinhole_net::logs::LogLimit;
use pinhole_net::relay::Relay;
use pinhole_net::tls::{ClientTls, ServerTls};
use pinhole_sip::alg as sip_alg;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::config::{ApsFile, MprFile, MprTlsSection, read};
use crate::metrics::{self, Source};
use crate::seed::os_seed;

/// How long the drivers get to stop after a signal.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a stopping APS waits for the MPR to confirm its deregistration.
const DEREGISTER_WAIT: Duration = Duration::from_secs(2);

/// SIGTERM and SIGINT, watched from the start so that an early signal
/// also stops the daemon gracefully.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// What a signal asks.
enum Signal {
    /// Stop (SIGTERM or SIGINT, named).
    Stop(&'static str),
    /// Reload what can be reloaded without dropping calls (SIGHUP: the
    /// TLS certificate).
    Reload,
}

impl Signals {
    fn watch() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
        })
    }

    /// Resolves on the next SIGTERM, SIGINT or SIGHUP.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop("SIGTERM"),
            _ = self.int.recv() => Signal::Stop("SIGINT"),
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

/// The MPR's TLS from `[tls]`: its server certificate (reloadable) and
/// the trust for connections it opens.
fn mpr_streaming(
    tls: Option<&MprTlsSection>,
    limits: pinhole_net::stream::StreamLimits,
) -> Result<(Streaming, Option<Arc<ServerTls>>)> {
    let Some(t) = tls else {
        return Ok((
            Streaming {
                limits,
                ..Streaming::default()
            },
            None,
        ));
    };
    let server = Arc::new(
        ServerTls::load(
            &t.cert,
            &t.key,
            t.client_ca.as_deref(),
            t.require_client_cert,
        )
        .context("[tls]")?,
    );
    let client_tls = match &t.ca {
        Some(ca) => Some(ClientTls::load(ca, None).context("tls.ca")?.config()),
        None => None,
    };
    let source = Arc::clone(&server);
    Ok((
        Streaming {
            limits,
            server_tls: Some(Arc::new(move || source.config())),
            client_tls,
        },
        Some(server),
    ))
}

/// SIGHUP: a new certificate for new TLS connections; the open ones (and
/// every call) go on. A bad file keeps the old certificate.
fn reload(tls: Option<&ServerTls>) {
    match tls.map(ServerTls::reload) {
        Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded for new connections"),
        Some(Err(e)) => {
            tracing::error!(error = %e, "SIGHUP: TLS reload failed; the old certificate stays");
        }
        None => tracing::info!("SIGHUP: nothing to reload (no [tls])"),
    }
}

/// Stops the metrics endpoint and the log flusher, lets the driver end
/// once its handle is gone, and waits for it (bounded).
async fn stop(
    metrics: Option<JoinHandle<()>>,
    flusher: Option<JoinHandle<()>>,
    task: JoinHandle<()>,
) {
    for t in [metrics, flusher].into_iter().flatten() {
        t.abort();
        let _ = t.await;
    }
    let abort = task.abort_handle();
    match tokio::time::timeout(STOP_GRACE, task).await {
        Ok(_) => tracing::info!("stopped"),
        Err(_) => {
            tracing::warn!("driver did not stop within {STOP_GRACE:?}; aborting it");
            abort.abort();
        }
    }
}

/// Runs an MPR until SIGTERM or SIGINT; reports suppressed log lines
/// every interval through `logs`.
pub(crate) async fn run_mpr(path: &Path, logs: Option<&LogLimit>) -> Result<()> {
    let file = MprFile::parse(&read(path)?).with_context(|| format!("{}", path.display()))?;
    let s = file
        .validate(os_seed())
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut signals = Signals::watch()?;
    let mut controls = Vec::with_capacity(s.controls.len());
    for a in &s.controls {
        let sock = UdpSocket::bind(a)
            .await
            .with_context(|| format!("control_ports: cannot bind {a}"))?;
        controls.push(Arc::new(sock));
    }
    let (first, last) = (s.engine.ports.first, s.engine.ports.last);
    let networks: Vec<String> = s.engine.networks.iter().map(|n| n.id.clone()).collect();
    let engine = mpr::Engine::new(s.engine, Instant::now())?;
    let (relay, relay_events) = Relay::start(s.relay).context("relay")?;
    let (streaming, server_tls) = mpr_streaming(s.tls.as_ref(), s.streams)?;
    let mut algs = Vec::new();
    if let Some(c) = s.sip {
        tracing::info!(sip = %c.local, outbound_proxy = ?c.outbound_proxy, streams = ?s.sip_listen, "SIP proxy on");
        let mut a = mpr_driver::MprAlg::new(c.local, Box::new(sip_alg::Mpr::new(c)));
        for &(at, transport) in &s.sip_listen {
            a = a.listen(at, transport);
        }
        algs.push(a);
    }
    if let Some(c) = s.mgcp {
        tracing::info!(mgcp = %c.local, call_agent = ?c.call_agent, "MGCP ALG on");
        algs.push(mpr_driver::MprAlg::new(
            c.local,
            Box::new(mgcp_alg::Mpr::new(c)),
        ));
    }
    if let Some(c) = s.h248 {
        tracing::info!(h248 = %c.local, mgc = %c.mgc,
            mg_ports = %format!("{}-{}", c.mg_ports.start(), c.mg_ports.end()), "H.248 ALG on");
        algs.push(mpr_driver::MprAlg::new(
            c.local,
            Box::new(h248_alg::Mpr::new(c)),
        ));
    }
    if let Some(c) = s.h323 {
        let (at, pool) = (c.signaling, c.h245_pool.clone());
        tracing::info!(h323 = %at, numbers = ?c.numbers, h245_listeners = pool.len(),
            h245_ports = %pool_span(&pool), "H.323 ALG on");
        // Call signaling over TCP on its control address; H.245 on each
        // leased listener. (No TLS for H.323.)
        let mut a =
            mpr_driver::MprAlg::new(at, Box::new(h323_alg::Mpr::new(c))).listen(at, Transport::Tcp);
        for p in pool {
            a = a.listen(p, Transport::Tcp);
        }
        algs.push(a);
    }
    // Binds the ALGs' extra addresses (H.248's gateway ports) and stream
    // listeners too; a failure names the address.
    let (handle, mut out) =
        mpr_driver::spawn_streaming(engine, controls, relay, relay_events, algs, &streaming)
            .await
            .context("signaling ALGs")?;
    let metrics = match s.metrics {
        Some(a) => Some(metrics::serve(a, Source::Mpr(handle.clone())).await?),
        None => None,
    };
    // A flood's per-datagram lines are limited; their summaries go out
    // every interval even once the flood has stopped.
    let flusher = logs.map(LogLimit::spawn_flusher);
    tracing::info!(control = ?s.controls, relay_ports = %format!("{first}-{last}"), ?networks, "MPR running");
    let why = {
        let mut events_open = true;
        // Runs until a signal; each turn handles one event.
        loop {
            tokio::select! {
                sig = signals.next() => match sig {
                    Signal::Stop(why) => break why,
                    Signal::Reload => reload(server_tls.as_deref()),
                },
                e = out.events.recv(), if events_open => match e {
                    Some(e) => log_mpr_event(&e),
                    None => events_open = false,
                },
                Some(sig) = out.signaling.recv() => {
                    tracing::debug!(local = %sig.local, remote = %sig.remote, len = sig.payload.len(),
                        "signaling datagram with no ALG enabled: dropped");
                }
            }
        }
    };
    tracing::info!(signal = why, "shutting down");
    drop(handle);
    drop(out.events);
    drop(out.signaling);
    stop(metrics, flusher, out.task).await;
    Ok(())
}

/// `first-last` of a pool's ports, for the log.
fn pool_span(pool: &[std::net::SocketAddr]) -> String {
    match (pool.first(), pool.last()) {
        (Some(a), Some(b)) => format!("{}-{}", a.port(), b.port()),
        _ => String::new(),
    }
}

fn log_mpr_event(e: &mpr::Event) {
    match e {
        mpr::Event::Registered {
            network,
            protocol,
            pinhole,
        } => tracing::info!(%network, protocol = protocol.name(), %pinhole, "registered"),
        mpr::Event::RegistrationExpired { network, protocol } => {
            tracing::warn!(%network, protocol = protocol.name(), "registration expired");
        }
        mpr::Event::RouteMoved {
            network, from, to, ..
        } => tracing::warn!(%network, %from, %to, "signaling route moved"),
        other => tracing::info!(event = ?other, "MPR event"),
    }
}

/// Runs an APS until SIGTERM or SIGINT; reports suppressed log lines
/// every interval through `logs`.
pub(crate) async fn run_aps(path: &Path, logs: Option<&LogLimit>) -> Result<()> {
    let file = ApsFile::parse(&read(path)?).with_context(|| format!("{}", path.display()))?;
    let s = file
        .validate(os_seed())
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut signals = Signals::watch()?;
    let local = s.engine.signaling;
    let mpr_addr = s.engine.mpr;
    let upstream_transport = s.engine.upstream;
    let sock = UdpSocket::bind(local)
        .await
        .with_context(|| format!("signaling: cannot bind {local}"))?;
    let engine = client::Engine::new(s.engine, Instant::now())?;
    let (relay, relay_events) = Relay::start(s.relay).context("relay")?;
    // Validation builds at most one: the section of `protocol`.
    let alg: Option<Box<dyn pinhole_core::alg::ClientSignaling>> = match (
        s.sip, s.mgcp, s.h248, s.h323,
    ) {
        (Some(c), ..) => {
            tracing::info!(media_ip = %c.media_ip, inside_default = ?c.inside_default, "SIP proxy on");
            Some(Box::new(sip_alg::Aps::new(c)))
        }
        (None, Some(c), ..) => {
            tracing::info!(media_ip = %c.media_ip, gateways = ?c.gateways, "MGCP ALG on");
            Some(Box::new(mgcp_alg::Aps::new(c)))
        }
        (None, None, Some(c), _) => {
            tracing::info!(media_ip = %c.media_ip, gateways = ?c.gateways, "H.248 ALG on");
            Some(Box::new(h248_alg::Aps::new(c)))
        }
        (None, None, None, Some(c)) => {
            tracing::info!(inside = %c.inside, media_ip = %c.media_ip,
                    h245_listeners = c.h245_pool.len(), h245_ports = %pool_span(&c.h245_pool),
                    aliases = ?c.aliases, inside_default = ?c.inside_default, "H.323 ALG on");
            Some(Box::new(h323_alg::Client::new(c)))
        }
        (None, None, None, None) => None,
    };
    let client_tls = match &s.tls {
        Some(t) => {
            let cert = t.cert.as_deref().zip(t.key.as_deref());
            Some(ClientTls::load(&t.ca, cert).context("[tls]")?.config())
        }
        None => None,
    };
    let streaming = Streaming {
        limits: s.streams,
        client_tls,
        ..Streaming::default()
    };
    let upstream = client_driver::Upstream {
        // CRLF pings; an empty TPKT for H.323 (the driver asks the framing).
        keepalive: Some(s.keepalive),
        ..client_driver::Upstream::default()
    };
    let (handle, mut out) = client_driver::spawn_streaming(
        engine,
        Arc::new(sock),
        relay,
        relay_events,
        Arc::new(Direct),
        alg,
        &client_driver::ClientStreams {
            streaming,
            upstream,
            listen_tcp: s.phones_tcp,
            listen_also: s.listen_also,
            framer: None,
        },
    )
    .await?;
    let metrics = match s.metrics {
        Some(a) => Some(metrics::serve(a, Source::Client(handle.clone())).await?),
        None => None,
    };
    let flusher = logs.map(LogLimit::spawn_flusher);
    tracing::info!(signaling = %local, mpr = %mpr_addr, upstream = %upstream_transport, "APS running");
    if !upstream_transport.is_stream() {
        tracing::warn!(
            "signaling to the MPR goes over UDP in the clear; upstream = \"tls\" encrypts and authenticates it"
        );
    }
    let why = {
        let mut events_open = true;
        loop {
            tokio::select! {
                sig = signals.next() => match sig {
                    Signal::Stop(why) => break why,
                    Signal::Reload => tracing::info!("SIGHUP: nothing to reload at an APS"),
                },
                e = out.events.recv(), if events_open => match e {
                    Some(e) => log_client_event(&e),
                    None => events_open = false,
                },
                Some(sig) = out.signaling.recv() => {
                    tracing::debug!(remote = %sig.remote, len = sig.payload.len(),
                        "signaling datagram with no ALG enabled: dropped");
                }
            }
        }
    };
    tracing::info!(signal = why, "shutting down");
    // Deregister first, so the MPR drops the route now rather than at its
    // expiry; a lost answer only delays the stop by DEREGISTER_WAIT.
    match handle.shutdown(DEREGISTER_WAIT).await {
        Ok(client_driver::Deregistration::Confirmed) => tracing::info!("deregistered"),
        Ok(client_driver::Deregistration::NotRegistered) => {}
        Ok(client_driver::Deregistration::Unconfirmed) => {
            tracing::warn!("deregistration not confirmed; the route expires at the MPR");
        }
        Err(e) => tracing::warn!(error = %e, "graceful shutdown failed"),
    }
    drop(handle);
    drop(out.events);
    drop(out.signaling);
    drop(out.media);
    stop(metrics, flusher, out.task).await;
    Ok(())
}

fn log_client_event(e: &client::Event) {
    match e {
        client::Event::Registered { pinhole, lifetime } => {
            tracing::info!(%pinhole, lifetime_secs = lifetime.as_secs(), "registered");
        }
        client::Event::Alarm { failure, retry_in } => {
            tracing::warn!(
                ?failure,
                retry_in_ms = retry_in.as_millis(),
                "registration alarm"
            );
        }
        client::Event::AlarmCleared => tracing::info!("registration alarm cleared"),
        other => tracing::info!(event = ?other, "APS event"),
    }
}
