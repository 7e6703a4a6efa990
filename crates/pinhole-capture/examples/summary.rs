//! Prints what `pinhole_capture::read` finds in captures: counts per
//! transport, SIP start lines, and the stats (a debugging aid).
use pinhole_capture::{Transport, read};
use std::collections::HashMap;

fn sip_starts(data: &[u8]) -> usize {
    // Count SIP start lines at message starts in a stream (Content-Length framing).
    let mut n = 0;
    let mut rest = data;
    while !rest.is_empty() {
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            break;
        };
        let head = &rest[..end];
        if is_start(head) {
            n += 1;
        }
        let cl = String::from_utf8_lossy(head)
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                let k = k.trim().to_ascii_lowercase();
                (k == "content-length" || k == "l").then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let next = (end + 4 + cl).min(rest.len());
        rest = &rest[next..];
        while rest.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
            rest = &rest[1..];
        }
    }
    n
}

fn is_start(p: &[u8]) -> bool {
    let line = p.split(|&b| b == b'\n').next().unwrap_or_default();
    line.starts_with(b"SIP/2.0 ") || line.windows(8).any(|w| w == b" SIP/2.0")
}

fn main() {
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).unwrap();
        match read(&data) {
            Err(e) => println!("{path}: ERROR {e}"),
            Ok(c) => {
                let mut by: HashMap<Transport, usize> = HashMap::new();
                let mut sip_dgram = 0;
                let mut streams: HashMap<_, Vec<u8>> = HashMap::new();
                for u in &c.units {
                    *by.entry(u.transport).or_default() += 1;
                    match u.transport {
                        Transport::Tcp => streams
                            .entry((u.src, u.dst))
                            .or_default()
                            .extend(&u.payload),
                        _ => {
                            if is_start(&u.payload) {
                                sip_dgram += 1
                            }
                        }
                    }
                }
                let sip_tcp: usize = streams.values().map(|s| sip_starts(s)).sum();
                let s = &c.stats;
                println!(
                    "{path}: frames {} units {} {:?} sip_dgram {sip_dgram} sip_tcp {sip_tcp} skipped {} frag {} fragdrop {} ooo {} retr {} gaps {} errors {}",
                    s.frames,
                    c.units.len(),
                    by,
                    s.skipped,
                    s.fragments_reassembled,
                    s.fragments_dropped,
                    s.tcp_out_of_order,
                    s.tcp_retransmissions,
                    s.tcp_gaps,
                    s.errors_total
                );
                if std::env::var_os("SIPFRAMES").is_some() {
                    let frames: Vec<u64> = c
                        .units
                        .iter()
                        .filter(|u| {
                            u.payload
                                .windows(8)
                                .any(|w| w == b"SIP/2.0 " || w == b" SIP/2.0")
                                && sip_starts(&u.payload).max(usize::from(is_start(&u.payload))) > 0
                        })
                        .map(|u| u.frame)
                        .collect();
                    println!(
                        "FRAMES {}",
                        frames
                            .iter()
                            .map(|f| f.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                }
                for e in s.errors.iter().take(5) {
                    println!("    {e:?}");
                }
            }
        }
    }
}
