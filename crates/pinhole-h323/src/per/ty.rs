//! The vocabulary of the generated skip tables (`schema.rs`): what aligned
//! PER needs to know of a type to step over a value of it, and the marks
//! that tell the walker where the transport addresses and nested PDUs are.

use super::Family;

/// No upper bound (or one of 64K or more, which PER treats alike).
pub(crate) const NO_UB: u32 = u32::MAX;

/// An OPTIONAL component: it has a bit in its SEQUENCE's preamble.
pub(crate) const OPT: u8 = 1;
/// A component of TransportAddress type (or a SEQUENCE OF them): its name
/// is the `field` of the addresses found inside.
pub(crate) const LABEL: u8 = 2;
/// The component's type contains an address, a nested PDU or a value the
/// walk records.
pub(crate) const HIT: u8 = 4;
/// An INTEGER or BOOLEAN whose value the walk records (channel numbers,
/// session IDs, `h245Tunneling`).
pub(crate) const VALUE: u8 = 8;
/// An alias string whose place the walk records (`dialedDigits`,
/// `h323-ID`, `url-ID`, `email-ID`).
pub(crate) const TEXT: u8 = 16;
/// The call's GUID (`CallIdentifier.guid`).
pub(crate) const GUID: u8 = 32;
/// A component that names the context of what is inside it (an OLC's
/// forward or reverse parameters, an OLC Ack's).
pub(crate) const CONTEXT: u8 = 64;

/// A size constraint (X.691 §11.9.3.3): bounds and the extension marker.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Size {
    pub(crate) lb: u32,
    pub(crate) ub: u32,
    pub(crate) ext: bool,
}

/// A type, as aligned PER sees it.
#[derive(Debug)]
pub(crate) enum Ty {
    Null,
    Bool,
    /// `range` is ub − lb + 1, or 0 where either bound is missing (then
    /// `lb` is 0 too).
    Int {
        lb: i64,
        range: u64,
        ext: bool,
    },
    Enum {
        n: u16,
        ext: bool,
    },
    Octets(Size),
    Bits(Size),
    /// A known-multiplier character string: the bits of one character.
    Chars(Size, u8),
    Oid,
    /// An open type (a length and octets).
    Open,
    Seq(&'static Seq),
    /// Size, item type, whether the item holds something of interest.
    SeqOf(Size, &'static Self, bool),
    Choice(&'static Choice),
    /// An OCTET STRING that holds the encoding of another PDU.
    Nested(&'static Self),
    /// A type the walker never needs to enter (the generator proved it).
    Unwalked,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) ty: &'static Ty,
    pub(crate) flags: u8,
}

impl Field {
    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Debug)]
pub(crate) struct Seq {
    pub(crate) ext: bool,
    /// Some extension addition holds something of interest.
    pub(crate) ext_hit: bool,
    /// Its OPTIONAL root components: the preamble's bits.
    pub(crate) nopt: usize,
    /// The SEQUENCE is an IP address and port (root components 0 and 1).
    pub(crate) addr: Option<Family>,
    /// How many root components to walk when nothing after needs this
    /// value's end: past the last one of interest, there is nothing to find.
    pub(crate) stop: usize,
    pub(crate) root: &'static [Field],
    pub(crate) exts: &'static [Field],
}

#[derive(Debug)]
pub(crate) struct Choice {
    pub(crate) ext: bool,
    /// Its alternative names the message (`setup`, `openLogicalChannelAck`).
    pub(crate) message: bool,
    pub(crate) root: &'static [Field],
    pub(crate) exts: &'static [Field],
}
