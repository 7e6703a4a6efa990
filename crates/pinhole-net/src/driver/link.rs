//! What both drivers do with stream transports: deliver an ALG's
//! [`Transmit`] over TCP or TLS by its [`Flow`] (the named connection,
//! else an open one to the same peer, else a new one where opening is
//! allowed), and count what could not go.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use pinhole_core::framing::ProtocolFramer;
use pinhole_core::types::{ConnId, Transmit, Transport};
use tokio::sync::mpsc;

use crate::stream::{Connect, StreamCounters, StreamEvent, StreamLimits, Streams};
use crate::tls::server_name;

pub use crate::stream::ServerConfigSource;

/// Stream transports for a driver: the connection layer's limits, and TLS.
#[derive(Clone, Default)]
pub struct Streaming {
    /// Connection limits and timers.
    pub limits: StreamLimits,
    /// Where TLS listeners get their server config for each handshake, so
    /// a certificate reload reaches new connections only
    /// ([`crate::tls::ServerTls::config`]). Required for a TLS listener.
    pub server_tls: Option<ServerConfigSource>,
    /// Trust for TLS connections the driver opens (the APS toward the
    /// MPR, the MPR toward public peers); the peer is verified by its IP
    /// address. Without it no TLS connection is opened.
    pub client_tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("limits", &self.limits)
            .field("server_tls", &self.server_tls.is_some())
            .field("client_tls", &self.client_tls.is_some())
            .finish()
    }
}

/// Stream counters of a driver: the connection layer's and the driver's
/// own (messages it could not send over a stream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// The connection layer's counters.
    pub streams: StreamCounters,
    /// Messages dropped: their connection was gone and no other could be
    /// used or opened (never into a network: the inside opens those).
    pub unroutable: u64,
}

/// A driver's streams: the connection layer, the framing of each of its
/// local addresses, and what could not be sent.
pub(crate) struct Links {
    pub(crate) streams: Streams,
    client_tls: Option<Arc<rustls::ClientConfig>>,
    /// The framing of the protocol served at each logical local address.
    framers: HashMap<SocketAddr, Option<ProtocolFramer>>,
    /// Messages dropped for want of a connection.
    pub(crate) unroutable: u64,
}

impl Links {
    pub(crate) fn new(s: &Streaming) -> (Self, mpsc::Receiver<StreamEvent>) {
        let (tx, rx) = mpsc::channel(4096);
        (
            Self {
                streams: Streams::new(s.limits.clone(), tx),
                client_tls: s.client_tls.clone(),
                framers: HashMap::new(),
                unroutable: 0,
            },
            rx,
        )
    }

    /// Messages leaving from `local` are framed by `framer`.
    pub(crate) fn frame(&mut self, local: SocketAddr, framer: Option<ProtocolFramer>) {
        self.framers.insert(local, framer);
    }

    pub(crate) fn framer(&self, local: SocketAddr) -> Option<ProtocolFramer> {
        self.framers.get(&local).copied().flatten()
    }

    /// Sends `t` over its stream flow: the named connection, else an open
    /// one to `t.remote`, else, when the flow names no connection, a new
    /// one through `via` (the firewall simulator's route, or `t.remote`).
    pub(crate) fn send(&mut self, t: Transmit, via: SocketAddr) {
        let transport = t.flow.transport;
        let open_one = t
            .flow
            .conn
            .filter(|c| self.streams.info(*c).is_some())
            .or_else(|| self.streams.find(transport, t.remote));
        let conn = match open_one {
            Some(c) => c,
            // A connection the peer opened is never replaced by one we
            // open: into a network only the inside opens connections.
            None if t.flow.conn.is_none() => {
                match self.connect(transport, t.remote, via, t.local, None) {
                    Ok(c) => c,
                    Err(why) => return self.unroutable(&t.remote, transport, why),
                }
            }
            None => return self.unroutable(&t.remote, transport, "its connection is gone"),
        };
        if let Err(e) = self.streams.send(conn, t.payload) {
            self.unroutable(&t.remote, transport, e.kind());
        }
    }

    /// Opens a connection to `remote` (through `via`), reported as from
    /// `local`, with its own idle timeout if `idle` says one.
    pub(crate) fn connect(
        &mut self,
        transport: Transport,
        remote: SocketAddr,
        via: SocketAddr,
        local: SocketAddr,
        idle: Option<std::time::Duration>,
    ) -> Result<ConnId, &'static str> {
        let tls = match transport {
            Transport::Tls => {
                let cfg = self
                    .client_tls
                    .clone()
                    .ok_or("no TLS trust configured for connections we open")?;
                let name = server_name(&remote.ip().to_string()).map_err(|e| e.kind())?;
                Some((cfg, name))
            }
            _ => None,
        };
        self.streams
            .connect(Connect {
                transport,
                remote,
                via,
                local,
                tls,
                framer: self.framer(local),
                idle_timeout: idle,
            })
            .map_err(|e| e.kind())
    }

    fn unroutable(&mut self, remote: &SocketAddr, transport: Transport, why: &str) {
        self.unroutable += 1;
        tracing::warn!(%remote, %transport, why, "signaling message not sent: no connection");
    }

    pub(crate) fn counters(&self) -> LinkCounters {
        LinkCounters {
            streams: self.streams.counters(),
            unroutable: self.unroutable,
        }
    }
}

/// The log line of a connection opening or closing (a message is the
/// driver's to handle).
pub(crate) fn log_connection(ev: &StreamEvent) {
    match ev {
        StreamEvent::Opened {
            conn,
            transport,
            remote,
            inbound,
            ..
        } => tracing::debug!(%conn, %transport, %remote, inbound, "connection open"),
        StreamEvent::Closed {
            conn,
            transport,
            remote,
            reason,
            ..
        } => {
            tracing::debug!(%conn, %transport, %remote, reason = reason.kind(), "connection closed");
        }
        StreamEvent::Message { .. } => {}
    }
}

/// Receives the next stream event, or waits forever without streams.
pub(crate) async fn next_event(
    rx: &mut Option<mpsc::Receiver<StreamEvent>>,
) -> Option<StreamEvent> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}
