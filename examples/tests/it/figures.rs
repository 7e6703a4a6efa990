//! The SIP, MGCP, H.248 and H.323 figure examples: each run has its figure's steps in order,
//! media both ways, the legs freed; the step check catches a ladder out of
//! order; the binaries print the ladder and exit 0.
#![allow(missing_docs)]

use std::process::Command;

use pinhole_examples::figures::{self, FIG12_STEPS, FigureRun, Line, Step, match_steps};

/// Checks what every figure's run must show: its `steps` steps all
/// matched, in order, and media both ways.
fn checked(run: anyhow::Result<FigureRun>, steps: usize) -> FigureRun {
    let run = run.expect("the figure runs");
    let matched = run
        .steps_in_order()
        .unwrap_or_else(|e| panic!("{e}\n{}", run.render()));
    assert_eq!(matched.len(), steps);
    assert!(run.media_ok(), "{}", run.render());
    run
}

/// Asserts the plain parties A and B (phones, gateways) only ever talk to
/// their APS.
fn only_talk_to_their_aps(run: &FigureRun) {
    assert!(
        run.ladder
            .iter()
            .filter(|l| l.from == "A" || l.from == "B")
            .all(|l| l.to == "APS1" || l.to == "APS2"),
        "{}",
        run.render()
    );
}

fn line_of(run: &FigureRun, number: u16) -> usize {
    let steps = run.steps_in_order().expect("steps in order");
    steps
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, i)| *i)
        .expect("step matched")
}

#[test]
fn fig11_has_steps_1005_to_1097_in_order_and_media_both_ways() {
    let run = checked(figures::fig11(), 19);
    // The APS opens the pinhole before the INVITE leaves the network, and
    // APS2 before B's answer leaves corp2.
    assert!(line_of(&run, 1005) < line_of(&run, 1010));
    assert!(line_of(&run, 1015) < line_of(&run, 1020));
    assert!(line_of(&run, 1055) < line_of(&run, 1060));
    assert!(line_of(&run, 1065) < line_of(&run, 1070));
    // Plain phones only ever talk to their APS.
    only_talk_to_their_aps(&run);
    assert_eq!(
        run.ended,
        [Some("LocalBye".to_owned()), Some("RemoteBye".to_owned())]
    );
}

#[test]
fn fig12_has_steps_1105_to_1160_in_order_and_media_both_ways() {
    let run = checked(figures::fig12(), 12);
    // A's CMPH Response is in before its INVITE names the pinhole; B's
    // CMPH comes after the INVITE reached it and before its 200.
    assert!(line_of(&run, 1115) < line_of(&run, 1105));
    assert!(line_of(&run, 1120) < line_of(&run, 1135));
    assert!(line_of(&run, 1140) < line_of(&run, 1145));
    assert!(line_of(&run, 1160) < line_of(&run, 1155));
    // No APS anywhere: the terminals talk to the MPR only.
    assert!(run.ladder.iter().all(|l| l.from == "MPR" || l.to == "MPR"));
    assert!(!run.render().contains("APS"));
    // The INVITE A sends names A's pinhole, not its inside address: the
    // relay answered A's reserve with the mapped (public) address.
    let reserve = &run.ladder[line_of(&run, 1115)];
    assert!(reserve.what.contains("mapped=198.51.100.1:"), "{reserve:?}");
}

#[test]
fn the_step_check_fails_on_a_ladder_out_of_order() {
    let run = figures::fig12().expect("fig12 runs");
    // The patent's literal numbering (1105 before 1110) is not what the
    // wire shows: A sends its INVITE after its CMPH.
    let mut literal: Vec<Step> = FIG12_STEPS.to_vec();
    literal.swap(0, 2);
    literal.swap(1, 2);
    assert_eq!(literal[0].number, 1105);
    let err = match_steps(&run.ladder, &literal).unwrap_err();
    assert!(err.contains("1110"), "{err}");
    // B's 200 moved before its CMPH: step 1145 must come after 1140. (The
    // ladder is cut before the BYE, whose 200 would match 1145 otherwise.)
    let bye = run
        .ladder
        .iter()
        .position(|l| l.what.starts_with("BYE "))
        .expect("a BYE");
    let mut ladder: Vec<Line> = run.ladder[..bye].to_vec();
    let (cmph, ok) = (line_of(&run, 1135), line_of(&run, 1145));
    let moved = ladder.remove(ok);
    ladder.insert(cmph, moved);
    let err = match_steps(&ladder, FIG12_STEPS).unwrap_err();
    assert!(err.starts_with("step 1145 "), "{err}");
    // A ladder without the ACK.
    let ladder: Vec<Line> = run
        .ladder
        .iter()
        .filter(|l| !l.what.starts_with("ACK "))
        .cloned()
        .collect();
    assert!(
        match_steps(&ladder, FIG12_STEPS)
            .unwrap_err()
            .contains("1160")
    );
}

#[test]
fn the_figure_binaries_print_the_ladder_and_succeed() {
    for (bin, needles) in [
        (
            env!("CARGO_BIN_EXE_sip_fig11"),
            &["[1005]", "[1060]", "[1097]", "[1100]", "result: OK"][..],
        ),
        (
            env!("CARGO_BIN_EXE_sip_fig12"),
            &[
                "[1110]",
                "[1105]",
                "[1135]",
                "[1155]",
                "[1165]",
                "result: OK",
            ][..],
        ),
        (
            env!("CARGO_BIN_EXE_mgcp_fig9"),
            &["[805]", "[825]", "[865]", "[885]", "[890]", "result: OK"][..],
        ),
        (
            env!("CARGO_BIN_EXE_mgcp_fig10"),
            &["[910]", "[915]", "[945]", "[955]", "[960]", "result: OK"][..],
        ),
        (
            env!("CARGO_BIN_EXE_h248_fig13"),
            &[
                "[1205]",
                "[1225]",
                "[1265]",
                "[1285]",
                "[1290]",
                "A→B 50/50 intact, B→A 50/50 intact",
                "result: OK",
            ][..],
        ),
        (
            env!("CARGO_BIN_EXE_h248_fig14"),
            &[
                "[1305]",
                "[1315]",
                "[1340]",
                "[1355]",
                "[1360]",
                "A→B 50/50 intact, B→A 50/50 intact",
                "result: OK",
            ][..],
        ),
        (
            env!("CARGO_BIN_EXE_h323_fig15"),
            &[
                "[1404]",
                "[1412]",
                "[1446]",
                "[1466]",
                "[1468]",
                "A→B 50/50 intact, B→A 50/50 intact",
                "result: OK",
            ][..],
        ),
        (
            env!("CARGO_BIN_EXE_h323_fig16"),
            &[
                "[1504]",
                "[1524]",
                "[1534]",
                "[1538]",
                "[1540]",
                "A→B 50/50 intact, B→A 50/50 intact",
                "result: OK",
            ][..],
        ),
    ] {
        let out = Command::new(bin).output().expect("runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{bin} failed:\n{text}");
        for n in needles {
            assert!(text.contains(n), "{bin}: no {n:?} in\n{text}");
        }
    }
}

#[test]
fn fig9_has_steps_805_to_885_in_order_and_media_both_ways() {
    let run = checked(figures::fig9(), figures::FIG9_STEPS.len());
    // Each APS opens the pinhole before the gateway's answer leaves.
    assert!(line_of(&run, 825) < line_of(&run, 835));
    assert!(line_of(&run, 830) < line_of(&run, 835));
    assert!(line_of(&run, 855) < line_of(&run, 865));
    // The gateways only ever talk to their APS.
    only_talk_to_their_aps(&run);
    assert_eq!(
        run.ended,
        [Some("Ended".to_owned()), Some("Ended".to_owned())]
    );
}

#[test]
fn fig10_has_steps_910_to_955_in_order_and_media_both_ways() {
    let run = checked(figures::fig10(), figures::FIG10_STEPS.len());
    // Each smart gateway's CMPH is answered before its CRCX answer leaves.
    assert!(line_of(&run, 920) < line_of(&run, 925));
    assert!(line_of(&run, 940) < line_of(&run, 945));
    assert!(run.ladder.iter().all(|l| !l.from.starts_with("APS")));
}

#[test]
fn fig13_has_steps_1205_to_1285_in_order_and_media_both_ways() {
    let run = checked(figures::fig13(), figures::FIG13_STEPS.len());
    // Each APS opens the pinhole before the gateway's Add reply leaves.
    assert!(line_of(&run, 1220) < line_of(&run, 1225));
    assert!(line_of(&run, 1230) < line_of(&run, 1235));
    assert!(line_of(&run, 1260) < line_of(&run, 1265));
    only_talk_to_their_aps(&run);
    assert_eq!(
        run.ended,
        [Some("Subtracted".to_owned()), Some("Subtracted".to_owned())]
    );
}

#[test]
fn fig14_has_steps_1305_to_1355_in_order_and_media_both_ways() {
    let run = checked(figures::fig14(), figures::FIG14_STEPS.len());
    // Each gateway's CMPH is answered before its Add reply leaves.
    assert!(line_of(&run, 1320) < line_of(&run, 1325));
    assert!(line_of(&run, 1340) < line_of(&run, 1345));
    // No APS: what leaves a gateway's host goes to the MPR; the rest is
    // the gateway and its ALG on that host.
    assert!(
        run.ladder
            .iter()
            .all(|l| l.from == "MPR" || l.to == "MPR" || l.from == l.to),
        "{}",
        run.render()
    );
    assert!(!run.render().contains("APS"));
    // The pinholes opened from the gateways' own media ports.
    for (n, port) in [(1320, "A:4000"), (1340, "B:6000")] {
        let ok = &run.ladder[line_of(&run, n)];
        assert!(ok.wire.ends_with(port), "{ok:?}");
    }
}

#[test]
fn fig15_has_steps_1404_to_1466_in_order_and_media_both_ways() {
    let run = checked(figures::fig15(), figures::FIG15_STEPS.len());
    // The MPR's CALL PROCEEDING leaves with the Setup it forwards.
    assert!(line_of(&run, 1412) < line_of(&run, 1410));
    // Each APS opens the pinhole before the channel's addresses leave.
    assert!(line_of(&run, 1448) < line_of(&run, 1450));
    assert!(line_of(&run, 1444) < line_of(&run, 1446));
    assert!(line_of(&run, 1456) < line_of(&run, 1458));
    assert!(line_of(&run, 1460) < line_of(&run, 1462));
    // Plain terminals only ever talk to their APS.
    only_talk_to_their_aps(&run);
    // A hung up: CloseLogicalChannel, EndSessionCommand, RELEASE COMPLETE.
    assert_eq!(
        run.ended,
        [Some("local".to_owned()), Some("remote".to_owned())]
    );
    for what in ["H.245 endSessionCommand", "H.225 releaseComplete"] {
        assert!(
            run.ladder
                .iter()
                .any(|l| l.from == "MPR" && l.to == "APS2" && l.what == what),
            "no {what} to APS2\n{}",
            run.render()
        );
    }
}

#[test]
fn fig15_with_tunneled_h245_has_media_both_ways() {
    let run = figures::fig15_in(pinhole_examples::h323::Mode::Tunnel, false).expect("runs");
    assert!(run.media_ok(), "{}", run.render());
    // No H.245 connection: every H.245 message rode in call signaling.
    assert!(
        !run.ladder.iter().any(|l| l.what.starts_with("H.245 ")),
        "{}",
        run.render()
    );
}

#[test]
fn fig16_has_steps_1504_to_1538_in_order_and_media_both_ways() {
    let run = checked(figures::fig16(), figures::FIG16_STEPS.len());
    // Each terminal's CMPH is answered before its channel's addresses leave.
    assert!(line_of(&run, 1526) < line_of(&run, 1528));
    assert!(line_of(&run, 1534) < line_of(&run, 1536));
    // No APS: what leaves a terminal's host goes to the MPR; the rest is
    // the terminal and its ALG on that host.
    assert!(
        run.ladder
            .iter()
            .all(|l| l.from == "MPR" || l.to == "MPR" || l.from == l.to),
        "{}",
        run.render()
    );
    assert!(!run.render().contains("APS"));
    // The pinholes opened from the terminals' own media ports.
    for (n, port) in [(1526, "A:5000"), (1534, "B:6000")] {
        let ok = &run.ladder[line_of(&run, n)];
        assert!(ok.wire.ends_with(port), "{ok:?}");
    }
    assert_eq!(
        run.ended,
        [Some("local".to_owned()), Some("remote".to_owned())]
    );
}

#[test]
fn fig15_with_crossing_channels_has_media_both_ways() {
    // B opens its channel as soon as the terminal core does: the two
    // channels of the RTP session cross, each APS opens its pinhole for its
    // own terminal's channel, and the Acks leave without a CMPH of their own.
    let run = figures::fig15_in(pinhole_examples::h323::Mode::Separate, true).expect("runs");
    assert!(run.media_ok(), "{}", run.render());
    let opened = |from: &str| {
        run.ladder
            .iter()
            .position(|l| l.from == from && l.what == "H.245 openLogicalChannel")
            .expect("a channel")
    };
    let acked = run
        .ladder
        .iter()
        .position(|l| l.from == "B" && l.what == "H.245 openLogicalChannelAck")
        .expect("B's Ack");
    assert!(opened("B") < acked, "{}", run.render());
    assert!(opened("A") < acked);
}
