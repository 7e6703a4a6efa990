//! TCP stream reassembly per flow direction, and what rides on a stream:
//! plain bytes, or WebSocket messages after an HTTP upgrade.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use etherparse::TcpSlice;

use crate::decode::{Ctx, Out};
use crate::{Transport, ws};

/// Segments held ahead of a hole, per direction (besides the byte limit):
/// bounds the map's overhead when segments are tiny.
const MAX_HELD_SEGMENTS: usize = 4096;

/// An HTTP head longer than this is no WebSocket handshake worth waiting for.
const MAX_HTTP_HEAD: usize = 16 * 1024;

type FlowKey = (SocketAddr, SocketAddr);

/// Every TCP flow direction seen.
#[derive(Debug, Default)]
pub(crate) struct Table {
    dirs: HashMap<FlowKey, Dir>,
}

/// One direction of a connection.
#[derive(Debug, Default)]
struct Dir {
    stream: Stream,
    app: App,
    /// FIN or RST seen: the first to go when the table is full.
    closed: bool,
}

/// What the bytes of a direction are, as far as is known.
#[derive(Debug)]
enum App {
    /// Undecided: the first bytes, which may open a WebSocket handshake.
    Sniff(Vec<u8>),
    /// Plain bytes, delivered as they come.
    Raw,
    /// A client's `GET` with `Upgrade: websocket`, held until the server
    /// answers; `head` is the request head's length.
    Upgrade { held: Vec<u8>, head: usize },
    /// WebSocket frames.
    Ws(ws::Decoder),
    /// WebSocket frames that can no longer be followed: bytes are dropped.
    Dead,
}

impl Default for App {
    fn default() -> Self {
        Self::Sniff(Vec::new())
    }
}

/// In-order bytes out of the reassembler.
#[derive(Debug)]
struct Chunk {
    data: Vec<u8>,
    /// Bytes before these are missing.
    gap: bool,
}

/// A segment held ahead of a hole.
#[derive(Debug)]
struct Held {
    data: Vec<u8>,
    time: Duration,
}

/// Sequence-space bookkeeping of one direction.
#[derive(Debug, Default)]
struct Stream {
    started: bool,
    /// A SYN set the start (else the first segment seen did).
    syn: bool,
    /// Sequence number of stream offset 0.
    base: u32,
    /// Stream offset of the next byte expected.
    offset: u64,
    /// Segments ahead of a hole, by stream offset.
    pending: BTreeMap<u64, Held>,
    pending_bytes: usize,
    last: Option<Ctx>,
}

impl Stream {
    fn start(&mut self, seq: u32, syn: bool) {
        *self = Self {
            started: true,
            syn,
            base: seq,
            last: self.last,
            ..Self::default()
        };
    }

    /// Takes one segment; returns whether it began a new connection (a SYN
    /// with another sequence number), and the bytes it made contiguous.
    fn segment(
        &mut self,
        out: &mut Out,
        ctx: Ctx,
        seq: u32,
        syn: bool,
        payload: &[u8],
    ) -> (bool, Vec<Chunk>) {
        self.last = Some(ctx);
        let mut reset = false;
        let mut data_seq = seq;
        if syn {
            // The SYN takes one sequence number.
            data_seq = seq.wrapping_add(1);
            if !self.started {
                self.start(data_seq, true);
            } else if !(self.syn && self.base == data_seq) {
                // Not a retransmitted SYN: the 4-tuple is reused.
                self.start(data_seq, true);
                reset = true;
            }
        }
        let mut chunks = Vec::new();
        if payload.is_empty() {
            return (reset, chunks);
        }
        if !self.started {
            // A capture that begins mid-connection: the first segment seen
            // starts the stream.
            self.start(data_seq, false);
        }
        let timeout = out.limits.tcp_gap_timeout;
        if self
            .pending
            .first_key_value()
            .is_some_and(|(_, h)| h.time.saturating_add(timeout) <= ctx.time)
        {
            self.skip_holes(out, &mut chunks);
        }
        let next = self.base.wrapping_add(self.offset as u32);
        // Sequence numbers wrap; the distance from the next expected one
        // is taken as a signed 32-bit number. `start` and `end` are stream
        // offsets (negative: before the stream's start).
        let start = self.offset as i64 + i64::from(data_seq.wrapping_sub(next) as i32);
        let end = start + payload.len() as i64;
        let max = out.limits.max_flow_buffer;
        // Two passes at most: the second after giving up on the holes
        // ahead, when there was no room to hold this segment.
        loop {
            let offset = self.offset as i64;
            if end <= offset {
                out.stats.tcp_retransmissions += 1;
                return (reset, chunks);
            }
            if start <= offset {
                if start < offset {
                    out.stats.tcp_retransmissions += 1;
                }
                let mut data = payload
                    .get((offset - start) as usize..)
                    .unwrap_or_default()
                    .to_vec();
                self.offset = end as u64;
                self.drain(out, &mut data);
                chunks.push(Chunk { data, gap: false });
                return (reset, chunks);
            }
            // Ahead of a hole: hold it if there is room.
            let start = start as u64;
            if self.pending_bytes + payload.len() <= max && self.pending.len() < MAX_HELD_SEGMENTS {
                self.hold(out, start, payload, ctx.time);
                return (reset, chunks);
            }
            if !self.pending.is_empty() {
                self.skip_holes(out, &mut chunks);
                continue;
            }
            // Even alone it does not fit: deliver it after its hole now.
            out.stats.tcp_gaps += 1;
            self.offset = end as u64;
            chunks.push(Chunk {
                data: payload.to_vec(),
                gap: true,
            });
            return (reset, chunks);
        }
    }

    /// Holds a segment that lies ahead of a hole.
    fn hold(&mut self, out: &mut Out, start: u64, payload: &[u8], time: Duration) {
        let held = Held {
            data: payload.to_vec(),
            time,
        };
        match self.pending.get(&start) {
            Some(h) if h.data.len() >= payload.len() => out.stats.tcp_retransmissions += 1,
            Some(h) => {
                out.stats.tcp_retransmissions += 1;
                self.pending_bytes = self.pending_bytes - h.data.len() + payload.len();
                self.pending.insert(start, held);
            }
            None => {
                out.stats.tcp_out_of_order += 1;
                self.pending_bytes += payload.len();
                self.pending.insert(start, held);
            }
        }
    }

    /// Moves held segments that now touch the stream's end onto `data`.
    fn drain(&mut self, out: &mut Out, data: &mut Vec<u8>) {
        while let Some(entry) = self.pending.first_entry() {
            let at = *entry.key();
            if at > self.offset {
                break;
            }
            let held = entry.remove();
            self.pending_bytes -= held.data.len();
            let end = at + held.data.len() as u64;
            if end <= self.offset {
                out.stats.tcp_retransmissions += 1;
                continue;
            }
            let from = (self.offset - at) as usize;
            data.extend_from_slice(held.data.get(from..).unwrap_or_default());
            self.offset = end;
        }
    }

    /// Gives up on every missing range: what is held is delivered, each
    /// run after its hole.
    fn skip_holes(&mut self, out: &mut Out, chunks: &mut Vec<Chunk>) {
        while let Some((&at, _)) = self.pending.first_key_value() {
            if at > self.offset {
                out.stats.tcp_gaps += 1;
                self.offset = at;
            }
            let mut data = Vec::new();
            self.drain(out, &mut data);
            chunks.push(Chunk { data, gap: true });
        }
    }
}

impl Table {
    /// Takes one TCP segment from `src` to `dst`.
    pub(crate) fn segment(
        &mut self,
        out: &mut Out,
        ctx: Ctx,
        src: SocketAddr,
        dst: SocketAddr,
        seg: &TcpSlice<'_>,
    ) {
        let key = (src, dst);
        if !self.dirs.contains_key(&key) {
            if self.dirs.len() >= out.limits.max_flows {
                // Forget finished connections first.
                self.dirs
                    .retain(|_, d| !d.closed || !d.stream.pending.is_empty());
            }
            if self.dirs.len() >= out.limits.max_flows {
                out.stats.tcp_dropped += 1;
                out.error(
                    ctx.frame,
                    format_args!(
                        "TCP segment dropped: {} flows tracked already",
                        self.dirs.len()
                    ),
                );
                return;
            }
        }
        let dir = self.dirs.entry(key).or_default();
        if seg.fin() || seg.rst() {
            dir.closed = true;
        }
        let (reset, chunks) =
            dir.stream
                .segment(out, ctx, seg.sequence_number(), seg.syn(), seg.payload());
        if reset {
            dir.app = App::default();
            dir.closed = false;
        }
        for c in chunks {
            self.deliver(out, ctx, key, c.data, c.gap);
        }
    }

    /// Delivers what is still held: bytes after their holes, undecided or
    /// unanswered handshakes as plain bytes.
    pub(crate) fn finish(&mut self, out: &mut Out) {
        let mut keys: Vec<FlowKey> = self.dirs.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let Some(dir) = self.dirs.get_mut(&key) else {
                continue;
            };
            let Some(ctx) = dir.stream.last else {
                continue;
            };
            let mut chunks = Vec::new();
            dir.stream.skip_holes(out, &mut chunks);
            for c in chunks {
                self.deliver(out, ctx, key, c.data, c.gap);
            }
            let Some(dir) = self.dirs.get_mut(&key) else {
                continue;
            };
            match std::mem::replace(&mut dir.app, App::Raw) {
                App::Sniff(held) | App::Upgrade { held, .. } if !held.is_empty() => {
                    out.unit(ctx, Transport::Tcp, key.0, key.1, held, false);
                }
                other => dir.app = other,
            }
        }
    }

    fn deliver(&mut self, out: &mut Out, ctx: Ctx, key: FlowKey, data: Vec<u8>, gap: bool) {
        if data.is_empty() {
            return;
        }
        let Some(dir) = self.dirs.get_mut(&key) else {
            return;
        };
        let app = std::mem::replace(&mut dir.app, App::Dead);
        let app = self.step(out, ctx, key, app, data, gap);
        if let Some(dir) = self.dirs.get_mut(&key) {
            dir.app = app;
        }
    }

    /// Feeds bytes to a direction's application state; returns its next
    /// state. May change the reverse direction's state too (the handshake
    /// answer decides both).
    fn step(
        &mut self,
        out: &mut Out,
        ctx: Ctx,
        key: FlowKey,
        app: App,
        data: Vec<u8>,
        gap: bool,
    ) -> App {
        let max = out.limits.max_flow_buffer;
        let (src, dst) = key;
        match app {
            App::Raw => {
                out.unit(ctx, Transport::Tcp, src, dst, data, gap);
                App::Raw
            }
            App::Dead => App::Dead,
            App::Ws(_) if gap => {
                out.error(
                    ctx.frame,
                    "bytes missing in a WebSocket stream: the rest of that direction is skipped",
                );
                App::Dead
            }
            App::Ws(mut dec) => {
                if ws_feed(out, ctx, key, &mut dec, &data) {
                    App::Ws(dec)
                } else {
                    App::Dead
                }
            }
            App::Upgrade { mut held, head } => {
                if gap || held.len() + data.len() > max {
                    out.unit(ctx, Transport::Tcp, src, dst, held, false);
                    out.unit(ctx, Transport::Tcp, src, dst, data, gap);
                    return App::Raw;
                }
                held.extend_from_slice(&data);
                App::Upgrade { held, head }
            }
            App::Sniff(held) if gap => {
                if !held.is_empty() {
                    out.unit(ctx, Transport::Tcp, src, dst, held, false);
                }
                out.unit(ctx, Transport::Tcp, src, dst, data, gap);
                App::Raw
            }
            App::Sniff(mut buf) => {
                buf.extend_from_slice(&data);
                self.sniff(out, ctx, key, buf)
            }
        }
    }

    /// Decides what the first bytes of a direction are, or waits for more.
    fn sniff(&mut self, out: &mut Out, ctx: Ctx, key: FlowKey, buf: Vec<u8>) -> App {
        let (src, dst) = key;
        let rkey = (dst, src);
        if agrees(&buf, b"GET ") {
            if buf.len() < 4 {
                return App::Sniff(buf);
            }
            return match head_len(&buf) {
                Some(head) if is_ws_upgrade(buf.get(..head).unwrap_or_default()) => {
                    App::Upgrade { held: buf, head }
                }
                None if buf.len() <= MAX_HTTP_HEAD => App::Sniff(buf),
                _ => {
                    out.unit(ctx, Transport::Tcp, src, dst, buf, false);
                    App::Raw
                }
            };
        }
        let answering = rkey != key
            && self
                .dirs
                .get(&rkey)
                .is_some_and(|r| matches!(r.app, App::Upgrade { .. }));
        if !answering || !agrees(&buf, b"HTTP/") {
            out.unit(ctx, Transport::Tcp, src, dst, buf, false);
            return App::Raw;
        }
        let Some(head) = head_len(&buf) else {
            if buf.len() <= MAX_HTTP_HEAD {
                return App::Sniff(buf);
            }
            out.unit(ctx, Transport::Tcp, src, dst, buf, false);
            self.settle_client(out, ctx, rkey, false);
            return App::Raw;
        };
        // "HTTP/1.1 101 Switching Protocols"
        let switching = buf.get(8..13) == Some(b" 101 ") || buf.get(8..13) == Some(b" 101\r");
        if !switching {
            out.unit(ctx, Transport::Tcp, src, dst, buf, false);
            self.settle_client(out, ctx, rkey, false);
            return App::Raw;
        }
        self.settle_client(out, ctx, rkey, true);
        let mut dec = ws::Decoder::default();
        let rest = buf.get(head..).unwrap_or_default();
        if ws_feed(out, ctx, key, &mut dec, rest) {
            App::Ws(dec)
        } else {
            App::Dead
        }
    }

    /// The server answered the client's upgrade request (`ckey` is the
    /// client's direction): switch it to WebSocket and decode what it sent
    /// after its request, or let its held bytes go as plain TCP.
    fn settle_client(&mut self, out: &mut Out, ctx: Ctx, ckey: FlowKey, switching: bool) {
        let Some(client) = self.dirs.get_mut(&ckey) else {
            return;
        };
        let App::Upgrade { held, head } = std::mem::replace(&mut client.app, App::Raw) else {
            return;
        };
        if !switching {
            out.unit(ctx, Transport::Tcp, ckey.0, ckey.1, held, false);
            return;
        }
        let mut dec = ws::Decoder::default();
        let ok = ws_feed(
            out,
            ctx,
            ckey,
            &mut dec,
            held.get(head..).unwrap_or_default(),
        );
        client.app = if ok { App::Ws(dec) } else { App::Dead };
    }
}

/// Decodes WebSocket bytes of one direction into units; false when the
/// frames cannot be followed any further.
fn ws_feed(out: &mut Out, ctx: Ctx, key: FlowKey, dec: &mut ws::Decoder, data: &[u8]) -> bool {
    let mut events = Vec::new();
    let result = dec.feed(data, out.limits.max_flow_buffer, &mut events);
    for e in events {
        match e {
            ws::Event::Message(m) => out.unit(ctx, Transport::WebSocket, key.0, key.1, m, false),
            ws::Event::Dropped(why) => {
                out.stats.websocket_dropped += 1;
                out.error(ctx.frame, why);
            }
        }
    }
    match result {
        Ok(()) => true,
        Err(e) => {
            out.error(
                ctx.frame,
                format_args!("{e}: the rest of that direction is skipped"),
            );
            false
        }
    }
}

/// Whether `buf` and `prefix` agree on their common length.
fn agrees(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf.get(..n) == prefix.get(..n)
}

/// Length of an HTTP head (through the empty line), once it is all there.
fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Whether an HTTP request head asks for a WebSocket (RFC 6455 4.1: an
/// `Upgrade` header field whose value holds the token `websocket`).
fn is_ws_upgrade(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = line.split_at(colon);
        name.trim_ascii().eq_ignore_ascii_case(b"upgrade")
            && value
                .get(1..)
                .unwrap_or_default()
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"websocket"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_header_detection() {
        assert!(is_ws_upgrade(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUPGRADE:  WebSocket \r\nConnection: Upgrade\r\n\r\n"
        ));
        assert!(is_ws_upgrade(
            b"GET / HTTP/1.1\r\nupgrade: h2c, websocket\r\n\r\n"
        ));
        assert!(!is_ws_upgrade(b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n"));
        assert!(!is_ws_upgrade(b"GET /upgrade:websocket HTTP/1.1\r\n\r\n"));
        assert!(!is_ws_upgrade(
            b"GET / HTTP/1.1\r\nX-Upgrade: websocket\r\n\r\n"
        ));
    }

    #[test]
    fn prefix_agreement_and_head_length() {
        assert!(agrees(b"GE", b"GET "));
        assert!(agrees(b"GET /x", b"GET "));
        assert!(!agrees(b"GEX", b"GET "));
        assert!(agrees(b"", b"GET "));
        assert_eq!(head_len(b"A\r\n\r\nbody"), Some(5));
        assert_eq!(head_len(b"A\r\n\r"), None);
    }
}
