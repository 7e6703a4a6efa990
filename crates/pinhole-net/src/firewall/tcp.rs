//! The TCP path: one task per route listener and one per proxied
//! connection.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tracing::debug;

use super::{Inner, lock, stopped};

/// Pause after a failed `accept` (for example out of file descriptors), so
/// that the listener does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Returns (creating on first use) the TCP route of `inside` to `remote`.
pub(super) fn route(
    inner: &Arc<Inner>,
    inside: IpAddr,
    remote: SocketAddr,
) -> io::Result<SocketAddr> {
    let mut routes = lock(&inner.tcp_routes);
    if let Some(addr) = routes.get(&(inside, remote)) {
        return Ok(*addr);
    }
    let std_listener = std::net::TcpListener::bind((inner.cfg.inside_ip, 0))?;
    std_listener.set_nonblocking(true)?;
    let listener = {
        let _runtime = inner.handle.enter();
        TcpListener::from_std(std_listener)?
    };
    let addr = listener.local_addr()?;
    routes.insert((inside, remote), addr);
    drop(routes);
    inner.spawn(listen_task(Arc::clone(inner), listener, inside, remote));
    debug!(%inside, %remote, route = %addr, "firewall sim: TCP route created");
    Ok(addr)
}

/// Accepts connections from `inside` and proxies each to `remote`.
async fn listen_task(inner: Arc<Inner>, listener: TcpListener, inside: IpAddr, remote: SocketAddr) {
    let mut stop_rx = inner.stop_signal();
    let stop = stopped(&mut stop_rx);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut stop => return,
            r = listener.accept() => match r {
                Ok(got) => got,
                Err(e) => {
                    debug!(%remote, error = %e, "firewall sim: TCP accept failed");
                    tokio::select! {
                        () = &mut stop => return,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        if peer.ip() != inside {
            inner.table().counters.tcp_refused_foreign += 1;
            debug!(%peer, %inside, %remote, "firewall sim: reset TCP connection to a route from a foreign source");
            reset(&stream);
            continue;
        }
        inner.spawn(proxy(Arc::clone(&inner), stream, remote));
    }
}

/// Makes dropping `stream` send a reset instead of a FIN.
fn reset(stream: &TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        debug!(error = %e, "firewall sim: cannot set SO_LINGER 0");
    }
}

/// Connects to `remote` from the public IP and copies bytes both ways.
async fn proxy(inner: Arc<Inner>, mut inside: TcpStream, remote: SocketAddr) {
    let mut stop_rx = inner.stop_signal();
    let stop = stopped(&mut stop_rx);
    tokio::pin!(stop);
    let public_ip = inner.cfg.public_ip;
    let connect = async move {
        let sock = if remote.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        sock.bind(SocketAddr::new(public_ip, 0))?;
        sock.connect(remote).await
    };
    let connected = tokio::select! {
        biased;
        () = &mut stop => return,
        r = tokio::time::timeout(inner.cfg.tcp_connect_timeout, connect) => r,
    };
    let mut outside = match connected {
        Ok(Ok(outside)) => outside,
        Ok(Err(e)) => return connect_failed(&inner, &inside, remote, &e),
        Err(_) => {
            let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            return connect_failed(&inner, &inside, remote, &e);
        }
    };
    inner.table().counters.tcp_opened += 1;
    // A middlebox adds no delay of its own: Nagle on the proxy's sockets
    // would hold small messages for the peers' delayed ACKs.
    for s in [&inside, &outside] {
        if let Err(e) = s.set_nodelay(true) {
            debug!(error = %e, "firewall sim: cannot set TCP_NODELAY");
        }
    }
    let public = outside.local_addr().ok();
    debug!(?public, %remote, "firewall sim: TCP connection opened");
    tokio::select! {
        biased;
        () = &mut stop => {}
        r = copy_bidirectional(&mut inside, &mut outside) => match r {
            Ok((out, back)) => debug!(?public, %remote, out, back, "firewall sim: TCP connection closed"),
            Err(e) => debug!(?public, %remote, error = %e, "firewall sim: TCP connection failed"),
        },
    }
    inner.table().counters.tcp_closed += 1;
}

fn connect_failed(inner: &Inner, inside: &TcpStream, remote: SocketAddr, e: &io::Error) {
    inner.table().counters.tcp_connect_failed += 1;
    debug!(%remote, error = %e, "firewall sim: outbound TCP connect failed; resetting the inside connection");
    reset(inside);
}
