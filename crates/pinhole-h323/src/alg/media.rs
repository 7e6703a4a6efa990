//! What an H.323 message says about media, for the MPR and the APS alike:
//! which of its transport addresses are logical-channel addresses, whose
//! they are, of which RTP session, RTP or RTCP — and the rewrite back.
//!
//! H.245 scatters a party's receive addresses over several messages (an
//! OLC names its sender's RTCP address, the OLC Ack its sender's RTP and
//! RTCP; a fastStart proposal both), and the answers echo the other
//! party's addresses (a callee's fastStart reply repeats the caller's
//! `mediaChannel` for the reverse channel). So a party's streams are
//! gathered per RTP session over the call ([`Ends`]), and an echo is
//! told by its value: it is an address this ALG wrote toward the sender
//! ([`Written`]), and it goes back as the original.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use pinhole_core::intent::{MediaEndpoint, PlannedEndpoint};
use pinhole_core::types::Side;
use pinhole_core::wire::RtcpMode;

use crate::per::Address;
use crate::signal::Signal;

/// One logical-channel address of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MediaAddr {
    /// Its index among the message's addresses.
    pub(crate) index: usize,
    /// The RTP session (H.245 `sessionID`): the stream index.
    pub(crate) session: u8,
    /// `mediaControlChannel` (RTCP) rather than `mediaChannel` (RTP).
    pub(crate) rtcp: bool,
    /// Its value as received.
    pub(crate) at: SocketAddr,
}

/// A logical-channel address whose session cannot be told: an OLC Ack
/// without `sessionID` for a channel nobody saw opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} of channel {channel} in {message}: no RTP session known")]
pub struct NoSession {
    /// The component.
    pub field: &'static str,
    /// The message (`openLogicalChannelAck`, …).
    pub message: &'static str,
    /// The channel number (0 when none).
    pub channel: u64,
}

/// The logical channels of a call seen opened: (opener, number) → session.
#[derive(Clone, Debug, Default)]
pub(crate) struct Channels(HashMap<(Side, u16), u8>);

impl Channels {
    /// The channels `side` opened.
    pub(crate) fn opened_by(&self, side: Side) -> impl Iterator<Item = (u16, u8)> + '_ {
        self.0
            .iter()
            .filter(move |((s, _), _)| *s == side)
            .map(|((_, n), s)| (*n, *s))
    }

    /// Forgets a closed channel; its session.
    pub(crate) fn close(&mut self, opener: Side, channel: u16) -> Option<u8> {
        self.0.remove(&(opener, channel))
    }
}

fn is_media(a: &Address) -> bool {
    matches!(a.field, "mediaChannel" | "mediaControlChannel")
}

/// The message (top level, or nested `n`) an address sits in.
fn message_of(sig: &Signal, nested: Option<usize>) -> &'static str {
    match nested {
        None => sig.walk.message,
        Some(i) => sig.walk.nested.get(i).map_or("", |n| n.message),
    }
}

/// The logical-channel addresses of `sig`, sent by `from`, with their
/// sessions; learns the channels `from` opens.
pub(crate) fn media_of(
    sig: &Signal,
    payload: &[u8],
    from: Side,
    channels: &mut Channels,
) -> Result<Vec<MediaAddr>, NoSession> {
    // Channels opened in this message first: an Ack in the same message
    // (a fastStart reply) may name them.
    for (i, n) in sig.walk.nested.iter().enumerate() {
        learn(sig, Some(i), n.message, from, channels);
    }
    learn(sig, None, sig.walk.message, from, channels);
    let mut out = Vec::new();
    for (index, a) in sig.addresses().enumerate() {
        if !is_media(&a) {
            continue;
        }
        let message = message_of(sig, a.nested);
        let channel = sig.walk.value("forwardLogicalChannelNumber", a.nested, "");
        let session = sig
            .walk
            .value("sessionID", a.nested, a.context)
            .map(|s| s as u8)
            .or_else(|| {
                // An OLC Ack names the peer's channel.
                let n = u16::try_from(channel?).ok()?;
                channels.0.get(&(from.peer(), n)).copied()
            })
            .ok_or(NoSession {
                field: a.field,
                message,
                channel: channel.unwrap_or(0),
            })?;
        out.push(MediaAddr {
            index,
            session,
            rtcp: a.field == "mediaControlChannel",
            at: a.get(payload),
        });
    }
    Ok(out)
}

fn learn(sig: &Signal, nested: Option<usize>, message: &str, from: Side, channels: &mut Channels) {
    if message != "openLogicalChannel" {
        return;
    }
    let channel = sig.walk.value("forwardLogicalChannelNumber", nested, "");
    let session = sig
        .walk
        .value("sessionID", nested, "forwardLogicalChannelParameters")
        .or_else(|| {
            sig.walk
                .value("sessionID", nested, "reverseLogicalChannelParameters")
        });
    if let (Some(c), Some(s)) = (channel.and_then(|c| u16::try_from(c).ok()), session) {
        channels.0.insert((from, c), s as u8);
    }
}

/// The channels a CLC, a RequestChannelClose or an OLC Reject in `sig`
/// ends (channel numbers; the opener is decided by the caller).
pub(crate) fn closed_channels(sig: &Signal) -> Vec<(Option<usize>, &'static str, u16)> {
    let mut out = Vec::new();
    let mut check = |nested: Option<usize>, message: &'static str| {
        if matches!(
            message,
            "closeLogicalChannel" | "requestChannelClose" | "openLogicalChannelReject"
        ) && let Some(c) = sig.walk.value("forwardLogicalChannelNumber", nested, "")
            && let Ok(c) = u16::try_from(c)
        {
            out.push((nested, message, c));
        }
    };
    check(None, sig.walk.message);
    for (i, n) in sig.walk.nested.iter().enumerate() {
        check(Some(i), n.message);
    }
    out
}

/// A party's receive addresses of one RTP session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct End {
    pub(crate) rtp: Option<SocketAddr>,
    pub(crate) rtcp: Option<SocketAddr>,
}

/// A party's sessions, as its messages described them so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ends(pub(crate) BTreeMap<u8, End>);

impl Ends {
    /// Takes in the party's own addresses of a message; true if anything
    /// changed.
    pub(crate) fn update(&mut self, own: &[MediaAddr]) -> bool {
        let mut changed = false;
        for m in own {
            let e = self.0.entry(m.session).or_default();
            let slot = if m.rtcp { &mut e.rtcp } else { &mut e.rtp };
            if *slot != Some(m.at) {
                *slot = Some(m.at);
                changed = true;
            }
        }
        changed
    }

    /// The party's streams as the engine takes them: RTP where it said,
    /// else the port below its RTCP (RFC 3550 §11's pairing).
    pub(crate) fn endpoints(&self) -> Vec<MediaEndpoint> {
        self.0
            .iter()
            .filter_map(|(&s, e)| {
                let rtp = e.rtp.or_else(|| {
                    e.rtcp
                        .map(|c| SocketAddr::new(c.ip(), c.port().saturating_sub(1)))
                })?;
                Some(MediaEndpoint {
                    index: u16::from(s),
                    addr: rtp,
                    rtcp: RtcpMode::Pair,
                    rtcp_addr: e.rtcp,
                })
            })
            .collect()
    }
}

/// What a rewrite wrote toward each side: (toward, written) → original.
#[derive(Clone, Debug, Default)]
pub(crate) struct Written(HashMap<(Side, SocketAddr), SocketAddr>);

impl Written {
    /// The original of an address that `from` echoes back, if it is one
    /// we wrote toward it.
    pub(crate) fn echo(&self, from: Side, at: SocketAddr) -> Option<SocketAddr> {
        self.0.get(&(from, at)).copied()
    }

    pub(crate) fn record(&mut self, toward: Side, written: SocketAddr, original: SocketAddr) {
        self.0.insert((toward, written), original);
    }
}

/// Splits a message's media addresses into the sender's own and its
/// echoes of what we wrote toward it (with the originals to restore).
pub(crate) fn split_echoes(
    media: Vec<MediaAddr>,
    from: Side,
    written: &Written,
) -> (Vec<MediaAddr>, Vec<(MediaAddr, SocketAddr)>) {
    let mut own = Vec::new();
    let mut echoes = Vec::new();
    for m in media {
        match written.echo(from, m.at) {
            Some(orig) => echoes.push((m, orig)),
            None => own.push(m),
        }
    }
    (own, echoes)
}

/// The address to write for an own address, from the plan of its
/// session: RTP at the planned address, RTCP at the planned RTCP address
/// or the port above.
pub(crate) fn planned_for(m: &MediaAddr, plan: &[PlannedEndpoint]) -> Option<SocketAddr> {
    let p = plan.iter().find(|p| p.index == u16::from(m.session))?;
    Some(if m.rtcp {
        p.rtcp_addr
            .unwrap_or_else(|| SocketAddr::new(p.addr.ip(), p.addr.port().wrapping_add(1)))
    } else {
        p.addr
    })
}
