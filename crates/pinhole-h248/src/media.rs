//! What a command means for the call's media.

use pinhole_core::intent::IntentKind;

use crate::message::{Command, CommandKind, Item};

/// What a command does to the media, from the message's own bytes alone.
///
/// A reply does not say whether it answers an offer or gives the
/// gateway's first description: like MGCP, the ALG learns that from its
/// transaction table, keyed by the sender and the transaction id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaRole {
    /// A request Add or Move with a Remote SDP group: the other side's
    /// media, first described.
    Offer,
    /// A request Modify with a Remote SDP group: a change.
    Modify,
    /// A reply command with a Local SDP group, no error on the command,
    /// its action or its transaction: the gateway's media.
    Answer,
    /// A request Subtract: the termination leaves its context.
    Teardown,
    /// Nothing for the media.
    None,
}

impl MediaRole {
    /// The role of command `cmd` of `item`.
    ///
    /// Request Add/Move with a Remote SDP group: Offer; request Modify
    /// with Remote: Modify; request Subtract: Teardown; a Reply command
    /// (no error on command/action/transaction) with a Local SDP group:
    /// Answer; else None.
    pub fn of(item: &Item<'_>, cmd: &Command<'_>) -> Self {
        let remote = || cmd.streams.iter().any(|s| !s.remote.is_empty());
        let local = || cmd.streams.iter().any(|s| !s.local.is_empty());
        match item {
            Item::Request(_) => match cmd.kind {
                CommandKind::Subtract => Self::Teardown,
                CommandKind::Add | CommandKind::Move if remote() => Self::Offer,
                CommandKind::Modify if remote() => Self::Modify,
                _ => Self::None,
            },
            Item::Reply(r) => {
                // The action that holds the command: its error fails it too.
                let action_failed = r
                    .actions
                    .iter()
                    .find(|a| a.span.start <= cmd.span.start && cmd.span.end <= a.span.end)
                    .is_some_and(|a| a.error.is_some());
                if r.error.is_none() && !action_failed && cmd.error.is_none() && local() {
                    Self::Answer
                } else {
                    Self::None
                }
            }
            Item::Pending { .. } | Item::ResponseAck { .. } => Self::None,
        }
    }

    /// The engine's intent kind for this role; `None` for
    /// [`MediaRole::None`].
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
