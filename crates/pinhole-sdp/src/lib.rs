//! Finds and rewrites the media addresses of SDP bodies (RFC 8866, RFC
//! 4566), byte-faithfully, for the SIP, MGCP and H.248 ALGs.
//!
//! [`Sdp::parse`] locates, without copying, the spans that matter to a media
//! relay — each `m=` port, the session- and media-level `c=` addresses and
//! address types, `a=rtcp:` (RFC 3605), `a=rtcp-mux`, the direction
//! attributes and the `o=` address — and skips every other line unread.
//! [`Sdp::endpoints`] turns them into the [`MediaEndpoint`]s the MPR engine
//! takes; [`Sdp::rewrite`] records the engine's [`PlannedEndpoint`]s as
//! edits of those spans in a [`Patch`]. Every byte outside the edited spans
//! is kept: line endings, letter case, attribute order, unknown lines.
//!
//! ```
//! use pinhole_core::intent::PlannedEndpoint;
//! use pinhole_core::patch::Patch;
//! use pinhole_sdp::{RewriteOptions, Sdp};
//!
//! let body = b"v=0\r\n\
//!     o=- 1 1 IN IP4 10.0.0.5\r\n\
//!     s=-\r\n\
//!     c=IN IP4 10.0.0.5\r\n\
//!     t=0 0\r\n\
//!     m=audio 4000 RTP/AVP 0 111\r\n\
//!     a=rtpmap:111 opus/48000/2\r\n\
//!     a=rtcp:4001\r\n";
//! let sdp = Sdp::parse(body)?;
//! let sender = "10.0.0.5".parse()?; // stands in for a host name in c=
//! let streams = sdp.endpoints(sender)?;
//! assert_eq!(streams[0].addr, "10.0.0.5:4000".parse()?);
//! assert_eq!(streams[0].rtcp_addr, Some("10.0.0.5:4001".parse()?));
//!
//! // The MPR engine answers with a relay address per stream.
//! let plan = [PlannedEndpoint {
//!     index: 0,
//!     addr: "203.0.113.10:30000".parse()?,
//!     rtcp_addr: Some("203.0.113.10:30001".parse()?),
//! }];
//! let mut patch = Patch::new();
//! sdp.rewrite(&plan, &RewriteOptions::default(), &mut patch)?;
//! let out = patch.apply(body)?;
//! assert_eq!(
//!     out,
//!     b"v=0\r\n\
//!     o=- 1 1 IN IP4 10.0.0.5\r\n\
//!     s=-\r\n\
//!     c=IN IP4 203.0.113.10\r\n\
//!     t=0 0\r\n\
//!     m=audio 30000 RTP/AVP 0 111\r\n\
//!     a=rtpmap:111 opus/48000/2\r\n\
//!     a=rtcp:30001\r\n"
//! );
//! // The ALG fixes Content-Length by the body's change in length.
//! assert_eq!(patch.delta(), 6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Parsing is hand-written over [`memchr`] rather than built with a parser
//! combinator library: SDP is a list of `<letter>=<value>` lines, only four
//! line types and three attributes matter here, and what is wanted is byte
//! offsets, not values; a direct scan keeps every span exact and costs a
//! few hundred nanoseconds per body.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod lines;
mod parse;
mod rewrite;

use std::ops::Range;

#[cfg(doc)]
use pinhole_core::{intent::MediaEndpoint, intent::PlannedEndpoint, patch::Patch};

pub use error::SdpError;
pub use parse::{AddrType, Connection, Direction, Host, LineEnding, Media, RtcpAttr, Sdp, Span};
pub use rewrite::{RewriteOptions, plan_consecutive, rewrite_all};

/// The descriptions in `body`, one per `v=` line, each from its `v=` line
/// up to the next one: H.248 puts several alternative descriptions in one
/// Local or Remote descriptor (RFC 3525 §7.1.8). Bytes before the first
/// `v=` line belong to none. A body with one description gives one span.
pub fn descriptions(body: &[u8]) -> Descriptions<'_> {
    Descriptions {
        body,
        lines: lines::Lines::new(body, body.len()),
        start: None,
    }
}

/// The iterator [`descriptions`] returns.
pub struct Descriptions<'a> {
    body: &'a [u8],
    lines: lines::Lines<'a>,
    start: Option<usize>,
}

impl Iterator for Descriptions<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        for line in self.lines.by_ref() {
            let text = self.body.get(line.start..line.end).unwrap_or_default();
            if text.starts_with(b"v=")
                && let Some(start) = self.start.replace(line.raw_start)
            {
                return Some(start..line.raw_start);
            }
        }
        self.start.take().map(|start| start..self.body.len())
    }
}

#[cfg(test)]
mod tests;
