//! The control flows: registration held through the real firewalls for
//! several conntrack timeouts (Fig. 6) then a call into the network whose
//! pinhole it kept (Fig. 7), a smart terminal as the callee (Fig. 8), and
//! the "no CMPH response" variant.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};

use super::{Scenario, basic_call, wrap_up};
use crate::bed::Ns;
use crate::ctx::{
    ApsOptions, CORP, Ctx, SIP_WAIT, aps_sip, example_bin, metric, mpr_addr, phone_media, rtp_line,
};

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "control::fig6_registration_held_then_fig7_call",
        negative_control: false,
        known_bug: None,
        run: registration_held,
    },
    Scenario {
        name: "control::fig8_smart_terminal_callee",
        negative_control: false,
        known_bug: None,
        run: fig8_smart_terminal,
    },
    Scenario {
        name: "control::no_cmph_response",
        negative_control: false,
        known_bug: None,
        run: no_cmph_response,
    },
    Scenario {
        name: "control::no_cmph_response_offerer",
        negative_control: false,
        known_bug: None,
        run: no_cmph_response_offerer,
    },
];

/// Both APSs register, then nothing but their refreshes crosses the
/// firewalls for three UDP timeouts. The conntrack entry of each signaling
/// pinhole must still be there with the same public mapping (each listing
/// shows it expiring within the timeout, so only the refreshes keep it),
/// the MPR must not have seen the route move, and a call from corp2 into
/// corp1 must arrive through corp1's pinhole with media both ways.
fn registration_held(ctx: &mut Ctx) -> Result<()> {
    ctx.start_sip_daemons()?;
    let timeout = ctx.udp_timeout();
    let pinhole = |ctx: &Ctx, i: usize| -> Result<crate::bed::CtEntry> {
        ctx.bed
            .conntrack(i)?
            .into_iter()
            .find(|e| e.src == aps_sip(i) && e.dst == mpr_addr())
            .ok_or_else(|| {
                anyhow!(
                    "fw{}: no conntrack entry {} → {}",
                    i + 1,
                    aps_sip(i),
                    mpr_addr()
                )
            })
    };
    let first = [pinhole(ctx, 0)?, pinhole(ctx, 1)?];
    for (i, e) in first.iter().enumerate() {
        ctx.note(format!(
            "fw{}: signaling pinhole {} → {} mapped to {}, expires in {} s",
            i + 1,
            e.src,
            e.dst,
            e.mapped,
            e.ttl
        ));
        ensure!(
            e.ttl <= timeout.as_secs(),
            "fw{}: entry expires in {} s, more than the {timeout:?} timeout: the short timeout is not in force",
            i + 1,
            e.ttl
        );
    }
    let start = Instant::now();
    for round in 1..=3u32 {
        std::thread::sleep(timeout);
        for (i, e0) in first.iter().enumerate() {
            let e = pinhole(ctx, i).with_context(|| format!("after {round} timeouts"))?;
            ensure!(
                e.mapped == e0.mapped,
                "fw{}: the pinhole moved from {} to {} after {round} timeouts",
                i + 1,
                e0.mapped,
                e.mapped
            );
            ctx.note(format!(
                "after {:.0} s: fw{} still maps {} → {} (expires in {} s)",
                start.elapsed().as_secs_f64(),
                i + 1,
                e.src,
                e.mapped,
                e.ttl
            ));
        }
    }
    let m = ctx.mpr()?;
    let refreshed = metric(&m, "pinhole_registrations_total{result=\"refreshed\"}").unwrap_or(0.0);
    let moved = metric(&m, "pinhole_routes_moved_total").unwrap_or(-1.0);
    let live = metric(&m, "pinhole_routes_live").unwrap_or(0.0);
    ctx.note(format!(
        "MPR: {live} routes live, {refreshed} refreshes, {moved} route moves over {:.0} s",
        start.elapsed().as_secs_f64()
    ));
    ensure!(live == 2.0, "MPR: {live} routes live, want 2");
    ensure!(
        moved == 0.0,
        "MPR: routes moved {moved} times: a pinhole was lost and re-opened"
    );
    ensure!(
        refreshed >= 4.0,
        "MPR: only {refreshed} refreshes in three timeouts"
    );

    // Fig. 7: the call comes in from outside through corp1's held pinhole.
    let call = basic_call(ctx, 1, "Fig. 7 media")?;
    wrap_up(ctx, call)
}

/// Fig. 8: corp2 has no APS; its smart terminal (`sip_smart_ua --answer`)
/// registers itself and binds its own media pinhole. corp1's sipp phone
/// calls it through APS1 and exchanges the terminal's test RTP format.
fn fig8_smart_terminal(ctx: &mut Ctx) -> Result<()> {
    let ua = example_bin("sip_smart_ua")?;
    ctx.start_mpr()?;
    ctx.start_aps(0, ApsOptions::default())?;
    let args = smart_ua_args(1, &["--answer".into()]);
    ctx.bed.spawn("ua2", Ns::Corp(1), &ua, &args)?;
    ctx.bed
        .wait_log("ua2", "waiting for a call", Duration::from_secs(15))?;
    let media = ctx.media_socket(0)?;
    let mut uac = ctx
        .uac(
            0,
            "uac_basic.xml",
            aps_sip(0),
            1,
            phone_media(0),
            Duration::from_secs(4),
        )
        .service("bob")
        .spawn()?;
    let answer = uac.wait_received_sdps(1, SIP_WAIT)?.remove(0);
    let to = answer
        .audio_addr()
        .context("the answer has no audio address")?;
    ctx.note(format!(
        "SIP: corp1 sipp phone called bob@corp2.example (smart terminal); the answer names {to}"
    ));
    let (sent, got) = examples_rtp(&media, to, 100, Duration::from_secs(3))?;
    uac.wait()?.ensure_success().context("caller sipp")?;
    let ua_ok = ctx.bed.wait_exit("ua2", Duration::from_secs(20))?;
    let log = ctx.bed.log("ua2");
    let ua_line = rtp_line(&log);
    ctx.note(format!(
        "corp1 phone: sent {sent}, received {got} intact from the terminal"
    ));
    ctx.note(format!("corp2 smart terminal: {ua_line}"));
    ensure!(ua_ok, "sip_smart_ua failed:\n{log}");
    ensure!(
        got >= 90,
        "corp1 received only {got} of the terminal's 100 packets"
    );
    let ua_got = intact_of(&ua_line).ok_or_else(|| anyhow!("no intact count in {ua_line:?}"))?;
    ensure!(
        ua_got >= 95,
        "the terminal received only {ua_got} of {sent} packets"
    );
    ctx.note_relay()?;
    ctx.note_drops()?;
    Ok(())
}

/// The "no CMPH response" variant on the answering side: the callee's APS
/// (corp2) binds with CMPH indications and writes its own listening
/// address into the answer; the MPR binds the leg from the indication's
/// source through the firewall and ignores the private address.
fn no_cmph_response(ctx: &mut Ctx) -> Result<()> {
    indication_call(ctx, [false, true])
}

/// The same with the offering APS (corp1) in indication mode too: it
/// reserves its leg, binds it with indications and, knowing no pinhole
/// address, names the reserved relay address in its offer. (This scenario
/// found the bug where it wrote port B and the MPR opened a second leg.)
fn no_cmph_response_offerer(ctx: &mut Ctx) -> Result<()> {
    indication_call(ctx, [true, true])
}

/// A corp1 → corp2 call with each APS in indication mode or not.
fn indication_call(ctx: &mut Ctx, indication: [bool; 2]) -> Result<()> {
    ctx.start_mpr()?;
    for (i, &indication) in indication.iter().enumerate() {
        ctx.start_aps(
            i,
            ApsOptions {
                indication,
                ..ApsOptions::default()
            },
        )?;
    }
    let call = basic_call(ctx, 0, "media")?;
    for (i, &ind) in indication.iter().enumerate() {
        let m = ctx.metrics(Ns::Corp(i), crate::ctx::aps_metrics(i))?;
        let sent = metric(&m, "pinhole_client_cmph_sent_total").unwrap_or(0.0);
        let how = if ind {
            "indications, never answered"
        } else {
            "requests"
        };
        ctx.note(format!("APS{}: {sent} CMPH messages sent ({how})", i + 1));
        ensure!(sent >= 1.0, "APS{} sent no CMPH", i + 1);
    }
    wrap_up(ctx, call)
}

/// `sip_smart_ua` arguments for a terminal as corp `i`'s phone (`bob` in
/// corp2, `alice` in corp1).
pub(crate) fn smart_ua_args(i: usize, extra: &[String]) -> Vec<String> {
    let user = if i == 0 { "alice" } else { "bob" };
    let mut a: Vec<String> = vec![
        "--sip".into(),
        crate::ctx::phone_sip(i).to_string(),
        "--mpr".into(),
        mpr_addr().to_string(),
        "--network".into(),
        CORP[i].id.into(),
        "--credential".into(),
        CORP[i].credential.into(),
        "--media".into(),
        phone_media(i).to_string(),
        "--aor".into(),
        format!("{user}@{}", CORP[i].domain),
        "--packets".into(),
        "100".into(),
        "--timeout-secs".into(),
        "30".into(),
    ];
    a.extend(extra.iter().cloned());
    a
}

/// The `intact` count of a `sip_smart_ua` line `RTP sent N (B bytes),
/// received M (B bytes, K intact)`.
pub(crate) fn intact_of(line: &str) -> Option<u64> {
    let before = line.split(" intact").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

/// Sends `count` of the smart terminal's test packets from `sock` to `to`
/// (20 ms apart) while counting the intact ones arriving at `sock`, for
/// `listen` in all. Returns (sent, intact received).
fn examples_rtp(
    sock: &UdpSocket,
    to: std::net::SocketAddr,
    count: u16,
    listen: Duration,
) -> Result<(u32, u32)> {
    use pinhole_examples::rtp::{check, packet};
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let start = Instant::now();
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut sent = 0u32;
            for seq in 0..count {
                let due = start + Duration::from_millis(20) * u32::from(seq);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                if sock.send_to(&packet(0xc0de_0001, seq), to).is_ok() {
                    sent += 1;
                }
            }
            sent
        });
        let mut got = std::collections::BTreeSet::new();
        let mut buf = [0u8; 2048];
        while start.elapsed() < listen {
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && let Some((ssrc, seq)) = buf.get(..n).and_then(check)
            {
                got.insert((ssrc, seq));
            }
        }
        let sent = sender.join().map_err(|_| anyhow!("sender panicked"))?;
        Ok((sent, u32::try_from(got.len()).unwrap_or(u32::MAX)))
    })
}
