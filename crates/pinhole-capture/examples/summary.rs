//! Prints what `pinhole_capture::read` finds in capture files: the counters,
//! units per transport, and with `-v` one line per unit (frame, transport,
//! addresses, length, first text line).
//!
//! `cargo run -p pinhole-capture --example summary -- [-v] FILE...`

use std::collections::BTreeMap;

use pinhole_capture::read;

fn first_line(payload: &[u8]) -> String {
    let line = payload.split(|&b| b == b'\n').next().unwrap_or_default();
    let line: String = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line))
        .chars()
        .take(60)
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    line
}

fn main() {
    let mut verbose = false;
    for arg in std::env::args().skip(1) {
        if arg == "-v" {
            verbose = true;
            continue;
        }
        let data = match std::fs::read(&arg) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{arg}: {e}");
                continue;
            }
        };
        let c = match read(&data) {
            Ok(c) => c,
            Err(e) => {
                println!("{arg}: {e}");
                continue;
            }
        };
        let mut by = BTreeMap::new();
        for u in &c.units {
            *by.entry(format!("{:?}", u.transport)).or_insert(0) += 1;
        }
        println!("{arg}: {by:?}");
        let s = &c.stats;
        println!(
            "  frames {} skipped {} fragments {}/{} dropped, tcp ooo {} retrans {} gaps {} dropped {}, sctp retrans {}, ws dropped {}, errors {}",
            s.frames,
            s.skipped,
            s.fragments_reassembled,
            s.fragments_dropped,
            s.tcp_out_of_order,
            s.tcp_retransmissions,
            s.tcp_gaps,
            s.tcp_dropped,
            s.sctp_retransmissions,
            s.websocket_dropped,
            s.errors_total
        );
        for (frame, e) in &s.errors {
            println!("  frame {frame}: {e}");
        }
        if verbose {
            for u in &c.units {
                println!(
                    "  {:>6} {:<9} {} -> {} {:>5} B{} {}",
                    u.frame,
                    format!("{:?}", u.transport),
                    u.src,
                    u.dst,
                    u.payload.len(),
                    if u.after_gap { " (after gap)" } else { "" },
                    first_line(&u.payload)
                );
            }
        }
    }
}
