//! IPv4 and IPv6 fragment reassembly, bounded in datagrams and in capture
//! time.
//!
//! Hand-written rather than `etherparse::defrag`: that pool is unbounded in
//! the number of datagrams it holds (its docs say so), and this one is small.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use crate::decode::{Ctx, Out};

/// The largest reassembled payload: the fragment offset field and the
/// length fields of both IP versions stop at 64 KiB.
const MAX_DATAGRAM: usize = 65_535;

/// What tells the fragments of one datagram from those of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) id: u32,
    pub(crate) proto: u8,
}

/// One datagram being put together.
#[derive(Debug)]
struct Datagram {
    data: Vec<u8>,
    /// Byte ranges received so far: sorted, disjoint, not touching.
    have: Vec<Range<usize>>,
    /// Payload length, known once the last fragment came.
    end: Option<usize>,
    /// Capture time of the first fragment.
    first: Duration,
    /// Frame of the latest fragment, for error reports.
    frame: u64,
    fragments: u64,
}

/// Datagrams waiting for fragments.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pending: HashMap<Key, Datagram>,
    /// Capture time of the next sweep for timed-out datagrams.
    next_sweep: Duration,
}

impl Table {
    /// Adds one fragment (`offset` in bytes); returns the datagram's whole
    /// payload when this fragment completes it.
    pub(crate) fn add(
        &mut self,
        out: &mut Out,
        ctx: Ctx,
        key: Key,
        offset: u16,
        more: bool,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        self.sweep(out, ctx.time);
        let start = usize::from(offset);
        let end = start + payload.len();
        if end > MAX_DATAGRAM || (more && !payload.len().is_multiple_of(8)) {
            out.stats.fragments_dropped += 1;
            out.error(
                ctx.frame,
                format_args!("IP fragment {start}..{end} is malformed (too long or unaligned)"),
            );
            return None;
        }
        if !self.pending.contains_key(&key)
            && self.pending.len() >= out.limits.max_fragment_datagrams
        {
            out.stats.fragments_dropped += 1;
            out.error(
                ctx.frame,
                format_args!(
                    "IP fragment dropped: {} datagrams already pending",
                    self.pending.len()
                ),
            );
            return None;
        }
        let d = self.pending.entry(key).or_insert_with(|| Datagram {
            data: Vec::new(),
            have: Vec::new(),
            end: None,
            first: ctx.time,
            frame: ctx.frame,
            fragments: 0,
        });
        d.frame = ctx.frame;
        d.fragments += 1;
        let conflict = match d.end {
            Some(e) => end > e || (!more && end != e),
            None => !more && d.have.last().is_some_and(|r| r.end > end),
        };
        if conflict {
            if let Some(d) = self.pending.remove(&key) {
                out.stats.fragments_dropped += d.fragments;
            }
            out.error(
                ctx.frame,
                "IP fragments disagree on the datagram's length; datagram dropped",
            );
            return None;
        }
        if !more {
            d.end = Some(end);
        }
        if d.data.len() < end {
            d.data.resize(end, 0);
        }
        d.data[start..end].copy_from_slice(payload);
        insert_range(&mut d.have, start..end);
        let total = d.end?;
        if d.have.len() != 1 || d.have.first() != Some(&(0..total)) {
            return None;
        }
        let mut d = self.pending.remove(&key)?;
        d.data.truncate(total);
        Some(d.data)
    }

    /// Drops datagrams whose first fragment is older than the timeout; runs
    /// at most twice per timeout period of capture time.
    fn sweep(&mut self, out: &mut Out, now: Duration) {
        if now < self.next_sweep || self.pending.is_empty() {
            return;
        }
        let timeout = out.limits.fragment_timeout;
        self.next_sweep = now.saturating_add(timeout / 2);
        let mut expired = Vec::new();
        self.pending.retain(|_, d| {
            let keep = d.first.saturating_add(timeout) > now;
            if !keep {
                expired.push((d.frame, d.fragments));
            }
            keep
        });
        expired.sort_unstable();
        for (frame, fragments) in expired {
            out.stats.fragments_dropped += fragments;
            out.error(frame, "IP datagram incomplete after the fragment timeout");
        }
    }

    /// Counts what is still incomplete at the end of the capture.
    pub(crate) fn finish(&mut self, out: &mut Out) {
        let mut left: Vec<_> = self
            .pending
            .drain()
            .map(|(_, d)| (d.frame, d.fragments))
            .collect();
        left.sort_unstable();
        for (frame, fragments) in left {
            out.stats.fragments_dropped += fragments;
            out.error(frame, "IP datagram incomplete at the end of the capture");
        }
    }
}

/// Adds `r` to a sorted list of disjoint ranges, merging what it touches.
fn insert_range(have: &mut Vec<Range<usize>>, mut r: Range<usize>) {
    if r.is_empty() {
        return;
    }
    have.retain(|h| {
        if h.start <= r.end && r.start <= h.end {
            r = r.start.min(h.start)..r.end.max(h.end);
            false
        } else {
            true
        }
    });
    let at = have.partition_point(|h| h.start < r.start);
    have.insert(at, r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_when_touching_or_overlapping() {
        let mut have = Vec::new();
        insert_range(&mut have, 16..24);
        insert_range(&mut have, 0..8);
        assert_eq!(have, vec![0..8, 16..24]);
        insert_range(&mut have, 8..16);
        assert_eq!(have, vec![0..24]);
        insert_range(&mut have, 40..48);
        insert_range(&mut have, 20..44);
        assert_eq!(have, vec![0..48]);
        insert_range(&mut have, 5..5);
        assert_eq!(have, vec![0..48]);
    }
}
