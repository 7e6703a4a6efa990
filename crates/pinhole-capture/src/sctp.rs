//! SCTP (RFC 9260): the common header, then chunks; DATA chunks (and
//! I-DATA, RFC 8260) carry user messages, joined here when fragmented.
//! The CRC32c checksum is not checked: captures taken on the sending host
//! often hold it before the NIC fills it in.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::Transport;
use crate::decode::{Ctx, Out};

/// TSNs remembered per direction to recognise retransmitted DATA chunks.
const RECENT_TSNS: usize = 4096;

/// Fragments held per direction (besides the byte limit).
const MAX_FRAGMENTS: usize = 4096;

/// Chunk types.
const DATA: u8 = 0;
const I_DATA: u8 = 64;

/// Flags of DATA and I-DATA chunks.
const FLAG_END: u8 = 1;
const FLAG_BEGIN: u8 = 2;
const FLAG_UNORDERED: u8 = 4;

type FlowKey = (SocketAddr, SocketAddr);

/// Every SCTP flow direction seen.
#[derive(Debug, Default)]
pub(crate) struct Table {
    dirs: HashMap<FlowKey, Dir>,
}

/// A DATA fragment waiting for the rest of its message.
#[derive(Debug)]
struct Fragment {
    flags: u8,
    data: Vec<u8>,
}

/// One direction of an association.
#[derive(Debug, Default)]
struct Dir {
    recent: HashSet<u32>,
    recent_order: VecDeque<u32>,
    /// DATA fragments by TSN: a message's fragments have consecutive TSNs.
    fragments: HashMap<u32, Fragment>,
    /// I-DATA fragments by (stream, unordered, message id), then by
    /// fragment sequence number (0 for the first).
    i_fragments: HashMap<(u16, bool, u32), HashMap<u32, Fragment>>,
    held_bytes: usize,
    held_count: usize,
    last_frame: u64,
}

impl Dir {
    /// Remembers a TSN; false if it was seen before.
    fn first_sight(&mut self, tsn: u32) -> bool {
        if !self.recent.insert(tsn) {
            return false;
        }
        self.recent_order.push_back(tsn);
        if self.recent_order.len() > RECENT_TSNS
            && let Some(old) = self.recent_order.pop_front()
        {
            self.recent.remove(&old);
        }
        true
    }

    fn has_room(&self, len: usize, max: usize) -> bool {
        self.held_bytes + len <= max && self.held_count < MAX_FRAGMENTS
    }

    /// Holds a DATA fragment; returns the message if it is now complete.
    fn data_fragment(&mut self, tsn: u32, flags: u8, data: &[u8]) -> Option<Vec<u8>> {
        self.held_bytes += data.len();
        self.held_count += 1;
        self.fragments.insert(
            tsn,
            Fragment {
                flags,
                data: data.to_vec(),
            },
        );
        // Walk back to the first fragment and on to the last; each step is
        // one lookup, at most as many as fragments are held.
        let mut first = tsn;
        loop {
            let f = self.fragments.get(&first)?;
            if f.flags & FLAG_BEGIN != 0 {
                break;
            }
            first = first.wrapping_sub(1);
        }
        let mut last = tsn;
        loop {
            let f = self.fragments.get(&last)?;
            if f.flags & FLAG_END != 0 {
                break;
            }
            last = last.wrapping_add(1);
        }
        let mut message = Vec::new();
        let mut t = first;
        loop {
            let f = self.fragments.remove(&t)?;
            self.held_bytes = self.held_bytes.saturating_sub(f.data.len());
            self.held_count = self.held_count.saturating_sub(1);
            message.extend_from_slice(&f.data);
            if t == last {
                return Some(message);
            }
            t = t.wrapping_add(1);
        }
    }

    /// Holds an I-DATA fragment; returns the message if it is now complete.
    fn i_data_fragment(
        &mut self,
        id: (u16, bool, u32),
        fsn: u32,
        flags: u8,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        self.held_bytes += data.len();
        self.held_count += 1;
        let frags = self.i_fragments.entry(id).or_default();
        frags.insert(
            fsn,
            Fragment {
                flags,
                data: data.to_vec(),
            },
        );
        let last = frags
            .iter()
            .find(|(_, f)| f.flags & FLAG_END != 0)
            .map(|(&n, _)| n)?;
        let first = frags.get(&0)?;
        // Bounded by the fragments held: a hostile `last` cannot make this
        // loop long.
        if first.flags & FLAG_BEGIN == 0
            || usize::try_from(last).map_or(true, |l| l >= frags.len())
            || (0..=last).any(|n| !frags.contains_key(&n))
        {
            return None;
        }
        let frags = self.i_fragments.remove(&id)?;
        let mut message = Vec::new();
        for n in 0..=last {
            let f = frags.get(&n)?;
            message.extend_from_slice(&f.data);
        }
        self.held_count = self.held_count.saturating_sub(frags.len());
        let bytes = frags.values().map(|f| f.data.len()).sum::<usize>();
        self.held_bytes = self.held_bytes.saturating_sub(bytes);
        Some(message)
    }
}

/// A chunk's fields that matter here.
struct DataChunk<'a> {
    tsn: u32,
    flags: u8,
    /// I-DATA: (stream, message id, fragment sequence number).
    i_data: Option<(u16, u32, u32)>,
    data: &'a [u8],
}

impl Table {
    /// Takes one SCTP packet.
    pub(crate) fn packet(&mut self, out: &mut Out, ctx: Ctx, src: IpAddr, dst: IpAddr, pkt: &[u8]) {
        let Some((head, mut rest)) = pkt.split_first_chunk::<12>() else {
            return out.fail(ctx.frame, "SCTP common header truncated");
        };
        let src = SocketAddr::new(src, u16::from_be_bytes([head[0], head[1]]));
        let dst = SocketAddr::new(dst, u16::from_be_bytes([head[2], head[3]]));
        let mut chunks = Vec::new();
        while !rest.is_empty() {
            let Some(&[kind, flags, l0, l1]) = rest.first_chunk::<4>() else {
                out.error(ctx.frame, "SCTP chunk header truncated");
                break;
            };
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            let Some(body) = rest.get(4..len.max(4)).filter(|_| len >= 4) else {
                out.error(
                    ctx.frame,
                    format_args!("SCTP chunk length {len} does not fit the packet"),
                );
                break;
            };
            match (kind, body) {
                (
                    DATA,
                    [
                        t0,
                        t1,
                        t2,
                        t3,
                        _sid0,
                        _sid1,
                        _ssn0,
                        _ssn1,
                        _p0,
                        _p1,
                        _p2,
                        _p3,
                        data @ ..,
                    ],
                ) => {
                    chunks.push(DataChunk {
                        tsn: u32::from_be_bytes([*t0, *t1, *t2, *t3]),
                        flags,
                        i_data: None,
                        data,
                    });
                }
                (
                    I_DATA,
                    [
                        t0,
                        t1,
                        t2,
                        t3,
                        s0,
                        s1,
                        _,
                        _,
                        m0,
                        m1,
                        m2,
                        m3,
                        f0,
                        f1,
                        f2,
                        f3,
                        data @ ..,
                    ],
                ) => {
                    let fsn = if flags & FLAG_BEGIN != 0 {
                        // The first fragment carries the PPID there instead.
                        0
                    } else {
                        u32::from_be_bytes([*f0, *f1, *f2, *f3])
                    };
                    chunks.push(DataChunk {
                        tsn: u32::from_be_bytes([*t0, *t1, *t2, *t3]),
                        flags,
                        i_data: Some((
                            u16::from_be_bytes([*s0, *s1]),
                            u32::from_be_bytes([*m0, *m1, *m2, *m3]),
                            fsn,
                        )),
                        data,
                    });
                }
                (DATA | I_DATA, _) => out.error(ctx.frame, "SCTP DATA chunk too short"),
                _ => {}
            }
            // Chunks are padded to a multiple of four bytes.
            let padded = (len + 3) & !3;
            rest = rest.get(padded..).unwrap_or_default();
        }
        if chunks.is_empty() {
            return;
        }
        let key = (src, dst);
        if !self.dirs.contains_key(&key) && self.dirs.len() >= out.limits.max_flows {
            return out.fail(
                ctx.frame,
                format_args!(
                    "SCTP packet dropped: {} flows tracked already",
                    self.dirs.len()
                ),
            );
        }
        let max = out.limits.max_flow_buffer;
        let dir = self.dirs.entry(key).or_default();
        dir.last_frame = ctx.frame;
        for c in chunks {
            if !dir.first_sight(c.tsn) {
                out.stats.sctp_retransmissions += 1;
                continue;
            }
            let whole = c.flags & (FLAG_BEGIN | FLAG_END) == FLAG_BEGIN | FLAG_END;
            let message = if whole {
                Some(c.data.to_vec())
            } else if !dir.has_room(c.data.len(), max) {
                out.error(ctx.frame, "SCTP fragment dropped: flow buffer full");
                None
            } else {
                match c.i_data {
                    None => dir.data_fragment(c.tsn, c.flags, c.data),
                    Some((sid, mid, fsn)) => dir.i_data_fragment(
                        (sid, c.flags & FLAG_UNORDERED != 0, mid),
                        fsn,
                        c.flags,
                        c.data,
                    ),
                }
            };
            if let Some(m) = message {
                out.unit(ctx, Transport::Sctp, src, dst, m, false);
            }
        }
    }

    /// Reports fragments whose message never completed.
    pub(crate) fn finish(&mut self, out: &mut Out) {
        let mut left: Vec<(u64, FlowKey, usize)> = self
            .dirs
            .iter()
            .filter(|(_, d)| d.held_count > 0)
            .map(|(k, d)| (d.last_frame, *k, d.held_count))
            .collect();
        left.sort_unstable();
        for (frame, (src, dst), n) in left {
            out.error(
                frame,
                format_args!(
                    "SCTP {src} -> {dst}: {n} fragments of unfinished messages at the end"
                ),
            );
        }
    }
}
