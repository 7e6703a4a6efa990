//! The standard test deployment (the patent's Figs. 2 and 3 in one): corp1
//! with an APS and phone A, corp2 with a smart terminal T and no APS, a
//! public party P and an attacker X on the internet, and the MPR. Shared by
//! the workspace tests and the demo.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::{ClientId, Corp, FirewallConfig, World, base_instant};
use pinhole_core::CallKey;
use pinhole_core::client::{self, Event as ClientEvent, PinholeRequest};
use pinhole_core::intent::{IntentKind, MediaEndpoint, MediaIntent, MediaPlan, Origin};
use pinhole_core::mpr;
use pinhole_core::types::Side;
use pinhole_core::wire::{Protocol, RtcpMode};

/// corp1's shared secret.
pub const CRED1: &[u8] = b"corp1-shared-secret";
/// corp2's shared secret.
pub const CRED2: &[u8] = b"corp2-shared-secret";

/// Parses a socket address (test constants only).
pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Parses an IP address (test constants only).
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The MPR's address.
pub const MPR: &str = "203.0.113.10";
/// The MPR's signaling/control address.
pub const MPR_SIP: &str = "203.0.113.10:5060";
/// APS1's signaling socket (corp1).
pub const APS1_SIG: &str = "10.1.0.2:5060";
/// Phone A's media address (corp1, behind APS1).
pub const PHONE_A: &str = "10.1.0.10:8000";
/// The smart terminal's signaling socket (corp2).
pub const T2_SIG: &str = "10.2.0.10:5060";
/// The public party's media address.
pub const P_MEDIA: &str = "192.0.2.7:4000";
/// The attacker's IP on the internet.
pub const ATTACKER: &str = "192.0.2.66";

/// The deployment and handles to its parts.
pub struct Bed {
    /// The world.
    pub w: World,
    /// corp1 (APS1, phone A, a plain phone).
    pub corp1: Corp,
    /// corp2 (smart terminal T2).
    pub corp2: Corp,
    /// APS1's client engine.
    pub aps1: ClientId,
    /// T2's client engine.
    pub t2: ClientId,
}

/// Knobs for [`Bed::with`].
pub struct Opts {
    /// Network seed (loss, ordering).
    pub seed: u64,
    /// Both firewalls' configuration.
    pub fw: FirewallConfig,
    /// Adjusts the MPR configuration.
    pub mpr: Box<dyn Fn(&mut mpr::Config)>,
    /// Adjusts APS1's configuration.
    pub aps1: Box<dyn Fn(&mut client::Config)>,
    /// Adjusts T2's configuration.
    pub t2: Box<dyn Fn(&mut client::Config)>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            seed: 7,
            fw: FirewallConfig::default(),
            mpr: Box::new(|_| {}),
            aps1: Box::new(|_| {}),
            t2: Box::new(|_| {}),
        }
    }
}

impl Default for Bed {
    fn default() -> Self {
        Self::new()
    }
}

impl Bed {
    /// The default deployment.
    pub fn new() -> Self {
        Self::with(Opts::default())
    }

    /// A deployment with the given knobs.
    pub fn with(o: Opts) -> Self {
        let mut mc = mpr::Config::new(ip(MPR), [11; 32]);
        mc.networks
            .push(mpr::NetworkConfig::new("corp1", CRED1.to_vec()));
        mc.networks
            .push(mpr::NetworkConfig::new("corp2", CRED2.to_vec()));
        (o.mpr)(&mut mc);
        let mut w = World::new(base_instant(), o.seed, mc);
        let corp1 = w.add_corp("corp1", ip("198.51.100.1"), o.fw.clone());
        let corp2 = w.add_corp("corp2", ip("198.51.100.2"), o.fw.clone());
        w.add_host(corp1.zone, ip("10.1.0.2"), "APS1");
        w.add_host(corp1.zone, ip("10.1.0.10"), "PhoneA");
        w.add_host(corp1.zone, ip("10.1.0.20"), "PlainPhone");
        w.add_host(corp2.zone, ip("10.2.0.10"), "T2");
        w.add_host(w.internet, ip("192.0.2.7"), "P");
        w.add_host(w.internet, ip(ATTACKER), "X");
        let mut c1 = client::Config::new(
            "corp1",
            CRED1.to_vec(),
            Protocol::Sip,
            addr(APS1_SIG),
            addr(MPR_SIP),
            [21; 32],
        );
        c1.domains.push("corp1.example".into());
        (o.aps1)(&mut c1);
        let aps1 = w.add_client(c1);
        let mut c2 = client::Config::new(
            "corp2",
            CRED2.to_vec(),
            Protocol::Sip,
            addr(T2_SIG),
            addr(MPR_SIP),
            [22; 32],
        );
        (o.t2)(&mut c2);
        let t2 = w.add_client(c2);
        Self {
            w,
            corp1,
            corp2,
            aps1,
            t2,
        }
    }

    /// Runs until both clients are registered (or fails the test).
    pub fn registered(mut self) -> Self {
        self.w.run_for(Duration::from_secs(1));
        assert!(
            self.w.client(self.aps1).registered_pinhole().is_some(),
            "APS1 registered"
        );
        assert!(
            self.w.client(self.t2).registered_pinhole().is_some(),
            "T2 registered"
        );
        self
    }

    /// Opens a pinhole and runs until the client reports it open.
    pub fn open(&mut self, who: ClientId, req: PinholeRequest) -> (SocketAddr, Option<SocketAddr>) {
        let now = self.w.now();
        let id = self
            .w
            .client(who)
            .open_pinhole(now, req)
            .expect("open_pinhole");
        self.w.run_for(Duration::from_secs(2));
        self.w
            .client_events(who)
            .iter()
            .find_map(|e| match e {
                ClientEvent::PinholeOpened {
                    id: i,
                    relay,
                    pinhole,
                    ..
                } if *i == id => Some((*relay, *pinhole)),
                _ => None,
            })
            .expect("pinhole opened")
    }

    /// Hands an intent to the MPR engine and returns its plan.
    pub fn intent(
        &mut self,
        call: &str,
        kind: IntentKind,
        from: Side,
        origin: Origin<'_>,
        toward: Origin<'_>,
        eps: &[MediaEndpoint],
    ) -> MediaPlan {
        let now = self.w.now();
        let intent = MediaIntent {
            kind,
            from,
            origin,
            toward,
            endpoints: eps,
            stranger: None,
        };
        self.w
            .mpr()
            .handle_intent(now, &CallKey::from(call), &intent)
            .expect("intent planned")
    }

    /// Side A's offer from `from` toward `toward`, then side B's answer
    /// back, for one call: the plans for both (the offer's endpoints as
    /// the MPR rewrote them toward B, the answer's toward A).
    pub fn offer_answer(
        &mut self,
        call: &str,
        from: Origin<'_>,
        toward: Origin<'_>,
        offer: &[MediaEndpoint],
        answer: &[MediaEndpoint],
    ) -> (MediaPlan, MediaPlan) {
        let o = self.intent(call, IntentKind::Offer, Side::A, from, toward, offer);
        let a = self.intent(call, IntentKind::Answer, Side::B, toward, from, answer);
        (o, a)
    }

    /// Sends `n` numbered packets each way, 20 ms apart, and returns the
    /// payloads each side received.
    pub fn talk(
        &mut self,
        a: (SocketAddr, SocketAddr),
        b: (SocketAddr, SocketAddr),
        n: u32,
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        for i in 0..n {
            self.w.send(a.0, a.1, rtp(b'a', i));
            self.w.send(b.0, b.1, rtp(b'b', i));
            self.w.run_for(Duration::from_millis(20));
        }
        self.w.run_for(Duration::from_millis(200));
        let at_b: Vec<Vec<u8>> = self
            .w
            .take_inbox(b.0)
            .into_iter()
            .map(|d| d.payload)
            .collect();
        let at_a: Vec<Vec<u8>> = self
            .w
            .take_inbox(a.0)
            .into_iter()
            .map(|d| d.payload)
            .collect();
        (at_b, at_a)
    }

    /// [`Bed::talk`], then asserts each side received exactly the other's
    /// `n` packets, in order and intact ([`assert_media`]).
    #[track_caller]
    pub fn talk_both_ways(
        &mut self,
        a: (SocketAddr, SocketAddr),
        b: (SocketAddr, SocketAddr),
        n: u32,
    ) {
        let (at_b, at_a) = self.talk(a, b, n);
        assert_media(&at_b, b'a', n);
        assert_media(&at_a, b'b', n);
    }
}

/// A fake RTP packet (version 2) whose payload names its sender and number.
pub fn rtp(who: u8, seq: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&(seq as u16).to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.push(who);
    p.extend_from_slice(&seq.to_be_bytes());
    p.resize(172, 0x55);
    p
}

/// Asserts `got` is exactly packets 0..n of `who`, in order, intact.
#[track_caller]
pub fn assert_media(got: &[Vec<u8>], who: u8, n: u32) {
    assert_eq!(got.len(), n as usize, "packets of {} received", who as char);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(
            p,
            &rtp(who, i as u32),
            "packet {i} of {} intact",
            who as char
        );
    }
}

/// An RTP endpoint with RTCP on the next port.
pub fn rtp_ep(index: u16, a: SocketAddr) -> MediaEndpoint {
    MediaEndpoint::rtp(index, a)
}

/// An rtcp-mux endpoint.
pub fn mux_ep(index: u16, a: SocketAddr) -> MediaEndpoint {
    MediaEndpoint {
        index,
        addr: a,
        rtcp: RtcpMode::Mux,
        rtcp_addr: None,
    }
}

/// The relay addresses and pinhole of a call from the public side into a
/// corporate network (Figs. 7 and 8).
#[derive(Clone, Copy, Debug)]
pub struct InboundCall {
    /// The relay address the offer named toward the inside party: its leg,
    /// which its pinhole was opened toward and which it sends media to.
    pub inside_leg: SocketAddr,
    /// The relay address the answer named toward the public party.
    pub public_leg: SocketAddr,
    /// The pinhole the CMPH Response reported; `None` when the client sends
    /// CMPH indications (the no-response variant).
    pub pinhole: Option<SocketAddr>,
}

impl Bed {
    /// Figs. 7 and 8: the public party at `public` offers a call into
    /// `network`; client `who` opens the media pinhole from `local` toward
    /// the leg the offer named (mapping it to `inside` when it is an APS);
    /// the answer carries the pinhole, or `local` when the CMPH went
    /// unanswered by design.
    #[allow(clippy::too_many_arguments)]
    pub fn inbound_call(
        &mut self,
        call: &str,
        network: &str,
        who: ClientId,
        public: SocketAddr,
        local: SocketAddr,
        rtcp: RtcpMode,
        inside: Option<SocketAddr>,
    ) -> InboundCall {
        let ep = |a| MediaEndpoint {
            index: 0,
            addr: a,
            rtcp,
            rtcp_addr: None,
        };
        let offer = self.intent(
            call,
            IntentKind::Offer,
            Side::A,
            Origin::Public,
            Origin::Network(network),
            &[ep(public)],
        );
        let inside_leg = offer.endpoints[0].addr;
        let key = format!("{call}/0").into_bytes();
        let (relay, pinhole) = self.open(
            who,
            PinholeRequest {
                local,
                relay: Some(inside_leg),
                rtcp,
                key,
                inside,
            },
        );
        assert_eq!(
            relay, inside_leg,
            "the pinhole was opened toward the leg the offer named"
        );
        let answer = self.intent(
            call,
            IntentKind::Answer,
            Side::B,
            Origin::Network(network),
            Origin::Public,
            &[ep(pinhole.unwrap_or(local))],
        );
        InboundCall {
            inside_leg,
            public_leg: answer.endpoints[0].addr,
            pinhole,
        }
    }

    /// Fig. 8: [`Bed::inbound_call`] from the public party's media address
    /// ([`P_MEDIA`]) to the smart terminal T2 in corp2, which opens its
    /// pinhole from `local`.
    pub fn call_into_t2(&mut self, call: &str, local: SocketAddr, rtcp: RtcpMode) -> InboundCall {
        let t2 = self.t2;
        self.inbound_call(call, "corp2", t2, addr(P_MEDIA), local, rtcp, None)
    }
}
