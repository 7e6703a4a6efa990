//! A Prometheus `/metrics` endpoint: the text exposition format (0.0.4)
//! over a small HTTP/1.x responder on a tokio `TcpListener`. The counters
//! are read from the driver handles (`stats()`) at each scrape, so the
//! numbers are as fresh as the scrape.
//!
//! Hand-written rather than `metrics-exporter-prometheus`: the engines
//! already keep plain counters, and a dozen lines of text exposition cost
//! less to build than an HTTP stack.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use pinhole_core::alg::AlgCounters;
use pinhole_net::driver::LinkCounters;
use pinhole_net::driver::client::ClientHandle;
use pinhole_net::driver::mpr::MprHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Whose counters the endpoint serves.
#[derive(Clone)]
pub(crate) enum Source {
    /// An MPR.
    Mpr(MprHandle),
    /// An APS (or smart terminal).
    Client(ClientHandle),
}

/// How long one scrape connection may take in all.
const CONN_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_REQUEST: usize = 8192;

/// Binds `addr` now (so a bad address fails at start) and serves until the
/// returned task is aborted.
pub(crate) async fn serve(addr: SocketAddr, source: Source) -> anyhow::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics: cannot listen on {addr}"))?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    let source = source.clone();
                    tokio::spawn(async move {
                        if let Err(e) =
                            tokio::time::timeout(CONN_TIMEOUT, answer(conn, source)).await
                        {
                            tracing::debug!(error = %e, "metrics connection timed out");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

async fn answer(mut conn: TcpStream, source: Source) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Bounded by MAX_REQUEST and the connection timeout.
    while buf.len() < MAX_REQUEST && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let line = buf.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (status, body) = if method != b"GET" {
        ("405 Method Not Allowed", "only GET\n".to_owned())
    } else if path == b"/metrics" {
        match render(&source).await {
            Ok(b) => ("200 OK", b),
            Err(e) => ("503 Service Unavailable", format!("{e}\n")),
        }
    } else {
        ("404 Not Found", "try /metrics\n".to_owned())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(body.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// Appends one metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// The exposition text of `source`'s counters now.
pub(crate) async fn render(source: &Source) -> std::io::Result<String> {
    let mut o = String::with_capacity(4096);
    match source {
        Source::Mpr(h) => {
            let s = h.stats().await?;
            family(
                &mut o,
                "pinhole_up",
                "gauge",
                "1 while the MPR driver runs.",
                &[("role=\"mpr\"", 1)],
            );
            family(
                &mut o,
                "pinhole_registrations_total",
                "counter",
                "Registrations by result.",
                &[
                    ("result=\"accepted\"", s.registrations_accepted),
                    ("result=\"refreshed\"", s.registrations_refreshed),
                    ("result=\"expired\"", s.registrations_expired),
                ],
            );
            family(
                &mut o,
                "pinhole_routes_live",
                "gauge",
                "Signaling routes (registered networks and protocols) now.",
                &[("", s.routes_live)],
            );
            family(
                &mut o,
                "pinhole_routes_moved_total",
                "counter",
                "Refreshes that arrived from a different pinhole.",
                &[("", s.routes_moved)],
            );
            family(
                &mut o,
                "pinhole_sessions_open",
                "gauge",
                "Calls known now.",
                &[("", s.calls_open)],
            );
            family(
                &mut o,
                "pinhole_sessions_expired_total",
                "counter",
                "Calls removed by inactivity.",
                &[("", s.calls_expired)],
            );
            family(
                &mut o,
                "pinhole_legs_open",
                "gauge",
                "Relay legs open now.",
                &[("", s.legs_open)],
            );
            family(
                &mut o,
                "pinhole_cmph_total",
                "counter",
                "Create Media Pinhole messages by kind.",
                &[
                    ("kind=\"reserve\"", s.cmph_reserved),
                    ("kind=\"bind\"", s.cmph_bound),
                ],
            );
            family(
                &mut o,
                "pinhole_auth_failures_total",
                "counter",
                "Control messages with bad integrity or an unknown network.",
                &[("", s.auth_failures)],
            );
            family(
                &mut o,
                "pinhole_parse_errors_total",
                "counter",
                "Malformed messages by protocol.",
                &[("protocol=\"pinhole-control\"", s.decode_errors)],
            );
            family(
                &mut o,
                "pinhole_drops_total",
                "counter",
                "Control messages dropped or refused, by reason.",
                &[
                    ("reason=\"replay\"", s.replays),
                    ("reason=\"stray_keepalive\"", s.stray_keepalives),
                    ("reason=\"unexpected\"", s.unexpected),
                    ("reason=\"refused\"", s.refusals),
                    ("reason=\"stale_nonce\"", s.stale_nonces),
                    ("reason=\"amplification\"", s.amplification_drops),
                ],
            );
            family(
                &mut o,
                "pinhole_challenges_total",
                "counter",
                "401 nonce challenges sent.",
                &[("", s.challenges)],
            );
            family(
                &mut o,
                "pinhole_control_retransmissions_total",
                "counter",
                "Retransmitted requests answered from the cache.",
                &[("", s.retransmissions)],
            );
            family(
                &mut o,
                "pinhole_bindings_answered_total",
                "counter",
                "STUN Binding requests answered.",
                &[("", s.bindings_answered)],
            );
            family(
                &mut o,
                "pinhole_keepalives_total",
                "counter",
                "Keepalives from bound sources.",
                &[("", s.keepalives)],
            );
            family(
                &mut o,
                "pinhole_intents_total",
                "counter",
                "Media intents by result.",
                &[
                    ("result=\"planned\"", s.intents),
                    ("result=\"refused\"", s.intent_errors),
                ],
            );
            family(
                &mut o,
                "pinhole_ports_exhausted_total",
                "counter",
                "Times no relay port pair was free.",
                &[("", s.ports_exhausted)],
            );
            family(
                &mut o,
                "pinhole_unanswered_legs",
                "gauge",
                "Relay legs that calls offered by strangers and not answered yet hold now.",
                &[("", s.unanswered_legs)],
            );
            family(
                &mut o,
                "pinhole_unanswered_total",
                "counter",
                "Calls offered by strangers: refused past a [limits] cap, or expired unanswered.",
                &[
                    ("result=\"refused\"", s.unanswered_refused),
                    ("result=\"expired\"", s.unanswered_expired),
                ],
            );
            family(
                &mut o,
                "pinhole_latches_total",
                "counter",
                "Plain-terminal legs latched.",
                &[("", s.latches)],
            );
            family(
                &mut o,
                "pinhole_latch_takeovers_total",
                "counter",
                "Provisional latches the port the SDP announced took over (a same-IP source sent first).",
                &[("", s.latch_takeovers)],
            );
            let r = h.relay_counters().await?;
            family(
                &mut o,
                "pinhole_relay_packets_total",
                "counter",
                "Media packets at the relay, by direction (in: received on a leg; out: forwarded).",
                &[
                    ("direction=\"in\"", r.packets_in),
                    ("direction=\"out\"", r.packets_out),
                ],
            );
            family(
                &mut o,
                "pinhole_relay_bytes_total",
                "counter",
                "Media bytes at the relay, by direction.",
                &[
                    ("direction=\"in\"", r.bytes_in),
                    ("direction=\"out\"", r.bytes_out),
                ],
            );
            family(
                &mut o,
                "pinhole_relay_drops_total",
                "counter",
                "Media packets the relay dropped, by reason.",
                &[
                    ("reason=\"source\"", r.dropped_source),
                    ("reason=\"unbound\"", r.dropped_unbound),
                    ("reason=\"no_peer\"", r.dropped_no_peer),
                    ("reason=\"send_error\"", r.dropped_send_error),
                    ("reason=\"oversize\"", r.dropped_oversize),
                    ("reason=\"stale\"", r.dropped_stale),
                    ("reason=\"overflow\"", r.dropped_overflow),
                    ("reason=\"event_queue_full\"", r.dropped_event_queue_full),
                ],
            );
            family(
                &mut o,
                "pinhole_relay_control_total",
                "counter",
                "Control messages received on relay ports.",
                &[("", r.control_in)],
            );
            alg(&mut o, &h.alg_counters().await?);
            links(&mut o, &h.link_counters().await?);
        }
        Source::Client(h) => {
            let s = h.stats().await?;
            let registered = u64::from(h.registered_pinhole().await?.is_some());
            family(
                &mut o,
                "pinhole_up",
                "gauge",
                "1 while the APS driver runs.",
                &[("role=\"aps\"", 1)],
            );
            family(
                &mut o,
                "pinhole_client_registered",
                "gauge",
                "1 while the signaling pinhole is registered.",
                &[("", registered)],
            );
            family(
                &mut o,
                "pinhole_client_registrations_total",
                "counter",
                "Registration requests by result.",
                &[
                    ("result=\"sent\"", s.registrations_sent),
                    ("result=\"ok\"", s.registrations_ok),
                    ("result=\"failed\"", s.registration_failures),
                ],
            );
            family(
                &mut o,
                "pinhole_client_pinholes_total",
                "counter",
                "Media pinholes by result.",
                &[
                    ("result=\"opened\"", s.pinholes_opened),
                    ("result=\"failed\"", s.pinholes_failed),
                ],
            );
            family(
                &mut o,
                "pinhole_client_cmph_sent_total",
                "counter",
                "CMPH requests and indications sent (first copies).",
                &[("", s.cmph_sent)],
            );
            family(
                &mut o,
                "pinhole_client_cmph_backoff_total",
                "counter",
                "Reserves the MPR refused for lack of ports or quota (each starts or lengthens the back-off), and pinholes refused locally during it without a CMPH.",
                &[
                    ("result=\"refused_by_mpr\"", s.cmph_backoffs),
                    ("result=\"held_back\"", s.cmph_held_back),
                ],
            );
            family(
                &mut o,
                "pinhole_client_retransmissions_total",
                "counter",
                "Control retransmissions sent.",
                &[("", s.retransmissions)],
            );
            family(
                &mut o,
                "pinhole_client_keepalives_total",
                "counter",
                "Media pinhole keepalives sent.",
                &[("", s.keepalives)],
            );
            family(
                &mut o,
                "pinhole_client_nonce_retries_total",
                "counter",
                "Requests retried with a fresh nonce.",
                &[("", s.nonce_retries)],
            );
            family(
                &mut o,
                "pinhole_drops_total",
                "counter",
                "Control messages dropped, by reason.",
                &[("reason=\"unsolicited_or_unauthenticated\"", s.dropped)],
            );
            alg(&mut o, &h.alg_counters().await?);
            links(&mut o, &h.link_counters().await?);
            family(
                &mut o,
                "pinhole_stream_reconnects_total",
                "counter",
                "Times the APS reopened its signaling connection to the MPR.",
                &[("", s.reconnects)],
            );
        }
    }
    Ok(o)
}

/// The signaling ALGs' counters, one family labelled by protocol and
/// event (parse errors are `event="malformed"`).
/// TCP and TLS signaling connections: open now, opened, refused and
/// closed by the `[streams]` limit that closed them, messages and bytes.
fn links(o: &mut String, l: &LinkCounters) {
    let c = &l.streams;
    family(
        o,
        "pinhole_stream_connections",
        "gauge",
        "TCP and TLS signaling connections open or opening now.",
        &[("", c.open)],
    );
    family(
        o,
        "pinhole_stream_opened_total",
        "counter",
        "Signaling connections opened, by direction.",
        &[
            ("direction=\"inbound\"", c.accepted),
            ("direction=\"outbound\"", c.connected),
        ],
    );
    family(
        o,
        "pinhole_stream_refused_total",
        "counter",
        "Inbound connections refused, by the [streams] limit.",
        &[
            ("limit=\"max_connections\"", c.refused_total),
            ("limit=\"max_per_ip\"", c.refused_per_ip),
        ],
    );
    family(
        o,
        "pinhole_stream_closed_total",
        "counter",
        "Connections closed by Pinhole, by reason ([streams] limit, handshake, framing).",
        &[
            ("reason=\"handshake_timeout\"", c.handshake_timeouts),
            ("reason=\"handshake_failed\"", c.handshake_failures),
            ("reason=\"connect_failed\"", c.connect_failures),
            ("reason=\"idle\"", c.idle_closed),
            ("reason=\"slow_sender\"", c.slow_closed),
            ("reason=\"write_queue_full\"", c.write_queue_closed),
            ("reason=\"framing\"", c.framing_errors),
            ("reason=\"peer_closed\"", c.peer_closed),
        ],
    );
    family(
        o,
        "pinhole_stream_messages_total",
        "counter",
        "Whole messages over signaling connections, by direction.",
        &[
            ("direction=\"in\"", c.messages_in),
            ("direction=\"out\"", c.messages_out),
        ],
    );
    family(
        o,
        "pinhole_stream_bytes_total",
        "counter",
        "Bytes over signaling connections, by direction.",
        &[
            ("direction=\"in\"", c.bytes_in),
            ("direction=\"out\"", c.bytes_out),
        ],
    );
    family(
        o,
        "pinhole_stream_unroutable_total",
        "counter",
        "Signaling messages dropped: their connection was gone and none could be opened (never into a network).",
        &[("", l.unroutable)],
    );
}

fn alg(o: &mut String, algs: &AlgCounters) {
    let labels: Vec<(String, u64)> = algs
        .iter()
        .flat_map(|(protocol, counters)| {
            let p = protocol.token();
            counters
                .iter()
                .map(move |(name, v)| (format!("protocol=\"{p}\",event=\"{name}\""), *v))
        })
        .collect();
    if labels.is_empty() {
        return;
    }
    let refs: Vec<(&str, u64)> = labels.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    family(
        o,
        "pinhole_signaling_total",
        "counter",
        "Signaling ALG events by protocol and event (received, forwarded, malformed, sdp_rewritten, ...).",
        &refs,
    );
}
