//! The core against itself, in memory: two calls wired back to back, the
//! frames of each delivered to the other.

use std::net::SocketAddr;

use super::call::{Call, CallConfig, Origin, Output};
use super::wire::Deframer;
use super::{Mode, Released, Role};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn cfg(role: Role, mode: Mode) -> CallConfig {
    let (n, port) = match role {
        Role::Caller => (1, 4000),
        Role::Callee => (2, 6000),
    };
    CallConfig {
        role,
        mode,
        alias: format!("t{n}@corp{n}.example"),
        target: (role == Role::Caller).then(|| "t2@corp2.example".to_owned()),
        signal: sa(&format!("10.0.0.{n}:1720")),
        h245: Some(sa(&format!("10.0.0.{n}:1721"))),
        offer_h245: true,
        rtp: sa(&format!("10.0.0.{n}:{port}")),
        seed: n,
    }
}

#[derive(Default)]
struct Side {
    media: Option<SocketAddr>,
    done: Option<Released>,
}

/// Delivers every output until both are quiet.
fn pump(calls: &mut [Call; 2], sides: &mut [Side; 2]) {
    loop {
        let mut moved = false;
        for i in 0..2 {
            while let Some(o) = calls[i].poll() {
                moved = true;
                let is_h245_out = matches!(o, Output::H245(_));
                let j = 1 - i;
                match o {
                    Output::Signal(f) | Output::H245(f) => {
                        let is_h245 = is_h245_out;
                        let mut d = Deframer::default();
                        d.push(&f);
                        let p = d.next_frame().expect("one frame");
                        if is_h245 {
                            calls[j].on_h245(&p);
                        } else {
                            calls[j].on_signal(&p);
                        }
                    }
                    Output::ConnectH245(to) => {
                        let from = sa("10.9.9.9:1");
                        let kept_here = calls[i].h245_connection(Origin::Connected, to);
                        let kept_there = calls[j].h245_connection(Origin::Accepted, from);
                        assert_eq!(kept_here, kept_there);
                    }
                    Output::Media { rtp, .. } => sides[i].media = Some(rtp),
                    Output::Done(r) => sides[i].done = Some(r),
                }
            }
        }
        if !moved {
            return;
        }
    }
}

fn call_through(mode: Mode) -> [Call; 2] {
    let mut calls = [
        Call::new(cfg(Role::Caller, mode)),
        Call::new(cfg(Role::Callee, mode)),
    ];
    let mut sides = [Side::default(), Side::default()];
    calls[0].start();
    pump(&mut calls, &mut sides);
    assert_eq!(
        sides[0].media,
        Some(sa("10.0.0.2:6000")),
        "{:#?}",
        calls[0].messages()
    );
    assert_eq!(
        sides[1].media,
        Some(sa("10.0.0.1:4000")),
        "{:#?}",
        calls[1].messages()
    );
    assert_eq!(calls[1].mode(), mode);
    assert_eq!(calls[1].peer_alias(), Some("t1@corp1.example"));
    calls[0].hangup();
    pump(&mut calls, &mut sides);
    assert_eq!(sides[0].done, Some(Released::Local));
    assert_eq!(sides[1].done, Some(Released::Remote));
    calls
}

fn h225(c: &Call) -> Vec<&str> {
    c.messages()
        .iter()
        .filter(|m| !m.contains("h245") && !m.starts_with('*'))
        .map(String::as_str)
        .collect()
}

#[test]
fn separate_h245_the_callee_connects_to_the_setup_address() {
    let calls = call_through(Mode::Separate);
    assert_eq!(
        h225(&calls[0]),
        [
            "> Setup",
            "< CallProceeding",
            "< Alerting",
            "< Connect",
            "> ReleaseComplete"
        ]
    );
    let m = calls[0].messages();
    assert!(
        m.iter().any(|m| m.starts_with("* h245 accepted from")),
        "{m:#?}"
    );
    let b = calls[1].messages();
    assert!(
        b.iter()
            .any(|m| m.starts_with("* h245 connected to 10.0.0.1:1721")),
        "{b:#?}"
    );
    for want in [
        "> h245 terminalCapabilitySet",
        "> h245 masterSlaveDetermination",
        "< h245 terminalCapabilitySetAck",
        "< h245 masterSlaveDeterminationAck",
        "> h245 openLogicalChannel",
        "< h245 openLogicalChannelAck",
        "> h245 closeLogicalChannel",
        "> h245 endSessionCommand",
        "< h245 endSessionCommand",
    ] {
        assert!(m.iter().any(|x| x == want), "{want} in {m:#?}");
    }
}

#[test]
fn tunnelled_h245_rides_in_the_call_signalling() {
    let calls = call_through(Mode::Tunnel);
    let a = h225(&calls[0]);
    assert_eq!(a.first(), Some(&"> Setup"));
    assert!(a.contains(&"> Facility"), "{a:#?}");
    assert_eq!(a.last(), Some(&"> ReleaseComplete"));
    assert!(!calls[0].messages().iter().any(|m| m.starts_with("* h245")));
}

#[test]
fn fast_start_needs_no_h245() {
    let calls = call_through(Mode::FastStart);
    assert!(!calls[0].messages().iter().any(|m| m.contains("h245")));
    assert_eq!(
        h225(&calls[1]),
        [
            "< Setup",
            "> CallProceeding",
            "> Alerting",
            "> Connect",
            "< ReleaseComplete"
        ]
    );
}

#[test]
fn foreign_and_broken_frames_are_ignored() {
    let mut c = Call::new(cfg(Role::Callee, Mode::Separate));
    c.on_signal(b"");
    c.on_signal(&[0x08, 0x02, 0x00]);
    c.on_signal(&[
        0x08, 0x02, 0x00, 0x01, 0x05, 0x7e, 0x00, 0x03, 0x05, 0xff, 0xff,
    ]);
    c.on_h245(&[0xff; 7]);
    assert!(c.poll().is_none());
    assert!(!c.ended());
}

#[test]
fn master_slave_determination_agrees() {
    use super::call::determine as d;
    for (a, b) in [(1, 2), (5, 0xff_fff0), (0x7f_ffff, 0)] {
        let x = d(50, a, 50, b).unwrap();
        let y = d(50, b, 50, a).unwrap();
        assert_ne!(x, y);
    }
    assert_eq!(d(50, 7, 50, 7), None);
    assert_eq!(d(60, 7, 50, 9), Some(true));
}

#[test]
fn a_failed_h245_connection_is_answered_with_facility_start_h245() {
    let mut calls = [
        Call::new(cfg(Role::Caller, Mode::Separate)),
        Call::new(cfg(Role::Callee, Mode::Separate)),
    ];
    calls[0].start();
    let Some(Output::Signal(setup)) = calls[0].poll() else {
        panic!("no Setup");
    };
    calls[1].on_signal(&setup[4..]);
    let mut connect_to = None;
    let mut facility = None;
    while let Some(o) = calls[1].poll() {
        if let Output::ConnectH245(a) = o {
            connect_to = Some(a);
        }
    }
    assert_eq!(connect_to, Some(sa("10.0.0.1:1721")));
    calls[1].h245_connect_failed(sa("10.0.0.1:1721"), "refused");
    while let Some(o) = calls[1].poll() {
        if let Output::Signal(f) = o {
            facility = Some(f);
        }
    }
    let f = facility.expect("a FACILITY");
    let ui = pinhole_h323_oracle::decode_user_information(
        pinhole_h323_oracle::q931_user_user(&f[4..]).unwrap(),
    )
    .unwrap();
    assert_eq!(
        pinhole_h323_oracle::access::h245_address(&ui),
        Some(sa("10.0.0.2:1721"))
    );
    assert_eq!(
        calls[1].messages().last().map(String::as_str),
        Some("> Facility(startH245)")
    );
    // The caller connects on it.
    calls[0].on_signal(&f[4..]);
    assert!(
        std::iter::from_fn(|| calls[0].poll())
            .any(|o| o == Output::ConnectH245(sa("10.0.0.2:1721")))
    );
}
