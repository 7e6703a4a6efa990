//! Embedding Pinhole in a softswitch: a minimal B2BUA leg anchors its
//! calls' media through a bare [`pinhole_core::mpr::Engine`] and a relay
//! of its own ([`relay::UdpRelay`], std sockets) — no tokio, no
//! `pinhole-net`, no Pinhole daemon. `docs/embedding.md` explains the
//! pieces; `pinhole_sip`'s crate docs give the run loop step by step.
//!
//! [`run`] plays one call between two scripted phones on loopback:
//! INVITE with an offer, 200 with an answer, ACK, RTP both ways through the
//! relay, BYE. Each phone only ever sees relay addresses.
//!
//! ```
//! let report = pinhole_embed::run(20).unwrap();
//! assert_eq!(report.caller_received, 20);
//! assert_eq!(report.callee_received, 20);
//! assert_eq!(report.legs_after_bye, 0);
//! ```

pub mod b2bua;
pub mod phone;
pub mod relay;

use std::net::IpAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use pinhole_core::alg::AlgEvent;
use pinhole_core::ports::PortRange;

use b2bua::{B2bua, DEADLINE};
use phone::Phone;

/// What one call through the B2BUA leg did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// RTP packets each phone sent.
    pub sent: u16,
    /// RTP packets the caller received (from the relay address it was given).
    pub caller_received: usize,
    /// RTP packets the callee received.
    pub callee_received: usize,
    /// Datagrams a phone received from anywhere else.
    pub foreign: u64,
    /// Relay legs while the call was up.
    pub legs_during: usize,
    /// Relay legs after the BYE.
    pub legs_after_bye: usize,
    /// Legs the relay refused to open (ports held by another process).
    pub relay_refusals: u64,
    /// The relay address the callee was told to send to.
    pub callee_sends_to: String,
    /// The engine's events for the call, by name.
    pub events: Vec<&'static str>,
}

fn event_name(e: &AlgEvent) -> &'static str {
    match e {
        AlgEvent::CallAnchored { .. } => "call_anchored",
        AlgEvent::MediaPlanned { .. } => "media_planned",
        AlgEvent::PlanRefused { .. } => "plan_refused",
        AlgEvent::CallEnded { .. } => "call_ended",
        _ => "other",
    }
}

/// Steps everything until `done` says so, bounded by [`DEADLINE`].
fn until(
    b2b: &mut B2bua,
    phones: &mut [&mut Phone; 2],
    mut done: impl FnMut(&mut B2bua, &mut [&mut Phone; 2]) -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        b2b.turn(Instant::now())?;
        if done(b2b, phones)? {
            return Ok(());
        }
        sleep(Duration::from_millis(1));
    }
    bail!("no progress within {DEADLINE:?}")
}

/// Whether the next SIP message a phone receives starts with `start`.
fn got(p: &mut Phone, start: &[u8]) -> Result<bool> {
    match p.receive()? {
        Some(m) if m.starts_with(start) => Ok(true),
        Some(m) => bail!(
            "unexpected message: {}",
            String::from_utf8_lossy(m.split(|&b| b == b'\r').next().unwrap_or_default())
        ),
        None => Ok(false),
    }
}

/// One call with `packets` RTP packets each way, relay ports from
/// 41000–41899.
pub fn run(packets: u16) -> Result<Report> {
    run_with(packets, PortRange::new(41_000, 41_899)?)
}

/// One call with `packets` RTP packets each way and relay ports from
/// `ports`. A port another process holds is skipped: the relay refuses
/// the leg, the engine drops it and plans the stream on another pair
/// before any SDP names it (the [`pinhole_core::alg::live`] contract).
pub fn run_with(packets: u16, ports: PortRange) -> Result<Report> {
    let lo: IpAddr = "127.0.0.1".parse()?;
    let mut caller = Phone::new(lo)?;
    let mut callee = Phone::new(lo)?;
    let mut b2b = B2bua::new(lo, callee.sip.local_addr()?, ports, Instant::now())?;
    caller.sip.send_to(&caller.invite()?, b2b.a.local_addr()?)?;
    caller.signaling_peer = Some(b2b.a.local_addr()?);
    let mut phones = [&mut caller, &mut callee];

    // INVITE → callee (its SDP names a relay address); 200 → caller; ACK.
    until(&mut b2b, &mut phones, |_, p| {
        if !got(p[1], b"INVITE ")? {
            return Ok(false);
        }
        p[1].reply(&p[1].ok_with_answer()?)?;
        Ok(true)
    })?;
    until(&mut b2b, &mut phones, |_, p| {
        if !got(p[0], b"SIP/2.0 200")? {
            return Ok(false);
        }
        p[0].reply(&p[0].ack()?)?;
        Ok(true)
    })?;
    until(&mut b2b, &mut phones, |_, p| got(p[1], b"ACK "))?;
    let legs_during = b2b.legs();
    let callee_sends_to = phones[1]
        .peer_media
        .map(|a| a.to_string())
        .unwrap_or_default();

    // RTP both ways, a packet each per millisecond, through the relay.
    let mut seq = 0u16;
    until(&mut b2b, &mut phones, |_, p| {
        if seq < packets {
            p[0].send_rtp(seq)?;
            p[1].send_rtp(seq)?;
            seq += 1;
        }
        p[0].read_rtp();
        p[1].read_rtp();
        let all = usize::from(packets);
        Ok(seq == packets && p[0].received.len() >= all && p[1].received.len() >= all)
    })?;

    // BYE: the media goes with it.
    phones[0].reply(&phones[0].bye()?)?;
    until(&mut b2b, &mut phones, |_, p| {
        if !got(p[1], b"BYE ")? {
            return Ok(false);
        }
        p[1].reply(&p[1].ok_to_bye()?)?;
        Ok(true)
    })?;
    until(&mut b2b, &mut phones, |_, p| got(p[0], b"SIP/2.0 200"))?;
    let mut events = Vec::new();
    while let Some(e) = b2b.poll_event() {
        events.push(event_name(&e));
    }
    Ok(Report {
        sent: packets,
        caller_received: caller.received.len(),
        callee_received: callee.received.len(),
        foreign: caller.foreign + callee.foreign,
        legs_during,
        legs_after_bye: b2b.legs(),
        relay_refusals: b2b.relay_refusals(),
        callee_sends_to,
        events,
    })
}
