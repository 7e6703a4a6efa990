//! Negative controls: what the firewalls must stop. Each one also runs with
//! `PINHOLE_NETNS_OPEN_FIREWALL=1` (filter rules left out), where it must
//! get through — proof that the control can fail.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};

use super::{Scenario, aps_call, call_up, hang_up};
use crate::bed::{EXT_IP, FW_WAN, MPR_IP, Ns, SSW_IP};
use crate::ctx::{APS_MEDIA_PORTS, Ctx, RELAY_PORTS, flow, good, metric, phone_media, phone_sip};

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "negative::direct_sdp_without_mpr",
        negative_control: true,
        known_bug: None,
        run: direct_sdp,
    },
    Scenario {
        name: "negative::injection_from_third_host",
        negative_control: true,
        known_bug: None,
        run: injection,
    },
];

/// The same sipp call with no MPR and no APS: a public soft-switch
/// forwards the SIP (the callee's phone opened its signaling pinhole toward
/// it first, as a phone registering would), so the call is set up, but the
/// SDP names the phones' private addresses and the media must die at the
/// firewalls. With the filter rules removed it must flow.
fn direct_sdp(ctx: &mut Ctx) -> Result<()> {
    let caller_side = ctx
        .bed
        .udp(Ns::Inet, SocketAddr::new(IpAddr::V4(SSW_IP), 5060))?;
    let callee_side = ctx
        .bed
        .udp(Ns::Inet, SocketAddr::new(IpAddr::V4(SSW_IP), 5062))?;
    // The callee's "registration": one datagram from its SIP port toward
    // the soft-switch, which learns its public address from it.
    let hello = ctx.bed.udp(Ns::Corp(1), phone_sip(1))?;
    hello.send_to(b"REGISTER", callee_side.local_addr()?)?;
    drop(hello);
    callee_side.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut buf = [0u8; 64];
    let (_, callee_public) = callee_side
        .recv_from(&mut buf)
        .context("the soft-switch did not hear the callee")?;
    ctx.note(format!(
        "soft-switch {SSW_IP}: callee's SIP pinhole is {callee_public}"
    ));
    let ssw = caller_side.local_addr()?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| -> Result<()> {
        s.spawn(|| sip_pipe(&caller_side, &callee_side, callee_public, &stop));
        let r = direct_call(ctx, ssw);
        stop.store(true, Ordering::Relaxed);
        r
    })
}

fn direct_call(ctx: &mut Ctx, ssw: SocketAddr) -> Result<()> {
    let pause = Duration::from_secs(3);
    let media = [ctx.media_socket(0)?, ctx.media_socket(1)?];
    let uas = ctx.uas(1, "uas_basic.xml", phone_media(1), pause).spawn()?;
    let uac = ctx
        .uac(0, "uac_basic.xml", ssw, 1, phone_media(0), pause)
        .spawn()?;
    let call = call_up(ctx, 0, uac, uas, media)?;
    let r = call.rtp(50)?;
    ctx.note(format!("direct media corp1→corp2: {}", flow(&r.a_to_b)));
    ctx.note(format!("direct media corp2→corp1: {}", flow(&r.b_to_a)));
    let drops = ctx.note_drops()?;
    hang_up(ctx, call)?;
    if ctx.open() {
        ensure!(
            good(&r.a_to_b) && good(&r.b_to_a),
            "with the filter removed the direct media should flow both ways"
        );
        ctx.note("open firewall: the direct call's media got through both ways (the control is sensitive)");
    } else {
        ensure!(
            r.a_to_b.received == 0 && r.b_to_a.received == 0,
            "direct media got through the firewalls"
        );
        ensure!(
            drops[0] >= u64::from(r.b_to_a.sent) && drops[1] >= u64::from(r.a_to_b.sent),
            "the firewalls' drop counters do not account for the lost media: {drops:?}"
        );
        ctx.note("as expected: signaling got through (pinholes opened from inside), media did not");
    }
    Ok(())
}

/// A stateless SIP forwarder: what the caller sends to `a` goes to
/// `callee` from `b`, what comes back on `b` goes to the caller. Bounded by
/// `stop` and 60 s.
fn sip_pipe(a: &UdpSocket, b: &UdpSocket, callee: SocketAddr, stop: &AtomicBool) {
    let caller: Mutex<Option<SocketAddr>> = Mutex::new(None);
    let deadline = Instant::now() + Duration::from_secs(60);
    let _ = a.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = b.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        if let Ok((n, from)) = a.recv_from(&mut buf) {
            *caller.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
            let _ = b.send_to(buf.get(..n).unwrap_or_default(), callee);
        }
        if let Ok((n, from)) = b.recv_from(&mut buf)
            && from == callee
            && let Some(to) = *caller.lock().unwrap_or_else(|e| e.into_inner())
        {
            let _ = a.send_to(buf.get(..n).unwrap_or_default(), to);
        }
    }
}

/// A Fig. 11 call with media both ways while a third host on the internet
/// sprays datagrams at every MPR relay port, at both firewalls' public
/// addresses on every relay and media port, and at the phones' private
/// media addresses. None may reach a phone; the call's media must be
/// unharmed. With the filter removed the direct ones must arrive.
fn injection(ctx: &mut Ctx) -> Result<()> {
    ctx.start_sip_daemons()?;
    let call = aps_call(
        ctx,
        0,
        ("uac_basic.xml", "uas_basic.xml"),
        Duration::from_secs(5),
    )?;
    let injector = ctx
        .bed
        .udp(Ns::Ext, SocketAddr::new(IpAddr::V4(EXT_IP), 0))?;
    let mut targets: Vec<SocketAddr> = Vec::new();
    for ip in [MPR_IP, FW_WAN[0], FW_WAN[1]] {
        for p in (RELAY_PORTS.0..=RELAY_PORTS.1).chain(APS_MEDIA_PORTS.0..=APS_MEDIA_PORTS.1) {
            targets.push(SocketAddr::new(IpAddr::V4(ip), p));
        }
    }
    targets.extend([phone_media(0), phone_media(1), call.to[0], call.to[1]]);
    let sent = Arc::new(Mutex::new(0u64));
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            // Five sprays while the media runs.
            for round in 0..5u32 {
                std::thread::sleep(Duration::from_millis(300));
                for t in &targets {
                    let payload = format!("INJECTED round {round} to {t}");
                    if injector.send_to(payload.as_bytes(), t).is_ok() {
                        *sent.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    }
                }
            }
        });
        call.rtp(100)
    })?;
    let sent = *sent.lock().unwrap_or_else(|e| e.into_inner());
    ctx.note(format!(
        "third host {EXT_IP} sent {sent} datagrams to {} targets (MPR relay ports, firewalls' public ports, phones)",
        targets.len()
    ));
    ctx.note(format!("media corp1→corp2: {}", flow(&r.a_to_b)));
    ctx.note(format!("media corp2→corp1: {}", flow(&r.b_to_a)));
    let m = ctx.note_relay()?;
    let drops = ctx.note_drops()?;
    let to_fw = [
        ctx.bed.counter(0, "to the firewall dropped")?,
        ctx.bed.counter(1, "to the firewall dropped")?,
    ];
    ctx.note(format!(
        "firewalls dropped to themselves: fw1 {}, fw2 {}",
        to_fw[0], to_fw[1]
    ));
    hang_up(ctx, call)?;
    let foreign = r.a_to_b.foreign + r.b_to_a.foreign;
    if ctx.open() {
        ensure!(
            foreign > 0,
            "with the filter removed the injected datagrams should reach a phone"
        );
        ctx.note(format!(
            "open firewall: {foreign} injected datagrams reached the phones (the control is sensitive)"
        ));
    } else {
        ensure!(foreign == 0, "{foreign} injected datagrams reached a phone");
        ensure!(
            good(&r.a_to_b) && good(&r.b_to_a),
            "the call's media suffered from the injection"
        );
        let source_drops = metric(&m, "pinhole_relay_drops_total{reason=\"source\"}")
            .ok_or_else(|| anyhow!("no relay source-drop counter"))?;
        ensure!(
            source_drops > 0.0,
            "the relay saw none of the injection at its bound legs"
        );
        ensure!(
            drops[0] + drops[1] > 0,
            "the firewalls dropped nothing inbound"
        );
        ctx.note("as expected: nothing injected reached a phone; media unharmed");
    }
    Ok(())
}
