//! Issue 13 for real: the Fig. 11 call with sipp phones speaking SIP over
//! TCP (`-t t1`) to their APS, each APS keeping one TLS connection to the
//! MPR opened from inside through its firewall simulator (which passes TCP
//! only outward), the MPR's route for each network pointing at that
//! connection. Media both ways; then APS1's connection is cut mid-call
//! (as a firewall that forgot it would): the APS reconnects with back-off
//! and registers over the new connection, the call's media goes on
//! untouched, and its BYE later crosses the new connection.
//!
//! ```text
//! caller 127.0.0.1 ─TCP─ APS1 ═TLS═ FW1 127.0.0.21 ═╗
//!                                                   MPR 127.0.0.23 (UDP, TCP, TLS)
//! callee 127.0.0.2 ─TCP─ APS2 ═TLS═ FW2 127.0.0.22 ═╝
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pinhole_core::types::Transport;
use pinhole_tests::sipp::{Keys, Sipp, scenario, sipp_or_skip};

use crate::common::*;
use crate::fig11::{APS_MEDIA_IPS, BedConfig, bed_with};

#[test]
fn tls_upstream_tcp_phones_media_both_ways_and_a_reconnect_mid_call() -> TestResult {
    if !sipp_or_skip("tls_upstream") {
        return Ok(());
    }
    let test = "tls_upstream";
    let caller = Phone::new(CALLER_IP)?;
    let callee = Phone::new(CALLEE_IP)?;
    let pause = Duration::from_secs(4);
    let uas = Sipp::uas(
        scenario("uas_basic.xml"),
        SocketAddr::new(CALLEE_IP.parse()?, 0),
        Keys::new(callee.media_addr)
            .domain(CALLEE_DOMAIN)
            .from_domain(CALLER_DOMAIN),
    )
    .tcp()
    .pause(pause)
    .timeout(SIPP_TIMEOUT)
    .dir(run_dir(test, "uas"))
    .spawn()?;
    let bed = bed_with(
        BedConfig {
            upstream: Transport::Tls,
            callee_tcp: true,
            ..BedConfig::fig11(55_000)
        },
        uas.local_addr(),
    )?;
    let uac = Sipp::uac(
        scenario("uac_basic.xml"),
        SocketAddr::new(CALLER_IP.parse()?, 0),
        bed.aps1_sig,
        Keys::new(caller.media_addr)
            .domain(CALLEE_DOMAIN)
            .from_domain(CALLER_DOMAIN),
    )
    .tcp()
    .pause(pause)
    .timeout(SIPP_TIMEOUT)
    .dir(run_dir(test, "uac"))
    .spawn()?;
    let mut call = Call {
        caller,
        callee,
        uac,
        uas,
    };
    let offer = call.uas.wait_received_sdps(1, WAIT)?.remove(0);
    let answer = call.uac.wait_received_sdps(1, WAIT)?.remove(0);
    let to_callee = answer.audio_addr().ok_or("no address in the answer")?;
    let to_caller = offer.audio_addr().ok_or("no address in the offer")?;
    assert_eq!(to_callee.ip(), IpAddr::from(APS_MEDIA_IPS[0]));
    assert_eq!(to_caller.ip(), IpAddr::from(APS_MEDIA_IPS[1]));
    assert!(bed.legs_open()? >= 2, "the MPR relays the call");
    call.media_both_ways("answered", to_callee, to_caller)?;

    // The signaling went over streams only: TLS up, TCP to the phones.
    let links = bed.rt.block_on(bed.mpr.link_counters())?;
    assert!(links.streams.accepted >= 2, "{links:?}");
    assert!(links.streams.messages_in >= 4, "{links:?}");

    // Cut APS1's connection mid-call: it reopens and registers again.
    let before = bed.rt.block_on(bed.aps1.stats())?.registrations_ok;
    assert!(bed.rt.block_on(bed.aps1.drop_upstream())?);
    let deadline = Instant::now() + WAIT;
    while bed.rt.block_on(bed.aps1.stats())?.registrations_ok <= before {
        if Instant::now() > deadline {
            return Err("APS1 did not register over a new connection".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(bed.rt.block_on(bed.aps1.stats())?.reconnects, 1);
    // The call's media never depended on the connection.
    call.media_both_ways("after the reconnect", to_callee, to_caller)?;

    // The BYE (after sipp's pause) crosses the new connection; the legs go.
    let (uac, uas) = call.finish()?;
    assert_eq!((uac.calls_successful, uac.calls_failed), (1, 0));
    assert_eq!((uas.calls_successful, uas.calls_failed), (1, 0));
    bed.wait_legs_freed()?;
    assert_eq!(bed.counter(0, "malformed")?, 0);
    assert!(bed.counter(1, "pinholes")? >= 1 && bed.counter(2, "pinholes")? >= 1);
    Ok(())
}
