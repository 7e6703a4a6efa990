//! Fig. 12 — SIP without an APS (smart terminals A and B), on the simulated network: prints the message ladder with the
//! patent's step numbers and exits non-zero unless every step appeared in
//! order and media arrived intact both ways.

use std::process::ExitCode;

use pinhole_examples::figures;

fn main() -> ExitCode {
    let run = match figures::fig12() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sip_fig12 failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("== Fig. 12 — SIP without an APS (smart terminals A and B)");
    print!("{}", run.render());
    let steps = run.steps_in_order();
    if let Err(e) = &steps {
        println!("steps: {e}");
    }
    println!(
        "ended: A {:?}, B {:?}; MPR legs open after BYE: {}",
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
