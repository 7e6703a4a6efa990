//! Reads sipp's message trace (`-trace_msg -message_file FILE`): every SIP
//! message sipp sent or received, each after a header such as
//!
//! ```text
//! ----------------------------------------------- 2026-11-25 20:14:49.082841
//! UDP message received [470] bytes :
//!
//! INVITE sip:service@corp2.example SIP/2.0
//! ...
//! ```
//!
//! The byte count in the header delimits the message, so a body that happens
//! to contain a dashed line cannot split it. sipp flushes the file as it
//! goes, so the trace can be read while sipp runs: a last entry still being
//! written is left for the next read. Blocks in other shapes (sipp writes a
//! few notes of its own there) are skipped and counted. Newer sipp releases
//! write `bytes:` without the space and may say `control message`; both are
//! accepted.
//!
//! ```
//! use pinhole_tests::sipp::trace::{Direction, parse};
//!
//! let log = b"----------------------------------------------- 2026-01-01 00:00:00.0\n\
//!     UDP message sent (12 bytes):\n\nSIP/2.0 200 \n\n";
//! let trace = parse(log);
//! assert_eq!(trace.entries.len(), 1);
//! assert_eq!(trace.entries[0].direction, Direction::Sent);
//! assert_eq!(trace.entries[0].bytes, b"SIP/2.0 200 ");
//! ```

/// The dashes that open every block.
const RULE: &[u8] = b"-----------------------------------------------";

/// Which way a traced message went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// sipp received it.
    Received,
    /// sipp sent it.
    Sent,
}

/// One traced message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TraceEntry {
    /// Sent or received.
    pub direction: Direction,
    /// `UDP`, `TCP`, ...
    pub transport: String,
    /// The message exactly as sipp logged it.
    pub bytes: Vec<u8>,
}

/// A parsed trace.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Trace {
    /// The complete messages, in file order.
    pub entries: Vec<TraceEntry>,
    /// Blocks that were not a sent/received message.
    pub skipped: usize,
    /// True when the file ends inside an entry (sipp is still writing it).
    pub truncated: bool,
}

/// Parses a whole trace file's contents. Never fails: the unknown is
/// skipped, the unfinished is left out (see [`Trace`]).
pub fn parse(log: &[u8]) -> Trace {
    parse_prefix(log).0
}

/// [`parse`], and how many bytes of `log` it is done with: the complete
/// entries and skipped blocks. A reader that tails a growing trace keeps
/// the bytes from there on and reads on after them (what a load test does,
/// where reading the whole file again at every poll would cost more than
/// the calls).
pub fn parse_prefix(log: &[u8]) -> (Trace, usize) {
    let mut trace = Trace::default();
    let mut pos = 0;
    let mut done = 0;
    while let Some(start) = next_rule(log, pos) {
        let Some((_, after_rule)) = line_at(log, start) else {
            trace.truncated = true;
            break;
        };
        let Some((header, after_header)) = line_at(log, after_rule) else {
            trace.truncated = true;
            break;
        };
        let Some((direction, transport, len)) = parse_header(header) else {
            trace.skipped += 1;
            pos = after_rule;
            continue;
        };
        // The header is followed by one empty line, then `len` bytes.
        let body_start = after_header + 1;
        let Some(bytes) = log.get(body_start..body_start.saturating_add(len)) else {
            trace.truncated = true;
            break;
        };
        if log.get(after_header) != Some(&b'\n') {
            trace.skipped += 1;
            pos = after_rule;
            continue;
        }
        trace.entries.push(TraceEntry {
            direction,
            transport: transport.to_owned(),
            bytes: bytes.to_vec(),
        });
        pos = body_start + len;
        done = pos;
    }
    (trace, done)
}

/// The start of the next line at or after `pos` that begins with [`RULE`].
fn next_rule(log: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let rest = log.get(pos..)?;
        if rest.starts_with(RULE) {
            return Some(pos);
        }
        let nl = rest.iter().position(|&b| b == b'\n')?;
        pos += nl + 1;
    }
}

/// The line starting at `pos` (without its `\n`) and where the next begins,
/// or `None` if the line is not finished yet.
fn line_at(log: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = log.get(pos..)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    Some((rest.get(..nl)?, pos + nl + 1))
}

/// `UDP message received [470] bytes :` or `UDP message sent (230 bytes):`.
fn parse_header(line: &[u8]) -> Option<(Direction, &str, usize)> {
    let line = std::str::from_utf8(line).ok()?;
    let (transport, rest) = line.split_once(' ')?;
    let rest = rest.strip_prefix("control ").unwrap_or(rest);
    let rest = rest.strip_prefix("message ")?;
    if let Some(r) = rest.strip_prefix("received [") {
        let (n, tail) = r.split_once(']')?;
        matches!(tail, " bytes :" | " bytes:").then_some(())?;
        Some((Direction::Received, transport, n.parse().ok()?))
    } else if let Some(r) = rest.strip_prefix("sent (") {
        let (n, tail) = r.split_once(' ')?;
        (tail == "bytes):").then_some(())?;
        Some((Direction::Sent, transport, n.parse().ok()?))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(header: &str, msg: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "{} 2026-11-25 20:14:49.082841\n{header}\n\n",
            std::str::from_utf8(RULE).unwrap()
        )
        .into_bytes();
        out.extend_from_slice(msg);
        out.extend_from_slice(b"\n\n");
        out
    }

    #[test]
    fn reads_sent_and_received_entries() {
        let invite = b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n";
        let ok = b"SIP/2.0 200 OK\r\n\r\n";
        let mut log = block(
            &format!("UDP message received [{}] bytes :", invite.len()),
            invite,
        );
        log.extend(block(
            &format!("TCP message sent ({} bytes):", ok.len()),
            ok,
        ));
        let t = parse(&log);
        assert_eq!(t.skipped, 0);
        assert!(!t.truncated);
        assert_eq!(t.entries.len(), 2);
        assert_eq!(t.entries[0].direction, Direction::Received);
        assert_eq!(t.entries[0].transport, "UDP");
        assert_eq!(t.entries[0].bytes, invite);
        assert_eq!(t.entries[1].direction, Direction::Sent);
        assert_eq!(t.entries[1].transport, "TCP");
        assert_eq!(t.entries[1].bytes, ok);
    }

    #[test]
    fn a_dashed_line_inside_a_body_does_not_split_it() {
        let mut msg = b"MESSAGE sip:a SIP/2.0\r\n\r\n".to_vec();
        msg.extend_from_slice(RULE);
        msg.extend_from_slice(b" not a block\nUDP message sent (3 bytes):\n\nabc");
        let log = block(
            &format!("UDP message received [{}] bytes:", msg.len()),
            &msg,
        );
        let t = parse(&log);
        assert_eq!(t.entries.len(), 1);
        assert_eq!(t.entries[0].bytes, msg);
    }

    #[test]
    fn unknown_blocks_are_skipped_and_partial_tails_left() {
        let mut log = block("Unexpected message received:", b"junk");
        log.extend(block("UDP control message received [2] bytes:", b"hi"));
        let t = parse(&log);
        assert_eq!((t.entries.len(), t.skipped, t.truncated), (1, 1, false));
        assert_eq!(t.entries[0].bytes, b"hi");
        // Cut the last entry short: it is left for a later read.
        let full = block("UDP message sent (10 bytes):", b"0123456789");
        for cut in 1..full.len() - 2 {
            let t = parse(full.get(..cut).unwrap());
            assert!(t.entries.is_empty(), "cut at {cut}");
        }
        let t = parse(full.get(..full.len() - 3).unwrap());
        assert!(t.truncated);
        assert_eq!(parse(&full).entries.len(), 1);
    }

    #[test]
    fn a_tail_reads_each_entry_once_whatever_the_cuts() {
        let mut log = Vec::new();
        for i in 0..5 {
            let msg = format!("SIP/2.0 200 OK\r\nCSeq: {i} INVITE\r\n\r\n");
            log.extend(block(
                &format!("UDP message received [{}] bytes :", msg.len()),
                msg.as_bytes(),
            ));
        }
        for step in [1, 7, 50, log.len()] {
            // Feed the log `step` bytes at a time, keeping what is not done.
            let (mut pending, mut seen) = (Vec::new(), Vec::new());
            for chunk in log.chunks(step) {
                pending.extend_from_slice(chunk);
                let (t, done) = parse_prefix(&pending);
                seen.extend(t.entries.into_iter().map(|e| e.bytes));
                pending.drain(..done);
            }
            assert_eq!(seen.len(), 5, "step {step}");
            assert!(String::from_utf8_lossy(&seen[4]).contains("CSeq: 4 INVITE"));
        }
    }

    #[test]
    fn header_shapes() {
        assert_eq!(
            parse_header(b"UDP message received [5] bytes :"),
            Some((Direction::Received, "UDP", 5))
        );
        assert_eq!(
            parse_header(b"TLS message sent (7 bytes):"),
            Some((Direction::Sent, "TLS", 7))
        );
        assert_eq!(parse_header(b"UDP message received [x] bytes :"), None);
        assert_eq!(parse_header(b"UDP message received [5] octets"), None);
        assert_eq!(parse_header(b"UDP message sent (5 octets):"), None);
        assert_eq!(parse_header(b"UDP message lost"), None);
        assert_eq!(parse_header(b"\xff"), None);
    }

    proptest! {
        #[test]
        fn never_panics(log in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&log);
        }

        #[test]
        fn never_panics_on_near_traces(
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..4),
            lie in 0usize..80,
            cut in any::<prop::sample::Index>(),
        ) {
            // Right shape, possibly wrong lengths, possibly cut anywhere.
            let mut log = Vec::new();
            for m in &msgs {
                log.extend(block(&format!("UDP message received [{lie}] bytes :"), m));
            }
            let end = cut.index(log.len() + 1);
            let _ = parse(log.get(..end).unwrap());
        }

        #[test]
        fn round_trips_any_messages(
            msgs in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200)), 0..6),
        ) {
            let mut log = Vec::new();
            for (sent, m) in &msgs {
                let header = if *sent {
                    format!("UDP message sent ({} bytes):", m.len())
                } else {
                    format!("UDP message received [{}] bytes :", m.len())
                };
                log.extend(block(&header, m));
            }
            let t = parse(&log);
            prop_assert_eq!(t.entries.len(), msgs.len());
            for (e, (sent, m)) in t.entries.iter().zip(&msgs) {
                prop_assert_eq!(e.direction == Direction::Sent, *sent);
                prop_assert_eq!(&e.bytes, m);
            }
        }
    }
}
