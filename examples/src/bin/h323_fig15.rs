//! Fig. 15 — H.323 with an APS in each network (plain terminals A and B),
//! on the simulated network: prints the message ladder with the patent's
//! step numbers and exits non-zero unless every step appeared in order and
//! media arrived intact both ways.

use std::process::ExitCode;

use pinhole_examples::figures;

fn main() -> ExitCode {
    figures::print_and_judge(
        "h323_fig15",
        "Fig. 15 — H.323 with an APS in each network (plain terminals A and B)",
        figures::fig15,
    )
}
