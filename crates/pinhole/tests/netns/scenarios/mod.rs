//! The scenarios, one module per protocol or theme, each exporting a
//! `SCENARIOS` list; [`all`] is the one place they are registered. Adding a
//! protocol (MGCP, H.248, H.323) is a new file here with its `SCENARIOS`
//! and one line in [`all`] (docs/netns.md, "Adding a protocol scenario").

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result};
use pinhole_tests::rtp::{PairReport, rtp_pair};
use pinhole_tests::sipp::SippRun;

use crate::ctx::{Ctx, SIP_WAIT, aps_sip, phone_media};

mod control;
mod h248;
mod h323;
mod mgcp;
mod negative;
mod sip;

/// One scenario: it runs on a fresh bed and fails with an error that says
/// what went wrong.
pub(crate) struct Scenario {
    /// Unique name (the harness's filter matches substrings of it).
    pub(crate) name: &'static str,
    /// A negative control: must fail to get media through the firewalls,
    /// and must get it through when `PINHOLE_NETNS_OPEN_FIREWALL=1` (only
    /// these run then).
    pub(crate) negative_control: bool,
    /// A known product bug this scenario exposes: it is expected to fail
    /// (reported `ok (known bug: ...)`), and a pass is a failure that says
    /// to clear this field.
    pub(crate) known_bug: Option<&'static str>,
    /// The body.
    pub(crate) run: fn(&mut Ctx) -> Result<()>,
}

/// Every scenario, in the order they are started.
pub(crate) fn all() -> Vec<&'static Scenario> {
    // Longest first, so parallel runs finish together. A new protocol's
    // module goes in this list.
    [
        control::SCENARIOS,
        sip::SCENARIOS,
        mgcp::SCENARIOS,
        h248::SCENARIOS,
        h323::SCENARIOS,
        negative::SCENARIOS,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Checks the scenarios' own parsers before anything runs.
pub(crate) fn self_test() -> Result<()> {
    mgcp::self_test()
}

/// A SIP call between the sipp phones set up, media not yet sent.
pub(crate) struct SipCall {
    /// The caller's sipp.
    pub(crate) uac: SippRun,
    /// The callee's sipp.
    pub(crate) uas: SippRun,
    /// Each phone's media socket (corp1's, corp2's).
    pub(crate) media: [UdpSocket; 2],
    /// Where each phone sends its RTP, as the SDP it received says.
    pub(crate) to: [SocketAddr; 2],
}

impl SipCall {
    /// RTP both ways between the phones, each to where its SDP says,
    /// reported under `label`; fails unless both directions arrived
    /// ([`Ctx::two_way`]).
    pub(crate) fn two_way(&self, ctx: &mut Ctx, label: &str, count: u16) -> Result<PairReport> {
        ctx.two_way(
            label,
            &self.media[0],
            &self.media[1],
            self.to[0],
            self.to[1],
            count,
        )
    }

    /// RTP both ways, 20 ms apart, judged by the caller (the negative
    /// controls expect it not to arrive).
    pub(crate) fn rtp(&self, count: u16) -> std::io::Result<PairReport> {
        rtp_pair(
            &self.media[0],
            &self.media[1],
            self.to[0],
            self.to[1],
            count,
            Duration::from_millis(20),
        )
    }
}

/// [`aps_call`] with sipp's basic call (4 s pauses), then 100 packets of
/// media both ways checked under `label`.
pub(crate) fn basic_call(ctx: &mut Ctx, caller: usize, label: &str) -> Result<SipCall> {
    let call = aps_call(
        ctx,
        caller,
        ("uac_basic.xml", "uas_basic.xml"),
        Duration::from_secs(4),
    )?;
    call.two_way(ctx, label, 100)?;
    Ok(call)
}

/// Places a call from sipp phone `caller` to the other corp's sipp phone,
/// each talking to its own APS (Fig. 11 on the caller's side, Fig. 7 on
/// the callee's), and waits for the offer and the answer.
pub(crate) fn aps_call(
    ctx: &mut Ctx,
    caller: usize,
    xml: (&str, &str),
    pause: Duration,
) -> Result<SipCall> {
    let callee = 1 - caller;
    let media = [ctx.media_socket(0)?, ctx.media_socket(1)?];
    let uas = ctx
        .uas(callee, xml.1, phone_media(callee), pause)
        .spawn()
        .context("callee sipp")?;
    let uac = ctx
        .uac(
            caller,
            xml.0,
            aps_sip(caller),
            callee,
            phone_media(caller),
            pause,
        )
        .spawn()
        .context("caller sipp")?;
    call_up(ctx, caller, uac, uas, media)
}

/// Waits for the first offer at the callee and answer at the caller.
pub(crate) fn call_up(
    ctx: &mut Ctx,
    caller: usize,
    mut uac: SippRun,
    mut uas: SippRun,
    media: [UdpSocket; 2],
) -> Result<SipCall> {
    let callee = 1 - caller;
    let offer = uas.wait_received_sdps(1, SIP_WAIT)?.remove(0);
    let answer = uac.wait_received_sdps(1, SIP_WAIT)?.remove(0);
    let to_callee = answer
        .audio_addr()
        .context("the answer has no audio address")?;
    let to_caller = offer
        .audio_addr()
        .context("the offer has no audio address")?;
    ctx.note(format!(
        "SIP: corp{} phone called corp{}; the offer it got names {to_caller}, the answer names {to_callee}",
        caller + 1,
        callee + 1
    ));
    let mut to = [to_callee; 2];
    to[callee] = to_caller;
    Ok(SipCall {
        uac,
        uas,
        media,
        to,
    })
}

/// Notes the MPR's relay counters and the firewalls' drops, then hangs
/// up ([`hang_up`]).
pub(crate) fn wrap_up(ctx: &mut Ctx, call: SipCall) -> Result<()> {
    ctx.note_relay()?;
    ctx.note_drops()?;
    hang_up(ctx, call)
}

/// Waits for both sipp phones to finish and checks they succeeded.
pub(crate) fn hang_up(ctx: &mut Ctx, call: SipCall) -> Result<()> {
    let uac = call.uac.wait()?;
    let uas = call.uas.wait()?;
    uac.ensure_success().context("caller sipp")?;
    uas.ensure_success().context("callee sipp")?;
    ctx.note("SIP: both sipp phones completed the call");
    Ok(())
}
