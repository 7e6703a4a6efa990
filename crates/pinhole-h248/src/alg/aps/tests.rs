//! The APS's H.248 ALG on its own, with a real client engine registered
//! with a real MPR engine (no NAT): replies held until their pinholes
//! open, ports B in the MGC's `Remote`, refusals, retransmissions,
//! teardown, drops.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pinhole_core::alg::ClientSignaling;
use pinhole_core::alg::live::{LiveClient, NoSockets, apply_commands};
use pinhole_core::client;
use pinhole_core::mpr;
use pinhole_core::ports::PortRange;
use pinhole_core::types::{Receive, Transmit};
use pinhole_core::wire::Protocol;

use super::up::subtract;
use super::*;
use crate::alg::names;
use crate::alg::tag;
use crate::{CommandKind, ContextId, Item};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const MPR: &str = "203.0.113.10:2944";
const APS: &str = "10.1.0.2:2944";
const MG: &str = "10.1.0.10:2944";
const MG_MID: &str = "[10.1.0.10]:2944";
const MGC_MID: &str = "[192.0.2.5]:2944";
/// The smart gateway mode's ALG, beside gateway `MG` on its host.
const ALG: &str = "10.1.0.10:2950";

fn rx(local: SocketAddr, remote: SocketAddr, bytes: &[u8]) -> Receive<'_> {
    Receive {
        local,
        remote,
        bytes,
        flow: Default::default(),
    }
}

/// An MPR engine, a client engine for corp1 (registered when
/// `registered`), the APS with gateway `MG` known from its ServiceChange.
struct Bed {
    now: Instant,
    /// The ALG's socket.
    local: SocketAddr,
    mpr: mpr::Engine,
    cl: client::Engine,
    aps: Aps,
    /// What the client engine sent (registrations, CMPH).
    sent: Vec<Transmit>,
}

impl Bed {
    fn new(registered: bool) -> Self {
        let pc = ApsConfig::new(
            sa(APS),
            sa(APS).ip(),
            PortRange::new(20_000, 20_099).unwrap(),
            [3; 32],
        );
        Self::with(pc, registered)
    }

    /// The smart gateway mode (Fig. 14): the ALG on the gateway's host.
    fn terminal() -> Self {
        Self::with(ApsConfig::terminal(sa(ALG), sa(ALG).ip(), [3; 32]), true)
    }

    fn with(pc: ApsConfig, registered: bool) -> Self {
        Self::tuned(pc, registered, |_| {})
    }

    /// [`Bed::with`], the MPR engine's configuration changed by `tune`.
    fn tuned(pc: ApsConfig, registered: bool, tune: impl FnOnce(&mut mpr::Config)) -> Self {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut mc = mpr::Config::new(sa(MPR).ip(), [1; 32]);
        mc.control_ports = vec![2944];
        mc.networks
            .push(mpr::NetworkConfig::new("corp1", b"s".to_vec()));
        tune(&mut mc);
        let mpr = mpr::Engine::new(mc, now).unwrap();
        let cc = client::Config::new(
            "corp1",
            b"s".to_vec(),
            Protocol::H248,
            pc.local,
            sa(MPR),
            [2; 32],
        );
        let cl = client::Engine::new(cc, now).unwrap();
        let mut b = Self {
            now,
            local: pc.local,
            mpr,
            cl,
            aps: Aps::new(pc),
            sent: Vec::new(),
        };
        if registered {
            b.cl.handle_timeout(now);
            b.pump(false);
            assert!(b.cl.registered_pinhole().is_some());
            // The gateway announces itself; the MGC answers.
            let out = b.mg_sends(&service_change(1));
            assert_eq!((out.len(), out[0].remote), (1, sa(MPR)));
            let out = b.mpr_sends(&tag(MG_MID, &sc_reply(1)));
            assert_eq!((out.len(), out[0].remote), (1, sa(MG)));
        }
        b
    }

    fn feed(&mut self, from: &str, bytes: &[u8]) -> Vec<Transmit> {
        self.aps.handle_datagram(
            self.now,
            &mut LiveClient::new(&mut self.cl, &mut NoSockets),
            rx(self.local, sa(from), bytes),
        );
        std::iter::from_fn(|| self.aps.poll_transmit()).collect()
    }

    fn mg_sends(&mut self, bytes: &[u8]) -> Vec<Transmit> {
        self.feed(MG, bytes)
    }

    fn mpr_sends(&mut self, bytes: &[u8]) -> Vec<Transmit> {
        self.feed(MPR, bytes)
    }

    /// Carries the client engine's datagrams to the MPR engine and back
    /// (the MPR's dropped when `blackhole`); the client's events.
    fn pump(&mut self, blackhole: bool) -> Vec<client::Event> {
        let mut events = Vec::new();
        for _ in 0..16 {
            let mut moved = false;
            while let Some(t) = self.cl.poll_transmit() {
                moved = true;
                self.sent.push(t.clone());
                if !blackhole {
                    let _ = self
                        .mpr
                        .handle_datagram(self.now, rx(t.remote, t.local, &t.payload));
                }
            }
            apply_commands(self.now, &mut self.mpr, &mut NoSockets);
            while let Some(t) = self.mpr.poll_transmit() {
                moved = true;
                let _ = self
                    .cl
                    .handle_datagram(self.now, rx(t.remote, t.local, &t.payload));
            }
            events.extend(std::iter::from_fn(|| self.cl.poll_event()));
            if !moved {
                break;
            }
        }
        events
    }

    /// The MPR never answers: time passes until the client engine gives
    /// up on the CMPH; its events.
    fn until_failed(&mut self) -> Vec<client::Event> {
        let mut events = Vec::new();
        for _ in 0..240 {
            self.now += Duration::from_millis(500);
            self.cl.handle_timeout(self.now);
            events.extend(self.pump(true));
            if events
                .iter()
                .any(|e| matches!(e, client::Event::PinholeFailed { .. }))
            {
                break;
            }
        }
        events
    }

    /// The engine's events handed to the APS; what the APS sends then.
    fn report(&mut self, events: &[client::Event]) -> Vec<Transmit> {
        for e in events {
            self.aps.handle_event(
                self.now,
                &mut LiveClient::new(&mut self.cl, &mut NoSockets),
                e,
            );
        }
        std::iter::from_fn(|| self.aps.poll_transmit()).collect()
    }
}

fn service_change(id: u32) -> Vec<u8> {
    format!(
        "MEGACO/1 {MG_MID}\r\nTransaction = {id} {{\r\n  Context = - {{\r\n    ServiceChange = ROOT {{Services {{Method = Restart, Profile = ResGW/1}}}}\r\n  }}\r\n}}\r\n"
    )
    .into_bytes()
}

fn sc_reply(id: u32) -> Vec<u8> {
    format!("MEGACO/1 {MGC_MID}\r\nReply = {id} {{\r\n  Context = - {{ServiceChange = ROOT {{Services {{Profile = ResGW/1}}}}}}\r\n}}\r\n").into_bytes()
}

/// The MGC's Add of a new RTP termination in a new context (CHOOSE in
/// Local), with the other side's media in Remote when given.
fn add(id: u32, remote: Option<SocketAddr>) -> Vec<u8> {
    let remote = remote.map_or(String::new(), |r| {
        format!(
            ",\r\n          Remote {{\r\nv=0\r\nc=IN IP4 {}\r\nm=audio {} RTP/AVP 0\r\n          }}",
            r.ip(),
            r.port()
        )
    });
    format!(
        "MEGACO/1 {MGC_MID}\r\nTransaction = {id} {{\r\n  Context = $ {{\r\n    Add = RTP/$ {{\r\n      Media {{\r\n        Stream = 1 {{\r\n          LocalControl {{ Mode = SendReceive }},\r\n          Local {{\r\nv=0\r\nc=IN IP4 $\r\nm=audio $ RTP/AVP 0\r\n          }}{remote}\r\n        }}\r\n      }}\r\n    }}\r\n  }}\r\n}}\r\n"
    )
    .into_bytes()
}

/// The gateway's reply to Add `id`: termination `term` in context
/// `context`, with its media in Local when given.
fn add_reply(id: u32, context: u32, term: &str, local: Option<SocketAddr>) -> Vec<u8> {
    let media = local.map_or(String::new(), |l| {
        format!(
            " {{\r\n      Media {{\r\n        Stream = 1 {{\r\n          Local {{\r\nv=0\r\nc=IN IP4 {}\r\nm=audio {} RTP/AVP 0\r\n          }}\r\n        }}\r\n      }}\r\n    }}",
            l.ip(),
            l.port()
        )
    });
    format!(
        "MEGACO/1 {MG_MID}\r\nReply = {id} {{\r\n  Context = {context} {{\r\n    Add = {term}{media}\r\n  }}\r\n}}\r\n"
    )
    .into_bytes()
}

/// The error code of the one reply in `bytes`, and its transaction.
fn error_of(bytes: &[u8]) -> (u32, u32) {
    let m = crate::parse(bytes).unwrap();
    match m.items() {
        [Item::Reply(r)] => (r.id, u32::from(r.error.as_ref().expect("an error").code)),
        _ => panic!("not one reply"),
    }
}

/// The port of the first `m=` line of `text`.
fn m_port(text: &str) -> u16 {
    let at = text.find("m=audio ").unwrap() + 8;
    text[at..].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_reply_with_local_waits_for_its_pinhole_and_leaves_with_it() {
    let mut b = Bed::new(true);
    assert_eq!(b.mpr_sends(&tag(MG_MID, &add(2, None))).len(), 1);
    let reply = add_reply(2, 7, "RTP/1", Some(sa("10.1.0.10:4000")));
    assert!(
        b.mg_sends(&reply).is_empty(),
        "held until the pinhole opens"
    );
    assert_eq!((b.aps.stats().parked, b.aps.stats().pinholes), (1, 1));
    assert_eq!(b.cl.stats().cmph_sent, 1);
    b.sent.clear();
    let events = b.pump(false);
    // The CMPH left from port B for the MPR.
    let cmph = &b.sent[0];
    assert_eq!((cmph.local.ip(), cmph.remote), (sa(APS).ip(), sa(MPR)));
    assert!((20_000..=20_099).contains(&cmph.local.port()));
    let public = events
        .iter()
        .find_map(|e| match e {
            client::Event::PinholeOpened { pinhole, .. } => *pinhole,
            _ => None,
        })
        .expect("the pinhole opened");
    let out = b.report(&events);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].local, out[0].remote), (sa(APS), sa(MPR)));
    let want = String::from_utf8(reply)
        .unwrap()
        .replace("10.1.0.10\r\n", &format!("{}\r\n", public.ip()))
        .replace("audio 4000", &format!("audio {}", public.port()));
    assert_eq!(String::from_utf8(out[0].payload.clone()).unwrap(), want);
    assert_eq!(b.aps.stats().sdp_rewritten, 1);
    assert_eq!(b.aps.terminations(), 1);
}

#[test]
fn an_add_with_remote_reaches_the_gateway_untagged_with_port_b() {
    let mut b = Bed::new(true);
    let relay = sa("203.0.113.10:40000");
    let add = add(2, Some(relay));
    let out = b.mpr_sends(&tag(MG_MID, &add));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].local, out[0].remote), (sa(APS), sa(MG)));
    let text = String::from_utf8(out[0].payload.clone()).unwrap();
    let port_b = m_port(&text[text.find("Remote").unwrap()..]);
    assert!((20_000..=20_099).contains(&port_b), "{text}");
    let want = String::from_utf8(add)
        .unwrap()
        .replace("IN IP4 203.0.113.10", "IN IP4 10.1.0.2")
        .replace("audio 40000", &format!("audio {port_b}"));
    assert_eq!(text, want);
    assert_eq!(b.aps.ports_in_use(), 1);
    assert_eq!(b.aps.stats().sdp_rewritten, 1);
}

#[test]
fn a_failed_pinhole_refuses_the_reply_once_and_subtracts_the_termination() {
    let mut b = Bed::new(true);
    b.mpr_sends(&tag(MG_MID, &add(2, None)));
    let reply = add_reply(2, 7, "RTP/1", Some(sa("10.1.0.10:4000")));
    assert!(b.mg_sends(&reply).is_empty());
    let events = b.until_failed();
    let cmph = b.cl.stats().cmph_sent;
    let out = b.report(&events);
    assert_eq!(out.len(), 2, "{out:?}");
    let to_mpr: Vec<&Transmit> = out.iter().filter(|t| t.remote == sa(MPR)).collect();
    let to_mg: Vec<&Transmit> = out.iter().filter(|t| t.remote == sa(MG)).collect();
    assert_eq!((to_mpr.len(), to_mg.len()), (1, 1));
    assert_eq!(error_of(&to_mpr[0].payload), (2, 510));
    assert!(
        to_mpr[0]
            .payload
            .starts_with(format!("MEGACO/1 {MG_MID}").as_bytes())
    );
    // Our own Subtract, in our name, of what the gateway made.
    let sub = crate::parse(&to_mg[0].payload).unwrap();
    assert_eq!(sub.mid().text, "[10.1.0.2]:2944");
    let Item::Request(r) = &sub.items()[0] else {
        panic!("not a request");
    };
    assert!(r.id >= 900_000_000);
    assert_eq!(r.actions[0].context, ContextId::Id(7));
    assert_eq!(r.actions[0].commands[0].kind, CommandKind::Subtract);
    assert_eq!(r.actions[0].commands[0].terminations[0].text, "RTP/1");
    assert_eq!((b.aps.terminations(), b.aps.ports_in_use()), (0, 0));
    // The gateway's reply to it is absorbed; a repeated reply gets the
    // same refusal, and no new CMPH.
    let sub_ok = format!(
        "MEGACO/1 {MG_MID}\r\nReply = {} {{ Context = 7 {{ Subtract = RTP/1 }} }}\r\n",
        r.id
    );
    assert!(b.mg_sends(sub_ok.as_bytes()).is_empty());
    let again = b.mg_sends(&reply);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload, to_mpr[0].payload);
    b.pump(true);
    assert_eq!(b.cl.stats().cmph_sent, cmph, "never a CMPH loop");
    assert_eq!(b.aps.stats().replied, 1);
}

#[test]
fn retransmissions_get_the_first_bytes_again() {
    let mut b = Bed::new(true);
    let add = tag(MG_MID, &add(2, Some(sa("203.0.113.10:40000"))));
    let first = b.mpr_sends(&add);
    let second = b.mpr_sends(&add);
    assert_eq!(second.len(), 1);
    assert_eq!(first[0].payload, second[0].payload, "the same port B");
    assert_eq!(b.aps.ports_in_use(), 1);
    let reply = add_reply(2, 7, "RTP/1", Some(sa("10.1.0.10:4000")));
    assert!(b.mg_sends(&reply).is_empty());
    // Repeated while its pinhole opens: absorbed.
    assert!(b.mg_sends(&reply).is_empty());
    let events = b.pump(false);
    let sent = b.report(&events);
    assert_eq!(sent.len(), 1, "the reply leaves once");
    let again = b.mg_sends(&reply);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload, sent[0].payload);
    assert_eq!(b.aps.stats().retransmissions, 3);
    assert_eq!(b.aps.stats().pinholes, 1);
}

#[test]
fn subtract_frees_the_ports_b() {
    let mut b = Bed::new(true);
    let relay = sa("203.0.113.10:40000");
    b.mpr_sends(&tag(MG_MID, &add(2, Some(relay))));
    b.mg_sends(&add_reply(2, 7, "RTP/1", None));
    b.mpr_sends(&tag(MG_MID, &add(3, Some(sa("203.0.113.10:40002")))));
    b.mg_sends(&add_reply(3, 8, "RTP/2", None));
    assert_eq!((b.aps.terminations(), b.aps.ports_in_use()), (2, 2));
    let sub = format!(
        "MEGACO/1 {MGC_MID}\r\nTransaction = 4 {{\r\n  Context = 7 {{\r\n    Subtract = RTP/1\r\n  }}\r\n}}\r\n"
    );
    let out = b.mpr_sends(&tag(MG_MID, sub.as_bytes()));
    assert_eq!(out[0].payload, sub.as_bytes(), "passes unchanged");
    assert_eq!((b.aps.terminations(), b.aps.ports_in_use()), (1, 1));
    // Every termination in every context.
    let all =
        format!("MEGACO/1 {MGC_MID}\r\nTransaction = 5 {{ Context = * {{ Subtract = * }} }}\r\n");
    b.mpr_sends(&tag(MG_MID, all.as_bytes()));
    assert_eq!((b.aps.terminations(), b.aps.ports_in_use()), (0, 0));
    assert_eq!(b.aps.stats().teardowns, 2);
}

#[test]
fn messages_from_the_mpr_without_a_known_gateway_are_dropped() {
    let mut b = Bed::new(true);
    let add = add(2, None);
    assert!(b.mpr_sends(&add).is_empty(), "no gateway line");
    assert!(b.mpr_sends(&tag("[10.1.0.99]:2944", &add)).is_empty());
    assert_eq!(b.aps.stats().unknown_mg, 2);
    assert_eq!(b.aps.terminations(), 0);
}

#[test]
fn before_registration_gateway_requests_get_503() {
    let mut b = Bed::new(false);
    let out = b.mg_sends(&service_change(1));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].local, out[0].remote), (sa(APS), sa(MG)));
    assert_eq!(error_of(&out[0].payload), (1, 503));
    assert!(out[0].payload.starts_with(b"MEGACO/1 [10.1.0.2]:2944"));
    assert_eq!(b.aps.stats().replied, 1);
}

#[test]
fn a_known_mid_moves_only_with_a_service_change() {
    let mut b = Bed::new(true);
    let notify = format!(
        "MEGACO/1 {MG_MID}\r\nTransaction = 9 {{ Context = - {{ Notify = ROOT {{ ObservedEvents = 1 {{ it/ito }} }} }} }}\r\n"
    );
    let other = "10.1.0.11:2944";
    assert!(b.feed(other, notify.as_bytes()).is_empty());
    assert_eq!(b.aps.stats().mid_conflicts, 1);
    let out = b.feed(other, &service_change(10));
    assert_eq!(out.len(), 1);
    let out = b.mpr_sends(&tag(MG_MID, &sc_reply(10)));
    assert_eq!(out[0].remote, sa(other), "moved");
}

#[test]
fn our_subtract_parses_and_wildcards_match_runs() {
    let s = subtract(1, "[10.1.0.2]:2944", 900_000_001, 7, "RTP/1");
    let m = crate::parse(&s).unwrap();
    assert_eq!(m.items()[0].id(), Some(900_000_001));
    assert!(names("*", "RTP/1"));
    assert!(names("RTP/*", "rtp/17"));
    assert!(names("DS/*/24", "DS/4/24"));
    assert!(!names("RTP/*", "DS/4/24"));
    assert!(!names("RTP/1", "RTP/10"));
}

#[test]
fn an_add_never_answered_frees_its_ports_on_sweep() {
    let mut b = Bed::new(true);
    b.mpr_sends(&tag(MG_MID, &add(2, Some(sa("203.0.113.10:40000")))));
    assert_eq!((b.aps.terminations(), b.aps.ports_in_use()), (1, 1));
    let later = b.now + Duration::from_secs(31);
    b.aps
        .handle_timeout(later, &mut LiveClient::new(&mut b.cl, &mut NoSockets));
    assert_eq!((b.aps.terminations(), b.aps.ports_in_use()), (0, 0));
    assert!(b.aps.stats().expired >= 1);
}

#[test]
fn a_refused_add_frees_what_it_created() {
    let mut b = Bed::new(true);
    b.mpr_sends(&tag(MG_MID, &add(2, Some(sa("203.0.113.10:40000")))));
    assert_eq!((b.aps.terminations(), b.aps.ports_in_use()), (1, 1));
    let refused = format!(
        "MEGACO/1 {MG_MID}\r\nReply = 2 {{ Context = - {{ Error = 510 {{ \"No RTP port\" }} }} }}\r\n"
    );
    let out = b.mg_sends(refused.as_bytes());
    assert_eq!(out[0].payload, refused.as_bytes(), "passes as it is");
    assert_eq!((b.aps.terminations(), b.aps.ports_in_use()), (0, 0));
}

#[test]
fn a_held_reply_whose_termination_was_subtracted_stops_holding_on_sweep() {
    let mut b = Bed::new(true);
    b.mpr_sends(&tag(MG_MID, &add(2, None)));
    let reply = add_reply(2, 7, "RTP/1", Some(sa("10.1.0.10:4000")));
    assert!(b.mg_sends(&reply).is_empty());
    // The MGC gives up on it while the pinhole opens: no event will come.
    let sub = format!(
        "MEGACO/1 {MGC_MID}\r\nTransaction = 3 {{ Context = 7 {{ Subtract = RTP/1 }} }}\r\n"
    );
    assert_eq!(b.mpr_sends(&tag(MG_MID, sub.as_bytes())).len(), 1);
    assert_eq!(b.aps.terminations(), 0);
    let notify = format!(
        "MEGACO/1 {MG_MID}\r\nTransaction = 11 {{ Context = - {{ Notify = ROOT {{ ObservedEvents = 1 {{ it/ito }} }} }} }}\r\n"
    );
    assert!(
        b.mg_sends(notify.as_bytes()).is_empty(),
        "behind the held reply"
    );
    b.now += Duration::from_secs(1);
    b.aps
        .handle_timeout(b.now, &mut LiveClient::new(&mut b.cl, &mut NoSockets));
    // The gateway repeats both; they pass, the reply as it is.
    let out = b.mg_sends(&reply);
    assert_eq!((out.len(), out[0].remote), (1, sa(MPR)));
    assert_eq!(out[0].payload, reply);
    let out = b.mg_sends(notify.as_bytes());
    assert_eq!(out[0].payload, notify.as_bytes());
    assert_eq!(b.aps.stats().pinholes, 1);
}

#[test]
fn terminal_mode_passes_the_remote_to_the_gateway_unchanged() {
    let mut b = Bed::terminal();
    let add = add(2, Some(sa("203.0.113.10:40000")));
    let out = b.mpr_sends(&tag(MG_MID, &add));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].local, out[0].remote), (sa(ALG), sa(MG)));
    // The gateway sends straight to the relay address: only the line
    // naming it is gone.
    assert_eq!(out[0].payload, add);
    assert_eq!((b.aps.ports_in_use(), b.aps.stats().sdp_rewritten), (0, 0));
    assert_eq!(b.aps.terminations(), 1);
}

#[test]
fn terminal_mode_opens_from_the_gateways_media_port_and_local_gets_the_public_address() {
    let mut b = Bed::terminal();
    assert_eq!(b.mpr_sends(&tag(MG_MID, &add(2, None))).len(), 1);
    let media = sa("10.1.0.10:4000");
    let reply = add_reply(2, 7, "RTP/1", Some(media));
    assert!(
        b.mg_sends(&reply).is_empty(),
        "held until the CMPH is answered"
    );
    assert_eq!((b.aps.stats().parked, b.aps.stats().pinholes), (1, 1));
    b.sent.clear();
    let events = b.pump(false);
    // The CMPH left from the gateway's own media port, not a port B.
    assert_eq!((b.sent[0].local, b.sent[0].remote), (media, sa(MPR)));
    assert_eq!(b.aps.ports_in_use(), 0);
    let public = events
        .iter()
        .find_map(|e| match e {
            client::Event::PinholeOpened { pinhole, .. } => *pinhole,
            _ => None,
        })
        .expect("the pinhole opened");
    let out = b.report(&events);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].local, out[0].remote), (sa(ALG), sa(MPR)));
    let want = String::from_utf8(reply)
        .unwrap()
        .replace("10.1.0.10\r\n", &format!("{}\r\n", public.ip()))
        .replace("audio 4000", &format!("audio {}", public.port()));
    assert_eq!(String::from_utf8(out[0].payload.clone()).unwrap(), want);
    // Subtract closes the pinhole.
    let sub = subtract(1, MGC_MID, 3, 7, "RTP/1");
    assert_eq!(b.mpr_sends(&tag(MG_MID, &sub)).len(), 1);
    assert_eq!(b.aps.terminations(), 0);
}

#[test]
fn terminal_mode_refuses_a_reply_whose_pinhole_failed_as_the_aps_does() {
    let mut b = Bed::terminal();
    b.mpr_sends(&tag(MG_MID, &add(2, None)));
    let reply = add_reply(2, 7, "RTP/1", Some(sa("10.1.0.10:4000")));
    assert!(b.mg_sends(&reply).is_empty());
    let events = b.until_failed();
    let out = b.report(&events);
    // 510 to the MGC in the gateway's name, our Subtract to the gateway.
    let to_mpr: Vec<&Transmit> = out.iter().filter(|t| t.remote == sa(MPR)).collect();
    let to_mg: Vec<&Transmit> = out.iter().filter(|t| t.remote == sa(MG)).collect();
    assert_eq!((to_mpr.len(), to_mg.len()), (1, 1), "{out:?}");
    assert_eq!(error_of(&to_mpr[0].payload), (2, 510));
    let sub = crate::parse(&to_mg[0].payload).unwrap();
    assert_eq!(sub.mid().text, "[10.1.0.10]:2950", "in the ALG's name");
    assert_eq!(b.aps.terminations(), 0);
}

#[test]
fn with_the_relay_out_of_ports_each_add_gets_one_510_and_the_aps_backs_off() {
    let pc = ApsConfig::new(
        sa(APS),
        sa(APS).ip(),
        PortRange::new(20_000, 20_099).unwrap(),
        [3; 32],
    );
    // 4 port pairs, all taken (by public calls the MPR relays).
    let mut b = Bed::tuned(pc, true, |mc| {
        mc.ports = PortRange::new(30_000, 30_007).unwrap();
    });
    let now = b.now;
    assert_eq!(
        pinhole_testkit::exhaust::take_every_port(&mut b.mpr, now),
        2
    );
    let cmph = b.cl.stats().cmph_sent;
    // The MGC adds 100 terminations, 5 a second for 20 s; the gateway
    // answers each with its Local.
    let (refusals, logs) = pinhole_testkit::exhaust::counted(|| {
        let mut refusals = Vec::new();
        for id in 10..110u32 {
            b.now += Duration::from_millis(200);
            b.cl.handle_timeout(b.now);
            b.pump(false);
            b.mpr_sends(&tag(MG_MID, &add(id, None)));
            let term = format!("RTP/{id}");
            let mut out = b.mg_sends(&add_reply(id, id, &term, Some(sa("10.1.0.10:4000"))));
            let events = b.pump(false);
            out.extend(b.report(&events));
            for t in out {
                if t.remote == sa(MPR) {
                    refusals.push(error_of(&t.payload));
                }
            }
        }
        refusals
    });
    let want: Vec<(u32, u32)> = (10..110).map(|id| (id, 510)).collect();
    assert_eq!(refusals, want, "one 510 per Add, in order");
    // Reserves reached the MPR at 0, 1, 3, 7 and 15 s (back-off 1-16 s).
    let sent = b.cl.stats().cmph_sent - cmph;
    assert_eq!(sent, 5, "CMPH reserves sent");
    assert_eq!(b.cl.stats().cmph_held_back, 95);
    assert!(logs.warn + logs.error <= 3 * sent, "{logs:?}");
    assert_eq!((b.aps.terminations(), b.aps.ports_in_use()), (0, 0));
}
