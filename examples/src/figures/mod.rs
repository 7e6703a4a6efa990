//! Figs. 9 to 16 on the simulated network (deterministic, instant): the
//! real engines and ALGs, two SIP user agents ([`crate::sip_ua::Ua`]), an
//! MGCP call agent or H.248 MGC and two gateways, or two H.323 terminals
//! ([`crate::h323::Call`]), making a call with media both ways and hanging
//! up, and the message ladder as the patent draws it, with each line
//! matched to the figure's step.
//!
//! - **Fig. 9** (MGCP, an APS in each network) and **Fig. 10** (MGCP, smart
//!   gateways, no APS): see [`fig9`] and [`fig10`].
//! - **Fig. 11** (SIP, an APS in each network) and **Fig. 12** (SIP, smart
//!   terminals, no APS): see [`fig11`] and [`fig12`].
//! - **Fig. 13** (H.248, an APS in each network) and **Fig. 14** (H.248,
//!   no APS: the ALG beside each gateway): see [`fig13`] and [`fig14`].
//! - **Fig. 15** (H.323, an APS in each network) and **Fig. 16** (H.323,
//!   no APS: smart terminals, the ALG beside each terminal): see [`fig15`]
//!   and [`fig16`].
//!
//! The ladder is what crossed the wire, in order: SIP start lines, H.323
//! messages (`H.225 setup`, `H.245 openLogicalChannel`) and control messages (World's [`pinhole_testkit::Rung`]s), each end named
//! by the party behind the address (a firewall's public address is the
//! party inside that sends through it).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use pinhole_testkit::World;

use crate::rtp::Tally;

mod h248;
mod h323;
mod mgcp;
mod sip;

pub use h248::{FIG13_STEPS, FIG14_STEPS, fig13, fig14};
pub use h323::{FIG15_STEPS, FIG16_STEPS, fig15, fig15_in, fig16};
pub use mgcp::{FIG9_STEPS, FIG10_STEPS, fig9, fig10};
pub use sip::{FIG11_STEPS, FIG12_STEPS, fig11, fig12};

/// RTP packets each way.
pub const PACKETS: u64 = 50;
/// How often the user agents look at their sockets (simulated time).
pub(crate) const TICK: Duration = Duration::from_millis(2);

pub(crate) const MPR_IP: &str = "203.0.113.10";
pub(crate) const FW1: &str = "198.51.100.1";
pub(crate) const FW2: &str = "198.51.100.2";

pub(crate) fn sa(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| unreachable!("address constants parse"))
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|_| unreachable!("address constants parse"))
}

/// Which figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// MGCP with an APS in each network.
    Fig9,
    /// MGCP without an APS: smart gateways.
    Fig10,
    /// SIP with an APS in each network.
    Fig11,
    /// SIP without an APS: smart terminals.
    Fig12,
    /// H.248 with an APS in each network.
    Fig13,
    /// H.248 without an APS: the ALG beside each gateway.
    Fig14,
    /// H.323 with an APS in each network.
    Fig15,
    /// H.323 without an APS: smart terminals.
    Fig16,
}

/// One line of the ladder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Simulated time since the start.
    pub at: Duration,
    /// Sending party ("A", "APS1", "MPR", ...).
    pub from: String,
    /// Receiving party.
    pub to: String,
    /// The addresses as delivered ("FW(corp1):1024 → MPR:5060").
    pub wire: String,
    /// The SIP start line or control message ("CMPH success relay=...").
    pub what: String,
}

/// One numbered step of a figure: who sends what to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The patent's step number.
    pub number: u16,
    /// Sender.
    pub from: &'static str,
    /// Receiver.
    pub to: &'static str,
    /// How the ladder line starts.
    pub what: &'static str,
}

pub(crate) const fn step(
    number: u16,
    from: &'static str,
    to: &'static str,
    what: &'static str,
) -> Step {
    Step {
        number,
        from,
        to,
        what,
    }
}

/// The outcome of a figure's run.
#[derive(Clone, Debug)]
pub struct FigureRun {
    /// Which figure.
    pub figure: Figure,
    /// Everything that crossed the wire, in order.
    pub ladder: Vec<Line>,
    /// RTP packets each party sent.
    pub sent: u64,
    /// What reached A's media port (from B).
    pub at_a: Tally,
    /// What reached B's media port (from A).
    pub at_b: Tally,
    /// MPR relay legs still open after the teardown (BYE, DLCX, Subtract,
    /// RELEASE COMPLETE).
    pub legs_open_after: u64,
    /// How the call ended for A and for B (SIP: the UA's end reason; MGCP:
    /// the call agent's verdict for both; H.248: "Subtracted"; H.323: who
    /// sent the RELEASE COMPLETE, "local" or "remote").
    pub ended: [Option<String>; 2],
}

impl FigureRun {
    /// The figure's steps.
    pub fn steps(&self) -> &'static [Step] {
        match self.figure {
            Figure::Fig9 => FIG9_STEPS,
            Figure::Fig10 => FIG10_STEPS,
            Figure::Fig11 => FIG11_STEPS,
            Figure::Fig12 => FIG12_STEPS,
            Figure::Fig13 => FIG13_STEPS,
            Figure::Fig14 => FIG14_STEPS,
            Figure::Fig15 => FIG15_STEPS,
            Figure::Fig16 => FIG16_STEPS,
        }
    }

    /// Media arrived intact both ways, all of it, and the teardown freed
    /// every relay leg.
    pub fn media_ok(&self) -> bool {
        self.sent > 0
            && self.at_a.intact == self.sent
            && self.at_b.intact == self.sent
            && self.at_a.packets == self.sent
            && self.at_b.packets == self.sent
            && self.legs_open_after == 0
    }

    /// Finds the figure's steps in the ladder, in order: each step's line
    /// index, or which step is missing or out of order.
    pub fn steps_in_order(&self) -> Result<Vec<(u16, usize)>, String> {
        match_steps(&self.ladder, self.steps())
    }

    /// The ladder as text, each line with its step number, then the media.
    pub fn render(&self) -> String {
        let matched: HashMap<usize, u16> = self
            .steps_in_order()
            .map(|v| v.into_iter().map(|(n, i)| (i, n)).collect())
            .unwrap_or_default();
        let mut s = String::new();
        for (i, l) in self.ladder.iter().enumerate() {
            let number = matched
                .get(&i)
                .map_or_else(String::new, |n| format!("[{n}]"));
            let _ = writeln!(
                s,
                "{:>8.3}s {:>6} {:>4} → {:<4}  {:<44} {}",
                l.at.as_secs_f64(),
                number,
                l.from,
                l.to,
                l.what,
                l.wire
            );
        }
        let media_step = match self.figure {
            Figure::Fig9 => 890,
            Figure::Fig10 => 960,
            Figure::Fig11 => 1100,
            Figure::Fig12 => 1165,
            Figure::Fig13 => 1290,
            Figure::Fig14 => 1360,
            Figure::Fig15 => 1468,
            Figure::Fig16 => 1540,
        };
        let _ = writeln!(
            s,
            "{:>9} [{media_step}]    A ⇄ B     RTP through the MPR relay: A→B {}/{} intact, B→A {}/{} intact",
            "", self.at_b.intact, self.sent, self.at_a.intact, self.sent
        );
        s
    }
}

/// What crossed the world's wire, each end named by the party behind its
/// address (`names`: IP → party; a firewall's public address is the party
/// inside that sends through it).
pub(crate) fn ladder_of(w: &World, names: &[(&str, &str)]) -> Vec<Line> {
    let names: HashMap<IpAddr, &str> = names.iter().map(|(i, n)| (ip(i), *n)).collect();
    let party = |a: SocketAddr| {
        names
            .get(&a.ip())
            .map_or_else(|| a.to_string(), |n| (*n).to_owned())
    };
    w.ladder()
        .iter()
        .map(|r| Line {
            at: r.at,
            from: party(r.src),
            to: party(r.dst),
            wire: format!("{} → {}", w.name(r.src), w.name(r.dst)),
            what: r.what.clone(),
        })
        .collect()
}

/// Finds each of `steps` in `ladder`, in order as a ladder diagram means
/// it: a step comes after every earlier step its sender sent or received
/// (program order and causality), while steps on unrelated paths may
/// interleave as the network delivered them (B's 180 travelling on to A
/// while B's CMPH is on its way, say). Each line serves one step. Returns
/// each step's line index, or the first step that is missing or early.
pub fn match_steps(ladder: &[Line], steps: &[Step]) -> Result<Vec<(u16, usize)>, String> {
    let mut lines: Vec<usize> = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        let after = steps
            .iter()
            .zip(&lines)
            .take(i)
            .filter(|(t, _)| t.from == s.from || t.to == s.from)
            .map(|(_, &l)| l + 1)
            .max()
            .unwrap_or(0);
        let found = ladder
            .iter()
            .enumerate()
            .skip(after)
            .find(|(n, l)| {
                !lines.contains(n) && l.from == s.from && l.to == s.to && l.what.starts_with(s.what)
            })
            .map(|(n, _)| n);
        match found {
            Some(n) => lines.push(n),
            None => {
                return Err(format!(
                    "step {} ({} → {}: {}...) not found after ladder line {after}",
                    s.number,
                    s.from,
                    s.to,
                    s.what.trim_end()
                ));
            }
        }
    }
    Ok(steps.iter().map(|s| s.number).zip(lines).collect())
}

/// What the `sip_fig11`, `sip_fig12`, `mgcp_fig9`, `mgcp_fig10`, `h248_fig13`,
/// `h248_fig14`, `h323_fig15` and `h323_fig16` binaries do: run a figure,
/// print its ladder and verdict, and exit non-zero unless every step appeared in
/// order and media arrived intact both ways.
pub fn print_and_judge(
    name: &str,
    title: &str,
    run: fn() -> Result<FigureRun>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let run = match run() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name} failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("== {title}");
    print!("{}", run.render());
    let steps = run.steps_in_order();
    if let Err(e) = &steps {
        println!("steps: {e}");
    }
    println!(
        "ended: A {:?}, B {:?}; MPR legs open after the teardown: {}",
        run.ended[0], run.ended[1], run.legs_open_after
    );
    if steps.is_ok() && run.media_ok() {
        println!("result: OK");
        ExitCode::SUCCESS
    } else {
        println!("result: FAILED");
        ExitCode::FAILURE
    }
}
