//! What a message means for the call's media.

use pinhole_core::intent::IntentKind;

use crate::head::{Head, Verb};
use crate::message::Message;

/// What a message does to the media, from its own bytes alone.
///
/// A response does not name its command: whether a 2xx with SDP answers a
/// CRCX that carried the call agent's SDP (an answer) or one that did not
/// (the gateway's first description), and whether a response ends a DLCX,
/// the ALG learns from its transaction table, keyed by the sender and
/// [`Message::transaction_id`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaRole {
    /// A CRCX with a RemoteConnectionDescriptor: the first description of
    /// the other side's media.
    Offer,
    /// An MDCX with a RemoteConnectionDescriptor: a change.
    Modify,
    /// A 2xx response with a LocalConnectionDescriptor: the gateway's
    /// media.
    Answer,
    /// A DLCX, from the call agent or the gateway: the connection ends.
    Teardown,
    /// Nothing for the media: other commands, CRCX/MDCX without SDP, other
    /// responses.
    None,
}

impl MediaRole {
    /// The role of `m`.
    pub fn of(m: &Message<'_>) -> Self {
        match m.head() {
            Head::Command(c) => match c.verb {
                Verb::Dlcx => Self::Teardown,
                Verb::Crcx if m.has_sdp() => Self::Offer,
                Verb::Mdcx if m.has_sdp() => Self::Modify,
                _ => Self::None,
            },
            Head::Response(r) if r.is_success() && m.has_sdp() => Self::Answer,
            Head::Response(_) => Self::None,
        }
    }

    /// The engine's intent kind for this role; `None` for [`MediaRole::None`].
    pub fn intent_kind(self) -> Option<IntentKind> {
        match self {
            Self::Offer => Some(IntentKind::Offer),
            Self::Modify => Some(IntentKind::Modify),
            Self::Answer => Some(IntentKind::Answer),
            Self::Teardown => Some(IntentKind::Teardown),
            Self::None => None,
        }
    }
}
