//! The APS's media, for every protocol: a pinhole machine per stream and
//! a queue of messages held until their pinholes open.
//!
//! A description **leaving** the network (an offer or answer an inside
//! terminal sent) may only name the firewall pinhole the APS opened with
//! CMPH *before* the message leaves (Fig. 7; Fig. 11 steps 1010–1015 and
//! 1060–1065; Fig. 9 steps 825–835): [`ApsMedia::outward`] opens it and
//! answers [`Step::Wait`] until the engine reports it open, then the
//! endpoints to write. A description **entering** names an MPR relay
//! address; the terminal gets an APS media port B instead
//! ([`ApsMedia::inward`]), which the relay maps to that relay address and
//! to the terminal once the pinhole opens.
//!
//! A message that waits is held in [`Held`], and its call's later messages
//! queue behind it so that order is kept. When the pinhole a held message
//! waited for **failed**, the message is refused with the protocol's error
//! ([`Step::Failed`] on resume): it is never re-offered in a loop.
//!
//! The protocol keys streams by whatever names a call's party in it (`K`:
//! a SIP dialog and side, an MGCP connection, an H.248 termination) and a
//! stream index; it reads and rewrites its own descriptions.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{AlgEvent, ClientContext, Outbox};
use crate::client::{ClientError, Event, PinholeId, PinholeRequest};
use crate::intent::{MediaEndpoint, PlannedEndpoint};
use crate::ports::{Allocator, PortPair, PortRange};
use crate::rng::Rng;
use crate::types::{Flow, Receive};

/// Why a stream has no address to write.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Every APS media port pair B is in use or resting.
    #[error("no APS media port free")]
    NoPorts,
    /// The engine would not open the pinhole (not registered, too many).
    #[error("cannot open a media pinhole: {0}")]
    Open(ClientError),
    /// The pinhole the message waited for could not be opened.
    #[error("the media pinhole failed")]
    PinholeFailed,
}

impl StreamError {
    /// The engine refused at once because the MPR is out of ports a
    /// moment ago ([`ClientError::BackingOff`]): logged there, once.
    pub fn is_backing_off(&self) -> bool {
        matches!(self, Self::Open(ClientError::BackingOff))
    }

    /// A short label, for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoPorts => "no_ports",
            Self::Open(_) => "open_refused",
            Self::PinholeFailed => "pinhole_failed",
        }
    }
}

/// What to do with a description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write these endpoints (one per stream, in the description's order).
    Ready(Vec<PlannedEndpoint>),
    /// A pinhole is still opening: hold the message.
    Wait,
    /// A stream cannot be served: refuse the message.
    Failed(StreamError),
}

/// Whose media ports the pinholes are opened from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An APS: each stream gets a media port pair B of the APS, mapped to
    /// the terminal's address (Fig. 7).
    Aps,
    /// A smart terminal or gateway (Fig. 8, Fig. 10): the pinhole opens
    /// from the terminal's own media port, and the application receives
    /// the media itself; descriptions entering are not rewritten.
    Terminal,
}

/// What the engine's report meant for a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<K> {
    /// The pinhole of a stream of `K` opened: resume `K`'s call.
    Opened(K),
    /// It failed: resume `K`'s call, whose held message is then refused.
    Failed(K),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PhState {
    Opening,
    Open {
        public: Option<SocketAddr>,
        rtcp_public: Option<SocketAddr>,
        relay: SocketAddr,
    },
    Failed,
}

#[derive(Clone, Debug)]
struct Pinhole {
    id: PinholeId,
    /// The terminal's address the pinhole was opened for.
    inside: SocketAddr,
    state: PhState,
    leg_key: Vec<u8>,
}

#[derive(Debug, Default)]
struct Stream {
    /// Port pair B (APS mode).
    b: Option<PortPair>,
    /// Where the pinhole was opened from (port B, or the terminal's port).
    local: Option<SocketAddr>,
    /// The MPR relay address the latest description from outside named.
    relay: Option<SocketAddr>,
    pinhole: Option<Pinhole>,
}

/// The APS's streams: ports B, pinholes and their states, by party `K`
/// and stream index.
pub struct ApsMedia<K> {
    mode: Mode,
    /// Pinholes asked of the engine, and asks it refused.
    opened: u64,
    refused: u64,
    media_ip: IpAddr,
    ports: Allocator,
    streams: HashMap<K, HashMap<u16, Stream>>,
    by_pinhole: HashMap<PinholeId, K>,
}

impl<K: Clone + Eq + Hash> ApsMedia<K> {
    /// Streams on media ports B of `ports` at `media_ip`; a freed pair
    /// rests `quarantine` before reuse (late packets of the old call must
    /// not reach the next one).
    pub fn new(media_ip: IpAddr, ports: PortRange, quarantine: Duration, rng: Rng) -> Self {
        Self {
            mode: Mode::Aps,
            opened: 0,
            refused: 0,
            media_ip,
            ports: Allocator::new(ports, quarantine, rng),
            streams: HashMap::new(),
            by_pinhole: HashMap::new(),
        }
    }

    /// Streams of a smart terminal ([`Mode::Terminal`]): pinholes open
    /// from the terminal's own ports, which it allocates itself.
    pub fn terminal(media_ip: IpAddr) -> Self {
        Self {
            mode: Mode::Terminal,
            opened: 0,
            refused: 0,
            media_ip,
            // Never allocated from in terminal mode.
            ports: Allocator::new(
                PortRange { first: 0, last: 1 },
                Duration::ZERO,
                Rng::from_seed([0; 32]),
            ),
            streams: HashMap::new(),
            by_pinhole: HashMap::new(),
        }
    }

    /// The public address of stream `index` of `key` once its pinhole is
    /// open (the local address in the no-response variant).
    pub fn public(&self, key: &K, index: u16) -> Option<SocketAddr> {
        let st = self.streams.get(key)?.get(&index)?;
        match st.pinhole.as_ref()?.state {
            PhState::Open { public, .. } => public.or(st.local),
            _ => None,
        }
    }

    /// Stream `index` of `key` with its pinhole open: where the inside
    /// party sends its media (port B; a smart terminal: the relay
    /// address itself), RTP and RTCP. A protocol whose two directions are
    /// described apart (H.323's logical channels) writes these into a
    /// description entering the network once the pinhole is up, rather
    /// than follow a relay address the MPR wrote before it adopted the
    /// pinhole's leg (the descriptions crossed).
    pub fn open_stream(&self, key: &K, index: u16) -> Option<(SocketAddr, SocketAddr)> {
        let st = self.streams.get(key)?.get(&index)?;
        let PhState::Open { relay, .. } = st.pinhole.as_ref()?.state else {
            return None;
        };
        let rtp = match self.mode {
            Mode::Terminal => relay,
            Mode::Aps => SocketAddr::new(self.media_ip, st.b?.rtp),
        };
        let rtcp = match self.mode {
            Mode::Terminal => SocketAddr::new(relay.ip(), relay.port().wrapping_add(1)),
            Mode::Aps => SocketAddr::new(self.media_ip, st.b?.rtcp()),
        };
        Some((rtp, rtcp))
    }

    /// The relay address stream `index` of `key` exchanges media with:
    /// the one its pinhole was opened toward, else the latest a
    /// description from outside named.
    pub fn relay(&self, key: &K, index: u16) -> Option<SocketAddr> {
        self.streams.get(key)?.get(&index)?.relay
    }

    /// Media pinholes asked of the engine so far (CMPH started).
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Media pinholes the engine refused to start (not registered, bad
    /// LEG-KEY): each also answered its message with [`Step::Failed`].
    pub fn open_refusals(&self) -> u64 {
        self.refused
    }

    /// Media port pairs B in use.
    pub fn ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    /// Parties with streams.
    pub fn parties(&self) -> usize {
        self.streams.len()
    }

    /// A description leaving the network: every enabled stream needs an
    /// open pinhole mapped to the terminal. `leg_key` names stream
    /// `index` to the MPR. `resuming` is true when the message was held:
    /// a pinhole that failed meanwhile then refuses it.
    pub fn outward(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        key: &K,
        endpoints: &[MediaEndpoint],
        leg_key: &dyn Fn(u16) -> Vec<u8>,
        resuming: bool,
    ) -> Step {
        let mut plan = Vec::with_capacity(endpoints.len());
        let mut waiting = false;
        for e in endpoints {
            match self.outward_stream(now, ctx, key, e, leg_key, resuming) {
                Ok(Some(p)) => plan.push(p),
                Ok(None) => waiting = true,
                Err(err) => return Step::Failed(err),
            }
        }
        if waiting {
            Step::Wait
        } else {
            Step::Ready(plan)
        }
    }

    /// A description entering the network: every enabled stream gets port
    /// B; the relay address it names is where B's pinhole will point.
    pub fn inward(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        key: &K,
        endpoints: &[MediaEndpoint],
    ) -> Step {
        let mut plan = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            match self.inward_stream(now, ctx, key, e) {
                Ok(p) => plan.push(p),
                Err(err) => return Step::Failed(err),
            }
        }
        Step::Ready(plan)
    }

    fn outward_stream(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        key: &K,
        e: &MediaEndpoint,
        leg_key: &dyn Fn(u16) -> Vec<u8>,
        resuming: bool,
    ) -> Result<Option<PlannedEndpoint>, StreamError> {
        let unchanged = PlannedEndpoint {
            index: e.index,
            addr: e.addr,
            rtcp_addr: e.rtcp_addr,
        };
        if e.is_disabled() {
            self.close_stream(now, ctx, key, e.index);
            return Ok(Some(unchanged));
        }
        let mode = self.mode;
        let st = self
            .streams
            .entry(key.clone())
            .or_default()
            .entry(e.index)
            .or_default();
        if let Some(ph) = st.pinhole.clone() {
            if ph.state == PhState::Failed && resuming {
                // The message held for this pinhole: it failed. Refuse it;
                // a new CMPH waits for the terminal's next description.
                return Err(StreamError::PinholeFailed);
            }
            if !e.is_hold() && (ph.inside != e.addr || ph.state == PhState::Failed) {
                // The terminal moved its media (or a new description after
                // a failure): open again.
                let _ = ctx.close_pinhole(ph.id);
                self.by_pinhole.remove(&ph.id);
                st.pinhole = None;
            }
        }
        let Some(ph) = &st.pinhole else {
            if e.is_hold() {
                return Ok(Some(unchanged));
            }
            let mut fresh_b = None;
            let local = match mode {
                Mode::Terminal => e.addr,
                Mode::Aps => match st.b {
                    Some(b) => SocketAddr::new(self.media_ip, b.rtp),
                    None => {
                        let b = self.ports.allocate(now).map_err(|err| {
                            tracing::error!(error = %err, "no APS media port free");
                            StreamError::NoPorts
                        })?;
                        st.b = Some(b);
                        fresh_b = Some(b);
                        SocketAddr::new(self.media_ip, b.rtp)
                    }
                },
            };
            st.local = Some(local);
            let key_bytes = leg_key(e.index);
            let req = PinholeRequest {
                local,
                relay: st.relay,
                rtcp: e.rtcp,
                key: key_bytes.clone(),
                inside: (mode == Mode::Aps).then_some(e.addr),
            };
            let id = match ctx.open_pinhole(now, req) {
                Ok(id) => id,
                Err(err) => {
                    self.refused += 1;
                    if err == ClientError::BackingOff {
                        // The engine logged the refusal that started it;
                        // one line per call refused meanwhile would flood.
                        tracing::debug!(error = %err, "cannot open a media pinhole");
                    } else {
                        tracing::error!(error = %err, "cannot open a media pinhole");
                    }
                    if let Some(b) = fresh_b {
                        // Its address never left: no quarantine, or a burst
                        // of refused calls would leave no port B for the
                        // calls after it.
                        st.b = None;
                        st.local = None;
                        let _ = self.ports.unallocate(b);
                    }
                    return Err(StreamError::Open(err));
                }
            };
            self.opened += 1;
            st.pinhole = Some(Pinhole {
                id,
                inside: e.addr,
                state: PhState::Opening,
                leg_key: key_bytes,
            });
            self.by_pinhole.insert(id, key.clone());
            return Ok(None);
        };
        match ph.state {
            PhState::Opening => Ok(None),
            PhState::Failed => Err(StreamError::PinholeFailed),
            PhState::Open {
                public,
                rtcp_public,
                ..
            } => {
                // The no-response variant has no public address: the
                // listening address stands for it.
                let Some(mut addr) = public.or(st.local) else {
                    return Err(StreamError::PinholeFailed);
                };
                if e.is_hold() {
                    addr.set_ip(e.addr.ip());
                }
                let rtcp_addr = e.rtcp_addr.map(|_| {
                    rtcp_public
                        .unwrap_or_else(|| SocketAddr::new(addr.ip(), addr.port().wrapping_add(1)))
                });
                Ok(Some(PlannedEndpoint {
                    index: e.index,
                    addr,
                    rtcp_addr,
                }))
            }
        }
    }

    fn inward_stream(
        &mut self,
        now: Instant,
        ctx: &mut dyn ClientContext,
        key: &K,
        e: &MediaEndpoint,
    ) -> Result<PlannedEndpoint, StreamError> {
        if e.is_disabled() {
            self.close_stream(now, ctx, key, e.index);
            return Ok(PlannedEndpoint {
                index: e.index,
                addr: e.addr,
                rtcp_addr: e.rtcp_addr,
            });
        }
        let st = self
            .streams
            .entry(key.clone())
            .or_default()
            .entry(e.index)
            .or_default();
        if !e.is_hold() {
            st.relay = Some(e.addr);
            if let Some(ph) = &st.pinhole
                && let PhState::Open { relay, .. } = ph.state
                && relay != e.addr
            {
                // The MPR moved the stream: the next description leaving
                // opens it again toward the new relay address.
                let _ = ctx.close_pinhole(ph.id);
                self.by_pinhole.remove(&ph.id);
                st.pinhole = None;
            }
        }
        if self.mode == Mode::Terminal {
            // The terminal reads the relay address itself.
            return Ok(PlannedEndpoint {
                index: e.index,
                addr: e.addr,
                rtcp_addr: e.rtcp_addr,
            });
        }
        let b = match st.b {
            Some(b) => b,
            None => {
                let b = self.ports.allocate(now).map_err(|err| {
                    tracing::error!(error = %err, "no APS media port free");
                    StreamError::NoPorts
                })?;
                st.b = Some(b);
                b
            }
        };
        let ip = if e.is_hold() {
            e.addr.ip()
        } else {
            self.media_ip
        };
        Ok(PlannedEndpoint {
            index: e.index,
            addr: SocketAddr::new(ip, b.rtp),
            rtcp_addr: e.rtcp_addr.map(|_| SocketAddr::new(ip, b.rtcp())),
        })
    }

    /// The engine reported a pinhole opened or failed: whose it was (an
    /// [`AlgEvent`] with the stream's LEG-KEY goes to `out`). Other
    /// events, and pinholes not ours, give `None`.
    pub fn handle_event(&mut self, ev: &Event, out: &mut Outbox) -> Option<Outcome<K>> {
        let (id, state) = match *ev {
            Event::PinholeOpened {
                id,
                relay,
                pinhole,
                rtcp_pinhole,
            } => (
                id,
                PhState::Open {
                    public: pinhole,
                    rtcp_public: rtcp_pinhole,
                    relay,
                },
            ),
            Event::PinholeFailed { id, .. } => (id, PhState::Failed),
            _ => return None,
        };
        let key = self.by_pinhole.get(&id)?.clone();
        for st in self.streams.get_mut(&key)?.values_mut() {
            if let Some(ph) = st.pinhole.as_mut()
                && ph.id == id
            {
                ph.state = state;
                let leg_key = ph.leg_key.clone();
                if let PhState::Open { relay, .. } = state {
                    st.relay = Some(relay);
                    out.event(AlgEvent::PinholeOpened { leg_key });
                } else {
                    out.event(AlgEvent::PinholeFailed { leg_key });
                }
            }
        }
        Some(match state {
            PhState::Failed => Outcome::Failed(key),
            _ => Outcome::Opened(key),
        })
    }

    /// Closes one stream: its pinhole, its ports B.
    pub fn close_stream(&mut self, now: Instant, ctx: &mut dyn ClientContext, key: &K, index: u16) {
        let Some(streams) = self.streams.get_mut(key) else {
            return;
        };
        if let Some(st) = streams.remove(&index) {
            release(now, ctx, &mut self.ports, &mut self.by_pinhole, st);
        }
        if streams.is_empty() {
            self.streams.remove(key);
        }
    }

    /// Closes every stream of a party.
    pub fn close(&mut self, now: Instant, ctx: &mut dyn ClientContext, key: &K) {
        for (_, st) in self.streams.remove(key).into_iter().flatten() {
            release(now, ctx, &mut self.ports, &mut self.by_pinhole, st);
        }
    }

    /// Lets rested port pairs be used again.
    pub fn expire(&mut self, now: Instant) {
        self.ports.expire(now);
    }
}

fn release<K: Eq + Hash>(
    now: Instant,
    ctx: &mut dyn ClientContext,
    ports: &mut Allocator,
    by_pinhole: &mut HashMap<PinholeId, K>,
    st: Stream,
) {
    if let Some(ph) = st.pinhole {
        let _ = ctx.close_pinhole(ph.id);
        by_pinhole.remove(&ph.id);
    }
    if let Some(b) = st.b {
        let _ = ports.release(now, b);
    }
}

/// A message held until its pinholes open, as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parked {
    /// Our socket it arrived on.
    pub local: SocketAddr,
    /// Its sender.
    pub remote: SocketAddr,
    /// The datagram.
    pub bytes: Vec<u8>,
    /// How it came (a stream connection keeps its name: the resumed
    /// message's answers go back down it).
    pub flow: Flow,
}

impl Parked {
    /// The message as it was received.
    pub fn receive(&self) -> Receive<'_> {
        Receive {
            local: self.local,
            remote: self.remote,
            bytes: &self.bytes,
            flow: self.flow,
        }
    }
}

/// What [`Held::park`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Park {
    /// Held at the back of its call's queue.
    Held,
    /// The same bytes already wait: a retransmission, absorbed.
    Duplicate,
    /// The queue is full: the message is dropped (its sender retransmits).
    Full,
}

/// Messages held per call, in arrival order.
pub struct Held<C> {
    queues: HashMap<C, VecDeque<Parked>>,
    max: usize,
}

impl<C: Clone + Eq + Hash> Held<C> {
    /// At most `max` messages per call.
    pub fn new(max: usize) -> Self {
        Self {
            queues: HashMap::new(),
            max,
        }
    }

    /// True while something of `call` waits: a new message of the call
    /// must queue behind it.
    pub fn is_holding(&self, call: &C) -> bool {
        self.queues.get(call).is_some_and(|q| !q.is_empty())
    }

    /// Holds a message at the back of its call's queue.
    pub fn park(&mut self, call: &C, rx: &Receive<'_>) -> Park {
        let q = self.queues.entry(call.clone()).or_default();
        if q.iter().any(|p| p.bytes == rx.bytes) {
            return Park::Duplicate;
        }
        if q.len() >= self.max {
            tracing::warn!("too many messages held for one call; dropped");
            return Park::Full;
        }
        q.push_back(Parked {
            local: rx.local,
            remote: rx.remote,
            bytes: rx.bytes.to_vec(),
            flow: rx.flow,
        });
        Park::Held
    }

    /// Runs the held messages of `call` in order through `process`, until
    /// one must wait again (`process` returns false after parking it once
    /// more): that one goes back to the front.
    pub fn resume<A>(
        alg: &mut A,
        held: fn(&mut A) -> &mut Self,
        call: &C,
        mut process: impl FnMut(&mut A, Receive<'_>) -> bool,
    ) {
        loop {
            let Some(p) = held(alg).queues.get_mut(call).and_then(VecDeque::pop_front) else {
                held(alg).queues.remove(call);
                return;
            };
            if !process(alg, p.receive()) {
                // Parked again at the back: it stays first in line.
                if let Some(q) = held(alg).queues.get_mut(call) {
                    q.retain(|x| x.bytes != p.bytes);
                    q.push_front(p);
                }
                return;
            }
        }
    }

    /// Drops the queues of calls `keep` says are gone.
    pub fn retain(&mut self, mut keep: impl FnMut(&C) -> bool) {
        self.queues.retain(|c, q| !q.is_empty() && keep(c));
    }

    /// Messages held now, over all calls.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.queues.values().all(VecDeque::is_empty)
    }
}

#[cfg(test)]
mod tests;
