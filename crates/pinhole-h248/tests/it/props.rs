//! Properties: a generated message written with random token forms,
//! letter case, white space, comments and line ends always reads to the
//! same structure; a rewrite changes nothing outside the SDP groups;
//! arbitrary and mutated bytes never panic, and errors name a line of the
//! datagram. (The fuzz body `h248_parse` checks the spans and the rewrite
//! on every input.)

use std::net::{Ipv4Addr, SocketAddr};

use pinhole_h248::fuzzing::h248_parse;
use pinhole_h248::{Item, parse, rewrite_all};
use proptest::prelude::*;

use crate::common::shape;

/// Commands: long and compact token.
const COMMANDS: &[(&str, &str)] = &[
    ("Add", "A"),
    ("Modify", "MF"),
    ("Subtract", "S"),
    ("Move", "MV"),
    ("AuditValue", "AV"),
    ("AuditCapability", "AC"),
    ("Notify", "N"),
    ("ServiceChange", "SC"),
];

#[derive(Clone, Debug)]
struct GCmd {
    kind: usize,
    term: String,
    optional: bool,
    wildcard: bool,
    stream: Option<u16>,
    local: Vec<(Ipv4Addr, u16)>,
    remote: Vec<(Ipv4Addr, u16)>,
    /// An Events descriptor to skip, before the Media.
    events: bool,
    error: Option<u16>,
}

#[derive(Clone, Debug)]
struct GAction {
    ctx: String,
    cmds: Vec<GCmd>,
}

#[derive(Clone, Debug)]
enum GItem {
    Request(u32, Vec<GAction>),
    Reply(u32, bool, Vec<GAction>),
    Pending(u32),
    Ack(Vec<(u32, u32)>),
}

#[derive(Clone, Debug)]
struct Gen {
    version: u8,
    mid: String,
    items: Vec<GItem>,
    /// The SDP's own line end (part of the bytes compared).
    sdp_crlf: bool,
}

fn term() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ROOT".to_owned()),
        Just("$".to_owned()),
        Just("*".to_owned()),
        "[A-Za-z][A-Za-z0-9_]{0,5}(/[0-9$*]{1,3}){0,2}",
    ]
}

fn groups() -> impl Strategy<Value = Vec<(Ipv4Addr, u16)>> {
    prop::collection::vec(
        (any::<[u8; 4]>().prop_map(Ipv4Addr::from), 1024u16..60000),
        0..3,
    )
}

fn cmd() -> impl Strategy<Value = GCmd> {
    (
        0..COMMANDS.len(),
        term(),
        any::<(bool, bool, bool)>(),
        prop::option::of(1u16..5),
        groups(),
        groups(),
        prop::option::of(400u16..600),
    )
        .prop_map(
            |(kind, term, (optional, wildcard, events), stream, local, remote, error)| GCmd {
                kind,
                term,
                optional,
                wildcard,
                stream,
                local,
                remote,
                events,
                error,
            },
        )
}

fn action() -> impl Strategy<Value = GAction> {
    (
        prop_oneof![
            Just("-".to_owned()),
            Just("$".to_owned()),
            Just("*".to_owned()),
            any::<u32>().prop_map(|n| n.to_string()),
        ],
        prop::collection::vec(cmd(), 1..4),
    )
        .prop_map(|(ctx, cmds)| GAction { ctx, cmds })
}

fn item() -> impl Strategy<Value = GItem> {
    let actions = || prop::collection::vec(action(), 1..3);
    prop_oneof![
        3 => (any::<u32>(), actions()).prop_map(|(id, a)| GItem::Request(id, a)),
        3 => (any::<u32>(), any::<bool>(), actions()).prop_map(|(id, ia, a)| GItem::Reply(id, ia, a)),
        1 => any::<u32>().prop_map(GItem::Pending),
        1 => prop::collection::vec((0u32..1000, 0u32..5), 1..4)
            .prop_map(|r| GItem::Ack(r.into_iter().map(|(a, n)| (a, a + n)).collect())),
    ]
}

fn gen_message() -> impl Strategy<Value = Gen> {
    let mid = prop_oneof![
        (any::<[u8; 4]>(), prop::option::of(any::<u16>())).prop_map(|(o, p)| {
            let ip = Ipv4Addr::from(o);
            p.map_or(format!("[{ip}]"), |p| format!("[{ip}]:{p}"))
        }),
        "<[a-z][a-z0-9.-]{0,10}>(:[0-9]{1,4})?",
        "[a-z][a-z0-9_/]{0,8}",
        Just("[2001:db8::7]:2944".to_owned()),
    ];
    (
        1u8..4,
        mid,
        prop::collection::vec(item(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(version, mid, items, sdp_crlf)| Gen {
            version,
            mid,
            items,
            sdp_crlf,
        })
}

/// How a message is written: token forms, letter case, white space,
/// comments and line ends, drawn from `bits` in turn.
struct Writer {
    bits: Vec<u8>,
    at: usize,
    eol: &'static str,
    out: String,
}

impl Writer {
    fn bit(&mut self) -> u8 {
        let b = self
            .bits
            .get(self.at % self.bits.len().max(1))
            .copied()
            .unwrap_or(0);
        self.at += 1;
        b
    }

    fn tok(&mut self, long: &str, short: &str) {
        let t = if self.bit().is_multiple_of(2) {
            long
        } else {
            short
        };
        let t = match self.bit() % 3 {
            0 => t.to_owned(),
            1 => t.to_ascii_lowercase(),
            _ => t.to_ascii_uppercase(),
        };
        self.out.push_str(&t);
    }

    /// Optional white space: nothing, blanks, a line end or a comment.
    fn sp(&mut self) {
        match self.bit() % 6 {
            0 | 1 => {}
            2 => self.out.push(' '),
            3 => self.out.push_str(" \t "),
            4 => self.out.push_str(self.eol),
            _ => {
                self.out.push_str(" ; a {comment}, \"x\"");
                self.out.push_str(self.eol);
            }
        }
    }

    /// Required white space (a separator).
    fn sep(&mut self) {
        self.out.push(' ');
        self.sp();
    }

    fn punct(&mut self, p: &str) {
        self.sp();
        self.out.push_str(p);
        self.sp();
    }

    /// White space inside an octet string: no comments there.
    fn blank(&mut self) {
        match self.bit() % 3 {
            0 => {}
            1 => self.out.push(' '),
            _ => self.out.push_str(self.eol),
        }
    }
}

fn sdp(ip: Ipv4Addr, port: u16, crlf: bool) -> String {
    let e = if crlf { "\r\n" } else { "\n" };
    format!("v=0{e}o=- 1 1 IN IP4 {ip}{e}s=-{e}c=IN IP4 {ip}{e}t=0 0{e}m=audio {port} RTP/AVP 0{e}")
}

fn write(g: &Gen, bits: &[u8], eol: &'static str) -> Vec<u8> {
    let mut w = Writer {
        bits: bits.to_vec(),
        at: 0,
        eol,
        out: String::new(),
    };
    w.blank();
    w.tok("MEGACO", "!");
    w.out.push_str(&format!("/{}", g.version));
    w.sep();
    w.out.push_str(&g.mid);
    w.sep();
    for (n, it) in g.items.iter().enumerate() {
        if n > 0 {
            w.sp();
        }
        match it {
            GItem::Request(id, actions) | GItem::Reply(id, _, actions) => {
                if matches!(it, GItem::Request(..)) {
                    w.tok("Transaction", "T");
                } else {
                    w.tok("Reply", "P");
                }
                w.punct("=");
                w.out.push_str(&id.to_string());
                w.punct("{");
                if let GItem::Reply(_, true, _) = it {
                    w.tok("ImmAckRequired", "IA");
                    w.punct(",");
                }
                for (i, a) in actions.iter().enumerate() {
                    if i > 0 {
                        w.punct(",");
                    }
                    write_action(&mut w, a, g.sdp_crlf);
                }
                w.punct("}");
            }
            GItem::Pending(id) => {
                w.tok("Pending", "PN");
                w.punct("=");
                w.out.push_str(&id.to_string());
                w.punct("{");
                w.punct("}");
            }
            GItem::Ack(ranges) => {
                w.tok("TransactionResponseAck", "K");
                w.punct("{");
                for (i, (a, b)) in ranges.iter().enumerate() {
                    if i > 0 {
                        w.punct(",");
                    }
                    w.out.push_str(&a.to_string());
                    if a != b {
                        w.punct("-");
                        w.out.push_str(&b.to_string());
                    }
                }
                w.punct("}");
            }
        }
    }
    w.sp();
    w.out.into_bytes()
}

fn write_action(w: &mut Writer, a: &GAction, crlf: bool) {
    w.tok("Context", "C");
    w.punct("=");
    w.out.push_str(&a.ctx);
    w.punct("{");
    for (i, c) in a.cmds.iter().enumerate() {
        if i > 0 {
            w.punct(",");
        }
        if c.optional {
            let p = if w.bit().is_multiple_of(2) {
                "O-"
            } else {
                "o-"
            };
            w.out.push_str(p);
        }
        if c.wildcard {
            let p = if w.bit().is_multiple_of(2) {
                "W-"
            } else {
                "w-"
            };
            w.out.push_str(p);
        }
        let (long, short) = COMMANDS[c.kind];
        w.tok(long, short);
        w.punct("=");
        w.out.push_str(&c.term);
        let media = !c.local.is_empty() || !c.remote.is_empty() || c.stream.is_some();
        if !(media || c.events || c.error.is_some()) {
            continue;
        }
        w.punct("{");
        let mut first = true;
        let mut comma = |w: &mut Writer| {
            if !first {
                w.punct(",");
            }
            first = false;
        };
        if c.events {
            comma(w);
            w.tok("Events", "E");
            w.punct("=");
            w.out.push('7');
            w.punct("{");
            w.out.push_str("al/of{strict=state}");
            w.punct(",");
            w.out.push_str("tdmc/list=[a,b,\"c}\"]");
            w.punct("}");
        }
        if media {
            comma(w);
            w.tok("Media", "M");
            w.punct("{");
            w.tok("LocalControl", "O");
            w.punct("{");
            w.tok("Mode", "MO");
            w.punct("=");
            w.tok("SendReceive", "SR");
            w.punct("}");
            if let Some(id) = c.stream {
                w.punct(",");
                w.tok("Stream", "ST");
                w.punct("=");
                w.out.push_str(&id.to_string());
                w.punct("{");
            }
            // In a Stream the first descriptor has no comma before it.
            let mut lead = c.stream.is_none();
            for (long, short, groups) in [("Local", "L", &c.local), ("Remote", "R", &c.remote)] {
                if groups.is_empty() {
                    continue;
                }
                if lead {
                    w.punct(",");
                }
                lead = true;
                w.tok(long, short);
                w.sp();
                w.out.push('{');
                w.blank();
                for &(ip, port) in groups {
                    w.out.push_str(&sdp(ip, port, crlf));
                }
                w.blank();
                w.out.push('}');
                w.sp();
            }
            if c.stream.is_some() {
                w.punct("}");
            }
            w.punct("}");
        }
        if let Some(code) = c.error {
            comma(w);
            w.tok("Error", "ER");
            w.punct("=");
            w.out.push_str(&code.to_string());
            w.punct("{");
            w.out.push_str("\"no {such} \\\"thing\\\"\"");
            w.punct("}");
        }
        w.punct("}");
    }
    w.punct("}");
}

fn eol() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["\r\n", "\n", "\r"])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_writing_reads_to_the_same_structure(
        g in gen_message(),
        a in prop::collection::vec(any::<u8>(), 1..64),
        b in prop::collection::vec(any::<u8>(), 1..64),
        ea in eol(),
        eb in eol(),
    ) {
        let x = write(&g, &a, ea);
        let y = write(&g, &b, eb);
        let mx = parse(&x).map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&x))))?;
        let my = parse(&y).map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&y))))?;
        prop_assert_eq!(shape(&mx), shape(&my));
        // And it is the generated structure.
        prop_assert_eq!(mx.version(), g.version);
        prop_assert_eq!(mx.mid().text, g.mid.as_str());
        prop_assert_eq!(mx.items().len(), g.items.len());
        for (it, gi) in mx.items().iter().zip(&g.items) {
            let (actions, gactions) = match (it, gi) {
                (Item::Request(r), GItem::Request(id, ga)) => {
                    prop_assert_eq!(r.id, *id);
                    (&r.actions, ga)
                }
                (Item::Reply(r), GItem::Reply(id, ia, ga)) => {
                    prop_assert_eq!((r.id, r.immediate_ack), (*id, *ia));
                    (&r.actions, ga)
                }
                (Item::Pending { id, .. }, GItem::Pending(gid)) => {
                    prop_assert_eq!(id, gid);
                    continue;
                }
                (Item::ResponseAck { ranges, .. }, GItem::Ack(gr)) => {
                    let got: Vec<(u32, u32)> = ranges.iter().map(|r| (r.first, r.last)).collect();
                    prop_assert_eq!(&got, gr);
                    continue;
                }
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            prop_assert_eq!(actions.len(), gactions.len());
            for (a, ga) in actions.iter().zip(gactions) {
                prop_assert_eq!(a.commands.len(), ga.cmds.len());
                for (c, gc) in a.commands.iter().zip(&ga.cmds) {
                    prop_assert_eq!(c.kind.long_name(), COMMANDS[gc.kind].0);
                    prop_assert_eq!(c.terminations[0].text, gc.term.as_str());
                    prop_assert_eq!((c.optional, c.wildcard_reply), (gc.optional, gc.wildcard));
                    prop_assert_eq!(c.error.as_ref().map(|e| e.code), gc.error);
                    let media = !gc.local.is_empty() || !gc.remote.is_empty() || gc.stream.is_some();
                    prop_assert_eq!(c.streams.len(), usize::from(media));
                    if let Some(s) = c.streams.first() {
                        prop_assert_eq!(s.id, gc.stream);
                        prop_assert_eq!((s.local.len(), s.remote.len()), (gc.local.len(), gc.remote.len()));
                        for (grp, &(ip, port)) in s.local.iter().chain(&s.remote).zip(gc.local.iter().chain(&gc.remote)) {
                            let ep = mx.sdp(grp).unwrap().endpoints("192.0.2.1".parse().unwrap()).unwrap();
                            prop_assert_eq!(ep[0].addr, SocketAddr::new(ip.into(), port));
                        }
                    }
                }
            }
        }
        // The fuzz body's checks: spans, and the rewrite.
        h248_parse(&x);
        h248_parse(&y);
    }

    #[test]
    fn rewrite_changes_only_sdp_bytes(g in gen_message(), a in prop::collection::vec(any::<u8>(), 1..64), e in eol()) {
        let x = write(&g, &a, e);
        let m = parse(&x).unwrap();
        let groups: Vec<_> = m.groups().map(|g| g.span.clone()).collect();
        let to: SocketAddr = "203.0.113.10:20000".parse().unwrap();
        match rewrite_all(&x, to) {
            Err(e) => {
                prop_assert!(groups.is_empty());
                prop_assert_eq!(e.kind(), "no_sdp");
            }
            Ok(out) => {
                let again = parse(&out).unwrap();
                let new: Vec<_> = again.groups().map(|g| g.span.clone()).collect();
                prop_assert_eq!(new.len(), groups.len());
                let (mut i, mut j) = (0, 0);
                for (o, n) in groups.iter().zip(&new) {
                    prop_assert_eq!(&x[i..o.start], &out[j..n.start]);
                    (i, j) = (o.end, n.end);
                    let ep = again.sdp(&pinhole_h248::SdpGroup { span: n.clone() }).unwrap()
                        .endpoints("192.0.2.1".parse().unwrap()).unwrap();
                    prop_assert_eq!(ep[0].addr.ip(), to.ip());
                }
                prop_assert_eq!(&x[i..], &out[j..]);
                prop_assert_eq!(shape(&m).lines().count(), shape(&again).lines().count());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        h248_parse(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        g in gen_message(),
        a in prop::collection::vec(any::<u8>(), 1..32),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut x = write(&g, &a, "\r\n");
        for (at, byte, op) in edits {
            let i = at.index(x.len() + 1);
            match op {
                0 if i < x.len() => x[i] = byte,
                1 => x.insert(i, byte),
                _ if i < x.len() => { x.remove(i); }
                _ => {}
            }
        }
        h248_parse(&x);
        if let Err(e) = parse(&x) {
            prop_assert!(e.line() >= 1);
        }
    }
}
