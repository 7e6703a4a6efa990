//! One H.323 message as the ALG meets it, located whole: a TPKT frame's
//! payload on a call-signaling connection (Q.931 with the H.225.0
//! User-user data) or on an H.245 connection, or a RAS datagram; the
//! addresses in it found by the walker, with offsets into that payload,
//! so a rewrite patches a copy in place.

use crate::Q931Error;
use crate::per::{self, Address, Pdu, PerError, Walk};
use crate::q931::{self, MessageType, X208};

/// What carries the PER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Q.931 with the H.225.0 User-user element.
    Q931 {
        /// The Q.931 message type.
        kind: MessageType,
        /// The call reference value.
        call_reference: u64,
        /// Sent by the called side.
        from_destination: bool,
    },
    /// An H.245 `MultimediaSystemControlMessage`.
    H245,
    /// A RAS message (UDP).
    Ras,
}

/// A located message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    /// Its layer.
    pub layer: Layer,
    /// Where the PER starts in the payload.
    pub per_at: usize,
    /// What the walk found (offsets relative to `per_at`).
    pub walk: Walk,
}

/// Why a message cannot be located.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The Q.931 layer.
    #[error("Q.931: {0}")]
    Q931(#[from] Q931Error),
    /// A Q.931 message with no H.225.0 User-user element; nothing to walk.
    #[error("Q.931 {0} without an H.225.0 User-user element")]
    NoUserUser(&'static str),
    /// The PER.
    #[error("PER: {0}")]
    Per(#[from] Box<PerError>),
}

impl SignalError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Q931(_) => "q931",
            Self::NoUserUser(_) => "no_user_user",
            Self::Per(e) => e.kind(),
        }
    }
}

impl Signal {
    /// Locates a TPKT payload of a call-signaling connection (H.225.0
    /// §7): Q.931 whose User-user element holds `H323-UserInformation`.
    pub fn call_signaling(payload: &[u8]) -> Result<Self, SignalError> {
        let m = q931::Message::parse(payload)?;
        let uu = m
            .user_user()
            .filter(|uu| uu.discriminator == X208)
            .ok_or(SignalError::NoUserUser(m.kind.name()))?;
        let walk = per::walk(Pdu::UserInformation, &payload[uu.data.clone()])?;
        Ok(Self {
            layer: Layer::Q931 {
                kind: m.kind,
                call_reference: m.call_reference_value(),
                from_destination: m.from_destination,
            },
            per_at: uu.data.start,
            walk,
        })
    }

    /// Locates an H.245 message (a TPKT payload on an H.245 connection).
    pub fn h245(payload: &[u8]) -> Result<Self, SignalError> {
        Ok(Self {
            layer: Layer::H245,
            per_at: 0,
            walk: per::walk(Pdu::H245, payload)?,
        })
    }

    /// Locates a RAS datagram.
    pub fn ras(datagram: &[u8]) -> Result<Self, SignalError> {
        Ok(Self {
            layer: Layer::Ras,
            per_at: 0,
            walk: per::walk(Pdu::Ras, datagram)?,
        })
    }

    /// The message's name: the H.225.0, RAS or H.245 alternative
    /// (`setup`, `registrationRequest`, `openLogicalChannelAck`), or the
    /// Q.931 type where the User-user data names none.
    pub fn name(&self) -> &'static str {
        match (self.walk.message, self.layer) {
            ("", Layer::Q931 { kind, .. }) => kind.name(),
            (m, _) => m,
        }
    }

    /// The addresses, with offsets into the payload: `set` them on a copy
    /// of it.
    pub fn addresses(&self) -> impl Iterator<Item = Address> + '_ {
        self.walk.addresses.iter().map(|a| Address {
            ip_at: a.ip_at + self.per_at,
            port_at: a.port_at + self.per_at,
            ..a.clone()
        })
    }
}
