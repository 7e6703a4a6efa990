//! Why a body could not be read or rewritten.

use pinhole_core::patch::PatchError;

/// An SDP body that is not SDP, a line that the requested work needs and
/// cannot read, or a plan that does not fit the body. Line numbers are
/// 1-based and count every line of the body, blank ones included.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The bytes are not SDP at all: no `v=` line first, a line that is not
    /// `<letter>=<value>`, control characters, a second description.
    #[error("line {line}: not SDP: {reason}")]
    NotSdp {
        /// The offending line.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An `m=` line without a readable media type, port or protocol.
    #[error("line {line}: unreadable m= line: {reason}")]
    BadMedia {
        /// The `m=` line.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `c=` line that a stream needs and that cannot be read.
    #[error("line {line}: unreadable c= line: {reason}")]
    BadConnection {
        /// The `c=` line.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An `a=rtcp:` attribute (RFC 3605) that cannot be read.
    #[error("line {line}: unreadable a=rtcp attribute: {reason}")]
    BadRtcp {
        /// The `a=rtcp:` line.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `o=` line was to be rewritten and cannot be read (line 0: there
    /// is none).
    #[error("line {line}: unreadable o= line: {reason}")]
    BadOrigin {
        /// The `o=` line, or 0 when the body has none.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A planned endpoint does not fit the body.
    #[error("plan for stream {index}: {reason}")]
    BadPlan {
        /// The planned endpoint's stream index.
        index: u16,
        /// The stream's `m=` line, or 0 when the body has no such stream.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Applying the recorded edits failed: a bug in this crate, reported
    /// rather than hidden.
    #[error("internal: {0}")]
    Patch(#[from] PatchError),
}

impl SdpError {
    /// A stable short label of the variant, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotSdp { .. } => "not_sdp",
            Self::BadMedia { .. } => "bad_media",
            Self::BadConnection { .. } => "bad_connection",
            Self::BadRtcp { .. } => "bad_rtcp",
            Self::BadOrigin { .. } => "bad_origin",
            Self::BadPlan { .. } => "bad_plan",
            Self::Patch(_) => "patch",
        }
    }

    /// The 1-based line the error is about, when there is one.
    pub fn line(&self) -> Option<usize> {
        match *self {
            Self::NotSdp { line, .. }
            | Self::BadMedia { line, .. }
            | Self::BadConnection { line, .. }
            | Self::BadRtcp { line, .. }
            | Self::BadOrigin { line, .. }
            | Self::BadPlan { line, .. } => (line > 0).then_some(line),
            Self::Patch(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use pinhole_core::patch::PatchError;

    use super::SdpError;

    #[test]
    fn every_variant_has_a_distinct_label() {
        let all = [
            SdpError::NotSdp {
                line: 1,
                reason: "x",
            },
            SdpError::BadMedia {
                line: 1,
                reason: "x",
            },
            SdpError::BadConnection {
                line: 1,
                reason: "x",
            },
            SdpError::BadRtcp {
                line: 1,
                reason: "x",
            },
            SdpError::BadOrigin {
                line: 1,
                reason: "x",
            },
            SdpError::BadPlan {
                index: 0,
                line: 1,
                reason: "x",
            },
            SdpError::Patch(PatchError::Overlap { a: 0..2, b: 1..3 }),
        ];
        let labels: Vec<&str> = all.iter().map(SdpError::kind).collect();
        let set: HashSet<&str> = labels.iter().copied().collect();
        assert_eq!(set.len(), labels.len(), "repeated label in {labels:?}");
        let snake = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        assert!(labels.iter().all(|l| snake(l)), "{labels:?}");
    }
}
