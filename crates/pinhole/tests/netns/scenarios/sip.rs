//! SIP: Fig. 11 with an APS in each network (sipp phones), Fig. 12 with
//! smart terminals and no APS, and a hold longer than the firewalls' UDP
//! timeout followed by a resume.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use pinhole_tests::sipp::sdp::MediaDirection;

use super::control::{intact_of, smart_ua_args};
use super::{Scenario, aps_call, hang_up};
use crate::bed::{APS_IP, Ns};
use crate::ctx::{ApsOptions, Ctx, SIP_PORT, SIP_WAIT, example_bin, mpr_addr};

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "sip::hold_longer_than_udp_timeout",
        negative_control: false,
        known_bug: None,
        run: hold_resume,
    },
    Scenario {
        name: "sip::fig11_with_aps",
        negative_control: false,
        known_bug: None,
        run: fig11,
    },
    Scenario {
        name: "sip::fig12_smart_terminals_no_aps",
        negative_control: false,
        known_bug: None,
        run: fig12,
    },
];

/// Fig. 11: sipp phones, each behind its APS; the caller's APS reserves
/// and binds before the INVITE leaves.
fn fig11(ctx: &mut Ctx) -> Result<()> {
    ctx.start_mpr()?;
    ctx.start_aps(0, ApsOptions::default())?;
    ctx.start_aps(1, ApsOptions::default())?;
    let call = aps_call(ctx, 0, ("uac_basic.xml", "uas_basic.xml"), Duration::from_secs(4))?;
    ctx.two_way("media", &call.media[0], &call.media[1], call.to[0], call.to[1], 100)?;
    let m = ctx.note_relay()?;
    ensure!(
        m.contains("pinhole_signaling_total{protocol=\"sip\",event=\"sdp_rewritten\"} 2"),
        "the MPR did not rewrite both SDP bodies"
    );
    ctx.note_drops()?;
    hang_up(ctx, call)
}

/// Fig. 12: no APS anywhere; two smart terminals register themselves, the
/// caller reserves and binds, the callee binds, media both ways.
fn fig12(ctx: &mut Ctx) -> Result<()> {
    let ua = example_bin("sip_smart_ua")?;
    ctx.start_mpr()?;
    ctx.bed
        .spawn("ua2", Ns::Corp(1), &ua, &smart_ua_args(1, &["--answer".into()]))?;
    ctx.bed.wait_log("ua2", "waiting for a call", Duration::from_secs(15))?;
    ctx.bed.spawn(
        "ua1",
        Ns::Corp(0),
        &ua,
        &smart_ua_args(0, &["--call".into(), "sip:bob@corp2.example".into()]),
    )?;
    let ok1 = ctx.bed.wait_exit("ua1", Duration::from_secs(40))?;
    let ok2 = ctx.bed.wait_exit("ua2", Duration::from_secs(10))?;
    for (i, ok) in [(1, ok1), (2, ok2)] {
        let log = ctx.bed.log(&format!("ua{i}"));
        let line = log
            .lines()
            .find(|l| l.starts_with("RTP sent"))
            .unwrap_or("(no RTP line)")
            .to_owned();
        ctx.note(format!("corp{i} smart terminal: {line}"));
        ensure!(ok, "sip_smart_ua in corp{i} failed:\n{log}");
        let got = intact_of(&line).ok_or_else(|| anyhow!("no intact count in {line:?}"))?;
        ensure!(got >= 95, "corp{i}'s terminal received only {got} of 100 packets");
    }
    ctx.note_relay()?;
    ctx.note_drops()?;
    Ok(())
}

/// A call, media, then a hold (re-INVITE a=sendonly) during which no RTP
/// flows at all for longer than the UDP timeout (only the APSs'
/// keepalives cross the firewalls), then a resume with media both ways
/// through the same media pinholes.
fn hold_resume(ctx: &mut Ctx) -> Result<()> {
    ctx.start_mpr()?;
    ctx.start_aps(0, ApsOptions::default())?;
    ctx.start_aps(1, ApsOptions::default())?;
    let timeout = ctx.udp_timeout();
    // Each sipp pause (after the first ACK, on hold, after the resume).
    let pause = (timeout * 4 / 5).max(Duration::from_secs(5));
    let mut call = aps_call(ctx, 0, ("uac_hold.xml", "uas_hold.xml"), pause)?;
    ctx.two_way("before hold", &call.media[0], &call.media[1], call.to[0], call.to[1], 50)?;
    let silent_since = Instant::now();
    let pinholes = media_pinholes(ctx)?;
    for (i, p) in pinholes.iter().enumerate() {
        ctx.note(format!("fw{}: media pinholes before hold: {p:?}", i + 1));
    }
    // The resume is the third offer the callee gets (call, hold, resume).
    let offers = call.uas.wait_received_sdps(3, pause * 3 + SIP_WAIT)?;
    let answers = call.uac.wait_received_sdps(3, SIP_WAIT)?;
    let hold_offer = &offers[1];
    ensure!(
        hold_offer.sdp.audio_direction() == Some(MediaDirection::SendOnly),
        "the second offer is not a hold (a=sendonly): {:?}",
        hold_offer.sdp.audio_direction()
    );
    let to_callee = answers[2].audio_addr().context("resume answer: no audio address")?;
    let to_caller = offers[2].audio_addr().context("resume offer: no audio address")?;
    // Let the resume's ACK through before the media.
    std::thread::sleep(Duration::from_millis(300));
    let silent = silent_since.elapsed();
    ctx.note(format!(
        "hold: no RTP either way for {:.1} s (UDP timeout {} s); resume names {to_caller} / {to_callee}",
        silent.as_secs_f64(),
        timeout.as_secs()
    ));
    ensure!(silent > timeout, "the hold ({silent:?}) was not longer than the UDP timeout");
    let after = media_pinholes(ctx)?;
    for (i, p) in after.iter().enumerate() {
        ctx.note(format!("fw{}: media pinholes after hold: {p:?}", i + 1));
        ensure!(
            pinholes[i].iter().all(|m| p.contains(m)),
            "fw{}: a media pinhole closed during the hold: before {:?}, after {p:?}",
            i + 1,
            pinholes[i]
        );
    }
    ctx.two_way("after resume", &call.media[0], &call.media[1], to_callee, to_caller, 100)?;
    ctx.note_relay()?;
    ctx.note_drops()?;
    call.to = [to_callee, to_caller];
    hang_up(ctx, call)
}

/// Each firewall's conntrack mappings of the APS's media ports toward the
/// MPR (`APS:port → public mapping`).
fn media_pinholes(ctx: &Ctx) -> Result<[Vec<String>; 2]> {
    let mut out: [Vec<String>; 2] = Default::default();
    for (i, o) in out.iter_mut().enumerate() {
        *o = ctx
            .bed
            .conntrack(i)?
            .into_iter()
            .filter(|e| e.src.ip() == APS_IP[i] && e.dst.ip() == mpr_addr().ip() && e.src.port() != SIP_PORT && e.dst.port() != SIP_PORT)
            .map(|e| format!("{} → {} as {}", e.src, e.dst, e.mapped))
            .collect();
        o.sort();
    }
    Ok(out)
}
