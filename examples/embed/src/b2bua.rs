//! A minimal B2BUA leg that anchors its calls' media at the MPR engine:
//! every SDP that crosses it names relay addresses of its own relay.
//!
//! Routing is the softswitch's (here: everything from the caller's side
//! goes to the callee's side and back); what Pinhole adds is the media
//! step, in the order of `pinhole_sip`'s crate docs:
//! classify → read SDP → plan (relay legs live) → rewrite → forward.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pinhole_core::alg::call::{MediaCall, Place};
use pinhole_core::alg::live::{LiveMpr, apply_commands};
use pinhole_core::alg::{AlgEvent, Outbox};
use pinhole_core::intent::IntentKind;
use pinhole_core::mpr::{self, Engine};
use pinhole_core::patch::Patch;
use pinhole_core::ports::PortRange;
use pinhole_core::{CallKey, Side};
use pinhole_sip::Message;
use pinhole_sip::media::{Negotiation, sdp_body, sender};

use crate::relay::UdpRelay;

/// One call through the leg.
struct Call {
    caller_tag: Vec<u8>,
    neg: Negotiation,
    media: MediaCall,
}

/// The B2BUA leg: a socket toward the caller's side, one toward the
/// callee's, the MPR engine and the relay.
pub struct B2bua {
    /// Socket the caller sends to.
    pub a: UdpSocket,
    /// Socket that sends to the callee.
    pub b: UdpSocket,
    callee: SocketAddr,
    caller: Option<SocketAddr>,
    engine: Engine,
    relay: UdpRelay,
    calls: HashMap<Vec<u8>, Call>,
    out: Outbox,
    /// Messages whose media could not be planned or rewritten.
    pub refused: u64,
}

impl B2bua {
    /// A leg on `ip` toward `callee`, with relay ports from `ports`.
    pub fn new(ip: IpAddr, callee: SocketAddr, ports: PortRange, now: Instant) -> Result<Self> {
        let mut cfg = mpr::Config::new(ip, [42; 32]);
        cfg.ports = ports;
        // No control sockets: this softswitch speaks no CMPH, its parties
        // are public (their legs are fixed to the SDP's addresses).
        cfg.control_ports = Vec::new();
        let a = UdpSocket::bind((ip, 0)).context("caller-side socket")?;
        let b = UdpSocket::bind((ip, 0)).context("callee-side socket")?;
        for s in [&a, &b] {
            s.set_nonblocking(true)?;
        }
        Ok(Self {
            a,
            b,
            callee,
            caller: None,
            engine: Engine::new(cfg, now).context("engine")?,
            relay: UdpRelay::default(),
            calls: HashMap::new(),
            out: Outbox::new(),
            refused: 0,
        })
    }

    /// Legs the relay holds now.
    pub fn legs(&self) -> usize {
        self.relay.legs()
    }

    /// Legs the relay could not open (a port held elsewhere).
    pub fn relay_refusals(&self) -> u64 {
        self.relay.refused
    }

    /// Media datagrams the relay forwarded.
    pub fn forwarded(&self) -> u64 {
        self.relay.forwarded
    }

    /// The next thing that happened to a call.
    pub fn poll_event(&mut self) -> Option<AlgEvent> {
        self.out.pop_event()
    }

    /// One turn of the run loop: signaling in both directions, media, time.
    pub fn turn(&mut self, now: Instant) -> Result<()> {
        let mut buf = [0u8; 4096];
        // 1. Receive signaling from either side.
        while let Ok((n, from)) = self.a.recv_from(&mut buf) {
            self.caller = Some(from);
            let bytes = buf[..n].to_vec();
            self.signaling(now, &bytes, Side::A)?;
        }
        while let Ok((n, _)) = self.b.recv_from(&mut buf) {
            let bytes = buf[..n].to_vec();
            self.signaling(now, &bytes, Side::B)?;
        }
        // 5. Media and time: the relay forwards, the engine hears what
        // the relay saw and expires what went quiet.
        for r in self.relay.pump(now) {
            self.engine.handle_relay(now, r);
        }
        self.engine.handle_timeout(now);
        apply_commands(now, &mut self.engine, &mut self.relay);
        Ok(())
    }

    /// A SIP message that arrived on `side`'s socket.
    fn signaling(&mut self, now: Instant, bytes: &[u8], arrived: Side) -> Result<()> {
        let msg = Message::parse(bytes).context("unparsable SIP")?;
        let call_id = msg.call_id().context("no Call-ID")?.to_vec();
        let call = self.calls.entry(call_id.clone()).or_insert_with(|| Call {
            caller_tag: msg.from_tag().unwrap_or_default().to_vec(),
            neg: Negotiation::default(),
            media: MediaCall::new(CallKey::new(&call_id)),
        });
        // 2. What the message means for the media, and its streams.
        let body = sdp_body(&msg, self.a.local_addr()?.ip())?;
        let kind = call.neg.classify(&msg, body.is_some());
        let from = sender(&msg, &call.caller_tag);
        let mut patch = Patch::new();
        match (kind, body) {
            (Some(IntentKind::Teardown), _) => {
                call.media.teardown(
                    now,
                    &mut LiveMpr::new(&mut self.engine, &mut self.relay),
                    &mut self.out,
                );
            }
            (Some(kind), Some(body)) => {
                // 3. Plan: the relay legs are open when this returns.
                let mut ctx = LiveMpr::new(&mut self.engine, &mut self.relay);
                let planned = call.media.plan(
                    now,
                    &mut ctx,
                    &mut self.out,
                    kind,
                    from,
                    &Place::Public,
                    &Place::Public,
                    body.endpoints(),
                );
                match planned {
                    // 4. Write the relay addresses into the SDP.
                    Ok(p) => body.rewrite(&msg, &p.plan.endpoints, &mut patch)?,
                    Err(e) => {
                        // A real softswitch answers 503 here; the example
                        // forwards unchanged and counts it.
                        self.refused += 1;
                        eprintln!("media plan refused: {e}");
                    }
                }
            }
            _ => {}
        }
        let out = patch.apply(bytes)?;
        // The softswitch's own routing: across the leg.
        match arrived {
            Side::A => {
                self.b.send_to(&out, self.callee)?;
            }
            Side::B => {
                if let Some(caller) = self.caller {
                    self.a.send_to(&out, caller)?;
                }
            }
        }
        Ok(())
    }
}

/// How long the example's loops may run at the most.
pub const DEADLINE: Duration = Duration::from_secs(10);
