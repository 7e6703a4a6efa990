//! The APS stream machine against a scripted client engine.

use std::net::SocketAddr;

use super::*;
use crate::client::Failure;
use crate::types::{ConnId, Transport};

/// A client engine that records what it is asked.
#[derive(Default)]
struct Engine {
    opened: Vec<PinholeRequest>,
    closed: Vec<PinholeId>,
    refuse: bool,
}

impl ClientContext for Engine {
    fn open_pinhole(&mut self, _: Instant, req: PinholeRequest) -> Result<PinholeId, ClientError> {
        if self.refuse {
            return Err(ClientError::NotRegistered);
        }
        self.opened.push(req);
        Ok(PinholeId(self.opened.len() as u64))
    }
    fn close_pinhole(&mut self, id: PinholeId) -> Result<(), ClientError> {
        self.closed.push(id);
        Ok(())
    }
    fn registered_pinhole(&self) -> Option<SocketAddr> {
        Some(addr("198.51.100.1:5060"))
    }
    fn mpr(&self) -> SocketAddr {
        addr("203.0.113.10:5060")
    }
    fn signaling(&self) -> SocketAddr {
        addr("10.0.0.2:5060")
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn media() -> ApsMedia<&'static str> {
    ApsMedia::new(
        "10.0.0.2".parse().unwrap(),
        PortRange {
            first: 20_000,
            last: 20_003,
        },
        Duration::from_secs(30),
        Rng::from_seed([5; 32]),
    )
}

fn key(i: u16) -> Vec<u8> {
    format!("k/{i}").into_bytes()
}

fn opened(id: u64, public: &str) -> Event {
    Event::PinholeOpened {
        id: PinholeId(id),
        relay: addr("203.0.113.10:30000"),
        pinhole: Some(addr(public)),
        rtcp_pinhole: None,
    }
}

#[test]
fn outward_waits_for_the_pinhole_then_writes_its_public_address() {
    let now = crate::test_instant();
    let mut m = media();
    let mut eng = Engine::default();
    let phone = [MediaEndpoint::rtp(0, addr("10.0.0.9:4000"))];
    assert_eq!(
        m.outward(now, &mut eng, &"c", &phone, &key, false),
        Step::Wait
    );
    assert_eq!(eng.opened.len(), 1);
    assert_eq!(eng.opened[0].inside, Some(addr("10.0.0.9:4000")));
    assert_eq!(eng.opened[0].key, b"k/0");
    // A retransmission while it opens asks for nothing new.
    assert_eq!(
        m.outward(now, &mut eng, &"c", &phone, &key, false),
        Step::Wait
    );
    assert_eq!(eng.opened.len(), 1);
    assert_eq!(
        m.handle_event(&opened(1, "198.51.100.1:41000"), &mut Outbox::new()),
        Some(Outcome::Opened("c"))
    );
    let Step::Ready(plan) = m.outward(now, &mut eng, &"c", &phone, &key, true) else {
        panic!("open now")
    };
    assert_eq!(plan[0].addr, addr("198.51.100.1:41000"));
    assert_eq!(m.ports_in_use(), 1);
    m.close(now, &mut eng, &"c");
    assert_eq!(eng.closed, [PinholeId(1)]);
    assert_eq!(m.ports_in_use(), 0);
    assert_eq!(m.parties(), 0);
}

#[test]
fn a_held_message_whose_pinhole_failed_is_refused_not_reoffered() {
    let now = crate::test_instant();
    let mut m = media();
    let mut eng = Engine::default();
    let phone = [MediaEndpoint::rtp(0, addr("10.0.0.9:4000"))];
    assert_eq!(
        m.outward(now, &mut eng, &"c", &phone, &key, false),
        Step::Wait
    );
    let mut out = Outbox::new();
    let failed = Event::PinholeFailed {
        id: PinholeId(1),
        failure: Failure::Timeout,
    };
    assert_eq!(
        m.handle_event(&failed, &mut out),
        Some(Outcome::Failed("c"))
    );
    assert_eq!(
        out.pop_event(),
        Some(AlgEvent::PinholeFailed {
            leg_key: b"k/0".to_vec()
        })
    );
    assert_eq!(
        m.outward(now, &mut eng, &"c", &phone, &key, true),
        Step::Failed(StreamError::PinholeFailed)
    );
    assert_eq!(eng.opened.len(), 1, "no second CMPH for the held message");
    assert_eq!(m.opened(), 1);
    // The terminal's next description (not a resume) tries once more.
    assert_eq!(
        m.outward(now, &mut eng, &"c", &phone, &key, false),
        Step::Wait
    );
    assert_eq!(eng.opened.len(), 2);
    assert_eq!(eng.closed, [PinholeId(1)]);
}

#[test]
fn inward_gives_port_b_and_a_moved_relay_reopens() {
    let now = crate::test_instant();
    let mut m = media();
    let mut eng = Engine::default();
    let relay = [MediaEndpoint::rtp(0, addr("203.0.113.10:30000"))];
    let Step::Ready(plan) = m.inward(now, &mut eng, &"c", &relay) else {
        panic!()
    };
    let b = plan[0].addr;
    assert_eq!(b.ip(), "10.0.0.2".parse::<IpAddr>().unwrap());
    // The phone answers: the pinhole is opened toward the relay it was told.
    let phone = [MediaEndpoint::rtp(0, addr("10.0.0.9:4000"))];
    assert_eq!(
        m.outward(now, &mut eng, &"c", &phone, &key, false),
        Step::Wait
    );
    assert_eq!(eng.opened[0].relay, Some(addr("203.0.113.10:30000")));
    assert_eq!(eng.opened[0].local, b, "the same port B");
    m.handle_event(&opened(1, "198.51.100.1:41000"), &mut Outbox::new());
    // The MPR moves the stream: the pinhole closes, port B stays.
    let moved = [MediaEndpoint::rtp(0, addr("203.0.113.10:30002"))];
    let Step::Ready(again) = m.inward(now, &mut eng, &"c", &moved) else {
        panic!()
    };
    assert_eq!(again[0].addr, b);
    assert_eq!(eng.closed, [PinholeId(1)]);
}

#[test]
fn no_ports_and_refused_opens_are_typed() {
    let now = crate::test_instant();
    let mut m = media();
    let mut eng = Engine::default();
    let relay = [MediaEndpoint::rtp(0, addr("203.0.113.10:30000"))];
    for c in ["a", "b"] {
        assert!(matches!(
            m.inward(now, &mut eng, &c, &relay),
            Step::Ready(_)
        ));
    }
    assert_eq!(
        m.inward(now, &mut eng, &"c", &relay),
        Step::Failed(StreamError::NoPorts)
    );
    eng.refuse = true;
    let phone = [MediaEndpoint::rtp(0, addr("10.0.0.9:4000"))];
    let Step::Failed(e) = m.outward(now, &mut eng, &"a", &phone, &key, false) else {
        panic!()
    };
    assert_eq!(e.kind(), "open_refused");
    assert_eq!((m.opened(), m.open_refusals()), (0, 1));
}

struct Alg {
    held: Held<u8>,
    seen: Vec<Vec<u8>>,
    flows: Vec<Flow>,
    wait_on: Option<Vec<u8>>,
}

#[test]
fn held_messages_resume_in_order_and_a_waiting_one_stays_first() {
    let rx = |b: &'static [u8]| Receive {
        local: addr("10.0.0.2:5060"),
        remote: addr("10.0.0.9:5060"),
        bytes: b,
        flow: Flow::conn(Transport::Tcp, ConnId(7)),
    };
    let mut alg = Alg {
        held: Held::new(3),
        seen: Vec::new(),
        flows: Vec::new(),
        wait_on: Some(b"two".to_vec()),
    };
    assert_eq!(alg.held.park(&1, &rx(b"one")), Park::Held);
    assert_eq!(alg.held.park(&1, &rx(b"one")), Park::Duplicate);
    assert_eq!(alg.held.park(&1, &rx(b"two")), Park::Held);
    assert_eq!(alg.held.park(&1, &rx(b"three")), Park::Held);
    assert_eq!(alg.held.park(&1, &rx(b"four")), Park::Full);
    assert!(alg.held.is_holding(&1));
    let step = |a: &mut Alg, r: Receive<'_>| {
        if a.wait_on.as_deref() == Some(r.bytes) {
            a.held.park(&1, &r);
            return false;
        }
        a.seen.push(r.bytes.to_vec());
        a.flows.push(r.flow);
        true
    };
    Held::resume(&mut alg, |a| &mut a.held, &1, step);
    assert_eq!(alg.seen, [b"one".to_vec()]);
    assert_eq!(
        alg.flows,
        [Flow::conn(Transport::Tcp, ConnId(7))],
        "a held frame keeps its connection"
    );
    assert_eq!(
        alg.held.len(),
        2,
        "two still waits, first, with three behind"
    );
    alg.wait_on = None;
    Held::resume(&mut alg, |a| &mut a.held, &1, step);
    assert_eq!(
        alg.seen,
        [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    assert!(alg.held.is_empty());
    assert!(!alg.held.is_holding(&1));
}

#[test]
fn a_terminal_opens_from_its_own_port_and_reads_relays_unchanged() {
    let now = crate::test_instant();
    let mut m: ApsMedia<&str> = ApsMedia::terminal("10.0.0.9".parse().unwrap());
    let mut eng = Engine::default();
    let relay = [MediaEndpoint::rtp(0, addr("203.0.113.10:30000"))];
    let Step::Ready(seen) = m.inward(now, &mut eng, &"c", &relay) else {
        panic!()
    };
    assert_eq!(seen[0].addr, relay[0].addr, "not rewritten");
    assert_eq!(m.relay(&"c", 0), Some(relay[0].addr));
    let own = [MediaEndpoint {
        rtcp: crate::wire::RtcpMode::Mux,
        ..MediaEndpoint::rtp(0, addr("10.0.0.9:16000"))
    }];
    assert_eq!(
        m.outward(now, &mut eng, &"c", &own, &key, false),
        Step::Wait
    );
    assert_eq!(eng.opened[0].local, addr("10.0.0.9:16000"));
    assert_eq!(eng.opened[0].inside, None, "the application owns the media");
    assert_eq!(eng.opened[0].relay, Some(relay[0].addr));
    assert_eq!(m.ports_in_use(), 0);
    let mut out = Outbox::new();
    m.handle_event(&opened(1, "198.51.100.1:41000"), &mut out);
    assert_eq!(m.public(&"c", 0), Some(addr("198.51.100.1:41000")));
    assert!(matches!(
        out.pop_event(),
        Some(AlgEvent::PinholeOpened { .. })
    ));
    let Step::Ready(plan) = m.outward(now, &mut eng, &"c", &own, &key, true) else {
        panic!()
    };
    assert_eq!(plan[0].addr, addr("198.51.100.1:41000"));
}
