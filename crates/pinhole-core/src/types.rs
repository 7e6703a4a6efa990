//! Small shared types: handles, datagrams in and out.

use std::fmt;
use std::net::SocketAddr;

/// Handle of one relay leg at the MPR: a relay port pair and what is bound to it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "leg#{}", self.0)
    }
}

/// The ALG's name for a call (SIP: Call-ID; MGCP: the call id parameter;
/// H.248: the context; H.323: the call identifier). Compared byte for byte:
/// a hash would let a crafted identifier collide with another call.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CallKey(Box<[u8]>);

impl CallKey {
    /// A key from the protocol's own call identifier.
    pub fn new(id: impl AsRef<[u8]>) -> Self {
        Self(id.as_ref().into())
    }

    /// The identifier bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for CallKey {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// The two parties of a call. The ALG decides which is which (SIP: A is the
/// dialog's initiator; MGCP: the first connection created), so a re-offer from
/// either party updates that party's own legs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Side {
    /// The party that started the call.
    A,
    /// The other party.
    B,
}

impl Side {
    /// The other party.
    pub fn peer(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Self::A => 0,
            Self::B => 1,
        }
    }
}

/// RTP or RTCP: which port of a pair.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Component {
    /// The media port.
    Rtp,
    /// The control port (RTP port + 1 unless rtcp-mux).
    Rtcp,
}

/// A message handed to an engine: which local socket it arrived on, from
/// whom, and how (a UDP datagram, or one frame of a TCP or TLS stream).
#[derive(Clone, Copy, Debug)]
pub struct Receive<'a> {
    /// The engine's local address the datagram arrived on.
    pub local: SocketAddr,
    /// The source address as seen on the wire.
    pub remote: SocketAddr,
    /// The payload.
    pub bytes: &'a [u8],
    /// How it came: UDP, or the stream connection it was framed from.
    pub flow: Flow,
}

/// A message an engine wants sent: from `local` (which matters — a firewall
/// only lets a reply in from the address the pinhole was opened toward) to
/// `remote`, by `flow`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transmit {
    /// Send from this local address.
    pub local: SocketAddr,
    /// Send to this address.
    pub remote: SocketAddr,
    /// The payload.
    pub payload: Vec<u8>,
    /// How it leaves: see [`Flow`].
    pub flow: Flow,
}

/// How signaling travels: datagrams, or a byte stream with or without TLS.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord)]
pub enum Transport {
    /// UDP datagrams (the default: every message its own datagram).
    #[default]
    Udp,
    /// A TCP connection: messages framed by the protocol's stream framing.
    Tcp,
    /// TLS over TCP (RFC 5246, RFC 8446), framed like TCP.
    Tls,
}

impl Transport {
    /// The transport's name as SIP writes it in a Via (`UDP`, `TCP`, `TLS`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// A byte stream (TCP or TLS), so messages need framing.
    pub fn is_stream(self) -> bool {
        !matches!(self, Self::Udp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A driver's name for one stream connection (TCP or TLS), unique for the
/// driver's life: a message that arrived on it can be answered on it, and
/// a route can point at it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// How a message travels: the transport and, on a stream, the connection.
///
/// On a [`Receive`] it says what the message came by, so that an answer can
/// go back the same way (an answer takes the `Receive`'s flow: RFC 3261
/// §18.2.2, a response on the connection its request came on). On a [`Transmit`]:
///
/// | `transport` | `conn` | the driver |
/// | --- | --- | --- |
/// | UDP | — | sends a datagram from `local` to `remote` |
/// | TCP or TLS | `Some(c)` | writes the frame on connection `c`; if `c` is gone, it may open a new connection to `remote` only where opening is allowed (never into a network: the inside opens those) |
/// | TCP or TLS | `None` | reuses an open connection to `remote` of that transport, or opens one (RFC 3261 §18.1.1) |
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Flow {
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// On a stream: the connection (as the driver names it).
    pub conn: Option<ConnId>,
}

impl Flow {
    /// A UDP datagram.
    pub const UDP: Self = Self {
        transport: Transport::Udp,
        conn: None,
    };

    /// A stream transport, with no connection named yet (the driver reuses
    /// or opens one).
    pub const fn over(transport: Transport) -> Self {
        Self {
            transport,
            conn: None,
        }
    }

    /// One connection of a stream transport.
    pub const fn conn(transport: Transport, conn: ConnId) -> Self {
        Self {
            transport,
            conn: Some(conn),
        }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.conn {
            Some(c) => write!(f, "{}/{c}", self.transport),
            None => write!(f, "{}", self.transport),
        }
    }
}
