//! A SIP call through the real daemons: `pinhole mpr` and two `pinhole aps`
//! child processes configured with `[sip]`, sipp phones on either side,
//! RTP both ways through APS1 → MPR → APS2, and the MPR's `/metrics`
//! counting the rewritten SDP. (No firewall here: Fig. 11 through firewall
//! simulators is `tests/tests/sipp/fig11.rs`; this checks the binary's
//! wiring — configuration, driver, ALG, metrics.)

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pinhole_tests::daemon::{self, Daemon, free_tcp, free_udp};
use pinhole_tests::rtp::rtp_pair;
use pinhole_tests::sipp::{Keys, Sipp, scenario, sipp_or_skip};

const BIN: &str = env!("CARGO_BIN_EXE_pinhole");
const WAIT: Duration = Duration::from_secs(10);

/// The APSs' addresses (signaling, and media ports B from their fixed
/// ranges), used by no other suite of this test binary: no ephemeral socket
/// on the phones' 127.0.0.1 and 127.0.0.2 (`pinhole demo`'s among them) can
/// hold a port B.
const APS1_IP: &str = "127.0.0.47";
const APS2_IP: &str = "127.0.0.48";

fn write_config(name: &str, text: &str) -> PathBuf {
    daemon::write_config("pinhole-sip-test", name, text)
}

fn start(cmd: &str, config: &Path) -> Daemon {
    Daemon::with_config(BIN, &[cmd], config, Stdio::null())
}

fn wait_metric(addr: SocketAddr, line: &str) -> String {
    daemon::wait_metric(addr, line, WAIT)
}

#[test]
fn sip_call_through_the_mpr_and_two_aps_daemons() {
    if !sipp_or_skip("sip_call_through_the_daemons") {
        return;
    }
    let mpr_sip = free_udp("127.0.0.43");
    let (m_mpr, m_aps1, m_aps2) = (free_tcp(), free_tcp(), free_tcp());
    let (aps1_sig, aps2_sig) = (free_udp(APS1_IP), free_udp(APS2_IP));
    let caller_media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let callee_media = UdpSocket::bind("127.0.0.2:0").unwrap();
    let uas = Sipp::uas(
        scenario("uas_basic.xml"),
        "127.0.0.2:0".parse().unwrap(),
        Keys::new(callee_media.local_addr().unwrap())
            .domain("corp2.example")
            .from_domain("corp1.example"),
    )
    .pause(Duration::from_millis(1500))
    .spawn()
    .unwrap();

    let mpr = write_config(
        "mpr.toml",
        &format!(
            "relay_ip = \"127.0.0.43\"\ncontrol_ports = [{}]\nmetrics = \"{m_mpr}\"\n\
             [relay]\nports = {{ first = 46600, last = 46799 }}\n\
             [[networks]]\nid = \"corp1\"\ncredential = \"one\"\ndomains = [\"corp1.example\"]\n\
             [[networks]]\nid = \"corp2\"\ncredential = \"two\"\ndomains = [\"corp2.example\"]\n",
            mpr_sip.port()
        ),
    );
    let aps = |net: &str,
               cred: &str,
               sig: SocketAddr,
               metrics: SocketAddr,
               ports: u16,
               inside: Option<SocketAddr>| {
        let mut t = format!(
            "network = \"{net}\"\ncredential = \"{cred}\"\nsignaling = \"{sig}\"\nmpr = \"{mpr_sip}\"\n\
             metrics = \"{metrics}\"\n[sip]\nmedia_ports = {{ first = {ports}, last = {} }}\n",
            ports + 99
        );
        if let Some(i) = inside {
            t.push_str(&format!("inside_default = \"{i}\"\n"));
        }
        write_config(&format!("{net}.toml"), &t)
    };
    let _mpr = start("mpr", &mpr);
    std::thread::sleep(Duration::from_millis(200));
    let _aps1 = start("aps", &aps("corp1", "one", aps1_sig, m_aps1, 46800, None));
    let _aps2 = start(
        "aps",
        &aps(
            "corp2",
            "two",
            aps2_sig,
            m_aps2,
            46900,
            Some(uas.local_addr()),
        ),
    );
    wait_metric(m_aps1, "pinhole_client_registered 1");
    wait_metric(m_aps2, "pinhole_client_registered 1");

    let mut uas = uas;
    let mut uac = Sipp::uac(
        scenario("uac_basic.xml"),
        "127.0.0.1:0".parse().unwrap(),
        aps1_sig,
        Keys::new(caller_media.local_addr().unwrap())
            .domain("corp2.example")
            .from_domain("corp1.example"),
    )
    .pause(Duration::from_millis(1500))
    .spawn()
    .unwrap();
    let offer = uas.wait_received_sdps(1, WAIT).unwrap().remove(0);
    let answer = uac.wait_received_sdps(1, WAIT).unwrap().remove(0);
    let (to_callee, to_caller) = (answer.audio_addr().unwrap(), offer.audio_addr().unwrap());
    assert_eq!(to_callee.ip().to_string(), APS1_IP, "APS1's port B");
    assert_eq!(to_caller.ip().to_string(), APS2_IP, "APS2's port B");
    let r = rtp_pair(
        &caller_media,
        &callee_media,
        to_callee,
        to_caller,
        20,
        Duration::from_millis(20),
    )
    .unwrap();
    assert!(r.a_to_b.is_complete() && r.b_to_a.is_complete(), "{r:?}");
    uac.wait().unwrap().ensure_success().unwrap();
    uas.wait().unwrap().ensure_success().unwrap();
    let m = wait_metric(
        m_mpr,
        "pinhole_signaling_total{protocol=\"sip\",event=\"sdp_rewritten\"} 2",
    );
    assert!(
        m.contains("pinhole_relay_packets_total{direction=\"out\"}"),
        "{m}"
    );
}
