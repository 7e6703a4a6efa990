//! Fig. 14 — H.248 without an APS (media gateways A and B, each with the
//! ALG beside it on its host, registered by a client engine of its own),
//! on the simulated network: prints the message ladder with the patent's
//! step numbers and exits non-zero unless every step appeared in order
//! and media arrived intact both ways.

use std::process::ExitCode;

use pinhole_examples::figures;

fn main() -> ExitCode {
    figures::print_and_judge(
        "h248_fig14",
        "Fig. 14 — H.248 without an APS (the ALG beside each media gateway)",
        figures::fig14,
    )
}
