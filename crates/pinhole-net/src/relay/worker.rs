//! A relay worker: one OS thread with its own `mio::Poll`, the read side of
//! the sockets assigned to it and a full copy of the forwarding table.
//!
//! Ready sockets wait in one FIFO queue and each turn relays about **one
//! batch** from a socket before it goes to the back of the queue: a
//! flooded port gets the same share of the work as every other busy port,
//! never all of it.
//!
//! A datagram that waited longer than the configured budget in the
//! kernel's queue is dropped (`dropped_stale`) instead of relayed late, but
//! only while the worker is *behind*: since its queue of ready sockets was
//! last empty, it has worked for longer than that budget. So under overload
//! the relay sheds the oldest packets of every stream alike and is current
//! again as soon as the overload ends, while a worker that was merely not
//! scheduled for a while (a busy host, CPU steal, a VM pause) relays what
//! it finds at full rate: time off the CPU is not work (each turn counts
//! for at most [`TURN_CAP`]), and shedding what waited through a gap would
//! throw away most of the traffic without making the relay any faster.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use pinhole_core::relay::{RelayReport, Remote};
use pinhole_core::types::LegId;
use pinhole_core::wire::is_control;
use tokio::sync::mpsc as tmpsc;

use super::batch::{Received, RecvBatch, SendBatch};
use super::table::{DropReason, Role, SockEntry, SockId, Table, Verdict, comp_index};
use super::{RelayCounters, RelayEvent};

/// The waker's token; socket tokens are their [`SockId`]s.
pub(crate) const WAKE: Token = Token(usize::MAX);

/// Sockets served (one batch each) before the worker polls again for new
/// readiness and commands: bounds how long a command waits under load.
const PASS: usize = 64;

/// The most one socket turn counts towards being behind: a turn is at most
/// [`MAX_TURN_BATCHES`] reads and about two batches of sends, well under
/// a millisecond even in a debug build; anything longer is time the
/// scheduler took away.
const TURN_CAP: Duration = Duration::from_millis(2);

/// Most reads in one turn of a socket: bounds a turn (at 32 per batch,
/// 512 datagrams) when a flood is far beyond what the worker can even
/// read, let alone relay.
const MAX_TURN_BATCHES: usize = 16;

/// Behaviour that only tests change.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Hooks {
    /// Sleep this long per datagram sent: makes the worker slow, so tests
    /// can overload it with a few streams.
    pub(crate) send_pause: Duration,
}

/// A socket to add to every table.
#[derive(Clone, Debug)]
pub(crate) struct NewSock {
    pub(crate) id: SockId,
    pub(crate) entry: SockEntry,
}

/// A table update, broadcast to every worker.
#[derive(Clone, Debug)]
pub(crate) enum TableCmd {
    OpenLeg {
        leg: LegId,
        socks: [Option<NewSock>; 2],
    },
    SetRemote {
        leg: LegId,
        comp: usize,
        remote: Remote,
    },
    Connect {
        leg: LegId,
        peer: LegId,
    },
    CloseLeg {
        leg: LegId,
    },
    /// Adds a mapped or bare socket, or changes the role of one.
    Socket(NewSock),
    CloseSocket {
        id: SockId,
    },
}

/// What a worker's channel carries.
pub(crate) enum Msg {
    /// An engine command; the worker acknowledges once applied.
    Cmd {
        cmd: Box<TableCmd>,
        ack: mpsc::SyncSender<io::Result<()>>,
    },
    /// Another worker latched a component.
    Latched {
        leg: LegId,
        comp: usize,
        source: SocketAddr,
    },
    Shutdown,
}

/// The sending half of a worker's channel.
#[derive(Clone)]
pub(crate) struct Handle {
    pub(crate) tx: mpsc::Sender<Msg>,
    pub(crate) waker: Arc<Waker>,
}

impl Handle {
    pub(crate) fn send(&self, msg: Msg) -> io::Result<()> {
        self.tx
            .send(msg)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "relay worker has stopped"))?;
        self.waker.wake()
    }
}

/// Counters one worker writes and anyone reads. A single writer, so
/// updates are a plain load and store (no locked read-modify-write).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    dropped_source: AtomicU64,
    dropped_unbound: AtomicU64,
    dropped_no_peer: AtomicU64,
    dropped_send_error: AtomicU64,
    dropped_event_queue_full: AtomicU64,
    dropped_oversize: AtomicU64,
    dropped_stale: AtomicU64,
    dropped_overflow: AtomicU64,
    control_in: AtomicU64,
    latches: AtomicU64,
    local_forwarded: AtomicU64,
    local_delivered: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

impl Counters {
    /// Adds this worker's counts into `to`.
    pub(crate) fn add_to(&self, to: &mut RelayCounters) {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        to.packets_in += r(&self.packets_in);
        to.packets_out += r(&self.packets_out);
        to.bytes_in += r(&self.bytes_in);
        to.bytes_out += r(&self.bytes_out);
        to.dropped_source += r(&self.dropped_source);
        to.dropped_unbound += r(&self.dropped_unbound);
        to.dropped_no_peer += r(&self.dropped_no_peer);
        to.dropped_send_error += r(&self.dropped_send_error);
        to.dropped_event_queue_full += r(&self.dropped_event_queue_full);
        to.dropped_oversize += r(&self.dropped_oversize);
        to.dropped_stale += r(&self.dropped_stale);
        to.dropped_overflow += r(&self.dropped_overflow);
        to.control_in += r(&self.control_in);
        to.latches += r(&self.latches);
        to.local_forwarded += r(&self.local_forwarded);
        to.local_delivered += r(&self.local_delivered);
    }
}

/// Everything a worker thread owns.
pub(crate) struct Worker {
    pub(crate) index: usize,
    pub(crate) poll: Poll,
    pub(crate) rx: mpsc::Receiver<Msg>,
    /// Every worker's handle, this one's included (skipped when
    /// broadcasting latches).
    pub(crate) peers: Vec<Handle>,
    pub(crate) table: Table,
    pub(crate) events: tmpsc::Sender<RelayEvent>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) batch: usize,
    pub(crate) max_packet: usize,
    /// Datagrams that waited longer are dropped; zero: never.
    pub(crate) max_queue_delay: Duration,
    /// Keep polling without sleeping this long after the last arrival.
    pub(crate) spin: Duration,
    /// Per socket this worker reads: the kernel's drop count last seen.
    pub(crate) kernel_drops: Vec<u32>,
    /// Time spent on socket turns since the queue of ready sockets was last
    /// empty (every socket read dry, nothing waiting on this worker).
    pub(crate) behind: Duration,
    pub(crate) hooks: Hooks,
}

/// Per-thread buffers, built on the worker thread (they hold raw pointers,
/// so they are not `Send`).
struct Scratch {
    recv: RecvBatch,
    send: SendBatch,
    out: Vec<(usize, SocketAddr)>,
    reports: Vec<RelayReport>,
    /// Sockets that may hold data, in the order they get their turn.
    ready: VecDeque<SockId>,
    /// Per socket: already in `ready` (a socket is queued once).
    queued: Vec<bool>,
    /// Time the test hook slept during the current turn.
    paused: Duration,
}

impl Scratch {
    fn enqueue(&mut self, id: SockId) {
        if self.queued.len() <= id {
            self.queued.resize(id + 1, false);
        }
        if let Some(q) = self.queued.get_mut(id)
            && !*q
        {
            *q = true;
            self.ready.push_back(id);
        }
    }

    fn dequeue(&mut self) -> Option<SockId> {
        let id = self.ready.pop_front()?;
        if let Some(q) = self.queued.get_mut(id) {
            *q = false;
        }
        Some(id)
    }
}

impl Worker {
    /// The thread body: poll, read, forward, until [`Msg::Shutdown`] or a
    /// dropped channel.
    pub(crate) fn run(mut self) {
        let mut s = Scratch {
            recv: RecvBatch::new(self.batch, self.max_packet),
            send: SendBatch::new(self.batch),
            out: Vec::with_capacity(self.batch),
            reports: Vec::with_capacity(self.batch * 2),
            ready: VecDeque::new(),
            queued: Vec::new(),
            paused: Duration::ZERO,
        };
        let mut events = Events::with_capacity(1024);
        // When anything last arrived (for `spin`).
        let mut active = Instant::now();
        loop {
            if s.ready.is_empty() {
                self.behind = Duration::ZERO;
            }
            let spinning = !self.spin.is_zero() && active.elapsed() < self.spin;
            let timeout = (!s.ready.is_empty() || spinning).then_some(Duration::ZERO);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(worker = self.index, error = %e, "relay worker poll failed");
                return;
            }
            if !events.is_empty() {
                active = Instant::now();
            }
            for ev in events.iter() {
                if ev.token() == WAKE {
                    if !self.drain_messages() {
                        return;
                    }
                } else {
                    // Edge-triggered: a socket already queued needs nothing
                    // more, it keeps its place in line.
                    s.enqueue(ev.token().0);
                }
            }
            // One turn for each socket queued now; those that still hold
            // data go to the back, behind the ones the next poll adds.
            for _ in 0..s.ready.len().min(PASS) {
                let Some(id) = s.dequeue() else { break };
                let start = Instant::now();
                s.paused = Duration::ZERO;
                if self.read(id, &mut s) {
                    s.enqueue(id);
                }
                // A turn far longer than any turn's work was cut by the
                // scheduler; the test hook's pause stands for real work.
                let took = start.elapsed().saturating_sub(s.paused);
                self.behind += took.min(TURN_CAP) + s.paused;
            }
        }
    }

    /// Applies queued messages; false on shutdown.
    fn drain_messages(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Cmd { cmd, ack }) => {
                    let r = self.apply(*cmd);
                    // The caller may have given up (it never does); ignore.
                    let _ = ack.send(r);
                }
                Ok(Msg::Latched { leg, comp, source }) => {
                    self.table.follow_latch(leg, comp, source);
                }
                Ok(Msg::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    fn apply(&mut self, cmd: TableCmd) -> io::Result<()> {
        match cmd {
            TableCmd::OpenLeg { leg, socks } => {
                let ids = [
                    socks[0].as_ref().map(|s| s.id),
                    socks[1].as_ref().map(|s| s.id),
                ];
                self.table.open_leg(leg, ids);
                let mut r = Ok(());
                for s in socks.into_iter().flatten() {
                    let res = self.add_sock(s);
                    r = r.and(res);
                }
                r
            }
            TableCmd::SetRemote { leg, comp, remote } => {
                self.table.set_remote(leg, comp, remote);
                Ok(())
            }
            TableCmd::Connect { leg, peer } => {
                self.table.connect(leg, peer);
                Ok(())
            }
            TableCmd::CloseLeg { leg } => {
                for e in self.table.close_leg(leg) {
                    self.forget(&e);
                }
                Ok(())
            }
            TableCmd::Socket(s) => {
                if self.table.set_role(s.id, s.entry.role) {
                    Ok(())
                } else {
                    self.add_sock(s)
                }
            }
            TableCmd::CloseSocket { id } => {
                if let Some(e) = self.table.remove_sock(id) {
                    self.forget(&e);
                }
                Ok(())
            }
        }
    }

    fn add_sock(&mut self, s: NewSock) -> io::Result<()> {
        let fd = s.entry.sock.as_raw_fd();
        let mine = s.entry.owner == self.index;
        self.table.put_sock(s.id, s.entry);
        if mine {
            // A new socket (maybe a reused id): its kernel count starts at 0.
            if self.kernel_drops.len() <= s.id {
                self.kernel_drops.resize(s.id + 1, 0);
            }
            if let Some(d) = self.kernel_drops.get_mut(s.id) {
                *d = 0;
            }
            // Registering a socket that already holds data reports it at
            // once, so nothing that arrived since the bind is stranded.
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), Token(s.id), Interest::READABLE)?;
        }
        Ok(())
    }

    fn forget(&self, e: &SockEntry) {
        if e.owner == self.index {
            let fd = e.sock.as_raw_fd();
            // Deregister before the last Arc closes the fd, so a new
            // socket reusing the number starts clean.
            if let Err(err) = self.poll.registry().deregister(&mut SourceFd(&fd)) {
                tracing::debug!(error = %err, "relay: deregister failed");
            }
        }
    }

    /// One turn of socket `id`: reads batches until it is empty or a
    /// batch's worth has been relayed (at most [`MAX_TURN_BATCHES`] reads);
    /// true if the socket may still hold data.
    ///
    /// Only relayed packets use up the turn. Dropping costs less than
    /// relaying (no send), and a socket whose backlog is deeper than what
    /// one read takes would
    /// otherwise only ever reach the packets that aged out while it waited
    /// for its next turn: it would stay behind, relaying a trickle of its
    /// oldest packets, for as long as the overload lasts.
    fn read(&mut self, id: SockId, s: &mut Scratch) -> bool {
        let Some(fd) = self.table.sock(id).map(|e| e.sock.as_raw_fd()) else {
            return false;
        };
        let mut relayed = 0;
        for _ in 0..MAX_TURN_BATCHES {
            match s.recv.recv(fd) {
                Ok(n) => {
                    relayed += self.process(id, n, s);
                    // Fewer than asked means the kernel hit an empty queue,
                    // and a datagram arriving after that raises a new edge:
                    // no extra syscall to see EAGAIN.
                    if n < s.recv.capacity() {
                        return false;
                    }
                    if relayed >= s.recv.capacity() {
                        return true;
                    }
                }
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        tracing::debug!(error = %e, "relay: recvmmsg failed");
                    }
                    return false;
                }
            }
        }
        true
    }

    /// Handles the `n` datagrams of the last read from socket `id`;
    /// returns how many it relayed (or tried to: send errors included).
    fn process(&mut self, id: SockId, n: usize, s: &mut Scratch) -> usize {
        let now = Instant::now();
        let Some(local) = self.table.sock(id).map(|e| e.local) else {
            return 0;
        };
        let (mut stale, mut relayed) = (0, 0);
        // Shed only when behind for longer than the budget (see the module
        // doc). Kernel timestamps are wall-clock time: one reading per
        // batch. A clock stepped back makes packets look fresh (never
        // dropped); a step forward drops at most what is queued then.
        let wall =
            (!self.max_queue_delay.is_zero() && self.behind > self.max_queue_delay).then(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
            });
        let c = &*self.counters;
        s.out.clear();
        s.reports.clear();
        let mut via = None;
        for i in 0..n {
            let meta = s.recv.meta(i);
            if let Some(d) = meta.drops {
                kernel_dropped(&mut self.kernel_drops, c, id, d);
            }
            let (payload, src) = match s.recv.get(i) {
                Received::Datagram(p, src) => (p, src),
                Received::Oversize => {
                    add(&c.packets_in, 1);
                    add(&c.dropped_oversize, 1);
                    continue;
                }
                Received::NoAddress => {
                    add(&c.packets_in, 1);
                    add(&c.dropped_source, 1);
                    continue;
                }
            };
            if is_control(payload) {
                add(&c.control_in, 1);
                let ev = RelayEvent::Control {
                    local,
                    remote: src,
                    payload: payload.to_vec(),
                };
                if self.events.try_send(ev).is_err() {
                    add(&c.dropped_event_queue_full, 1);
                }
                continue;
            }
            add(&c.packets_in, 1);
            add(&c.bytes_in, payload.len() as u64);
            // The policy first: a stale packet from the right source still
            // latches and counts as activity (the party is alive; only the
            // relay is late).
            match self.table.decide(id, src, now, &mut s.reports) {
                Verdict::Forward { .. }
                    if wall
                        .zip(meta.received)
                        .is_some_and(|(w, at)| w.saturating_sub(at) > self.max_queue_delay) =>
                {
                    stale += 1;
                }
                Verdict::Forward { via: v, to } => {
                    if via.is_some_and(|x| x != v) {
                        flush(&self.table, c, via, s, self.hooks);
                    }
                    via = Some(v);
                    s.out.push((i, to));
                    relayed += 1;
                }
                Verdict::Deliver => {
                    let ev = RelayEvent::Media {
                        local,
                        remote: src,
                        payload: payload.to_vec(),
                    };
                    if self.events.try_send(ev).is_ok() {
                        add(&c.packets_out, 1);
                        add(&c.bytes_out, payload.len() as u64);
                        add(&c.local_delivered, 1);
                    } else {
                        add(&c.dropped_send_error, 1);
                    }
                }
                Verdict::Drop(DropReason::Source) => add(&c.dropped_source, 1),
                Verdict::Drop(DropReason::Unbound) => add(&c.dropped_unbound, 1),
                Verdict::Drop(DropReason::NoPeer) => add(&c.dropped_no_peer, 1),
            }
        }
        flush(&self.table, c, via, s, self.hooks);
        add(&c.dropped_stale, stale as u64);
        for &r in &s.reports {
            if let RelayReport::Latched {
                leg,
                component,
                source,
            } = r
            {
                add(&c.latches, 1);
                let comp = comp_index(component);
                for (j, p) in self.peers.iter().enumerate() {
                    if j != self.index {
                        // A stopped peer is shutting down anyway.
                        let _ = p.send(Msg::Latched { leg, comp, source });
                    }
                }
            }
            if self.events.try_send(RelayEvent::Report(r)).is_err() {
                add(&c.dropped_event_queue_full, 1);
            }
        }
        relayed
    }
}

/// The kernel's drop count of socket `id` was `now` when a datagram was
/// queued: counts what is new since the last one seen (`last`, per socket).
fn kernel_dropped(last: &mut [u32], c: &Counters, id: SockId, now: u32) {
    if let Some(l) = last.get_mut(id)
        && *l != now
    {
        add(&c.dropped_overflow, u64::from(now.wrapping_sub(*l)));
        *l = now;
    }
}

/// Sends the selected datagrams out of socket `via`.
fn flush(table: &Table, c: &Counters, via: Option<SockId>, s: &mut Scratch, hooks: Hooks) {
    let Some(v) = via.and_then(|v| table.sock(v)) else {
        add(&c.dropped_no_peer, s.out.len() as u64);
        s.out.clear();
        return;
    };
    let sent = if let [(i, to)] = s.out[..] {
        match s.recv.get(i) {
            Received::Datagram(p, _) => match v.sock.send_to(p, to) {
                Ok(n) => (1, n as u64, 0),
                Err(_) => (0, 0, 1),
            },
            _ => (0, 0, 1),
        }
    } else {
        let r = s.send.send(v.sock.as_raw_fd(), &s.recv, &s.out);
        (r.packets, r.bytes, r.failed)
    };
    add(&c.packets_out, sent.0);
    add(&c.bytes_out, sent.1);
    add(&c.dropped_send_error, sent.2);
    if matches!(v.role, Role::Map { .. }) {
        add(&c.local_forwarded, sent.0);
    }
    if !hooks.send_pause.is_zero() {
        let n = u32::try_from(s.out.len()).unwrap_or(u32::MAX);
        let pause = hooks.send_pause.saturating_mul(n);
        std::thread::sleep(pause);
        s.paused += pause;
    }
    s.out.clear();
}
