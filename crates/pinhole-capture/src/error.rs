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
