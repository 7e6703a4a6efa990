//! What can be wrong with a message.

/// A Q.931 or TPKT message that cannot be read: where and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at octet {at}: {reason}")]
#[non_exhaustive]
pub struct Q931Error {
    /// The offset of the offending octet.
    pub at: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl Q931Error {
    pub(crate) const fn at(at: usize, reason: &'static str) -> Self {
        Self { at, reason }
    }

    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        "malformed"
    }
}
