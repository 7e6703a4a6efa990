//! Small sans-IO actors for the MGCP figures on the simulated network: a
//! call agent on the public side that writes commands, gateways that
//! answer them with an SDP naming their RTP port, and the ladder check.
#![allow(dead_code, missing_docs, unreachable_pub)]

use std::net::{IpAddr, SocketAddr};

use pinhole_core::mpr;
use pinhole_mgcp::{Command, Message, Response, parse_datagram};
use pinhole_testkit::World;

pub const MPR_IP: &str = "203.0.113.10";
pub const MPR: &str = "203.0.113.10:2727";
pub const CA: &str = "192.0.2.5:2727";
pub const FW1: &str = "198.51.100.1";
pub const FW2: &str = "198.51.100.2";

pub fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An MPR with corp1 (corp1.example) and corp2 (corp2.example), and a
/// corp3 (corp3.example) that never registers.
pub fn mpr_config() -> mpr::Config {
    let mut mc = mpr::Config::new(ip(MPR_IP), [1; 32]);
    mc.control_ports = vec![2727];
    for (id, dom) in [
        ("corp1", "corp1.example"),
        ("corp2", "corp2.example"),
        ("corp3", "corp3.example"),
    ] {
        let mut n = mpr::NetworkConfig::new(id, format!("{id}-secret").into_bytes());
        n.domains.push(dom.into());
        mc.networks.push(n);
    }
    mc
}

/// A gateway's session description: PCMU on `media`.
pub fn sdp(media: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 4711 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n",
        ip = media.ip(),
        port = media.port()
    )
}

/// The first stream's address in the first message's SDP.
pub fn media_of(d: &[u8]) -> SocketAddr {
    let msgs = parse_datagram(d).unwrap();
    let sdp = msgs[0].sdp().unwrap().expect("an SDP");
    sdp.endpoints(ip("0.0.0.0")).unwrap()[0].addr
}

/// What arrived at `at`.
pub fn take(w: &mut World, at: &str) -> Vec<Vec<u8>> {
    w.take_inbox(a(at)).into_iter().map(|d| d.payload).collect()
}

pub fn one(w: &mut World, at: &str) -> Vec<u8> {
    let mut got = take(w, at);
    assert_eq!(got.len(), 1, "one datagram at {at}: {got:?}");
    got.remove(0)
}

pub fn code(d: &[u8]) -> u16 {
    Message::parse(d).unwrap().code().unwrap()
}

/// The call agent on the public side: writes commands.
pub struct CallAgent {
    next: u32,
}

impl CallAgent {
    pub fn new() -> Self {
        Self { next: 1000 }
    }

    pub fn command(
        &mut self,
        verb: &str,
        endpoint: &str,
        params: &[(&str, &str)],
        sdp: Option<&str>,
    ) -> (u32, Vec<u8>) {
        self.next += 1;
        let mut b = Command::builder(verb, self.next, endpoint);
        for (n, v) in params {
            b = b.param(n, v);
        }
        if let Some(s) = sdp {
            b = b.sdp(s.as_bytes());
        }
        (self.next, b.to_bytes())
    }
}

/// A plain gateway inside a network: answers CRCX and MDCX with an SDP
/// naming its RTP port, DLCX with 250, anything else with 200.
pub struct Gateway {
    pub media: SocketAddr,
    pub remote: Option<SocketAddr>,
    pub conn: Option<String>,
    pub name: &'static str,
}

impl Gateway {
    pub fn new(media: &str, name: &'static str) -> Self {
        Self {
            media: a(media),
            remote: None,
            conn: None,
            name,
        }
    }

    pub fn answer(&mut self, cmd: &[u8]) -> Vec<u8> {
        let m = Message::parse(cmd).unwrap();
        if let Ok(Some(s)) = m.sdp() {
            self.remote = Some(s.endpoints(ip("0.0.0.0")).unwrap()[0].addr);
        }
        let txid = m.transaction_id();
        match m.verb().unwrap().as_str() {
            "CRCX" => {
                let id = format!("{}C0FFEE", self.name);
                self.conn = Some(id.clone());
                Response::builder(200, txid)
                    .commentary("OK")
                    .param("I", &id)
                    .sdp(sdp(self.media).as_bytes())
                    .to_bytes()
            }
            "MDCX" => Response::builder(200, txid)
                .commentary("OK")
                .sdp(sdp(self.media).as_bytes())
                .to_bytes(),
            "DLCX" => {
                self.conn = None;
                Response::builder(250, txid).commentary("OK").to_bytes()
            }
            _ => Response::builder(200, txid).commentary("OK").to_bytes(),
        }
    }
}

pub use pinhole_testkit::ladder::{Step, changed_lines, check_ladder, step};
