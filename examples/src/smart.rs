//! The smart terminal of Fig. 12 on real sockets: the [`Ua`] state machine
//! over `pinhole-net`'s client driver. The engine registers the SIP socket
//! with the MPR and opens the media pinhole with CMPH; the UA's SIP leaves
//! through [`ClientHandle::send_signaling`] and its RTP through
//! [`ClientHandle::send_media`]; what the relay port sends back arrives on
//! [`ClientOutputs::media`].
//!
//! Behind a [`pinhole_net::firewall::FirewallSim`] pass a
//! [`pinhole_net::driver::SimRouter`]; on a real network
//! [`pinhole_net::driver::Direct`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use pinhole_core::client::{self, Event, PinholeId};
use pinhole_core::types::Transport;
use pinhole_core::wire::Protocol;
use pinhole_net::driver::client::{self as driver, ClientHandle, ClientOutputs, Media};
use pinhole_net::driver::{SharedRouter, Streaming};
use pinhole_net::relay::{Relay, RelayConfig};
use pinhole_net::tls::ClientTls;
use tokio::time::Instant;

use crate::rtp::{self, Tally};
use crate::sip_ua::{CallState, EndReason, MediaMode, Output, Ua, UaConfig, UaEvent};

/// What a smart terminal needs.
#[derive(Clone, Debug)]
pub struct SmartUaConfig {
    /// Our address of record, `user@domain`.
    pub aor: String,
    /// Our SIP socket (port 0 picks one).
    pub sip: SocketAddr,
    /// The MPR's SIP (and control) address.
    pub mpr: SocketAddr,
    /// Our network's id at the MPR.
    pub network: String,
    /// Its shared secret.
    pub credential: Vec<u8>,
    /// Our media port (port A); it must be a fixed port.
    pub media: SocketAddr,
    /// Seeds the UA's ids and the engine's generator.
    pub seed: u64,
    /// Signaling to the MPR over one TLS connection opened from here,
    /// verified against this CA file (PEM); `mpr` is then the MPR's TLS
    /// address. `None`: UDP.
    pub tls_ca: Option<std::path::PathBuf>,
}

/// A running smart terminal.
pub struct SmartUa {
    ua: Ua,
    handle: ClientHandle,
    out: ClientOutputs,
    sip: SocketAddr,
    pinhole: Option<PinholeId>,
    registered: Option<SocketAddr>,
    events: VecDeque<UaEvent>,
    ssrc: u32,
    seq: u16,
    sent: Tally,
    received: Tally,
}

/// The tokio clock as the engines take it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl SmartUa {
    /// Binds the SIP socket, starts the client engine (which registers at
    /// once) and its media relay.
    pub async fn start(cfg: SmartUaConfig, router: SharedRouter) -> Result<Self> {
        if cfg.media.port() == 0 {
            bail!("the media address needs a fixed port");
        }
        let sock = tokio::net::UdpSocket::bind(cfg.sip)
            .await
            .with_context(|| format!("binding the SIP socket {}", cfg.sip))?;
        let sip = sock.local_addr()?;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&cfg.seed.to_le_bytes());
        let mut ccfg = client::Config::new(
            cfg.network.clone(),
            cfg.credential.clone(),
            Protocol::Sip,
            sip,
            cfg.mpr,
            seed,
        );
        if cfg.tls_ca.is_some() {
            ccfg.upstream = Transport::Tls;
        }
        let engine = client::Engine::new(ccfg, now())?;
        let (relay, relay_events) = Relay::start(RelayConfig {
            workers: 1,
            ..RelayConfig::default()
        })?;
        let (handle, out) = match &cfg.tls_ca {
            Some(ca) => {
                let trust = ClientTls::load(ca, None).context("the MPR's CA")?;
                let streams = driver::ClientStreams {
                    streaming: Streaming {
                        client_tls: Some(trust.config()),
                        ..Streaming::default()
                    },
                    framer: Some(pinhole_sip::stream_frame),
                    ..driver::ClientStreams::default()
                };
                driver::spawn_streaming(
                    engine,
                    Arc::new(sock),
                    relay,
                    relay_events,
                    router,
                    None,
                    &streams,
                )
                .await?
            }
            None => driver::spawn(engine, Arc::new(sock), relay, relay_events, router)?,
        };
        let ua = Ua::new(UaConfig {
            aor: cfg.aor,
            sip,
            proxy: cfg.mpr,
            media: cfg.media,
            mode: MediaMode::Pinhole,
            seed: cfg.seed,
            transport: if cfg.tls_ca.is_some() {
                Transport::Tls
            } else {
                Transport::Udp
            },
        });
        Ok(Self {
            ua,
            handle,
            out,
            sip,
            pinhole: None,
            registered: None,
            events: VecDeque::new(),
            ssrc: 0x5eed_0000 ^ (cfg.seed as u32),
            seq: 0,
            sent: Tally::default(),
            received: Tally::default(),
        })
    }

    /// Our SIP socket.
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
    }

    /// The SSRC of the RTP we send.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The client driver's handle (counters, pinholes).
    pub fn client(&self) -> &ClientHandle {
        &self.handle
    }

    /// The call's state.
    pub fn state(&self) -> CallState {
        self.ua.state()
    }

    /// The media address our SDP named (our pinhole).
    pub fn local_media(&self) -> Option<SocketAddr> {
        self.ua.local_media()
    }

    /// The RTP we sent.
    pub fn sent(&self) -> &Tally {
        &self.sent
    }

    /// The RTP that arrived on our media port.
    pub fn received(&self) -> &Tally {
        &self.received
    }

    /// Waits until the SIP socket is registered; the signaling pinhole.
    pub async fn wait_registered(&mut self, within: Duration) -> Result<SocketAddr> {
        let until = Instant::now() + within;
        while self.registered.is_none() {
            if Instant::now() >= until {
                bail!("not registered with the MPR within {within:?}");
            }
            self.step(until).await?;
        }
        self.registered.ok_or_else(|| anyhow!("not registered"))
    }

    /// Calls `target` and waits until the call is up: where our RTP goes.
    pub async fn call(&mut self, target: &str, within: Duration) -> Result<SocketAddr> {
        self.ua.call(now(), target)?;
        self.flush().await?;
        self.wait_established(within).await
    }

    /// Waits for a call and answers it: where our RTP goes.
    pub async fn answer(&mut self, within: Duration) -> Result<SocketAddr> {
        self.wait_established(within).await
    }

    async fn wait_established(&mut self, within: Duration) -> Result<SocketAddr> {
        let until = Instant::now() + within;
        loop {
            while let Some(e) = self.events.pop_front() {
                match e {
                    UaEvent::Established { remote_media } => return Ok(remote_media),
                    UaEvent::Ended { why } => bail!("the call ended before it was up: {why:?}"),
                    UaEvent::Incoming { .. } | UaEvent::Ringing => {}
                }
            }
            if Instant::now() >= until {
                bail!("no call up within {within:?} (state {:?})", self.ua.state());
            }
            self.step(until).await?;
        }
    }

    /// Sends `packets` RTP packets, one per `interval`, to the relay address
    /// of the answer while taking what arrives; stops early if the call
    /// ends. Returns how many were sent.
    pub async fn talk(&mut self, packets: u32, interval: Duration) -> Result<u32> {
        let mut sent = 0;
        let mut next = Instant::now();
        while sent < packets {
            let Some(to) = self
                .ua
                .remote_media()
                .filter(|_| self.ua.state() == CallState::Confirmed)
            else {
                break;
            };
            if Instant::now() >= next {
                let p = rtp::packet(self.ssrc, self.seq);
                self.seq = self.seq.wrapping_add(1);
                let media = Media {
                    local: self.ua.config().media,
                    remote: to,
                    payload: p,
                };
                self.handle.send_media(media.clone()).await?;
                self.sent.add(&media.payload);
                sent += 1;
                next += interval;
            }
            self.step(next).await?;
        }
        Ok(sent)
    }

    /// Keeps taking signaling and media for `d`.
    pub async fn listen(&mut self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.step(until).await?;
        }
        Ok(())
    }

    /// Hangs up and waits until the call is over.
    pub async fn hangup(&mut self, within: Duration) -> Result<EndReason> {
        self.ua.hangup(now())?;
        self.flush().await?;
        self.wait_ended(within).await
    }

    /// Waits until the call is over (the other party hangs up).
    pub async fn wait_ended(&mut self, within: Duration) -> Result<EndReason> {
        let until = Instant::now() + within;
        loop {
            while let Some(e) = self.events.pop_front() {
                if let UaEvent::Ended { why } = e {
                    return Ok(why);
                }
            }
            if Instant::now() >= until {
                bail!("the call did not end within {within:?}");
            }
            self.step(until).await?;
        }
    }

    /// Deregisters and stops the driver (its sockets are closed on return).
    pub async fn shutdown(self) -> Result<()> {
        self.handle.shutdown(Duration::from_secs(2)).await?;
        self.out.task.await?;
        Ok(())
    }

    /// Waits for one input (or `until`) and handles it.
    async fn step(&mut self, until: Instant) -> Result<()> {
        let wake = self
            .ua
            .poll_timeout()
            .map(Instant::from_std)
            .map_or(until, |t| t.min(until));
        tokio::select! {
            ev = self.out.events.recv() => {
                let ev = ev.ok_or_else(|| anyhow!("the client driver stopped"))?;
                self.engine_event(ev);
            }
            sig = self.out.signaling.recv() => {
                let sig = sig.ok_or_else(|| anyhow!("the client driver stopped"))?;
                if let Err(e) = self.ua.handle_sip(now(), sig.remote, &sig.payload) {
                    tracing::warn!(remote = %sig.remote, error = %e, "SIP datagram ignored");
                }
            }
            Some(m) = self.out.media.recv() => self.received.add(&m.payload),
            () = tokio::time::sleep_until(wake) => self.ua.handle_timeout(now()),
        }
        self.flush().await
    }

    fn engine_event(&mut self, ev: Event) {
        match ev {
            Event::Registered { pinhole, .. } => {
                self.registered = Some(pinhole);
                // The outside reaches us at our signaling pinhole.
                self.ua.set_contact(pinhole);
            }
            Event::PinholeOpened { id, pinhole, .. } if Some(id) == self.pinhole => {
                self.ua.pinhole_opened(now(), pinhole);
            }
            Event::PinholeFailed { id, failure } if Some(id) == self.pinhole => {
                tracing::warn!(?failure, "media pinhole failed");
                self.pinhole = None;
                self.ua.pinhole_failed(now());
            }
            Event::Alarm { failure, retry_in } => {
                tracing::warn!(?failure, ?retry_in, "registration failed");
            }
            _ => {}
        }
    }

    /// Carries out what the UA queued.
    async fn flush(&mut self) -> Result<()> {
        while let Some(o) = self.ua.poll_output() {
            match o {
                Output::Sip { to, bytes } => self.handle.send_signaling(to, bytes).await?,
                Output::OpenPinhole(req) => match self.handle.open_pinhole(req).await? {
                    Ok(id) => self.pinhole = Some(id),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open a media pinhole");
                        self.ua.pinhole_failed(now());
                    }
                },
                Output::ClosePinhole => {
                    if let Some(id) = self.pinhole.take() {
                        let _ = self.handle.close_pinhole(id).await?;
                    }
                }
                Output::Event(e) => self.events.push_back(e),
            }
        }
        Ok(())
    }
}
