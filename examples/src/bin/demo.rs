//! The control flows of the patent's Figs. 6, 7, 8 and 11, performed by the
//! real engines on a simulated network with NAT firewalls, with media both
//! ways. Prints the message ladder and a summary; `--json` prints the summary
//! as one JSON line. Exits non-zero unless media arrived both ways in every
//! scenario.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pinhole_core::client::PinholeRequest;
use pinhole_core::intent::{IntentKind, Origin};
use pinhole_core::types::Side;
use pinhole_core::wire::{Protocol, RtcpMode};
use pinhole_testkit::bed::{self, Bed, P_MEDIA, addr, mux_ep};

const PACKETS: u32 = 150; // 3 s of 20 ms packets each way

struct Outcome {
    name: &'static str,
    sent: u32,
    a_to_b: usize,
    b_to_a: usize,
}

fn main() -> ExitCode {
    let json = std::env::args().any(|a| a == "--json");
    match run(json) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(json: bool) -> Result<bool> {
    let mut b = Bed::new();
    let mut mark = 0;
    let mut out = Vec::new();

    section(
        json,
        "Fig. 6 — registration of the signaling pinholes (APS1 in corp1, terminal T2 in corp2)",
    );
    b.w.run_for(Duration::from_secs(1));
    if b.w.mpr().route("corp1", Protocol::Sip).is_none()
        || b.w.mpr().route("corp2", Protocol::Sip).is_none()
    {
        bail!("registration failed");
    }
    ladder(&b, &mut mark, json);

    // The negative control: the public party sends straight at the
    // firewall (what plain SDP would make it do). Nothing gets in.
    let fw1 = b.corp1.firewall;
    let before = b.w.net.firewall(fw1).counters().dropped_inbound();
    for i in 0..10 {
        b.w.send(addr(P_MEDIA), addr("198.51.100.1:41000"), bed::rtp(b'p', i));
    }
    b.w.run_for(Duration::from_millis(100));
    let drops_before_pinhole = b.w.net.firewall(fw1).counters().dropped_inbound() - before;
    if !json {
        println!(
            "  P → FW(corp1):41000 ×10 without a pinhole: {drops_before_pinhole} dropped by the firewall\n"
        );
    }

    section(
        json,
        "Fig. 7 — public caller P to phone A behind APS1 (corp1)",
    );
    let port_b = addr("10.1.0.2:41000");
    let call = b.inbound_call(
        "fig7",
        "corp1",
        b.aps1,
        addr(P_MEDIA),
        port_b,
        RtcpMode::Mux,
        Some(addr(bed::PHONE_A)),
    );
    let c = call.pinhole.context("CMPH Response without pinhole")?;
    ladder(&b, &mut mark, json);
    if !json {
        println!(
            "  offer toward corp1 names relay {}; APS1 opened pinhole {c}; answer toward P names {}",
            call.inside_leg, call.public_leg
        );
    }
    let (at_a, at_p) = b.talk(
        (addr(P_MEDIA), call.public_leg),
        (addr(bed::PHONE_A), port_b),
        PACKETS,
    );
    out.push(Outcome {
        name: "fig7",
        sent: PACKETS,
        a_to_b: at_a.len(),
        b_to_a: at_p.len(),
    });

    section(
        json,
        "Fig. 8 — public caller P to smart terminal T2 (corp2, no APS)",
    );
    let p2 = addr("192.0.2.7:4100");
    let port_t = addr("10.2.0.10:9000");
    let call = b.inbound_call("fig8", "corp2", b.t2, p2, port_t, RtcpMode::Mux, None);
    call.pinhole.context("CMPH Response without pinhole")?;
    ladder(&b, &mut mark, json);
    let (at_t, at_p) = b.talk((p2, call.public_leg), (port_t, call.inside_leg), PACKETS);
    out.push(Outcome {
        name: "fig8",
        sent: PACKETS,
        a_to_b: at_t.len(),
        b_to_a: at_p.len(),
    });

    section(
        json,
        "Fig. 11 shape — phone A (corp1, APS1 reserves first) calls T2 (corp2): two firewalls",
    );
    let port_b = addr("10.1.0.2:41100");
    let (l1, c1) = b.open(
        b.aps1,
        PinholeRequest {
            local: port_b,
            relay: None,
            rtcp: RtcpMode::Mux,
            key: b"fig11/A/0".to_vec(),
            inside: Some(addr(bed::PHONE_A)),
        },
    );
    let c1 = c1.context("no pinhole")?;
    let offer = b.intent(
        "fig11",
        IntentKind::Offer,
        Side::A,
        Origin::Network("corp1"),
        Origin::Network("corp2"),
        &[mux_ep(0, c1)],
    );
    let l2 = offer.endpoints[0].addr;
    let port_t = addr("10.2.0.10:9100");
    let (_, c2) = b.open(
        b.t2,
        PinholeRequest {
            local: port_t,
            relay: Some(l2),
            rtcp: RtcpMode::Mux,
            key: b"fig11/B/0".to_vec(),
            inside: None,
        },
    );
    let c2 = c2.context("no pinhole")?;
    let answer = b.intent(
        "fig11",
        IntentKind::Answer,
        Side::B,
        Origin::Network("corp2"),
        Origin::Network("corp1"),
        &[mux_ep(0, c2)],
    );
    ladder(&b, &mut mark, json);
    if answer.endpoints[0].addr != l1 {
        bail!("the answer toward A does not name A's reserved leg");
    }
    let (at_t, at_a) = b.talk((addr(bed::PHONE_A), port_b), (port_t, l2), PACKETS);
    out.push(Outcome {
        name: "fig11",
        sent: PACKETS,
        a_to_b: at_t.len(),
        b_to_a: at_a.len(),
    });

    let ok = out
        .iter()
        .all(|o| o.a_to_b == o.sent as usize && o.b_to_a == o.sent as usize)
        && drops_before_pinhole == 10;
    let stats = b.w.mpr().stats();
    if json {
        let scenarios: Vec<String> = out
            .iter()
            .map(|o| {
                format!(
                    r#"{{"name":"{}","a_to_b":{{"sent":{},"received":{}}},"b_to_a":{{"sent":{},"received":{}}}}}"#,
                    o.name, o.sent, o.a_to_b, o.sent, o.b_to_a
                )
            })
            .collect();
        let sent: u32 = out.iter().map(|o| o.sent).sum();
        let ab: usize = out.iter().map(|o| o.a_to_b).sum();
        let ba: usize = out.iter().map(|o| o.b_to_a).sum();
        println!(
            r#"{{"ok":{ok},"a_to_b":{{"sent":{sent},"received":{ab}}},"b_to_a":{{"sent":{sent},"received":{ba}}},"firewall_drops_before_pinhole":{drops_before_pinhole},"registrations":{},"cmph_bound":{},"scenarios":[{}]}}"#,
            stats.registrations_accepted,
            stats.cmph_bound,
            scenarios.join(",")
        );
    } else {
        println!("Summary (simulated network, 10 ms per hop, firewalls with 30 s UDP timeout):");
        for o in &out {
            println!(
                "  {:6} A→B {}/{}  B→A {}/{}",
                o.name, o.a_to_b, o.sent, o.b_to_a, o.sent
            );
        }
        println!("  firewall drops before the pinhole existed: {drops_before_pinhole}");
        println!(
            "  MPR: {} registrations, {} CMPH binds, {} legs open, {} replays, {} auth failures",
            stats.registrations_accepted,
            stats.cmph_bound,
            stats.legs_open,
            stats.replays,
            stats.auth_failures
        );
        println!(
            "  result: {}",
            if ok {
                "OK — media crossed both ways everywhere"
            } else {
                "FAILED"
            }
        );
    }
    Ok(ok)
}

fn section(json: bool, title: &str) {
    if !json {
        println!("== {title}");
    }
}

fn ladder(b: &Bed, mark: &mut usize, json: bool) {
    let rungs = b.w.ladder();
    if !json {
        for r in &rungs[*mark..] {
            println!(
                "  {:>9.3}s  {:>24} → {:<24} {}",
                r.at.as_secs_f64(),
                b.w.name(r.src),
                b.w.name(r.dst),
                r.what
            );
        }
        println!();
    }
    *mark = rungs.len();
}
