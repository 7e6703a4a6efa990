//! Each scenario pair phone to phone on loopback, nothing in between: sipp
//! must report success, each side must have received the other's SDP with
//! the other's media address, and RTP sent by the test to those addresses
//! must arrive both ways in the right phase of the call.

use std::time::Duration;

use pinhole_tests::sipp::sdp::MediaDirection;
use pinhole_tests::sipp::sip::SipMessage;
use pinhole_tests::sipp::{SippError, sipp_or_skip};

use crate::common::*;

fn has_method(msgs: &[SipMessage], method: &str) -> bool {
    msgs.iter().any(|m| m.method() == Some(method))
}

fn count_method(msgs: &[SipMessage], method: &str) -> usize {
    msgs.iter().filter(|m| m.method() == Some(method)).count()
}

#[test]
fn basic_call() -> TestResult {
    if !sipp_or_skip("basic_call") {
        return Ok(());
    }
    let mut call = Call::start(Setup::flow("basic_call", "uas_basic.xml", "uac_basic.xml"))?;
    let offer = call.uas.wait_received_sdps(1, WAIT)?.remove(0);
    let answer = call.uac.wait_received_sdps(1, WAIT)?.remove(0);
    assert_eq!(offer.message.method(), Some("INVITE"));
    assert_eq!(offer.audio_addr(), Some(call.caller.media_addr));
    assert!(is_final_invite_ok(&answer.message), "{}", answer.message);
    assert_eq!(answer.audio_addr(), Some(call.callee.media_addr));

    call.media_both_ways(
        "answered",
        answer.audio_addr().unwrap(),
        offer.audio_addr().unwrap(),
    )?;
    // The media flowed inside the call, not after it.
    assert!(!has_method(&call.uas.received()?, "BYE"));

    let (uac, uas) = call.finish()?;
    assert_eq!((uac.calls_successful, uac.calls_failed), (1, 0));
    assert_eq!((uas.calls_successful, uas.calls_failed), (1, 0));
    assert_eq!(uas.received_sdps.len(), 1);
    assert_eq!(uac.received_sdps.len(), 1);
    assert!(has_method(&uas.received, "ACK") && has_method(&uas.received, "BYE"));
    Ok(())
}

#[test]
fn hold_and_resume() -> TestResult {
    if !sipp_or_skip("hold_and_resume") {
        return Ok(());
    }
    let mut call = Call::start(Setup::flow(
        "hold_and_resume",
        "uas_hold.xml",
        "uac_hold.xml",
    ))?;
    let at_callee = call.uas.wait_received_sdps(1, WAIT)?;
    let at_caller = call.uac.wait_received_sdps(1, WAIT)?;
    let (to_callee, to_caller) = (
        at_caller[0].audio_addr().unwrap(),
        at_callee[0].audio_addr().unwrap(),
    );
    assert_eq!(to_callee, call.callee.media_addr);
    assert_eq!(to_caller, call.caller.media_addr);
    call.media_both_ways("before hold", to_callee, to_caller)?;
    assert_eq!(
        count_method(&call.uas.received()?, "INVITE"),
        1,
        "hold came before the media ended"
    );

    // Hold: the caller's re-INVITE says sendonly, the callee answers recvonly.
    let at_callee = call.uas.wait_received_sdps(2, WAIT)?;
    let at_caller = call.uac.wait_received_sdps(2, WAIT)?;
    let (hold, held) = (&at_callee[1], &at_caller[1]);
    assert_eq!(hold.message.method(), Some("INVITE"));
    assert_eq!(hold.sdp.audio_direction(), Some(MediaDirection::SendOnly));
    assert_eq!(hold.audio_addr(), Some(call.caller.media_addr));
    assert!(is_final_invite_ok(&held.message), "{}", held.message);
    assert_eq!(held.sdp.audio_direction(), Some(MediaDirection::RecvOnly));
    assert_eq!(held.audio_addr(), Some(call.callee.media_addr));
    call.media_from_caller("on hold", held.audio_addr().unwrap())?;
    assert_eq!(
        count_method(&call.uas.received()?, "INVITE"),
        2,
        "resume came before the media ended"
    );

    // Resume: sendrecv both ways again.
    let at_callee = call.uas.wait_received_sdps(3, WAIT)?;
    let at_caller = call.uac.wait_received_sdps(3, WAIT)?;
    assert_eq!(
        at_callee[2].sdp.audio_direction(),
        Some(MediaDirection::SendRecv)
    );
    assert_eq!(
        at_caller[2].sdp.audio_direction(),
        Some(MediaDirection::SendRecv)
    );
    call.media_both_ways(
        "resumed",
        at_caller[2].audio_addr().unwrap(),
        at_callee[2].audio_addr().unwrap(),
    )?;
    assert!(!has_method(&call.uas.received()?, "BYE"));

    let (uac, uas) = call.finish()?;
    assert_eq!(uas.received_sdps.len(), 3);
    assert_eq!(uac.received_sdps.len(), 3);
    assert_eq!(count_method(&uas.received, "ACK"), 3);
    Ok(())
}

#[test]
fn early_media() -> TestResult {
    if !sipp_or_skip("early_media") {
        return Ok(());
    }
    let mut call = Call::start(Setup::flow("early_media", "uas_early.xml", "uac_early.xml"))?;
    let offer = call.uas.wait_received_sdps(1, WAIT)?.remove(0);
    let early = call.uac.wait_received_sdps(1, WAIT)?.remove(0);
    assert_eq!(early.message.status(), Some(183));
    assert_eq!(early.audio_addr(), Some(call.callee.media_addr));
    assert_eq!(offer.audio_addr(), Some(call.caller.media_addr));

    call.media_both_ways(
        "early (183)",
        early.audio_addr().unwrap(),
        offer.audio_addr().unwrap(),
    )?;
    // Still before the answer: the media above was early media.
    assert!(
        !call.uac.received()?.iter().any(is_final_invite_ok),
        "the 200 came before the early media ended"
    );

    let answer = call.uac.wait_received_sdps(2, WAIT)?.remove(1);
    assert!(is_final_invite_ok(&answer.message), "{}", answer.message);
    call.media_both_ways(
        "answered",
        answer.audio_addr().unwrap(),
        offer.audio_addr().unwrap(),
    )?;

    let (uac, _uas) = call.finish()?;
    let codes: Vec<_> = uac
        .received_sdps
        .iter()
        .map(|s| s.message.status())
        .collect();
    assert_eq!(codes, [Some(183), Some(200)]);
    Ok(())
}

#[test]
fn cancel_while_ringing() -> TestResult {
    if !sipp_or_skip("cancel_while_ringing") {
        return Ok(());
    }
    let mut call = Call::start(Setup {
        pause: Duration::from_millis(300),
        ..Setup::flow("cancel_while_ringing", "uas_cancel.xml", "uac_cancel.xml")
    })?;
    let offer = call.uas.wait_received_sdps(1, WAIT)?.remove(0);
    assert_eq!(offer.audio_addr(), Some(call.caller.media_addr));

    let (uac, uas) = call.finish()?;
    let at_caller: Vec<_> = uac
        .received
        .iter()
        .map(|m| (m.status(), m.cseq().map(|(_, method)| method.to_owned())))
        .collect();
    let invite = Some("INVITE".to_owned());
    assert_eq!(
        at_caller,
        [
            (Some(100), invite.clone()),
            (Some(180), invite.clone()),
            (Some(200), Some("CANCEL".to_owned())),
            (Some(487), invite),
        ]
    );
    assert!(uac.received_sdps.is_empty());
    let methods: Vec<_> = uas.received.iter().filter_map(SipMessage::method).collect();
    assert_eq!(methods, ["INVITE", "CANCEL", "ACK"]);
    Ok(())
}

#[test]
fn late_offer() -> TestResult {
    if !sipp_or_skip("late_offer") {
        return Ok(());
    }
    let mut call = Call::start(Setup::flow("late_offer", "uas_late.xml", "uac_late.xml"))?;
    // The offer comes in the 200, the answer in the ACK.
    let offer = call.uac.wait_received_sdps(1, WAIT)?.remove(0);
    let answer = call.uas.wait_received_sdps(1, WAIT)?.remove(0);
    assert!(is_final_invite_ok(&offer.message), "{}", offer.message);
    assert_eq!(offer.audio_addr(), Some(call.callee.media_addr));
    assert_eq!(answer.message.method(), Some("ACK"));
    assert_eq!(answer.audio_addr(), Some(call.caller.media_addr));

    call.media_both_ways(
        "answered",
        offer.audio_addr().unwrap(),
        answer.audio_addr().unwrap(),
    )?;
    assert!(!has_method(&call.uas.received()?, "BYE"));

    let (uac, uas) = call.finish()?;
    // The INVITE carried no SDP.
    assert_eq!(uas.received_sdps.len(), 1);
    assert!(
        uas.received
            .first()
            .is_some_and(|m| m.method() == Some("INVITE") && !m.has_sdp())
    );
    assert_eq!(uac.received_sdps.len(), 1);
    Ok(())
}

#[test]
fn many_basic_calls() -> TestResult {
    if !sipp_or_skip("many_basic_calls") {
        return Ok(());
    }
    const CALLS: u64 = 20;
    let call = Call::start(Setup {
        calls: CALLS,
        pause: Duration::from_millis(300),
        ..Setup::flow("many_basic_calls", "uas_basic.xml", "uac_basic.xml")
    })?;
    let (caller_media, callee_media) = (call.caller.media_addr, call.callee.media_addr);
    let (uac, uas) = call.finish()?;
    assert_eq!((uac.calls_successful, uas.calls_successful), (CALLS, CALLS));
    assert_eq!(uas.received_sdps.len(), 20);
    assert_eq!(uac.received_sdps.len(), 20);
    assert!(
        uas.received_sdps
            .iter()
            .all(|s| s.audio_addr() == Some(caller_media))
    );
    assert!(
        uac.received_sdps
            .iter()
            .all(|s| s.audio_addr() == Some(callee_media))
    );
    // Twenty distinct calls.
    let mut ids: Vec<_> = uas
        .received_sdps
        .iter()
        .filter_map(|s| s.message.header("Call-ID"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    Ok(())
}

/// The harness must see a failed call as one: a caller whose callee runs
/// a different scenario (waits for CANCEL, never answers).
#[test]
fn mismatched_scenarios_fail() -> TestResult {
    if !sipp_or_skip("mismatched_scenarios_fail") {
        return Ok(());
    }
    let mut call = Call::start(Setup {
        timeout: Duration::from_secs(3),
        ..Setup::flow(
            "mismatched_scenarios_fail",
            "uas_cancel.xml",
            "uac_basic.xml",
        )
    })?;
    let err = call
        .uac
        .wait_received_sdps(1, Duration::from_millis(500))
        .unwrap_err();
    assert!(
        matches!(&err, SippError::Wait { why, .. } if why.starts_with("timed out")),
        "{err}"
    );
    let uac = call.uac.wait()?;
    let uas = call.uas.wait()?;
    for o in [&uac, &uas] {
        assert!(!o.success, "{}", o.summary());
        assert!(o.ensure_success().is_err());
        assert_eq!(o.calls_successful, 0);
        assert!(
            !o.killed,
            "sipp's own timeout should end it: {}",
            o.summary()
        );
        assert_ne!(o.exit_code, Some(0));
    }
    assert!(uac.received.iter().any(|m| m.status() == Some(180)));
    Ok(())
}
