//! The call agent and the gateways talking directly (no Pinhole): the
//! examples' own behaviour, which the Pinhole flows build on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::ca::{CaEvent, CallAgent, Leg, State};
use super::gw::{Gateway, GwConfig};

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Net {
    ca: CallAgent,
    gws: Vec<(SocketAddr, Gateway)>,
    /// Datagrams the "network" loses: (to, nth datagram to it).
    lose: Vec<(SocketAddr, usize)>,
    sent_to: Vec<(SocketAddr, Vec<u8>)>,
}

impl Net {
    fn new() -> Self {
        let mut g1 = GwConfig::new("gw1.corp1.example", a("10.1.0.20:4000"));
        g1.call_agent = Some(a("203.0.113.5:2727"));
        let g2 = GwConfig::new("gw2.corp2.example", a("10.2.0.20:6000"));
        Self {
            ca: CallAgent::new(a("203.0.113.5:2727"), 7),
            gws: vec![
                (a("10.1.0.20:2427"), Gateway::new(g1)),
                (a("10.2.0.20:2427"), Gateway::new(g2)),
            ],
            lose: Vec::new(),
            sent_to: Vec::new(),
        }
    }

    fn lost(&mut self, to: SocketAddr) -> bool {
        let n = self.sent_to.iter().filter(|(t, _)| *t == to).count();
        self.lose.contains(&(to, n))
    }

    /// Delivers until quiet, advancing time through retransmission timers.
    fn run(&mut self, mut now: Instant, until: Instant) -> Instant {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some((to, bytes)) = self.ca.poll_transmit() {
                moved = true;
                let lost = self.lost(to);
                self.sent_to.push((to, bytes.clone()));
                if lost {
                    continue;
                }
                let from = self.ca.local();
                if let Some((_, g)) = self.gws.iter_mut().find(|(at, _)| *at == to) {
                    g.handle_datagram(now, from, &bytes);
                }
            }
            for i in 0..self.gws.len() {
                let at = self.gws[i].0;
                while let Some((to, bytes)) = self.gws[i].1.poll_transmit() {
                    moved = true;
                    assert_eq!(to, self.ca.local());
                    self.ca.handle_datagram(now, at, &bytes);
                }
            }
            if moved {
                continue;
            }
            let next = [self.ca.poll_timeout()]
                .into_iter()
                .chain(self.gws.iter().map(|(_, g)| g.poll_timeout()))
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    now = now.max(t);
                    self.ca.handle_timeout(now);
                    for (_, g) in &mut self.gws {
                        g.handle_timeout(now);
                    }
                }
                _ => return now,
            }
        }
        panic!("no quiet");
    }
}

fn legs() -> (Leg, Leg) {
    (
        Leg::new("aaln/1@gw1.corp1.example", a("10.1.0.20:2427")),
        Leg::new("aaln/1@gw2.corp2.example", a("10.2.0.20:2427")),
    )
}

#[test]
fn connect_two_gateways_then_hang_up() {
    let t0 = Instant::now();
    let mut n = Net::new();
    let (la, lb) = legs();
    n.ca.connect(t0, "C0FFEE", la, lb).unwrap();
    assert!(
        n.ca.connect(t0, "X", legs().0, legs().1).is_err(),
        "one call at a time"
    );
    let now = n.run(t0, t0 + Duration::from_secs(1));
    assert_eq!(
        n.ca.poll_event(),
        Some(CaEvent::Connected {
            a: a("10.1.0.20:4000"),
            b: a("10.2.0.20:6000")
        })
    );
    assert_eq!(n.ca.state(), State::Up);
    // CRCX A, CRCX B, MDCX A; each gateway sends to the other's RTP.
    let verbs: Vec<String> = n
        .sent_to
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(&b[..4]).into_owned())
        .collect();
    assert_eq!(verbs, ["CRCX", "CRCX", "MDCX"]);
    assert_eq!(n.gws[0].1.remote_media(), Some(a("10.2.0.20:6000")));
    assert_eq!(n.gws[1].1.remote_media(), Some(a("10.1.0.20:4000")));
    // The second command acknowledges the first's final response (K:).
    let second = String::from_utf8_lossy(&n.sent_to[1].1).into_owned();
    assert!(second.contains("\r\nK: "), "{second}");

    n.ca.hangup(now);
    n.run(now, now + Duration::from_secs(1));
    assert_eq!(n.ca.poll_event(), Some(CaEvent::Ended));
    assert!(n.gws.iter().all(|(_, g)| g.connections().is_empty()));
}

#[test]
fn a_lost_command_is_retransmitted_with_the_same_transaction_id() {
    let t0 = Instant::now();
    let mut n = Net::new();
    // The first CRCX to gateway 2 is lost.
    n.lose.push((a("10.2.0.20:2427"), 0));
    let (la, lb) = legs();
    n.ca.connect(t0, "C1", la, lb).unwrap();
    n.run(t0, t0 + Duration::from_secs(3));
    assert!(matches!(n.ca.poll_event(), Some(CaEvent::Connected { .. })));
    let to_b: Vec<&Vec<u8>> = n
        .sent_to
        .iter()
        .filter(|(t, _)| *t == a("10.2.0.20:2427"))
        .map(|(_, b)| b)
        .collect();
    assert_eq!(to_b.len(), 2);
    assert_eq!(to_b[0], to_b[1], "a retransmission is the same bytes");
    assert_eq!(n.gws[1].1.connections().len(), 1);
}

#[test]
fn a_retransmitted_command_gets_the_same_response_and_no_second_connection() {
    let now = Instant::now();
    let mut g = Gateway::new(GwConfig::new("gw1.corp1.example", a("10.1.0.20:4000")));
    let crcx = pinhole_mgcp::Command::builder("CRCX", 55, "aaln/1@gw1.corp1.example")
        .param("C", "C9")
        .param("M", "recvonly")
        .to_bytes();
    let ca = a("203.0.113.5:2727");
    g.handle_datagram(now, ca, &crcx);
    g.handle_datagram(now + Duration::from_secs(1), ca, &crcx);
    let (r1, r2) = (g.poll_transmit().unwrap().1, g.poll_transmit().unwrap().1);
    assert_eq!(r1, r2);
    assert_eq!(g.connections().len(), 1);
    let m = pinhole_mgcp::Message::parse(&r1).unwrap();
    assert_eq!(m.code(), Some(200));
    assert_eq!(
        super::sdp_media(&r1[m.sdp_span().unwrap()]),
        Some(a("10.1.0.20:4000"))
    );
    // Another gateway's endpoint, and an unknown connection.
    let other = pinhole_mgcp::Command::builder("AUEP", 56, "aaln/1@gw9.example").to_bytes();
    g.handle_datagram(now, ca, &other);
    assert!(g.poll_transmit().unwrap().1.starts_with(b"500 56 "));
    let dlcx = pinhole_mgcp::Command::builder("DLCX", 57, "aaln/1@gw1.corp1.example")
        .param("I", "NOPE")
        .to_bytes();
    g.handle_datagram(now, ca, &dlcx);
    assert!(g.poll_transmit().unwrap().1.starts_with(b"515 57 "));
}

#[test]
fn rsip_is_retransmitted_until_answered_and_notifications_are_answered() {
    let t0 = Instant::now();
    let mut n = Net::new();
    n.gws[0].1.restart(t0);
    // The call agent answers it (and reports it).
    n.run(t0, t0 + Duration::from_secs(1));
    assert!(n.gws[0].1.restarted());
    assert_eq!(
        n.ca.poll_event(),
        Some(CaEvent::Notified {
            from: a("10.1.0.20:2427"),
            verb: "RSIP".into(),
            endpoint: "*@gw1.corp1.example".into()
        })
    );
}

#[test]
fn a_refused_connection_fails_the_call() {
    let t0 = Instant::now();
    let mut n = Net::new();
    let la = Leg::new("aaln/9@gw1.corp1.example", a("10.1.0.20:2427"));
    n.ca.connect(t0, "C2", la, legs().1).unwrap();
    n.run(t0, t0 + Duration::from_secs(1));
    assert_eq!(
        n.ca.poll_event(),
        Some(CaEvent::Failed {
            step: "CRCX A",
            code: Some(500)
        })
    );
    assert_eq!(n.ca.state(), State::Idle);
}

#[test]
fn an_unanswered_call_gives_up() {
    let t0 = Instant::now();
    let mut n = Net::new();
    let la = Leg::new("aaln/1@gw1.corp1.example", a("10.9.9.9:2427"));
    n.ca.connect(t0, "C3", la, legs().1).unwrap();
    n.run(t0, t0 + Duration::from_secs(60));
    assert_eq!(
        n.ca.poll_event(),
        Some(CaEvent::Failed {
            step: "CRCX A",
            code: None
        })
    );
    assert_eq!(n.sent_to.len(), 6, "six attempts");
}
