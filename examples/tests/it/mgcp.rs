//! The MGCP example binaries on real loopback sockets, no Pinhole: the call
//! agent connects two gateways, they exchange test RTP both ways, and the
//! call is torn down. (Through the MPR and the APS: tests/ and the netns
//! bed.)

use std::process::{Command, Stdio};

use crate::common;

#[test]
fn call_agent_connects_two_gateways_and_rtp_flows_both_ways() {
    let gw = |domain: &str, ip: &str| {
        Command::new(env!("CARGO_BIN_EXE_mgcp_gw"))
            .args(["--domain", domain])
            .args(["--mgcp", &format!("{ip}:24271")])
            .args(["--media", &format!("{ip}:44000")])
            .args(["--secs", "4", "--expect-media", "--interval-ms", "10"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mgcp_gw starts")
    };
    let g1 = gw("gw1.corp1.example", "127.0.0.61");
    let g2 = gw("gw2.corp2.example", "127.0.0.62");
    let ca = Command::new(env!("CARGO_BIN_EXE_mgcp_ca"))
        .args(["--local", "127.0.0.63:24271"])
        .args([
            "--a",
            "aaln/1@gw1.corp1.example",
            "--a-via",
            "127.0.0.61:24271",
        ])
        .args([
            "--b",
            "aaln/1@gw2.corp2.example",
            "--b-via",
            "127.0.0.62:24271",
        ])
        .args(["--hold-secs", "2", "--delay-secs", "1"])
        .output()
        .expect("mgcp_ca runs");
    let ca_out = common::successful_stdout(&ca);
    assert!(
        ca_out.contains("call up: A receives at 127.0.0.61:44000, B at 127.0.0.62:44000"),
        "{ca_out}"
    );
    assert!(ca_out.contains("call ended"), "{ca_out}");
    for g in [g1, g2] {
        let out = g.wait_with_output().expect("mgcp_gw ends");
        let text = common::successful_stdout(&out);
        // About 2 s of 10 ms packets each way; allow start-up slack.
        assert!(common::intact(&text) >= 100, "{text}");
        assert!(text.contains("(\"CRCX\", 1)"), "{text}");
        assert!(text.contains("(\"DLCX\", 1)"), "{text}");
    }
}
