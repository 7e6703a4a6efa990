//! The media relay data plane: UDP sockets per relay port, forwarding by the
//! engine's mapping table with strict source checks.
//!
//! [`Relay`] carries out the [`RelayCommand`]s of `pinhole-core`'s engines
//! on real sockets, with the semantics of the test kit's relay model:
//!
//! - **Legs.** [`RelayCommand::OpenLeg`] binds one socket per component
//!   (RTP, and RTCP unless rtcp-mux). A media packet arriving at leg X,
//!   component c, from source s passes only as the core's
//!   [`Remote::admit`](pinhole_core::relay::Remote::admit) says: X's remote for c is `Fixed(s)` or
//!   `Provisional { source: s, .. }`, or a `Latch { ip, until }` with
//!   `s.ip() == ip`, or a `Provisional` whose IP and SDP port `expected`
//!   are s's, the window still open (then the component latches to s and
//!   a [`RelayReport::Latched`] goes to the engine). Everything else is
//!   dropped and counted: no "RTP bleed". A passing packet leaves
//!   unchanged (SRTP passes through) from the **peer** leg's socket of the
//!   same component to the peer's remote ([`Remote::target`](pinhole_core::relay::Remote::target)): the
//!   firewall fact, media enters a pinhole from the port it was opened
//!   toward.
//! - **Control.** STUN-framed datagrams ([`pinhole_core::wire::is_control`],
//!   RFC 7983 demultiplexing) are never forwarded: they become
//!   [`RelayEvent::Control`] for the engine, whatever their source, and
//!   [`Relay::send_from`] answers from the socket they arrived on.
//! - **Client mappings** ([`RelayCommand::MapLocal`], the APS side): a
//!   socket at `local` relays between `outside` and `inside`, in both
//!   directions, and drops anything else.
//! - **Delivery** ([`RelayCommand::DeliverLocal`], a smart terminal): media
//!   from `outside` arriving at `local` becomes [`RelayEvent::Media`] for
//!   the application, which sends its own with [`Relay::send_from`];
//!   anything else is dropped.
//! - **Activity** is reported at most once per leg per
//!   [`RelayConfig::activity_interval`], never per packet; likewise
//!   [`RelayReport::LocalActivity`] for media a mapping sends out through
//!   its pinhole.
//!
//! # Threads
//!
//! A few worker OS threads ([`RelayConfig::workers`]), each with its own
//! `mio::Poll`, own the read side of the sockets (assigned round-robin by
//! leg) and drain them with `recvmmsg`, sending with `sendmmsg` when a
//! batch has several packets for one socket. Ready sockets take turns,
//! one batch each ([`RelayConfig::batch`]), so a flooded port never
//! starves the others. Every worker holds a full
//! copy of the forwarding table: commands are rare and broadcast to all,
//! packets are many and read their worker's copy without locks. Any worker
//! sends from any socket (`send_to` takes `&self`). Counters are per
//! worker and summed by [`Relay::counters`]. Events go to a bounded tokio
//! channel with `try_send`; a worker never blocks on it.
//!
//! The forwarding policy is a pure function of the table (`table.rs`,
//! no I/O), fed only by the engine's commands and reported latches, so a
//! kernel fast path can be programmed from the same inputs.
//!
//! # Overload
//!
//! When more arrives than the workers can send, the relay sheds load
//! instead of queueing it: once a worker has worked for longer than
//! [`RelayConfig::max_queue_delay`] without running out of ready sockets,
//! a packet that waited in the kernel longer than that (kernel receive
//! timestamps, `SO_TIMESTAMPNS`) is read and dropped, counted in
//! [`RelayCounters::dropped_stale`]. Dropping costs a fraction of relaying,
//! so the workers catch up; since every busy socket gets the same turns,
//! every stream loses about the same share, and once the overload ends no
//! backlog is left to drain: streams are current again within about
//! `max_queue_delay`. Time a worker spends off the CPU (a busy host, a VM
//! pause) does not count as work: it then relays what waited, at full
//! rate, and sheds only if the backlog itself takes longer than the budget
//! to clear. [`RelayConfig::recv_buffer`] (`SO_RCVBUF`) caps what
//! the kernel queues per socket for floods beyond what the workers can
//! even read; the kernel's drops there are counted in
//! [`RelayCounters::dropped_overflow`].
//!
//! # Example
//!
//! Two connected legs; a packet from A's party reaches B's party from B's
//! relay port.
//!
//! ```
//! use std::net::{SocketAddr, UdpSocket};
//! use std::time::Duration;
//! use pinhole_core::relay::{RelayCommand, Remote};
//! use pinhole_core::types::{Component, LegId};
//! use pinhole_net::relay::{Relay, RelayConfig};
//!
//! # fn free() -> std::io::Result<SocketAddr> {
//! #     UdpSocket::bind("127.0.0.1:0")?.local_addr()
//! # }
//! # fn main() -> std::io::Result<()> {
//! let (relay, _events) = Relay::start(RelayConfig::default())?;
//! let alice = UdpSocket::bind("127.0.0.1:0")?;
//! let bob = UdpSocket::bind("127.0.0.1:0")?;
//! bob.set_read_timeout(Some(Duration::from_secs(5)))?;
//! let (port_a, port_b) = (free()?, free()?); // relay ports the engine chose
//!
//! for (leg, rtp, party) in [(LegId(1), port_a, &alice), (LegId(2), port_b, &bob)] {
//!     relay.apply(RelayCommand::OpenLeg { leg, rtp, rtcp: None })?;
//!     let remote = Remote::Fixed(party.local_addr()?);
//!     relay.apply(RelayCommand::SetRemote { leg, component: Component::Rtp, remote })?;
//! }
//! relay.apply(RelayCommand::Connect { leg: LegId(1), peer: LegId(2) })?;
//!
//! alice.send_to(&[0x80, 0, 0, 1, 0xca, 0xfe], port_a)?;
//! let mut buf = [0u8; 64];
//! let (n, from) = bob.recv_from(&mut buf)?;
//! assert_eq!((&buf[..n], from), (&[0x80, 0, 0, 1, 0xca, 0xfe][..], port_b));
//! relay.shutdown();
//! # Ok(())
//! # }
//! ```

mod batch;
mod sockopt;
mod table;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Poll, Waker};
use pinhole_core::relay::{RelayCommand, RelayReport};
use pinhole_core::types::LegId;
use tokio::sync::mpsc as tmpsc;

use sockopt::SockOpts;
use table::{Role, SockEntry, SockId, Table, comp_index};
use worker::{Counters, Handle, Hooks, Msg, NewSock, TableCmd, WAKE, Worker};

/// Relay tuning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Datagrams per `recvmmsg` / `sendmmsg` call (1 to 1024).
    pub batch: usize,
    /// Largest datagram relayed, in bytes; longer ones are dropped and
    /// counted in [`RelayCounters::dropped_oversize`].
    pub max_packet: usize,
    /// Capacity of the event channel (at least 1).
    pub event_queue: usize,
    /// Least time between two Activity reports of one leg.
    pub activity_interval: Duration,
    /// Receive buffer of each relay socket (`SO_RCVBUF`), in bytes, at
    /// most 1 GiB; 0 keeps the system default (`net.core.rmem_default`,
    /// often 208 KiB). Linux doubles the value for its bookkeeping and
    /// charges about 0.8 KiB per small datagram, so the default 64 KiB
    /// holds about 150 RTP packets or 55 full-size video packets: a video
    /// burst fits, and a flooded port cannot queue seconds of traffic.
    pub recv_buffer: usize,
    /// Once a worker has had more than this much work queued, a media
    /// packet that waited longer than this in its socket's kernel queue is
    /// dropped (counted in [`RelayCounters::dropped_stale`]) instead of
    /// relayed late. Default 50 ms: about a jitter buffer's depth, so a
    /// packet dropped was likely too late to be played anyway, while the
    /// scheduling hiccups of a busy or virtual host (tens of ms) still get
    /// through; tighter budgets shed more of a near-capacity load (see
    /// docs/benchmarks.md). Zero turns the check and the kernel timestamps
    /// off.
    pub max_queue_delay: Duration,
    /// After the last datagram arrived, a worker keeps polling without
    /// sleeping for this long before it blocks. A blocked worker pays a
    /// wake-up per burst (tens of µs on a VM, where an idle vCPU must be
    /// woken by an interrupt); a spinning one does not, at the cost of a
    /// busy core whenever traffic arrives more often than this. Only with
    /// a core per worker that nothing else needs. Default zero (off).
    pub spin: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            batch: 32,
            max_packet: 2048,
            event_queue: 65536,
            activity_interval: Duration::from_millis(500),
            recv_buffer: 64 * 1024,
            max_queue_delay: Duration::from_millis(50),
            spin: Duration::ZERO,
        }
    }
}

/// What the relay tells its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    /// A STUN-framed datagram ([`pinhole_core::wire::is_control`]) arrived
    /// at a relay or mapped socket: for the engine's `handle_datagram`.
    Control {
        /// The relay socket it arrived on.
        local: SocketAddr,
        /// Its source.
        remote: SocketAddr,
        /// The datagram.
        payload: Vec<u8>,
    },
    /// For the engine's `handle_relay`. Activity reports are coalesced: at
    /// most one per leg (or mapped socket) per
    /// [`RelayConfig::activity_interval`].
    Report(RelayReport),
    /// A media datagram for the application: it arrived at a
    /// [`RelayCommand::DeliverLocal`] socket from that socket's `outside`.
    Media {
        /// The socket it arrived on (the smart terminal's port A).
        local: SocketAddr,
        /// Its source.
        remote: SocketAddr,
        /// The datagram, unchanged.
        payload: Vec<u8>,
    },
}

/// A snapshot of the relay's counters, summed over the workers.
///
/// Every media datagram read is in `packets_in` and ends up in exactly one
/// of `packets_out` or a `dropped_*` counter other than
/// `dropped_event_queue_full` and `dropped_overflow` (datagrams the kernel
/// dropped before the relay could read them); control datagrams are
/// counted in `control_in` only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCounters {
    /// Media datagrams read.
    pub packets_in: u64,
    /// Media datagrams sent.
    pub packets_out: u64,
    /// Bytes of `packets_in` (oversize datagrams not included).
    pub bytes_in: u64,
    /// Bytes of `packets_out`.
    pub bytes_out: u64,
    /// Dropped: not from the bound, latchable or mapped source.
    pub dropped_source: u64,
    /// Dropped: the component has no binding yet.
    pub dropped_unbound: u64,
    /// Dropped: the peer leg cannot send that component yet.
    pub dropped_no_peer: u64,
    /// Dropped: the kernel refused the send (full buffer, unreachable), or
    /// the event channel had no room for a datagram to deliver.
    pub dropped_send_error: u64,
    /// Events (control messages, reports) dropped because the event
    /// channel was full or closed.
    pub dropped_event_queue_full: u64,
    /// Dropped: longer than [`RelayConfig::max_packet`].
    pub dropped_oversize: u64,
    /// Dropped: would have been relayed, but waited longer than
    /// [`RelayConfig::max_queue_delay`] (the relay is overloaded).
    pub dropped_stale: u64,
    /// Datagrams the kernel dropped at a relay socket before the relay
    /// read them (full receive buffer, see [`RelayConfig::recv_buffer`]),
    /// media or control alike; not in `packets_in`. Counted when the
    /// socket next delivers a datagram.
    pub dropped_overflow: u64,
    /// Control (STUN-framed) datagrams read.
    pub control_in: u64,
    /// Components latched.
    pub latches: u64,
    /// Datagrams sent by client mappings (also in `packets_out`).
    pub local_forwarded: u64,
    /// Datagrams handed to the application by delivering sockets
    /// ([`RelayCommand::DeliverLocal`]; also in `packets_out`).
    pub local_delivered: u64,
}

impl RelayCounters {
    /// All media datagrams dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped_source
            + self.dropped_unbound
            + self.dropped_no_peer
            + self.dropped_send_error
            + self.dropped_oversize
            + self.dropped_stale
    }
}

/// The bound sockets, as the control side knows them.
struct CtlSock {
    id: SockId,
    sock: Arc<UdpSocket>,
    owner: usize,
    leg: Option<LegId>,
}

#[derive(Default)]
struct Control {
    socks: HashMap<SocketAddr, CtlSock>,
    legs: HashMap<LegId, [Option<SocketAddr>; 2]>,
    free_ids: Vec<SockId>,
    next_id: SockId,
    next_owner: usize,
}

/// The media relay. Methods take `&self`; share it with an `Arc`.
pub struct Relay {
    ctl: Mutex<Control>,
    opts: SockOpts,
    workers: Vec<Handle>,
    counters: Vec<Arc<Counters>>,
    threads: Vec<JoinHandle<()>>,
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// The engines' relay contract ([`pinhole_core::alg::live`]) over this
/// relay: commands carried out at once, sockets bound on demand.
impl pinhole_core::alg::live::Relay for Relay {
    fn apply(&mut self, cmd: RelayCommand) -> io::Result<()> {
        Self::apply(self, cmd)
    }

    fn bind(&mut self, local: SocketAddr) -> io::Result<()> {
        Self::bind(self, local)
    }
}

impl Relay {
    /// Starts the worker threads. Needs no tokio runtime; the receiver is a
    /// tokio channel so an async driver can await it.
    pub fn start(cfg: RelayConfig) -> io::Result<(Self, tmpsc::Receiver<RelayEvent>)> {
        Self::start_with(cfg, Hooks::default())
    }

    fn start_with(
        cfg: RelayConfig,
        hooks: Hooks,
    ) -> io::Result<(Self, tmpsc::Receiver<RelayEvent>)> {
        if cfg.workers == 0 || cfg.event_queue == 0 || cfg.max_packet == 0 {
            return Err(invalid(
                "relay config: workers, event_queue and max_packet must be positive",
            ));
        }
        if !(1..=batch::MAX_BATCH).contains(&cfg.batch) {
            return Err(invalid("relay config: batch must be 1 to 1024"));
        }
        if cfg.recv_buffer > MAX_RECV_BUFFER {
            return Err(invalid("relay config: recv_buffer must be at most 1 GiB"));
        }
        let (ev_tx, ev_rx) = tmpsc::channel(cfg.event_queue);
        let mut polls = Vec::with_capacity(cfg.workers);
        let mut handles = Vec::with_capacity(cfg.workers);
        for _ in 0..cfg.workers {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
            let (tx, rx) = mpsc::channel();
            handles.push(Handle { tx, waker });
            polls.push((poll, rx));
        }
        let mut relay = Self {
            ctl: Mutex::new(Control::default()),
            opts: SockOpts {
                recv_buffer: cfg.recv_buffer,
                timestamps: !cfg.max_queue_delay.is_zero(),
            },
            workers: handles.clone(),
            counters: Vec::with_capacity(cfg.workers),
            threads: Vec::with_capacity(cfg.workers),
        };
        for (index, (poll, rx)) in polls.into_iter().enumerate() {
            let counters = Arc::new(Counters::default());
            relay.counters.push(Arc::clone(&counters));
            let w = Worker {
                index,
                poll,
                rx,
                peers: handles.clone(),
                table: Table::new(cfg.activity_interval),
                events: ev_tx.clone(),
                counters,
                batch: cfg.batch,
                max_packet: cfg.max_packet,
                max_queue_delay: cfg.max_queue_delay,
                spin: cfg.spin,
                kernel_drops: Vec::new(),
                behind: Duration::ZERO,
                hooks,
            };
            // On failure, `relay` drops here and stops the threads already
            // started.
            let t = std::thread::Builder::new()
                .name(format!("pinhole-relay-{index}"))
                .spawn(move || w.run())?;
            relay.threads.push(t);
        }
        Ok((relay, ev_rx))
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        // The control state stays consistent across a panic (every update
        // is a single insert or remove), so a poisoned lock is usable.
        self.ctl.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one engine command and returns once every worker has applied
    /// it (commands are rare; this keeps "at once" exact).
    ///
    /// `OpenLeg` binds the sockets synchronously (no `SO_REUSEADDR`; an
    /// address in use is an error) so the relay address is live before the
    /// plan goes into signaling; reopening a leg with the same addresses is
    /// a no-op. `MapLocal` and `DeliverLocal` bind `local` if not yet bound; `UnmapLocal`
    /// closes it. `CloseLeg` has released the ports when it returns.
    /// Commands for unknown legs are ignored, as in the relay model.
    pub fn apply(&self, cmd: RelayCommand) -> io::Result<()> {
        let mut ctl = self.lock();
        match cmd {
            RelayCommand::OpenLeg { leg, rtp, rtcp } => {
                if let Some(addrs) = ctl.legs.get(&leg) {
                    return if *addrs == [Some(rtp), rtcp] {
                        Ok(())
                    } else {
                        Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "relay leg already open with other addresses",
                        ))
                    };
                }
                let owner = ctl.next_owner % self.workers.len();
                let rtp_sock = bind(&ctl, rtp, self.opts)?;
                let rtcp_sock = rtcp.map(|a| bind(&ctl, a, self.opts)).transpose()?;
                ctl.next_owner = ctl.next_owner.wrapping_add(1);
                let rtp_new = add_sock(&mut ctl, rtp, rtp_sock, owner, Role::Leg { leg, comp: 0 });
                let rtcp_new = rtcp.zip(rtcp_sock).map(|(a, sock)| {
                    add_sock(&mut ctl, a, sock, owner, Role::Leg { leg, comp: 1 })
                });
                let socks = [Some(rtp_new), rtcp_new];
                ctl.legs.insert(leg, [Some(rtp), rtcp]);
                self.broadcast(TableCmd::OpenLeg { leg, socks })
            }
            RelayCommand::SetRemote {
                leg,
                component,
                remote,
            } => self.broadcast(TableCmd::SetRemote {
                leg,
                comp: comp_index(component),
                remote,
            }),
            RelayCommand::Connect { leg, peer } => self.broadcast(TableCmd::Connect { leg, peer }),
            RelayCommand::CloseLeg { leg } => {
                let Some(addrs) = ctl.legs.remove(&leg) else {
                    return Ok(());
                };
                let r = self.broadcast(TableCmd::CloseLeg { leg });
                // Every worker has dropped its copy: dropping ours closes
                // the sockets, and their ids can be reused.
                for a in addrs.into_iter().flatten() {
                    if let Some(s) = ctl.socks.remove(&a) {
                        ctl.free_ids.push(s.id);
                    }
                }
                r
            }
            RelayCommand::MapLocal {
                local,
                outside,
                inside,
            } => self.set_local(&mut ctl, local, Role::Map { outside, inside }),
            RelayCommand::DeliverLocal { local, outside } => {
                self.set_local(&mut ctl, local, Role::Deliver { outside })
            }
            RelayCommand::UnmapLocal { local } => {
                let id = match ctl.socks.get(&local) {
                    Some(s) if s.leg.is_none() => s.id,
                    _ => return Ok(()),
                };
                let r = self.broadcast(TableCmd::CloseSocket { id });
                ctl.socks.remove(&local);
                ctl.free_ids.push(id);
                r
            }
        }
    }

    /// Binds `local` for control messages only, unless already bound: a
    /// client sends its CMPH from its media port before
    /// [`RelayCommand::MapLocal`] turns that port into a mapping. Media
    /// arriving meanwhile is dropped; [`RelayCommand::UnmapLocal`] closes
    /// it.
    pub fn bind(&self, local: SocketAddr) -> io::Result<()> {
        let mut ctl = self.lock();
        if ctl.socks.contains_key(&local) {
            return Ok(());
        }
        self.set_local(&mut ctl, local, Role::Bare)
    }

    fn set_local(&self, ctl: &mut Control, local: SocketAddr, role: Role) -> io::Result<()> {
        let ns = match ctl.socks.get(&local) {
            Some(s) if s.leg.is_some() => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "address is a relay leg's port",
                ));
            }
            Some(s) => NewSock {
                id: s.id,
                entry: SockEntry {
                    sock: Arc::clone(&s.sock),
                    local,
                    owner: s.owner,
                    role,
                },
            },
            None => {
                let sock = bind(ctl, local, self.opts)?;
                let owner = ctl.next_owner % self.workers.len();
                ctl.next_owner = ctl.next_owner.wrapping_add(1);
                add_sock(ctl, local, sock, owner, role)
            }
        };
        self.broadcast(TableCmd::Socket(ns))
    }

    /// Sends a control message (an engine `Transmit`) from the relay socket
    /// bound at `local` (the firewall fact: a CMPH response leaves from the
    /// relay port the CMPH arrived on). `NotFound` if nothing is bound
    /// there; `WouldBlock` if the socket's send buffer is full.
    pub fn send_from(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        let sock = match self.lock().socks.get(&local) {
            Some(s) => Arc::clone(&s.sock),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no relay socket bound at that address",
                ));
            }
        };
        sock.send_to(payload, remote).map(|_| ())
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> RelayCounters {
        let mut c = RelayCounters::default();
        for w in &self.counters {
            w.add_to(&mut c);
        }
        c
    }

    /// Stops the workers, waits for them and closes every socket. Dropping
    /// the relay does the same.
    pub fn shutdown(self) {}

    /// Sends `cmd` to every worker and waits for all of them.
    fn broadcast(&self, cmd: TableCmd) -> io::Result<()> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(self.workers.len());
        for w in &self.workers {
            w.send(Msg::Cmd {
                cmd: Box::new(cmd.clone()),
                ack: ack_tx.clone(),
            })?;
        }
        drop(ack_tx);
        let mut result = Ok(());
        for _ in &self.workers {
            match ack_rx.recv() {
                Ok(r) => result = result.and(r),
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "relay worker has stopped",
                    ));
                }
            }
        }
        result
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for w in &self.workers {
            // A worker that already stopped needs no message.
            let _ = w.send(Msg::Shutdown);
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("relay worker panicked");
            }
        }
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("workers", &self.workers.len())
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

/// Largest [`RelayConfig::recv_buffer`] (the kernel takes an `int` and
/// doubles it).
const MAX_RECV_BUFFER: usize = 1 << 30;

/// Binds `addr` exactly (std sets no `SO_REUSEADDR` on UDP), non-blocking,
/// with the relay's socket options.
fn bind(ctl: &Control, addr: SocketAddr, opts: SockOpts) -> io::Result<Arc<UdpSocket>> {
    if ctl.socks.contains_key(&addr) {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "relay socket already bound at that address",
        ));
    }
    let s = UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    sockopt::configure(&s, opts)?;
    Ok(Arc::new(s))
}

fn add_sock(
    ctl: &mut Control,
    local: SocketAddr,
    sock: Arc<UdpSocket>,
    owner: usize,
    role: Role,
) -> NewSock {
    let id = ctl.free_ids.pop().unwrap_or_else(|| {
        ctl.next_id += 1;
        ctl.next_id - 1
    });
    let leg = match role {
        Role::Leg { leg, .. } => Some(leg),
        _ => None,
    };
    ctl.socks.insert(
        local,
        CtlSock {
            id,
            sock: Arc::clone(&sock),
            owner,
            leg,
        },
    );
    NewSock {
        id,
        entry: SockEntry {
            sock,
            local,
            owner,
            role,
        },
    }
}
