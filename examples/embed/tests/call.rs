//! The embedding example end to end on loopback: media both ways through
//! the softswitch's own relay, only relay addresses in the SDP the phones
//! see, every leg closed by the BYE, the events a softswitch logs.

#[test]
fn a_call_through_the_b2bua_leg_carries_media_both_ways() {
    let r = pinhole_embed::run(40).expect("the call completes");
    assert_eq!(r.callee_received, 40, "caller → callee through the relay");
    assert_eq!(r.caller_received, 40, "callee → caller through the relay");
    assert_eq!(r.foreign, 0, "nothing but the relay reached a phone");
    // Two parties, one stream, RTCP-mux: a leg facing each party.
    assert_eq!(r.legs_during, 2);
    assert_eq!(r.legs_after_bye, 0);
    let port: u16 = r
        .callee_sends_to
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a relay address");
    assert!(
        (41_000..=41_899).contains(&port),
        "a relay port, not the caller's"
    );
    assert_eq!(
        r.events,
        [
            "call_anchored",
            "media_planned",
            "media_planned",
            "call_ended"
        ],
        "offer anchors and plans, the answer plans, the BYE ends"
    );
}

#[test]
fn relay_ports_held_by_another_process_are_never_written_into_sdp() {
    // Four pairs, two of them held by "another process" (this test).
    let _held: Vec<std::net::UdpSocket> = [41_900u16, 41_904]
        .iter()
        .map(|p| std::net::UdpSocket::bind(("127.0.0.1", *p)).expect("test port free"))
        .collect();
    let ports = pinhole_core::ports::PortRange::new(41_900, 41_907).unwrap();
    let r = pinhole_embed::run_with(10, ports).expect("the free pairs carry the call");
    assert_eq!((r.callee_received, r.caller_received), (10, 10));
    let port: u16 = r
        .callee_sends_to
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!([41_902, 41_906].contains(&port), "a free pair, got {port}");
    assert!(
        r.relay_refusals >= 1,
        "the relay refused a held port and the engine moved on"
    );
    assert_eq!(r.legs_after_bye, 0);
}
