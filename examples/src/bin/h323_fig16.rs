//! Fig. 16 — H.323 without an APS (smart terminals: the ALG beside each
//! terminal), on the simulated network: prints the message ladder with the
//! patent's step numbers and exits non-zero unless every step appeared in
//! order and media arrived intact both ways.

use std::process::ExitCode;

use pinhole_examples::figures;

fn main() -> ExitCode {
    figures::print_and_judge(
        "h323_fig16",
        "Fig. 16 — H.323 without an APS (smart terminals A and B)",
        figures::fig16,
    )
}
