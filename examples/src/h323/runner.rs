//! The async runner: sockets, timers, and the [`Call`] core. Its media
//! goes through its own UDP sockets ([`run`]), or through a smart
//! terminal's client driver, whose relay owns the media ports
//! ([`run_with`] and [`MediaPath::Driver`], Fig. 16).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pinhole_net::driver::client::{ClientHandle, Media};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::call::{Call, CallConfig, Origin, Output};
use super::wire::Deframer;
use super::{Config, Mode, Released, Report, Role};
use crate::rtp;

/// How long the caller waits for the peer's EndSessionCommand.
const END_SESSION_WAIT: Duration = Duration::from_secs(2);
/// How long an outgoing TCP connection may take.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// RTP packet interval (50 packets per second).
const PTIME: Duration = Duration::from_millis(20);
/// How many intervals the first RTP packet may wait for its port (2 s).
const START_WAIT_TICKS: u32 = 100;

enum Event {
    Signal(Vec<u8>),
    SignalClosed,
    SignalAccepted(TcpStream, SocketAddr),
    H245Frame(u64, Vec<u8>),
    H245Closed(u64),
    H245Stream(TcpStream, SocketAddr, Origin),
    H245Failed(SocketAddr, String),
}

/// What the media tasks count.
#[derive(Default)]
struct MediaCounts {
    sent: AtomicU64,
    rtcp_sent: AtomicU64,
    rtcp_received: AtomicU64,
    received: Mutex<(rtp::Tally, Vec<SocketAddr>)>,
}

/// Reads TPKT frames from `r` until it closes, as events.
fn spawn_reader<R>(
    mut r: R,
    tx: mpsc::Sender<Event>,
    frame: impl Fn(Vec<u8>) -> Event + Send + 'static,
    closed: Event,
) -> JoinHandle<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut d = Deframer::default();
        let mut buf = vec![0u8; 8192];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    d.push(&buf[..n]);
                    while let Some(f) = d.next_frame() {
                        if tx.send(frame(f)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let _ = tx.send(closed).await;
    })
}

/// A TCP connection to `to` from our IP (a proxy may accept H.245 only
/// from the IP the call came from).
async fn connect_from(ip: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = if ip.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.bind(SocketAddr::new(ip, 0))?;
    match tokio::time::timeout(CONNECT_WAIT, s.connect(to)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        )),
    }
}

fn spawn_acceptor(l: TcpListener, tx: mpsc::Sender<Event>, h245: bool) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((s, peer)) = l.accept().await {
            let ev = if h245 {
                Event::H245Stream(s, peer, Origin::Accepted)
            } else {
                Event::SignalAccepted(s, peer)
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    })
}

/// Where a terminal's RTP and RTCP go.
pub(super) enum MediaPath {
    /// Its own UDP sockets on [`Config::media`] and the next port.
    Own,
    /// A smart terminal's client driver (Fig. 16): its relay binds the
    /// media ports when the ALG opens their pinhole, sends what
    /// [`ClientHandle::send_media`] gives it, and hands what arrives to
    /// `media`.
    Driver {
        /// The driver.
        handle: ClientHandle,
        /// What arrives on the terminal's media ports.
        media: mpsc::Receiver<Media>,
    },
}

/// How the sender sends.
#[derive(Clone)]
enum MediaTx {
    Own {
        rtp: Arc<UdpSocket>,
        rtcp: Arc<UdpSocket>,
    },
    Driver {
        handle: ClientHandle,
        rtp: SocketAddr,
        rtcp: SocketAddr,
    },
}

impl MediaTx {
    /// Sends one datagram from the RTP (or RTCP) port; false if it did not go.
    async fn send(&self, rtcp: bool, payload: Vec<u8>, to: SocketAddr) -> bool {
        match self {
            Self::Own { rtp, rtcp: r } => {
                let s = if rtcp { r } else { rtp };
                s.send_to(&payload, to).await.is_ok()
            }
            Self::Driver {
                handle,
                rtp,
                rtcp: r,
            } => {
                let local = if rtcp { *r } else { *rtp };
                // Before the pinhole is open the port is not bound: not sent.
                handle
                    .send_media(Media {
                        local,
                        remote: to,
                        payload,
                    })
                    .await
                    .is_ok()
            }
        }
    }
}

/// Takes what the driver's relay received on our media ports.
fn spawn_driver_receiver(
    mut rx: mpsc::Receiver<Media>,
    rtp_local: SocketAddr,
    counts: Arc<MediaCounts>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if m.local == rtp_local {
                let mut g = counts.received.lock().unwrap_or_else(|e| e.into_inner());
                g.0.add(&m.payload);
                if !g.1.contains(&m.remote) {
                    g.1.push(m.remote);
                }
            } else {
                counts.rtcp_received.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

/// Receives on the RTP socket, counting every datagram and its source.
fn spawn_rtp_receiver(sock: Arc<UdpSocket>, counts: Arc<MediaCounts>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let mut g = counts.received.lock().unwrap_or_else(|e| e.into_inner());
            g.0.add(&buf[..n]);
            if !g.1.contains(&from) {
                g.1.push(from);
            }
        }
    })
}

fn spawn_rtcp_receiver(sock: Arc<UdpSocket>, counts: Arc<MediaCounts>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while sock.recv_from(&mut buf).await.is_ok() {
            counts.rtcp_received.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Sends `packets` RTP packets at 50/s to `rtp`, and an RTCP receiver
/// report each second to `rtcp`.
fn spawn_sender(
    tx: MediaTx,
    rtp_to: SocketAddr,
    rtcp_to: Option<SocketAddr>,
    packets: u32,
    ssrc: u32,
    counts: Arc<MediaCounts>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PTIME);
        // A smart terminal's media port is the driver's relay's once the
        // ALG opened its pinhole (which may trail the answer that started
        // our media): the first packet waits for it, a while.
        let mut waits = START_WAIT_TICKS;
        let mut seq = 0;
        while seq < packets {
            tick.tick().await;
            if tx.send(false, rtp::packet(ssrc, seq as u16), rtp_to).await {
                counts.sent.fetch_add(1, Ordering::Relaxed);
            } else if seq == 0 && waits > 0 {
                waits -= 1;
                continue;
            }
            if let Some(to) = rtcp_to
                && seq % 50 == 0
            {
                // RTCP RR, no report blocks (RFC 3550 §6.4.2).
                let mut rr = vec![0x80, 201, 0, 1];
                rr.extend_from_slice(&ssrc.to_be_bytes());
                if tx.send(true, rr, to).await {
                    counts.rtcp_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            seq += 1;
        }
    })
}

async fn write(w: &mut Option<OwnedWriteHalf>, frame: &[u8], what: &str) {
    match w {
        Some(s) => {
            if let Err(e) = s.write_all(frame).await {
                tracing::warn!("writing {what}: {e}");
            }
        }
        None => tracing::warn!("no {what} connection: frame dropped"),
    }
}

/// Runs one call to its end (or the timeout) and reports.
pub async fn run(cfg: Config) -> Result<Report> {
    run_with(cfg, MediaPath::Own).await
}

/// [`run`] with its media on `media`.
pub(super) async fn run_with(cfg: Config, media: MediaPath) -> Result<Report> {
    let role = cfg.role();
    if role == Role::Caller && cfg.via.is_none() {
        bail!("a caller needs --via");
    }
    let deadline = Instant::now() + cfg.timeout;
    let (tx, mut rx) = mpsc::channel::<Event>(256);
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();

    // Media sockets first: media may arrive as soon as the SETUP is out.
    let rtcp_addr = SocketAddr::new(cfg.media.ip(), cfg.media.port().wrapping_add(1));
    let counts = Arc::new(MediaCounts::default());
    let media_tx = match media {
        MediaPath::Own => {
            let rtp = Arc::new(
                UdpSocket::bind(cfg.media)
                    .await
                    .with_context(|| format!("binding RTP {}", cfg.media))?,
            );
            let rtcp = Arc::new(
                UdpSocket::bind(rtcp_addr)
                    .await
                    .with_context(|| format!("binding RTCP {rtcp_addr}"))?,
            );
            tasks.push(spawn_rtp_receiver(rtp.clone(), counts.clone()));
            tasks.push(spawn_rtcp_receiver(rtcp.clone(), counts.clone()));
            MediaTx::Own { rtp, rtcp }
        }
        MediaPath::Driver { handle, media } => {
            tasks.push(spawn_driver_receiver(media, cfg.media, counts.clone()));
            MediaTx::Driver {
                handle,
                rtp: cfg.media,
                rtcp: rtcp_addr,
            }
        }
    };

    let signal_listener = TcpListener::bind(cfg.signal)
        .await
        .with_context(|| format!("binding call signalling {}", cfg.signal))?;
    // The H.245 listener: a callee does not know its mode before the SETUP,
    // so in every mode but the caller's fastStart/tunnel.
    let h245_addr = if role == Role::Callee || cfg.mode == Mode::Separate {
        let want = cfg.h245.unwrap_or(SocketAddr::new(cfg.signal.ip(), 0));
        let l = TcpListener::bind(want)
            .await
            .with_context(|| format!("binding H.245 {want}"))?;
        let a = l.local_addr()?;
        tasks.push(spawn_acceptor(l, tx.clone(), true));
        Some(a)
    } else {
        None
    };

    let mut call = Call::new(CallConfig {
        role,
        mode: cfg.mode,
        alias: cfg.alias.clone(),
        target: cfg.call.clone(),
        signal: cfg.signal,
        h245: h245_addr,
        offer_h245: cfg.offer_h245,
        rtp: cfg.media,
        seed: cfg.seed,
    });

    let mut signal_w: Option<OwnedWriteHalf> = None;
    // The caller's listener stays bound to the end (its
    // sourceCallSignalAddress); nothing is accepted on it.
    let mut _bound = None;
    match (role, cfg.via) {
        (Role::Caller, Some(via)) => {
            // The listener stays bound (our sourceCallSignalAddress); the
            // call goes out from our IP.
            let s = connect_from(cfg.signal.ip(), via)
                .await
                .with_context(|| format!("connecting to {via}"))?;
            let (r, w) = s.into_split();
            tasks.push(spawn_reader(
                r,
                tx.clone(),
                Event::Signal,
                Event::SignalClosed,
            ));
            signal_w = Some(w);
            call.start();
            _bound = Some(signal_listener);
        }
        _ => tasks.push(spawn_acceptor(signal_listener, tx.clone(), false)),
    }

    let mut h245_w: Option<OwnedWriteHalf> = None;
    let mut h245_conn = 0u64;
    let mut next_conn = 0u64;
    let mut hangup_at: Option<Instant> = None;
    let mut force_at: Option<Instant> = None;
    let mut media_dest = None;
    let ssrc = (cfg.seed as u32) ^ 0x5eed_0000 | 1;
    let far = deadline + Duration::from_secs(3600);

    loop {
        while let Some(o) = call.poll() {
            match o {
                Output::Signal(f) => write(&mut signal_w, &f, "call signalling").await,
                Output::H245(f) => write(&mut h245_w, &f, "H.245").await,
                Output::ConnectH245(to) => {
                    let tx = tx.clone();
                    let ip = cfg.signal.ip();
                    tasks.push(tokio::spawn(async move {
                        let ev = match connect_from(ip, to).await {
                            Ok(s) => Event::H245Stream(s, to, Origin::Connected),
                            Err(e) => Event::H245Failed(to, e.to_string()),
                        };
                        let _ = tx.send(ev).await;
                    }));
                }
                Output::Media { rtp, rtcp } => {
                    media_dest = Some(rtp);
                    tasks.push(spawn_sender(
                        media_tx.clone(),
                        rtp,
                        rtcp,
                        cfg.packets,
                        ssrc,
                        counts.clone(),
                    ));
                    if role == Role::Caller {
                        hangup_at = Some(Instant::now() + cfg.hold);
                    }
                }
                Output::Done(why) => {
                    tracing::info!(alias = %cfg.alias, "call ended: {}", why.name())
                }
            }
        }
        if call.ended() {
            break;
        }
        tokio::select! {
            _ = sleep_until(deadline) => {
                tracing::warn!(alias = %cfg.alias, "overall timeout");
                call.timeout();
            }
            _ = sleep_until(hangup_at.unwrap_or(far)), if hangup_at.is_some() => {
                hangup_at = None;
                force_at = Some(Instant::now() + END_SESSION_WAIT);
                call.hangup();
            }
            _ = sleep_until(force_at.unwrap_or(far)), if force_at.is_some() => {
                force_at = None;
                call.force_release();
            }
            ev = rx.recv() => match ev {
                None => call.timeout(),
                Some(Event::Signal(f)) => call.on_signal(&f),
                Some(Event::SignalClosed) => call.signal_closed(),
                Some(Event::SignalAccepted(s, peer)) => {
                    if signal_w.is_some() {
                        tracing::info!(%peer, "another call-signalling connection: closed");
                    } else {
                        tracing::info!(%peer, "call-signalling connection accepted");
                        let (r, w) = s.into_split();
                        tasks.push(spawn_reader(r, tx.clone(), Event::Signal, Event::SignalClosed));
                        signal_w = Some(w);
                    }
                }
                Some(Event::H245Stream(s, peer, origin)) => {
                    if call.h245_connection(origin, peer) {
                        next_conn += 1;
                        h245_conn = next_conn;
                        let id = h245_conn;
                        let (r, w) = s.into_split();
                        tasks.push(spawn_reader(r, tx.clone(), move |f| Event::H245Frame(id, f), Event::H245Closed(id)));
                        h245_w = Some(w);
                    }
                }
                Some(Event::H245Failed(to, why)) => call.h245_connect_failed(to, &why),
                Some(Event::H245Frame(id, f)) => {
                    if id == h245_conn {
                        call.on_h245(&f);
                    }
                }
                Some(Event::H245Closed(id)) => {
                    if id == h245_conn {
                        call.h245_closed();
                        h245_w = None;
                    }
                }
            }
        }
    }

    // Close the connections (our FIN after the RELEASE COMPLETE) and stop
    // sending; a moment for what is in flight.
    for w in [&mut h245_w, &mut signal_w].into_iter().flatten() {
        let _ = w.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for t in &tasks {
        t.abort();
    }
    let (tally, sources) = counts
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Report {
        role,
        mode: call.mode(),
        alias: cfg.alias.clone(),
        sent: counts.sent.load(Ordering::Relaxed),
        received: tally.packets,
        intact: tally.intact,
        rtp_sources: sources,
        rtcp_sent: counts.rtcp_sent.load(Ordering::Relaxed),
        rtcp_received: counts.rtcp_received.load(Ordering::Relaxed),
        media_dest,
        released_by: call.released().or(Some(Released::Timeout)),
        messages: call.messages().to_vec(),
    })
}
