//! A relay worker: one OS thread with its own `mio::Poll`, the read side of
//! the sockets assigned to it and a full copy of the forwarding table.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

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

/// Batches read from one socket per readiness event before the others get
/// their turn (a flooded port must not starve the rest).
const MAX_ROUNDS: usize = 8;

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
}

/// Per-thread buffers, built on the worker thread (they hold raw pointers,
/// so they are not `Send`).
struct Scratch {
    recv: RecvBatch,
    send: SendBatch,
    out: Vec<(usize, SocketAddr)>,
    reports: Vec<RelayReport>,
    pending: VecDeque<SockId>,
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
            pending: VecDeque::new(),
        };
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = (!s.pending.is_empty()).then_some(std::time::Duration::ZERO);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(worker = self.index, error = %e, "relay worker poll failed");
                return;
            }
            for ev in events.iter() {
                if ev.token() == WAKE {
                    if !self.drain_messages() {
                        return;
                    }
                } else if self.read(ev.token().0, &mut s) {
                    s.pending.push_back(ev.token().0);
                }
            }
            for _ in 0..s.pending.len() {
                if let Some(id) = s.pending.pop_front()
                    && self.read(id, &mut s)
                {
                    s.pending.push_back(id);
                }
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

    /// Reads socket `id` until it is empty or [`MAX_ROUNDS`] batches are
    /// done; true if it may still hold data.
    fn read(&mut self, id: SockId, s: &mut Scratch) -> bool {
        let Some(fd) = self.table.sock(id).map(|e| e.sock.as_raw_fd()) else {
            return false;
        };
        for _ in 0..MAX_ROUNDS {
            match s.recv.recv(fd) {
                Ok(n) => {
                    self.process(id, n, s);
                    // Fewer than asked means the kernel hit an empty queue,
                    // and a datagram arriving after that raises a new edge:
                    // no extra syscall to see EAGAIN.
                    if n < s.recv.capacity() {
                        return false;
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

    /// Handles the `n` datagrams of the last read from socket `id`.
    fn process(&mut self, id: SockId, n: usize, s: &mut Scratch) {
        let now = Instant::now();
        let Some(local) = self.table.sock(id).map(|e| e.local) else {
            return;
        };
        let c = &*self.counters;
        s.out.clear();
        s.reports.clear();
        let mut via = None;
        for i in 0..n {
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
            match self.table.decide(id, src, now, &mut s.reports) {
                Verdict::Forward { via: v, to } => {
                    if via.is_some_and(|x| x != v) {
                        flush(&self.table, c, via, s);
                    }
                    via = Some(v);
                    s.out.push((i, to));
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
        flush(&self.table, c, via, s);
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
    }
}

/// Sends the selected datagrams out of socket `via`.
fn flush(table: &Table, c: &Counters, via: Option<SockId>, s: &mut Scratch) {
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
    s.out.clear();
}
