//! The media of one H.248 command: every SDP group of its `Local` or
//! `Remote` descriptors, read as one description with one engine stream
//! index per `m=` line, and written back group by group.
//!
//! A termination may carry several streams (`Stream = 1 {…}`, `Stream = 2
//! {…}`), and each descriptor several SDP groups (alternatives, e.g. audio
//! or T.38 fax). Each `m=` line gets the index
//! `stream id << 6 | group << 3 | m-line`, the same for the same line in
//! every later message of the termination, so the engine keeps its legs
//! across a Modify.

use std::net::IpAddr;

use pinhole_core::intent::{MediaEndpoint, PlannedEndpoint};
use pinhole_core::patch::Patch;
use pinhole_sdp::{RewriteOptions, Sdp};

use crate::{Command, Message, SdpGroup};

/// Which descriptor of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    /// `Local`: what the gateway receives on (its answer or choice).
    Local,
    /// `Remote`: where the gateway sends (the other party's media).
    Remote,
}

/// Groups per descriptor and `m=` lines per group with an index of their
/// own; more is refused as unreadable.
const MAX_GROUPS: usize = 8;
const MAX_LINES: usize = 8;
/// The highest stream id with an index of its own.
const MAX_STREAM_ID: u16 = 1023;

/// The engine's index of `m=` line `line` of group `group` of stream `id`
/// (`None`: stream 1, the Media descriptor without `Stream`).
pub(crate) fn stream_index(id: Option<u16>, group: usize, line: usize) -> Option<u16> {
    let id = id.unwrap_or(1);
    if id > MAX_STREAM_ID || group >= MAX_GROUPS || line >= MAX_LINES {
        return None;
    }
    // Bounded by the checks above: 1023 << 6 | 7 << 3 | 7 fits in u16.
    Some((id << 6) | ((group as u16) << 3) | line as u16)
}

/// Why a command's media could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unreadable;

/// One SDP group of a command, parsed, and the index of its first line.
pub(crate) struct Group<'a> {
    group: SdpGroup,
    sdp: Sdp<'a>,
    base: u16,
}

/// The `which` descriptors of `cmd`, and their endpoints under their
/// stream indices. An `m=` line with the CHOOSE wildcard (`$`) or port 0
/// is disabled: it asks the gateway to choose, or names nothing.
pub(crate) struct Described<'a> {
    groups: Vec<Group<'a>>,
    /// Every `m=` line, enabled or not.
    pub(crate) endpoints: Vec<MediaEndpoint>,
}

impl<'a> Described<'a> {
    /// Reads `cmd`'s `which` descriptors; `sender` is the address an SDP
    /// with a domain name in `c=` falls back to.
    pub(crate) fn read(
        msg: &Message<'a>,
        cmd: &Command<'a>,
        which: Which,
        sender: IpAddr,
    ) -> Result<Self, Unreadable> {
        let mut groups = Vec::new();
        let mut endpoints = Vec::new();
        for s in &cmd.streams {
            let list = match which {
                Which::Local => &s.local,
                Which::Remote => &s.remote,
            };
            for (g, group) in list.iter().enumerate() {
                let sdp = msg.sdp(group).map_err(|_| Unreadable)?;
                let base = stream_index(s.id, g, 0).ok_or(Unreadable)?;
                let found = sdp.endpoints(sender).map_err(|_| Unreadable)?;
                if found.len() > MAX_LINES {
                    return Err(Unreadable);
                }
                for e in found {
                    endpoints.push(MediaEndpoint {
                        index: base + e.index,
                        ..e
                    });
                }
                groups.push(Group {
                    group: group.clone(),
                    sdp,
                    base,
                });
            }
        }
        Ok(Self { groups, endpoints })
    }

    /// True when the command has such a descriptor at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The endpoints that name media (not disabled, not CHOOSE).
    pub(crate) fn enabled(&self) -> Vec<MediaEndpoint> {
        self.endpoints
            .iter()
            .filter(|e| !e.is_disabled())
            .copied()
            .collect()
    }

    /// Records in `patch` the edits that write `plan` (by stream index)
    /// into the groups; lines the plan does not name stay as they are.
    pub(crate) fn rewrite(
        &self,
        msg: &Message<'a>,
        plan: &[PlannedEndpoint],
        patch: &mut Patch,
    ) -> Result<(), Unreadable> {
        for g in &self.groups {
            let mine: Vec<PlannedEndpoint> = plan
                .iter()
                .filter(|p| p.index >= g.base && p.index < g.base + MAX_LINES as u16)
                .map(|p| PlannedEndpoint {
                    index: p.index - g.base,
                    ..*p
                })
                .collect();
            if mine.is_empty() {
                continue;
            }
            msg.rewrite_sdp(&g.group, &g.sdp, &mine, &RewriteOptions::default(), patch)
                .map_err(|_| Unreadable)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_distinct_per_stream_group_and_line_and_bounded() {
        assert_eq!(stream_index(None, 0, 0), Some(64));
        assert_eq!(stream_index(Some(1), 0, 0), Some(64));
        assert_eq!(stream_index(Some(2), 1, 3), Some(128 + 8 + 3));
        assert_eq!(stream_index(Some(1023), 7, 7), Some(u16::MAX));
        assert_eq!(stream_index(Some(1024), 0, 0), None);
        assert_eq!(stream_index(Some(1), 8, 0), None);
        assert_eq!(stream_index(Some(1), 0, 8), None);
    }
}
