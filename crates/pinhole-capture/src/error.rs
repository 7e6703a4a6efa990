//! Why a file could not be read at all.

/// A file that cannot be read as a capture. Damage after a valid file
/// header is not an error: it ends the reading and is reported in
/// [`crate::Stats::errors`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The first four bytes are no pcap or pcapng magic number.
    #[error("not a pcap or pcapng capture (magic number {magic:02x?})")]
    NotACapture {
        /// The first bytes of the file (up to four).
        magic: Vec<u8>,
    },
    /// The file ends inside its file header (pcap) or section header
    /// (pcapng).
    #[error("capture file header truncated: {len} bytes, {needed} needed")]
    TruncatedHeader {
        /// Bytes in the file.
        len: usize,
        /// Bytes the header needs.
        needed: usize,
    },
    /// A pcap variant this crate does not read (e.g. the modified
    /// "Kuznetzov" format, whose record headers are longer).
    #[error("unsupported capture format: {0}")]
    UnsupportedFormat(&'static str),
    /// The file header is malformed (bad version, bad section header).
    #[error("invalid capture file header: {0}")]
    InvalidHeader(String),
    /// Every interface of the file has a link type this crate cannot
    /// decode (pcap: the one in the file header).
    #[error("unsupported link type {0} for the whole capture")]
    UnsupportedLinkType(u32),
    /// Reading from the reader failed ([`crate::read_from`]).
    #[error("reading the capture failed: {0}")]
    Io(#[from] std::io::Error),
}

impl CaptureError {
    /// A stable short label of the variant, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotACapture { .. } => "not_a_capture",
            Self::TruncatedHeader { .. } => "truncated_header",
            Self::UnsupportedFormat(_) => "unsupported_format",
            Self::InvalidHeader(_) => "invalid_header",
            Self::UnsupportedLinkType(_) => "unsupported_link_type",
            Self::Io(_) => "io",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::CaptureError;

    #[test]
    fn every_variant_has_a_distinct_label() {
        let all = [
            CaptureError::NotACapture { magic: vec![0; 4] },
            CaptureError::TruncatedHeader { len: 3, needed: 24 },
            CaptureError::UnsupportedFormat("x"),
            CaptureError::InvalidHeader("x".into()),
            CaptureError::UnsupportedLinkType(147),
            CaptureError::Io(std::io::Error::other("x")),
        ];
        let labels: Vec<&str> = all.iter().map(CaptureError::kind).collect();
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
