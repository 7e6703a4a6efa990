//! Loopback tests of the connection layer: every loop bounded in count and
//! time, every port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pinhole_core::framing::{Frame, FrameError};
use pinhole_core::types::{ConnId, Transport};
use pinhole_core::wire::{Builder, Class, Method, TransactionId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

use super::*;

/// Long enough for anything on a loaded machine; tests end sooner.
const WAIT: Duration = Duration::from_secs(10);

/// A test protocol: `M`, a 16-bit payload length, the payload; CR/LF
/// runs are keepalives. Keeps this crate's tests free of protocol crates.
fn framer(buf: &[u8]) -> Result<Option<Frame>, FrameError> {
    let ka = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if ka > 0 {
        return Ok(Some(Frame::Keepalive(ka)));
    }
    match buf.first() {
        None => return Ok(None),
        Some(b'M') => {}
        Some(_) => {
            return Err(FrameError::Malformed {
                at: 0,
                reason: "not M",
            });
        }
    }
    let Some(len) = buf.get(1..3) else {
        return Ok(None);
    };
    let total = 3 + usize::from(u16::from_be_bytes([len[0], len[1]]));
    Ok((buf.len() >= total).then_some(Frame::Message(total)))
}

fn msg(payload: &[u8]) -> Vec<u8> {
    let mut m = vec![b'M'];
    m.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    m.extend_from_slice(payload);
    m
}

/// A Binding indication built with the wire builder: a control frame.
fn stun() -> Vec<u8> {
    let mut buf = [0u8; 128];
    let mut b = Builder::new(
        &mut buf,
        Method::Binding,
        Class::Indication,
        TransactionId([5; 12]),
    )
    .unwrap();
    b.software("test").unwrap();
    let n = b.finish(None).unwrap();
    buf[..n].to_vec()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn tcp_listen(framer: Option<ProtocolFramer>) -> Listen {
    Listen {
        addr: any_port(),
        transport: Transport::Tcp,
        tls: None,
        framer,
    }
}

fn tcp_connect(to: SocketAddr) -> Connect {
    Connect {
        transport: Transport::Tcp,
        remote: to,
        via: to,
        local: "127.0.0.1:5060".parse().unwrap(),
        tls: None,
        framer: Some(framer),
        idle_timeout: None,
    }
}

fn new(limits: StreamLimits) -> (Streams, mpsc::Receiver<StreamEvent>) {
    let (tx, rx) = mpsc::channel(64);
    (Streams::new(limits, tx), rx)
}

async fn event(rx: &mut mpsc::Receiver<StreamEvent>) -> StreamEvent {
    timeout(WAIT, rx.recv())
        .await
        .expect("an event in time")
        .expect("the channel is open")
}

async fn opened(rx: &mut mpsc::Receiver<StreamEvent>) -> ConnId {
    match event(rx).await {
        StreamEvent::Opened { conn, .. } => conn,
        e => panic!("expected Opened, got {e:?}"),
    }
}

async fn message(rx: &mut mpsc::Receiver<StreamEvent>) -> (ConnId, Vec<u8>) {
    match event(rx).await {
        StreamEvent::Message { conn, bytes, .. } => (conn, bytes),
        e => panic!("expected Message, got {e:?}"),
    }
}

async fn closed(rx: &mut mpsc::Receiver<StreamEvent>) -> (ConnId, CloseReason) {
    match event(rx).await {
        StreamEvent::Closed { conn, reason, .. } => (conn, reason),
        e => panic!("expected Closed, got {e:?}"),
    }
}

/// True when the peer closed `s` (EOF or reset) within [`WAIT`].
async fn sees_close(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut b)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

async fn connect_from(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((ip, 0))).unwrap();
    s.connect(to).await.unwrap()
}

#[tokio::test]
async fn tcp_delivers_whole_frames_and_replies() {
    let (streams, mut rx) = new(StreamLimits::default());
    let addr = streams.listen(tcp_listen(Some(framer))).await.unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    let StreamEvent::Opened {
        conn,
        transport,
        local,
        remote,
        inbound,
    } = event(&mut rx).await
    else {
        panic!("expected Opened");
    };
    assert_eq!(
        (transport, local, remote, inbound),
        (Transport::Tcp, addr, client.local_addr().unwrap(), true)
    );
    assert_eq!(streams.find(Transport::Tcp, remote), Some(conn));
    assert_eq!(streams.find(Transport::Tls, remote), None);
    assert_eq!(streams.info(conn), Some((Transport::Tcp, addr, remote)));

    // One message in three writes: one event with the whole bytes.
    let m = msg(b"INVITE sip:bob@example.com SIP/2.0 and a body");
    for part in [&m[..2], &m[2..10], &m[10..]] {
        client.write_all(part).await.unwrap();
        sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(message(&mut rx).await, (conn, m.clone()));

    // A control frame between two messages is a message of its own.
    let c = stun();
    let second = msg(b"BYE");
    client
        .write_all(&[m.clone(), c.clone(), second.clone()].concat())
        .await
        .unwrap();
    assert_eq!(message(&mut rx).await.1, m);
    assert_eq!(message(&mut rx).await.1, c);
    assert_eq!(message(&mut rx).await.1, second);

    // The reply reaches the client.
    let reply = msg(b"SIP/2.0 200 OK");
    streams.send(conn, reply.clone()).unwrap();
    let mut got = vec![0u8; reply.len()];
    timeout(WAIT, client.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, reply);
    let n = streams.counters();
    assert_eq!(
        (n.accepted, n.messages_in, n.messages_out, n.open),
        (1, 4, 1, 1)
    );

    drop(client);
    assert_eq!(closed(&mut rx).await, (conn, CloseReason::PeerClosed));
    assert_eq!(
        streams.send(conn, b"x".to_vec()),
        Err(SendError::NoSuchConnection)
    );
    assert_eq!(streams.counters().peer_closed, 1);
    streams.shutdown().await;
}

#[tokio::test]
async fn connect_queues_bytes_until_up_and_reports_failure() {
    let (streams, mut rx) = new(StreamLimits::default());
    let server = TcpListener::bind(any_port()).await.unwrap();
    let to = server.local_addr().unwrap();
    let conn = streams.connect(tcp_connect(to)).unwrap();
    // Queued before the connection is up, written in order.
    for part in [&b"one "[..], b"two ", b"three"] {
        streams.send(conn, part.to_vec()).unwrap();
    }
    assert_eq!(streams.find(Transport::Tcp, to), Some(conn));
    let (mut peer, _) = timeout(WAIT, server.accept()).await.unwrap().unwrap();
    let mut got = vec![0u8; 13];
    timeout(WAIT, peer.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"one two three");
    let StreamEvent::Opened {
        conn: c,
        inbound,
        remote,
        local,
        ..
    } = event(&mut rx).await
    else {
        panic!("expected Opened");
    };
    assert_eq!((c, inbound, remote), (conn, false, to));
    assert_eq!(local, "127.0.0.1:5060".parse().unwrap());
    // And the answer comes back as a message.
    peer.write_all(&msg(b"ok")).await.unwrap();
    assert_eq!(message(&mut rx).await, (conn, msg(b"ok")));
    assert_eq!(streams.counters().connected, 1);
    // Closed from here: the peer sees the end, the driver a Local close.
    streams.close(conn);
    assert_eq!(closed(&mut rx).await, (conn, CloseReason::Local));
    assert!(sees_close(&mut peer).await);
    assert_eq!(streams.find(Transport::Tcp, to), None);

    // A port nobody listens on.
    let gone = TcpListener::bind(any_port()).await.unwrap();
    let dead = gone.local_addr().unwrap();
    drop(gone);
    let failed = streams.connect(tcp_connect(dead)).unwrap();
    assert_eq!(closed(&mut rx).await, (failed, CloseReason::ConnectFailed));
    assert_eq!(streams.counters().connect_failures, 1);
    assert_eq!(streams.find(Transport::Tcp, dead), None);
    streams.shutdown().await;
}

#[tokio::test]
async fn a_crlf_ping_gets_a_crlf_pong() {
    let (streams, mut rx) = new(StreamLimits::default());
    let addr = streams.listen(tcp_listen(Some(framer))).await.unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    opened(&mut rx).await;
    // A lone CRLF (a pong) is not answered...
    client.write_all(b"\r\n").await.unwrap();
    let mut b = [0u8; 8];
    assert!(
        timeout(Duration::from_millis(200), client.read(&mut b))
            .await
            .is_err()
    );
    // ... a double one is, once, even when it arrives in two pieces.
    client.write_all(b"\r\n\r\n").await.unwrap();
    let n = timeout(WAIT, client.read(&mut b)).await.unwrap().unwrap();
    assert_eq!(&b[..n], b"\r\n");
    client.write_all(b"\r\n\r").await.unwrap();
    sleep(Duration::from_millis(50)).await;
    client.write_all(b"\n").await.unwrap();
    let n = timeout(WAIT, client.read(&mut b)).await.unwrap().unwrap();
    assert_eq!(&b[..n], b"\r\n");
    assert!(streams.counters().keepalives_in >= 3);
    assert_eq!(streams.counters().messages_in, 0);
    streams.shutdown().await;
}

/// TPKT's keepalive is one frame for ping and pong: the accepting side
/// answers an empty TPKT with one, the connecting side never does (two
/// peers would bounce it forever).
#[tokio::test]
async fn an_empty_tpkt_is_answered_only_by_the_accepting_side() {
    let (streams, mut rx) = new(StreamLimits::default());
    let tpkt: ProtocolFramer = pinhole_core::framing::tpkt;
    let addr = streams.listen(tcp_listen(Some(tpkt))).await.unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    opened(&mut rx).await;
    client.write_all(&TPKT_KEEPALIVE).await.unwrap();
    let mut b = [0u8; 8];
    let n = timeout(WAIT, client.read(&mut b)).await.unwrap().unwrap();
    assert_eq!(&b[..n], &TPKT_KEEPALIVE);
    // Outbound: a peer's empty TPKT is consumed, not answered.
    let server = TcpListener::bind(any_port()).await.unwrap();
    let to = server.local_addr().unwrap();
    let mut c = tcp_connect(to);
    c.framer = Some(tpkt);
    let _ = streams.connect(c).unwrap();
    let (mut peer, _) = timeout(WAIT, server.accept()).await.unwrap().unwrap();
    opened(&mut rx).await;
    peer.write_all(&TPKT_KEEPALIVE).await.unwrap();
    assert!(
        timeout(Duration::from_millis(300), peer.read(&mut b))
            .await
            .is_err(),
        "the connecting side stays silent"
    );
    assert!(streams.counters().keepalives_in >= 2);
    streams.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_limits_are_refused() {
    let limits = StreamLimits {
        max_connections: 3,
        max_per_ip: 2,
        ..StreamLimits::default()
    };
    let (streams, mut rx) = new(limits);
    let addr = streams.listen(tcp_listen(Some(framer))).await.unwrap();
    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(connect_from([127, 0, 0, 1], addr).await);
        opened(&mut rx).await;
    }
    // A third from the same address: refused per IP.
    let mut third = connect_from([127, 0, 0, 1], addr).await;
    assert!(sees_close(&mut third).await);
    assert_eq!(streams.counters().refused_per_ip, 1);
    // Another address fills the last place...
    kept.push(connect_from([127, 0, 0, 2], addr).await);
    opened(&mut rx).await;
    // ... and the fourth connection, from yet another one, is refused.
    let mut fourth = connect_from([127, 0, 0, 3], addr).await;
    assert!(sees_close(&mut fourth).await);
    let n = streams.counters();
    assert_eq!(
        (n.refused_total, n.refused_per_ip, n.accepted, n.open),
        (1, 1, 3, 3)
    );
    assert_eq!(
        streams.connect(tcp_connect(addr)),
        Err(SendError::TooManyConnections)
    );
    // The kept ones still work.
    kept[2].write_all(&msg(b"hi")).await.unwrap();
    assert_eq!(message(&mut rx).await.1, msg(b"hi"));
    // A place freed is a place to take again.
    drop(kept.remove(0));
    closed(&mut rx).await;
    let _again = connect_from([127, 0, 0, 1], addr).await;
    opened(&mut rx).await;
    streams.shutdown().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_keepalives_keep_one_open() {
    let limits = StreamLimits {
        idle_timeout: Duration::from_millis(200),
        ..StreamLimits::default()
    };
    let (streams, mut rx) = new(limits);
    let addr = streams.listen(tcp_listen(Some(framer))).await.unwrap();
    let mut alive = TcpStream::connect(addr).await.unwrap();
    let alive_id = opened(&mut rx).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let idle_id = opened(&mut rx).await;
    // 600 ms of keepalives every 50 ms on one connection.
    let start = Instant::now();
    let mut closes = Vec::new();
    while start.elapsed() < Duration::from_millis(600) {
        alive.write_all(b"\r\n").await.unwrap();
        if let Ok(Some(StreamEvent::Closed { conn, reason, .. })) =
            timeout(Duration::from_millis(50), rx.recv()).await
        {
            closes.push((conn, reason));
        }
    }
    assert_eq!(closes, vec![(idle_id, CloseReason::Idle)]);
    assert!(sees_close(&mut idle).await);
    assert_eq!(streams.info(alive_id).map(|i| i.0), Some(Transport::Tcp));
    // Without keepalives it goes too.
    assert_eq!(closed(&mut rx).await, (alive_id, CloseReason::Idle));
    assert_eq!(streams.counters().idle_closed, 2);
    streams.shutdown().await;
}

#[tokio::test]
async fn a_slow_sender_is_closed_and_a_fast_one_is_not() {
    let limits = StreamLimits {
        message_timeout: Duration::from_millis(300),
        ..StreamLimits::default()
    };
    let (streams, mut rx) = new(limits);
    let addr = streams.listen(tcp_listen(Some(framer))).await.unwrap();
    let frame = msg(b"0123456789");

    let mut fast = TcpStream::connect(addr).await.unwrap();
    let fast_id = opened(&mut rx).await;
    fast.write_all(&frame).await.unwrap();
    assert_eq!(message(&mut rx).await, (fast_id, frame.clone()));

    let mut slow = TcpStream::connect(addr).await.unwrap();
    let slow_id = opened(&mut rx).await;
    let start = Instant::now();
    let mut reason = None;
    // One byte per 100 ms: 1.3 s for the frame, if it were allowed.
    for &b in &frame {
        if slow.write_all(&[b]).await.is_err() {
            break;
        }
        if let Ok(Some(e)) = timeout(Duration::from_millis(100), rx.recv()).await {
            reason = Some(e);
            break;
        }
    }
    assert_eq!(
        reason,
        Some(StreamEvent::Closed {
            conn: slow_id,
            transport: Transport::Tcp,
            local: addr,
            remote: slow.local_addr().unwrap(),
            reason: CloseReason::SlowSender,
        })
    );
    assert!(start.elapsed() < Duration::from_millis(1200));
    // The fast sender's connection is still open and still works.
    fast.write_all(&frame).await.unwrap();
    assert_eq!(message(&mut rx).await, (fast_id, frame));
    assert_eq!(streams.counters().slow_closed, 1);
    streams.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_never_reads_is_closed_at_the_queue_limit() {
    const LIMIT: usize = 128 * 1024;
    let limits = StreamLimits {
        max_write_queue: LIMIT,
        ..StreamLimits::default()
    };
    let (streams, mut rx) = new(limits);
    let addr = streams.listen(tcp_listen(Some(framer))).await.unwrap();
    // A small receive window, so the kernel buffers little for it.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let _deaf = sock.connect(addr).await.unwrap();
    let conn = opened(&mut rx).await;

    let chunk = vec![b'x'; 16 * 1024];
    let mut sent = 0usize;
    let mut refused = None;
    let start = Instant::now();
    // Up to 8 MiB in 16 KiB sends, letting the writer run between them.
    while sent < 8 * 1024 * 1024 && start.elapsed() < WAIT {
        match streams.send(conn, chunk.clone()) {
            Ok(()) => sent += chunk.len(),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
        assert!(streams.queued(conn).unwrap_or(0) <= LIMIT);
        sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(refused, Some(SendError::QueueFull), "after {sent} bytes");
    assert!(sent >= LIMIT, "the queue drained into the socket first");
    assert_eq!(closed(&mut rx).await, (conn, CloseReason::WriteQueueFull));
    assert_eq!(streams.counters().write_queue_closed, 1);
    assert_eq!(streams.queued(conn), None);
    streams.shutdown().await;
}

#[tokio::test]
async fn a_framing_error_closes_the_connection() {
    let (streams, mut rx) = new(StreamLimits::default());
    let addr = streams.listen(tcp_listen(Some(framer))).await.unwrap();
    let control_only = streams.listen(tcp_listen(None)).await.unwrap();
    for to in [addr, control_only] {
        let mut client = TcpStream::connect(to).await.unwrap();
        let conn = opened(&mut rx).await;
        // A control frame passes on both, then text that is neither.
        client.write_all(&stun()).await.unwrap();
        assert_eq!(message(&mut rx).await, (conn, stun()));
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(
            closed(&mut rx).await,
            (conn, CloseReason::Framing("malformed"))
        );
        assert!(sees_close(&mut client).await);
    }
    assert_eq!(streams.counters().framing_errors, 2);
    streams.shutdown().await;
}

#[tokio::test]
async fn a_frame_that_never_ends_is_refused_past_the_buffer_limit() {
    let (streams, mut rx) = new(StreamLimits::default());
    let endless: ProtocolFramer = |_| Ok(None);
    let addr = streams.listen(tcp_listen(Some(endless))).await.unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    let conn = opened(&mut rx).await;
    let chunk = vec![b'a'; 64 * 1024];
    // 2 MiB at most; the server stops reading past MAX_BUFFERED.
    for _ in 0..32 {
        if client.write_all(&chunk).await.is_err() {
            break;
        }
    }
    assert_eq!(
        closed(&mut rx).await,
        (conn, CloseReason::Framing("too_large"))
    );
    let n = streams.counters();
    assert!(n.bytes_in as usize <= MAX_BUFFERED + 16 * 1024, "{n:?}");
    assert_eq!(n.framing_errors, 1);
    streams.shutdown().await;
}

#[tokio::test]
async fn ipv6_works_too() {
    let (streams, mut rx) = new(StreamLimits::default());
    let Ok(addr) = streams
        .listen(Listen {
            addr: "[::1]:0".parse().unwrap(),
            ..tcp_listen(Some(framer))
        })
        .await
    else {
        return; // no IPv6 loopback on this machine
    };
    let mut client = TcpStream::connect(addr).await.unwrap();
    let StreamEvent::Opened { remote, .. } = event(&mut rx).await else {
        panic!("expected Opened");
    };
    assert!(remote.is_ipv6());
    client.write_all(&msg(b"v6")).await.unwrap();
    assert_eq!(message(&mut rx).await.1, msg(b"v6"));
    // Both ends of an outbound connection to ourselves, in either order.
    let out = streams.connect(tcp_connect(addr)).unwrap();
    let mut ends = [opened(&mut rx).await, opened(&mut rx).await];
    ends.sort();
    assert_eq!(ends, [out, ConnId(out.0 + 1)]);
    streams.shutdown().await;
}

/// A self-signed certificate for `localhost`, a server config source that
/// counts its calls, and a client config that trusts the certificate.
fn tls_pair() -> (
    ServerConfigSource,
    Arc<AtomicUsize>,
    Arc<rustls::ClientConfig>,
) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    // The process default provider: ring, the one this crate enables
    // (rustls 0.23.48 deprecates naming `ring::default_provider` directly).
    let server = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap(),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let source: ServerConfigSource = Arc::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Arc::clone(&server)
    });
    (source, calls, client)
}

fn tls_listen(source: ServerConfigSource) -> Listen {
    Listen {
        addr: any_port(),
        transport: Transport::Tls,
        tls: Some(source),
        framer: Some(framer),
    }
}

#[tokio::test]
async fn tls_carries_messages_both_ways_with_a_config_per_handshake() {
    let (source, calls, client_cfg) = tls_pair();
    let (server, mut server_rx) = new(StreamLimits::default());
    let (client, mut client_rx) = new(StreamLimits::default());
    let addr = server.listen(tls_listen(source)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let mut conns = Vec::new();
    for i in 0..2u8 {
        let c = client
            .connect(Connect {
                transport: Transport::Tls,
                remote: addr,
                via: addr,
                local: "127.0.0.1:5061".parse().unwrap(),
                tls: Some((Arc::clone(&client_cfg), "localhost".try_into().unwrap())),
                framer: Some(framer),
                idle_timeout: None,
            })
            .unwrap();
        // Queued before the handshake, delivered after it.
        client.send(c, msg(&[b'a' + i])).unwrap();
        assert_eq!(opened(&mut client_rx).await, c);
        let s = opened(&mut server_rx).await;
        assert_eq!(message(&mut server_rx).await, (s, msg(&[b'a' + i])));
        server.send(s, msg(b"reply")).unwrap();
        assert_eq!(message(&mut client_rx).await, (c, msg(b"reply")));
        assert_eq!(calls.load(Ordering::SeqCst), usize::from(i) + 1);
        conns.push(c);
    }
    assert_eq!(server.counters().accepted, 2);
    assert_eq!(client.counters().connected, 2);
    // A client that does not trust the certificate fails its handshake.
    let (_, _, stranger) = tls_pair();
    let bad = client
        .connect(Connect {
            transport: Transport::Tls,
            remote: addr,
            via: addr,
            local: "127.0.0.1:5061".parse().unwrap(),
            tls: Some((stranger, "localhost".try_into().unwrap())),
            framer: Some(framer),
            idle_timeout: None,
        })
        .unwrap();
    assert_eq!(
        closed(&mut client_rx).await,
        (bad, CloseReason::HandshakeFailed)
    );
    assert_eq!(client.counters().handshake_failures, 1);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_tls_handshake_that_never_starts_times_out() {
    let (source, calls, _) = tls_pair();
    let limits = StreamLimits {
        handshake_timeout: Duration::from_millis(200),
        ..StreamLimits::default()
    };
    let (streams, mut rx) = new(limits);
    let addr = streams.listen(tls_listen(source)).await.unwrap();
    let start = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(sees_close(&mut silent).await);
    assert!(start.elapsed() >= Duration::from_millis(150));
    let n = streams.counters();
    assert_eq!((n.accepted, n.handshake_timeouts, n.open), (1, 1, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The driver never heard of it: no Opened, no Closed.
    assert!(rx.try_recv().is_err());
    streams.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_everything_and_frees_the_port() {
    let (streams, mut rx) = new(StreamLimits::default());
    let addr = streams.listen(tcp_listen(Some(framer))).await.unwrap();
    let mut inbound = TcpStream::connect(addr).await.unwrap();
    let a = opened(&mut rx).await;
    let server = TcpListener::bind(any_port()).await.unwrap();
    let b = streams
        .connect(tcp_connect(server.local_addr().unwrap()))
        .unwrap();
    let (mut peer, _) = timeout(WAIT, server.accept()).await.unwrap().unwrap();
    assert_eq!(opened(&mut rx).await, b);

    timeout(WAIT, streams.shutdown()).await.unwrap();
    let mut shut = vec![closed(&mut rx).await, closed(&mut rx).await];
    shut.sort_by_key(|s| s.0);
    assert_eq!(
        shut,
        vec![(a, CloseReason::Shutdown), (b, CloseReason::Shutdown)]
    );
    assert!(sees_close(&mut inbound).await);
    assert!(sees_close(&mut peer).await);
    assert_eq!(streams.counters().open, 0);
    std::net::TcpListener::bind(addr).expect("the port is free again");
    assert_eq!(streams.connect(tcp_connect(addr)), Err(SendError::Shutdown));
    assert!(streams.listen(tcp_listen(None)).await.is_err());
}

#[tokio::test]
async fn dropping_the_receiver_ends_the_tasks() {
    let (streams, mut rx) = new(StreamLimits::default());
    let addr = streams.listen(tcp_listen(Some(framer))).await.unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    opened(&mut rx).await;
    drop(rx);
    // The connection and the listener end without a shutdown.
    assert!(sees_close(&mut client).await);
    let deadline = Instant::now() + WAIT;
    while streams.inner.live.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(streams.inner.live.load(Ordering::Acquire), 0);
    std::net::TcpListener::bind(addr).expect("the listener is gone");
}

#[test]
fn labels_are_distinct() {
    let reasons = [
        CloseReason::PeerClosed,
        CloseReason::Io,
        CloseReason::Framing("x"),
        CloseReason::Idle,
        CloseReason::SlowSender,
        CloseReason::WriteQueueFull,
        CloseReason::HandshakeTimeout,
        CloseReason::HandshakeFailed,
        CloseReason::ConnectFailed,
        CloseReason::Shutdown,
        CloseReason::Local,
    ];
    let labels: std::collections::HashSet<_> = reasons.iter().map(CloseReason::kind).collect();
    assert_eq!(labels.len(), reasons.len());
    let errors = [
        SendError::NoSuchConnection,
        SendError::QueueFull,
        SendError::TooManyConnections,
        SendError::Shutdown,
    ];
    let labels: std::collections::HashSet<_> = errors.iter().map(SendError::kind).collect();
    assert_eq!(labels.len(), errors.len());
}

/// An outbound connection leaves from its local address's IP: behind a
/// firewall only the inside host's own address is let out.
#[tokio::test]
async fn a_connection_leaves_from_its_local_ip() {
    let (streams, mut rx) = new(StreamLimits::default());
    let server = TcpListener::bind(any_port()).await.unwrap();
    let to = server.local_addr().unwrap();
    let mut c = tcp_connect(to);
    c.local = "127.0.0.7:5060".parse().unwrap();
    streams.connect(c).unwrap();
    let (_peer, from) = timeout(WAIT, server.accept()).await.unwrap().unwrap();
    assert_eq!(from.ip(), "127.0.0.7".parse::<std::net::IpAddr>().unwrap());
    opened(&mut rx).await;
}

/// A connection's own idle timeout overrides the limits' one (the
/// client's upstream: pings every k, dead after 2.5 k of silence).
#[tokio::test]
async fn a_connection_may_have_its_own_idle_timeout() {
    let limits = StreamLimits {
        idle_timeout: Duration::from_secs(30),
        ..StreamLimits::default()
    };
    let (streams, mut rx) = new(limits);
    let server = TcpListener::bind(any_port()).await.unwrap();
    let to = server.local_addr().unwrap();
    let mut c = tcp_connect(to);
    c.idle_timeout = Some(Duration::from_millis(300));
    let conn = streams.connect(c).unwrap();
    let (_peer, _) = timeout(WAIT, server.accept()).await.unwrap().unwrap();
    assert_eq!(opened(&mut rx).await, conn);
    let t0 = std::time::Instant::now();
    match event(&mut rx).await {
        StreamEvent::Closed { reason, .. } => assert_eq!(reason, CloseReason::Idle),
        e => panic!("expected Closed, got {e:?}"),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "closed by its own 300 ms, not the 30 s limit"
    );
}
