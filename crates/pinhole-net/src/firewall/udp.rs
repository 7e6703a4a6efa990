//! The UDP data path: one task per route (inside-facing socket) and one per
//! mapping (public socket).

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use super::table::{Expiry, MapKey, Table};
use super::{Inner, stopped};

/// Receive buffer size: the largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// How many freshly bound public sockets may land on a retired port before
/// the simulator gives up creating a mapping.
const BIND_TRIES: usize = 8;

/// Binds a UDP socket on `ip` (OS-chosen port) and registers it with the
/// simulator's runtime.
fn bind(inner: &Inner, ip: IpAddr) -> io::Result<UdpSocket> {
    register(inner, std::net::UdpSocket::bind((ip, 0))?)
}

fn register(inner: &Inner, sock: std::net::UdpSocket) -> io::Result<UdpSocket> {
    sock.set_nonblocking(true)?;
    let _runtime = inner.handle.enter();
    UdpSocket::from_std(sock)
}

/// Binds a public socket whose port did not belong to a recently closed
/// mapping, so that a new mapping visibly gets a new port.
fn bind_public(inner: &Inner, table: &Table) -> io::Result<Arc<UdpSocket>> {
    // Sockets on retired ports stay bound until we are done, so the OS
    // cannot hand the same port out again.
    let mut held = Vec::new();
    for _ in 0..BIND_TRIES {
        let sock = std::net::UdpSocket::bind((inner.cfg.public_ip, 0))?;
        if table.is_retired(sock.local_addr()?.port()) {
            held.push(sock);
            continue;
        }
        return Ok(Arc::new(register(inner, sock)?));
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "the OS handed out only recently retired public ports",
    ))
}

/// Returns (creating on first use) the route of `inside` to `remote`.
pub(super) fn route(
    inner: &Arc<Inner>,
    inside: SocketAddr,
    remote: SocketAddr,
) -> io::Result<SocketAddr> {
    let mut table = inner.table();
    if let Some(sock) = table.route(inside, remote) {
        return sock.local_addr();
    }
    let sock = Arc::new(bind(inner, inner.cfg.inside_ip)?);
    let addr = sock.local_addr()?;
    table.add_route(inside, remote, Arc::clone(&sock));
    drop(table);
    inner.spawn(route_task(Arc::clone(inner), sock, inside, remote));
    debug!(%inside, %remote, route = %addr, "firewall sim: UDP route created");
    Ok(addr)
}

/// Whether a receive error leaves the socket usable (an ICMP error from an
/// earlier send, reported on some systems).
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

/// Forwards what `inside` sends to the route socket out to `remote`.
async fn route_task(
    inner: Arc<Inner>,
    sock: Arc<UdpSocket>,
    inside: SocketAddr,
    remote: SocketAddr,
) {
    let mut stop_rx = inner.stop_signal();
    let stop = stopped(&mut stop_rx);
    tokio::pin!(stop);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, src) = tokio::select! {
            biased;
            () = &mut stop => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(got) => got,
                Err(e) if transient(&e) => continue,
                Err(e) => {
                    warn!(%inside, %remote, error = %e, "firewall sim: route socket failed");
                    return;
                }
            },
        };
        if src != inside {
            inner.table().counters.dropped_foreign += 1;
            debug!(%src, %inside, %remote, "firewall sim: dropped datagram to a route from a foreign source");
            continue;
        }
        let out = inner
            .table()
            .outbound(Instant::now(), inside, remote, |t| bind_public(&inner, t));
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                inner.table().counters.send_errors += 1;
                warn!(%inside, %remote, error = %e, "firewall sim: cannot create a mapping");
                continue;
            }
        };
        if let Some((key, id)) = out.created {
            inner.spawn(public_task(
                Arc::clone(&inner),
                Arc::clone(&out.socket),
                key,
                id,
            ));
        }
        if let Err(e) = out.socket.send_to(&buf[..n], remote).await {
            inner.table().counters.send_errors += 1;
            debug!(%inside, %remote, error = %e, "firewall sim: outbound send failed");
        }
    }
}

/// Serves mapping `(key, id)`'s public socket: filters inbound datagrams,
/// expires idle entries, then lingers after the mapping closed.
async fn public_task(inner: Arc<Inner>, sock: Arc<UdpSocket>, key: MapKey, id: u64) {
    let mut stop_rx = inner.stop_signal();
    let stop = stopped(&mut stop_rx);
    tokio::pin!(stop);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let first = inner.table().deadline(key, id);
    let timer = sleep_until(first.unwrap_or_else(Instant::now));
    tokio::pin!(timer);

    let allowed_once: HashSet<SocketAddr> = loop {
        tokio::select! {
            biased;
            () = &mut stop => return,
            () = &mut timer => match inner.table().expire(Instant::now(), key, id) {
                Expiry::Next(at) => timer.as_mut().reset(at),
                Expiry::Closed(expired) => break expired,
            },
            r = sock.recv_from(&mut buf) => {
                let (n, src) = match r {
                    Ok(got) => got,
                    Err(e) if transient(&e) => continue,
                    Err(e) => {
                        warn!(error = %e, "firewall sim: public socket failed");
                        return;
                    }
                };
                let verdict = inner.table().inbound(Instant::now(), key, id, src);
                if let Some((route, inside)) = verdict
                    && let Err(e) = route.send_to(&buf[..n], inside).await
                {
                    inner.table().counters.send_errors += 1;
                    debug!(%src, %inside, error = %e, "firewall sim: inbound send failed");
                }
            }
        }
    };

    // Closed: keep the port bound for a while, dropping and counting.
    let public = sock.local_addr().ok();
    timer
        .as_mut()
        .reset(Instant::now() + inner.cfg.expired_linger);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return,
            () = &mut timer => return,
            r = sock.recv_from(&mut buf) => {
                let src = match r {
                    Ok((_, src)) => src,
                    Err(e) if transient(&e) => continue,
                    Err(_) => return,
                };
                let mut table = inner.table();
                if allowed_once.contains(&src) {
                    table.counters.dropped_expired += 1;
                    debug!(%src, ?public, "firewall sim: dropped inbound, mapping expired");
                } else {
                    table.counters.dropped_no_mapping += 1;
                    debug!(%src, ?public, "firewall sim: dropped inbound, no mapping");
                }
            }
        }
    }
}
