//! The phones through a stand-in for the proxies: a forwarder that passes
//! SIP between caller and callee and rewrites every SDP so media goes
//! through a two-socket relay. Proves the harness reads the SDP each side
//! *received* (the relay's addresses, not the other phone's) and that the
//! test's RTP follows it — the shape of the real proxy tests.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pinhole_testkit::sip::Response;
use pinhole_tests::sipp::sdp::Sdp;
use pinhole_tests::sipp::sip::SipMessage;
use pinhole_tests::sipp::{Keys, Sipp, scenario, sipp_or_skip};

use crate::common::*;

const BOX_IP: &str = "127.0.0.3";
/// The forwarder's threads stop by themselves after this, whatever happens.
const LIFETIME: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Learned {
    caller_sip: Option<SocketAddr>,
    caller_media: Option<SocketAddr>,
    callee_media: Option<SocketAddr>,
}

struct Middlebox {
    /// Where the caller sends its SIP.
    sip: SocketAddr,
    /// The relay leg the callee's SDP is rewritten to (the caller sends here).
    leg_for_caller: SocketAddr,
    /// The relay leg the caller's SDP is rewritten to (the callee sends here).
    leg_for_callee: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Middlebox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Rewrites the audio address of an SDP body to `to`, returning the
/// message with a fixed Content-Length and the address it replaced.
fn rewrite(datagram: &[u8], to: SocketAddr) -> (Vec<u8>, Option<SocketAddr>) {
    let Ok(msg) = SipMessage::parse(datagram) else {
        return (datagram.to_vec(), None);
    };
    if !msg.has_sdp() {
        return (datagram.to_vec(), None);
    }
    let was = Sdp::parse(&msg.body).ok().and_then(|s| s.audio_addr());
    let body = String::from_utf8_lossy(&msg.body)
        .split("\r\n")
        .map(|l| {
            if l.starts_with("c=IN IP4 ") {
                format!("c=IN IP4 {}", to.ip())
            } else if let Some(rest) = l.strip_prefix("m=audio ") {
                let tail = rest.split_once(' ').map_or("", |(_, t)| t);
                format!("m=audio {} {tail}", to.port())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    let head_end = datagram.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&datagram[..head_end]);
    let head: String = head
        .split_inclusive("\r\n")
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("content-length:") {
                format!("Content-Length: {}\r\n", body.len())
            } else {
                l.to_owned()
            }
        })
        .collect();
    ([head.into_bytes(), body.into_bytes()].concat(), was)
}

fn spawn_loop(stop: &Arc<AtomicBool>, mut step: impl FnMut() + Send + 'static) -> JoinHandle<()> {
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        let end = Instant::now() + LIFETIME;
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            step();
        }
    })
}

fn recv(sock: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    sock.recv_from(buf).ok()
}

impl Middlebox {
    fn start(callee_sip: SocketAddr) -> Self {
        let bind = || {
            let s = UdpSocket::bind((BOX_IP, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            Arc::new(s)
        };
        let (outer, inner, leg_a, leg_b) = (bind(), bind(), bind(), bind());
        let (sip, leg_for_caller, leg_for_callee) = (
            outer.local_addr().unwrap(),
            leg_a.local_addr().unwrap(),
            leg_b.local_addr().unwrap(),
        );
        let learned = Arc::new(Mutex::new(Learned::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();

        // Caller → callee: the caller's SDP now names leg B.
        let (o, i, l) = (outer.clone(), inner.clone(), learned.clone());
        let mut buf = vec![0u8; 65536];
        threads.push(spawn_loop(&stop, move || {
            if let Some((n, from)) = recv(&o, &mut buf) {
                let (out, was) = rewrite(&buf[..n], leg_for_callee);
                let mut l = l.lock().unwrap();
                l.caller_sip = Some(from);
                l.caller_media = was.or(l.caller_media);
                let _ = i.send_to(&out, callee_sip);
            }
        }));
        // Callee → caller: the callee's SDP now names leg A.
        let (o, i, l) = (outer.clone(), inner.clone(), learned.clone());
        let mut buf = vec![0u8; 65536];
        threads.push(spawn_loop(&stop, move || {
            if let Some((n, _)) = recv(&i, &mut buf) {
                let (out, was) = rewrite(&buf[..n], leg_for_caller);
                let mut l = l.lock().unwrap();
                l.callee_media = was.or(l.callee_media);
                if let Some(caller) = l.caller_sip {
                    let _ = o.send_to(&out, caller);
                }
            }
        }));
        // Media: what reaches leg A goes to the callee from leg B, and back.
        for (rx, tx, to_callee) in [(leg_a.clone(), leg_b.clone(), true), (leg_b, leg_a, false)] {
            let l = learned.clone();
            let mut buf = vec![0u8; 2048];
            threads.push(spawn_loop(&stop, move || {
                if let Some((n, _)) = recv(&rx, &mut buf) {
                    let to = {
                        let l = l.lock().unwrap();
                        if to_callee {
                            l.callee_media
                        } else {
                            l.caller_media
                        }
                    };
                    if let Some(to) = to {
                        let _ = tx.send_to(&buf[..n], to);
                    }
                }
            }));
        }
        Self {
            sip,
            leg_for_caller,
            leg_for_callee,
            stop,
            threads,
        }
    }
}

#[test]
fn rewrite_fixes_content_length_and_reports_the_old_address() {
    let body = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
    let msg = Response::new(200, "OK").sdp(body).build();
    let (out, was) = rewrite(&msg, "127.0.0.3:40000".parse().unwrap());
    assert_eq!(was, Some("127.0.0.1:4000".parse().unwrap()));
    let out = SipMessage::parse(&out).unwrap();
    assert_eq!(
        out.header("Content-Length"),
        Some(out.body.len().to_string().as_str())
    );
    let sdp = Sdp::parse(&out.body).unwrap();
    assert_eq!(sdp.audio_addr(), Some("127.0.0.3:40000".parse().unwrap()));
}

#[test]
fn basic_call_through_a_rewriting_middlebox() -> TestResult {
    if !sipp_or_skip("basic_call_through_a_rewriting_middlebox") {
        return Ok(());
    }
    let test = "basic_call_through_a_rewriting_middlebox";
    let caller = Phone::new(CALLER_IP)?;
    let callee = Phone::new(CALLEE_IP)?;
    let mut uas = Sipp::uas(
        scenario("uas_basic.xml"),
        SocketAddr::new(CALLEE_IP.parse()?, 0),
        Keys::new(callee.media_addr).domain(CALLEE_DOMAIN),
    )
    .pause(PAUSE)
    .timeout(SIPP_TIMEOUT)
    .dir(run_dir(test, "uas"))
    .spawn()?;
    let mb = Middlebox::start(uas.local_addr());
    // The caller is pointed at the middlebox, as it will be at a proxy.
    let mut uac = Sipp::uac(
        scenario("uac_basic.xml"),
        SocketAddr::new(CALLER_IP.parse()?, 0),
        mb.sip,
        Keys::new(caller.media_addr).domain(CALLEE_DOMAIN),
    )
    .pause(PAUSE)
    .timeout(SIPP_TIMEOUT)
    .dir(run_dir(test, "uac"))
    .spawn()?;

    let at_callee = uas.wait_received_sdps(1, WAIT)?.remove(0);
    let at_caller = uac.wait_received_sdps(1, WAIT)?.remove(0);
    // Each side was told the relay, not the other phone.
    assert_eq!(at_callee.audio_addr(), Some(mb.leg_for_callee));
    assert_eq!(at_caller.audio_addr(), Some(mb.leg_for_caller));

    let r = pinhole_tests::rtp::rtp_pair(
        &caller.media,
        &callee.media,
        at_caller.audio_addr().unwrap(),
        at_callee.audio_addr().unwrap(),
        PACKETS,
        INTERVAL,
    )?;
    assert_complete("relayed", "caller → callee", &r.a_to_b);
    assert_complete("relayed", "callee → caller", &r.b_to_a);
    // The media came out of the relay.
    assert_eq!(r.a_to_b.sources, [mb.leg_for_callee]);
    assert_eq!(r.b_to_a.sources, [mb.leg_for_caller]);

    uac.wait()?.ensure_success()?;
    uas.wait()?.ensure_success()?;
    Ok(())
}
