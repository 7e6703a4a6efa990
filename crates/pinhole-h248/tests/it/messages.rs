//! Exact bytes: the rewrite of a reply's Local, token forms, mId forms,
//! line ends, comments, quoted strings, escapes, error descriptors at
//! every level, command prefixes, acks, pendings, several transactions,
//! bounds, and errors with their kind and line.

use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::patch::Patch;
use pinhole_h248::{
    AckRange, CommandKind, ContextId, Error, Item, MAX_COMMANDS, MAX_DEPTH, MAX_GROUPS, MAX_ITEMS,
    MAX_STREAMS, MediaRole, Message, MidKind, SdpGroup, error_reply, parse, pending, rewrite_all,
};
use pinhole_sdp::RewriteOptions;

use crate::common::shape;

const ADD_REPLY: &[u8] = b"MEGACO/1 [192.0.2.20]:2944\r\n\
Reply = 10 {\r\n\
  Context = 2000 {\r\n\
    Add = RTP/1 {\r\n\
      Media { Stream = 1 { Local {\r\n\
v=0\r\n\
o=- 1 1 IN IP4 192.0.2.20\r\n\
s=-\r\n\
c=IN IP4 192.0.2.20\r\n\
t=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\n\
a=rtcp:4001\r\n\
} } }\r\n\
    }\r\n\
  }\r\n\
}\r\n";

fn reply<'a>(m: &Message<'a>, i: usize) -> pinhole_h248::Reply<'a> {
    match &m.items()[i] {
        Item::Reply(r) => r.clone(),
        other => panic!("{other:?}"),
    }
}

fn request<'a>(m: &Message<'a>, i: usize) -> pinhole_h248::Request<'a> {
    match &m.items()[i] {
        Item::Request(r) => r.clone(),
        other => panic!("{other:?}"),
    }
}

fn err(d: &[u8]) -> Error {
    parse(d).expect_err(&String::from_utf8_lossy(d))
}

#[test]
fn add_reply_local_rewrite_gives_exact_bytes() {
    let m = parse(ADD_REPLY).unwrap();
    let item = &m.items()[0];
    let r = reply(&m, 0);
    assert_eq!((r.id, r.actions[0].context), (10, ContextId::Id(2000)));
    let add = &r.actions[0].commands[0];
    assert_eq!(MediaRole::of(item, add), MediaRole::Answer);
    assert_eq!(
        MediaRole::of(item, add).intent_kind(),
        Some(pinhole_core::intent::IntentKind::Answer)
    );
    let g = &add.streams[0].local[0];
    assert_eq!(add.streams[0].id, Some(1));
    let sdp = m.sdp(g).unwrap();
    let plan = [PlannedEndpoint {
        index: 0,
        addr: "203.0.113.10:30000".parse().unwrap(),
        rtcp_addr: None,
    }];
    let mut patch = Patch::new();
    m.rewrite_sdp(g, &sdp, &plan, &RewriteOptions::default(), &mut patch)
        .unwrap();
    let out = patch.apply(ADD_REPLY).unwrap();
    let want: &[u8] = b"MEGACO/1 [192.0.2.20]:2944\r\n\
Reply = 10 {\r\n\
  Context = 2000 {\r\n\
    Add = RTP/1 {\r\n\
      Media { Stream = 1 { Local {\r\n\
v=0\r\n\
o=- 1 1 IN IP4 192.0.2.20\r\n\
s=-\r\n\
c=IN IP4 203.0.113.10\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 0\r\n\
a=rtcp:30001\r\n\
} } }\r\n\
    }\r\n\
  }\r\n\
}\r\n";
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
    // Only bytes of the c=, m= and a=rtcp: values changed.
    for (span, _) in patch.edits() {
        let line_start = ADD_REPLY[..span.start]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap()
            + 1;
        let prefix = &ADD_REPLY[line_start..line_start + 2];
        assert!([&b"c="[..], b"m=", b"a="].contains(&prefix), "{span:?}");
        assert!(span.start >= g.span.start && span.end <= g.span.end);
    }
    // The result reads back with the relay address.
    let again = parse(&out).unwrap();
    let g2 = again.groups().next().unwrap().clone();
    let ep = again
        .sdp(&g2)
        .unwrap()
        .endpoints("192.0.2.1".parse().unwrap())
        .unwrap();
    assert_eq!(ep[0].addr, "203.0.113.10:30000".parse().unwrap());
}

#[test]
fn rewrite_of_one_group_leaves_the_other_groups_alone() {
    let d = b"!/1 [10.0.0.2]:2944\nP=1{C=7{MF=RTP/1{M{L{v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 0\r\nv=0\r\nc=IN IP4 10.0.0.2\r\nm=image 4002 udptl t38\r\n},R{v=0\nc=IN IP4 10.9.9.9\nm=audio 5000 RTP/AVP 0\n}}}}}";
    let m = parse(d).unwrap();
    let groups: Vec<SdpGroup> = m.groups().cloned().collect();
    assert_eq!(groups.len(), 3);
    let sdp = m.sdp(&groups[1]).unwrap();
    let plan = [PlannedEndpoint {
        index: 0,
        addr: "203.0.113.10:30002".parse().unwrap(),
        rtcp_addr: None,
    }];
    let mut patch = Patch::new();
    m.rewrite_sdp(
        &groups[1],
        &sdp,
        &plan,
        &RewriteOptions::default(),
        &mut patch,
    )
    .unwrap();
    let out = patch.apply(d).unwrap();
    let want = String::from_utf8_lossy(d).replace(
        "c=IN IP4 10.0.0.2\r\nm=image 4002",
        "c=IN IP4 203.0.113.10\r\nm=image 30002",
    );
    assert_eq!(String::from_utf8_lossy(&out), want);
    // A group from elsewhere is refused, the patch left as it was.
    let before = patch.edits().count();
    let bogus = SdpGroup {
        span: 0..d.len() + 10,
    };
    let e = m
        .rewrite_sdp(&bogus, &sdp, &plan, &RewriteOptions::default(), &mut patch)
        .unwrap_err();
    assert_eq!(e.kind(), "not_a_group");
    assert_eq!(patch.edits().count(), before);
}

#[test]
fn rewrite_all_moves_every_group_and_keeps_the_rest() {
    let d = b"!/1 [10.0.0.2]:2944\nP=1{C=7{MF=RTP/1{M{L{v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 0\r\nv=0\r\nc=IN IP4 10.0.0.2\r\nm=image 0 udptl t38\r\n},R{v=0\nc=IN IP4 10.9.9.9\nm=audio 5000 RTP/AVP 0\na=rtcp-mux\n}}}}}";
    let out = rewrite_all(d, "203.0.113.10:40000".parse().unwrap()).unwrap();
    let want = "!/1 [10.0.0.2]:2944\nP=1{C=7{MF=RTP/1{M{L{v=0\r\nc=IN IP4 203.0.113.10\r\nm=audio 40000 RTP/AVP 0\r\nv=0\r\nc=IN IP4 10.0.0.2\r\nm=image 0 udptl t38\r\n},R{v=0\nc=IN IP4 203.0.113.10\nm=audio 40002 RTP/AVP 0\na=rtcp-mux\n}}}}}";
    assert_eq!(String::from_utf8_lossy(&out), want);
    let e = rewrite_all(
        b"!/1 <a> T=1{C=-{S=x}}",
        "203.0.113.10:40000".parse().unwrap(),
    )
    .unwrap_err();
    assert_eq!((e.kind(), e.line()), ("no_sdp", 1));
    let e = rewrite_all(
        b"!/1 <a> T=1{C=-{A=x{M{L{v=0\nm=audio x RTP/AVP 0\n}}}}}",
        "203.0.113.10:40000".parse().unwrap(),
    )
    .unwrap_err();
    assert_eq!((e.kind(), e.line()), ("sdp", 2));
}

#[test]
fn compact_and_long_forms_read_the_same() {
    let long = b"MEGACO/1 <mg1.example.net>:2944\n\
Transaction = 5 {\n\
  Context = $ {\n\
    Add = A4444,\n\
    Add = $ { Media { Stream = 1 { LocalControl { Mode = SendReceive }, Remote {\n\
v=0\n\
c=IN IP4 192.0.2.7\n\
m=audio 5000 RTP/AVP 0\n\
} } } },\n\
    Modify = A4445 { Events = 2 { al/on } },\n\
    Subtract = A4446 { Audit { } },\n\
    Move = A4447,\n\
    AuditValue = A4448 { Audit { Media } },\n\
    AuditCapability = A4449 { Audit { } },\n\
    Notify = A4450 { ObservedEvents = 2 { al/on } },\n\
    ServiceChange = ROOT { Services { Method = Restart, Reason = \"901 Cold Boot\", Profile = ResGW/1, ServiceChangeAddress = [192.0.2.1]:2944 } }\n\
  }\n\
}\n";
    let compact = b"!/1 <mg1.example.net>:2944 T=5{C=${A=A4444,A=${M{ST=1{O{MO=SR},R{\n\
v=0\n\
c=IN IP4 192.0.2.7\n\
m=audio 5000 RTP/AVP 0\n\
}}}},MF=A4445{E=2{al/on}},S=A4446{AT{}},MV=A4447,AV=A4448{AT{M}},AC=A4449{AT{}},N=A4450{OE=2{al/on}},SC=ROOT{SV{MT=Restart,RE=\"901 Cold Boot\",PF=ResGW/1,AD=[192.0.2.1]:2944}}}}";
    let lower = String::from_utf8_lossy(compact)
        .to_lowercase()
        .replace(
            "v=0\nc=in ip4 192.0.2.7\nm=audio 5000 rtp/avp 0",
            "v=0\nc=IN IP4 192.0.2.7\nm=audio 5000 RTP/AVP 0",
        )
        .replace("901 cold boot", "901 Cold Boot")
        .replace("resgw/1", "ResGW/1")
        .replace("=restart", "=Restart")
        .replace("a444", "A444")
        .replace("a4450", "A4450")
        .replace("=root", "=ROOT");
    let a = parse(long).unwrap();
    let b = parse(compact).unwrap();
    let c = parse(lower.as_bytes()).unwrap();
    assert_eq!(shape(&a), shape(&b));
    assert_eq!(shape(&a), shape(&c));
    let kinds: Vec<CommandKind> = a.commands().map(|c| c.kind).collect();
    use CommandKind::*;
    assert_eq!(
        kinds,
        [
            Add,
            Add,
            Modify,
            Subtract,
            Move,
            AuditValue,
            AuditCapability,
            Notify,
            ServiceChange
        ]
    );
    let names: Vec<&str> = kinds.iter().map(|k| k.long_name()).collect();
    assert_eq!(names[8], "ServiceChange");
    let item = &a.items()[0];
    let add = a.commands().nth(1).unwrap();
    assert!(add.terminations[0].is_choose() && add.terminations[0].is_wildcard());
    assert_eq!(MediaRole::of(item, add), MediaRole::Offer);
    assert_eq!(
        MediaRole::of(item, a.commands().nth(3).unwrap()),
        MediaRole::Teardown
    );
    assert_eq!(
        MediaRole::of(item, a.commands().nth(4).unwrap()),
        MediaRole::None
    );
    let sc = a.commands().nth(8).unwrap().service_change.clone().unwrap();
    assert_eq!(sc.reason, Some("901 Cold Boot"));
    let (addr, span) = sc.address.unwrap();
    assert_eq!(
        (addr, &long[span]),
        ("[192.0.2.1]:2944", &b"[192.0.2.1]:2944"[..])
    );
}

#[test]
fn white_space_around_every_token_in_any_amount() {
    let tight = b"!/1 [10.0.0.1]:2944 T=1{C=2{MF=RTP/1{M{L{v=0\nm=audio 1 RTP/AVP 0\n}}}}}";
    let loose = b"  \r\n!/1\t\r\n  [10.0.0.1]:2944 \r\n\r\n T \t=\r\n 1 \r\n{ \t C\n=\n2\n{\n MF \t =  RTP/1  \r\n {  M \n { \n L  \r\n {v=0\nm=audio 1 RTP/AVP 0\n}\n }\n }\n }\n }\n";
    assert_eq!(shape(&parse(tight).unwrap()), shape(&parse(loose).unwrap()));
}

#[test]
fn mid_forms() {
    let cases: &[(&str, MidKind, &str, Option<u16>)] = &[
        ("[10.1.1.1]:2944", MidKind::Ip4, "10.1.1.1", Some(2944)),
        ("[10.1.1.1]", MidKind::Ip4, "10.1.1.1", None),
        (
            "[2001:db8::5]:2944",
            MidKind::Ip6,
            "2001:db8::5",
            Some(2944),
        ),
        ("[::ffff:192.0.2.1]", MidKind::Ip6, "::ffff:192.0.2.1", None),
        (
            "<mgc.example.net>:2945",
            MidKind::Domain,
            "mgc.example.net",
            Some(2945),
        ),
        ("<iMSS>", MidKind::Domain, "iMSS", None),
        (
            "mg1/line@example.net",
            MidKind::Device,
            "mg1/line@example.net",
            None,
        ),
        ("mtp{0A1B2C3D}", MidKind::Mtp, "0A1B2C3D", None),
    ];
    for &(text, kind, host, port) in cases {
        let d = format!("MEGACO/1 {text}\nK{{1}}");
        let m = parse(d.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mid = m.mid();
        assert_eq!(
            (mid.kind, mid.text, mid.host, mid.port),
            (kind, text, host, port)
        );
        assert_eq!(&d.as_bytes()[mid.span.clone()], text.as_bytes());
    }
    for bad in [
        "[10.1.1]",
        "[10.1.1.1]:99999",
        "[2001:db8::5::1]",
        "<-x>",
        "MTP{12}",
    ] {
        let d = format!("MEGACO/1 {bad}\nK{{1}}");
        let e = err(d.as_bytes());
        assert!(
            ["bad_mid", "trailing", "syntax"].contains(&e.kind()),
            "{bad}: {e}"
        );
    }
}

#[test]
fn trailing_nul_cr_only_lines_and_comments() {
    let mut d =
        b"MEGACO/1 [10.0.0.1]:2944\rT=3{C=-{MF=A1{M{L{v=0\rm=audio 1 RTP/AVP 0\r}}}}}\r".to_vec();
    d.push(0);
    let m = parse(&d).unwrap();
    assert_eq!(m.bytes().len(), d.len());
    assert_eq!(m.groups().count(), 1);
    assert_eq!(m.items()[0].id(), Some(3));
    // A NUL anywhere else is not ignored.
    let e = err(b"MEGACO/1 [10.0.0.1]:2944 T=3{C=-{S=A1}}\0 ");
    assert_eq!(e.kind(), "trailing");
    // Comments: to the end of the line, anywhere white space may be,
    // holding braces, quotes and commas.
    let d = b"MEGACO/1 [10.0.0.1]:2944 ; the MG {\"}\n\
T = 4 { ; a comment with } and ,\r\n\
Context = 1 { Modify = A1 { Events = 1 { al/on } ; \"quoted\"\r\
}\n}}\n; the end\n";
    let m = parse(d).unwrap();
    assert_eq!(m.commands().count(), 1);
    assert_eq!(m.items()[0].span().end, d.len() - "\n; the end\n".len());
    // The error line counts CRLF, LF and CR once each.
    let e = err(b"MEGACO/1 [10.0.0.1]:2944\r\nT=1{\rC=1{\nA=x y}}}");
    assert_eq!((e.kind(), e.line()), ("syntax", 4));
}

#[test]
fn quoted_strings_and_escaped_braces() {
    // Braces and an escaped quote inside quoted strings, in a skipped
    // descriptor and in an error's text.
    let d = br#"!/1 <mg> P=1{C=2{MF=A1{E=1{x/y{s="a } b { \" c"}}},A=A2{ER=500{"no } such \"thing\""}}}}"#;
    let m = parse(d).unwrap();
    let r = reply(&m, 0);
    let e = r.actions[0].commands[1].error.clone().unwrap();
    assert_eq!(e.code, 500);
    assert_eq!(e.reason, Some(r#"no } such \"thing\""#));
    assert_eq!(&d[e.span.clone()], br#"ER=500{"no } such \"thing\""}"#);
    // `\}` inside Local is part of the SDP.
    let d = b"!/1 <mg> T=1{C=2{A=A1{M{L{v=0\nm=audio 1 RTP/AVP 0\na=x:\\}y\n},R{v=0\nm=audio 2 RTP/AVP 0\n}}}}}";
    let m = parse(d).unwrap();
    let groups: Vec<_> = m.groups().cloned().collect();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        &d[groups[0].span.clone()],
        b"v=0\nm=audio 1 RTP/AVP 0\na=x:\\}y\n"
    );
    assert_eq!(&d[groups[1].span.clone()], b"v=0\nm=audio 2 RTP/AVP 0\n");
    assert_eq!(
        err(b"!/1 <mg> T=1{C=2{A=A1{E=1{\"open}}}}}").kind(),
        "unterminated"
    );
    assert_eq!(
        err(b"!/1 <mg> T=1{C=2{A=A1{M{L{v=0 \\}}}}}").kind(),
        "unterminated"
    );
}

#[test]
fn error_descriptors_at_every_level() {
    // Message level: the body is the error.
    let d = b"MEGACO/1 [10.0.0.1]:2944\nER=400{\"Syntax error in message\"}\n";
    let m = parse(d).unwrap();
    assert!(m.items().is_empty());
    let e = m.error().unwrap();
    assert_eq!((e.code, e.reason), (400, Some("Syntax error in message")));
    assert_eq!(&d[e.span.clone()], b"ER=400{\"Syntax error in message\"}");
    // Transaction level, with ImmAckRequired.
    let d = b"!/1 [10.0.0.1]:2944 P=9{IA,Error = 500 {\"Internal\"}}";
    let m = parse(d).unwrap();
    let r = reply(&m, 0);
    assert!(r.immediate_ack && r.actions.is_empty());
    assert_eq!(r.error.as_ref().map(|e| e.code), Some(500));
    // Action level, after a command reply; command level; an empty text.
    let d = b"!/1 [10.0.0.1]:2944 P=9{C=1{A=RTP/1{M{L{v=0\nc=IN IP4 10.0.0.1\nm=audio 2 RTP/AVP 0\n}}},ER=411{}},C=2{A=RTP/2{M{L{v=0\nc=IN IP4 10.0.0.1\nm=audio 4 RTP/AVP 0\n}}},A=RTP/3{ER=510{},M{L{v=0\nc=IN IP4 10.0.0.1\nm=audio 6 RTP/AVP 0\n}}}}}";
    let m = parse(d).unwrap();
    let item = &m.items()[0];
    let r = reply(&m, 0);
    assert_eq!(
        r.actions[0].error.as_ref().map(|e| (e.code, e.reason)),
        Some((411, None))
    );
    assert_eq!(
        r.actions[1].commands[1].error.as_ref().map(|e| e.code),
        Some(510)
    );
    // The roles: an action or a command with an error answers nothing.
    let roles: Vec<MediaRole> = m.commands().map(|c| MediaRole::of(item, c)).collect();
    assert_eq!(roles, [MediaRole::None, MediaRole::Answer, MediaRole::None]);
    // A transaction error fails every command of the reply.
    let d = b"!/1 [10.0.0.1]:2944 P=9{C=2{A=RTP/2{M{L{v=0\nc=IN IP4 10.0.0.1\nm=audio 4 RTP/AVP 0\n}}}},ER=500{\"x\"}}";
    let m = parse(d).unwrap();
    assert_eq!(
        MediaRole::of(&m.items()[0], m.commands().next().unwrap()),
        MediaRole::None
    );
    // A five-digit code is not an error code.
    let e = err(b"!/1 [10.0.0.1]:2944\n\nER=50000{}");
    assert_eq!((e.kind(), e.line()), ("bad_error_code", 3));
}

#[test]
fn optional_and_wildcard_reply_prefixes() {
    let d = b"!/1 <mgc> T=1{C=*{O-MF=RTP/*{E=1{x/y}},W-S=RTP/*,O-W-AV=*{AT{}},w-o-N=a}}";
    let m = parse(d).unwrap();
    let flags: Vec<(bool, bool, CommandKind)> = m
        .commands()
        .map(|c| (c.optional, c.wildcard_reply, c.kind))
        .collect();
    assert_eq!(
        flags,
        [
            (true, false, CommandKind::Modify),
            (false, true, CommandKind::Subtract),
            (true, true, CommandKind::AuditValue),
            (true, true, CommandKind::Notify),
        ]
    );
    let c = m.commands().next().unwrap();
    assert_eq!(&d[c.span.clone()], b"O-MF=RTP/*{E=1{x/y}}");
    assert!(c.terminations[0].is_wildcard() && !c.terminations[0].is_choose());
    assert_eq!(request(&m, 0).actions[0].context, ContextId::All);
    assert_eq!(
        err(b"!/1 <mgc> T=1{C=1{O-TP{a,b,isolate}}}").kind(),
        "syntax"
    );
}

#[test]
fn acks_pendings_and_several_transactions() {
    let d = b"MEGACO/1 [10.0.0.1]:2944\r\n\
TransactionResponseAck { 1-3, 5 }\r\n\
K{ 7 }\r\n\
PN=11{}\r\n\
Pending = 12 { }\r\n\
T=13{C=-{S=A1}}\r\n\
Transaction = 14 {Context=-{Subtract=A2}}\r\n\
P=15{C=-{S=A3}}\r\n";
    let m = parse(d).unwrap();
    let ids: Vec<Option<u32>> = m.items().iter().map(Item::id).collect();
    assert_eq!(
        ids,
        [None, None, Some(11), Some(12), Some(13), Some(14), Some(15)]
    );
    let Item::ResponseAck { ranges, span } = &m.items()[0] else {
        panic!()
    };
    assert_eq!(
        ranges,
        &[
            AckRange { first: 1, last: 3 },
            AckRange { first: 5, last: 5 }
        ]
    );
    assert!(ranges[0].contains(2) && !ranges[0].contains(4));
    assert_eq!(&d[span.clone()], b"TransactionResponseAck { 1-3, 5 }");
    for it in m.items() {
        assert!(!d[it.span()].ends_with(b"\n") && !d[it.span()].starts_with(b" "));
    }
    let e = err(b"MEGACO/1 [10.0.0.1]:2944\nK{5-3}");
    assert_eq!((e.kind(), e.line()), ("bad_response_ack", 2));
    let e = err(b"MEGACO/1 [10.0.0.1]:2944\nT=4294967296{}");
    assert_eq!((e.kind(), e.line()), ("bad_transaction_id", 2));
    assert_eq!(
        parse(b"!/1 <a> T=4294967295{}").unwrap().items()[0].id(),
        Some(u32::MAX)
    );
}

#[test]
fn builders_parse_back() {
    let r = error_reply(1, "[10.0.0.1]:2944", 77, 510, "say \"no\" \\ now\r\nplease");
    assert_eq!(
        String::from_utf8_lossy(&r),
        "MEGACO/1 [10.0.0.1]:2944\r\nReply = 77 {\r\n  Error = 510 {\"say \\\"no\\\" \\\\ now  please\"}\r\n}\r\n"
    );
    let m = parse(&r).unwrap();
    let rep = reply(&m, 0);
    assert_eq!(
        (rep.id, rep.error.as_ref().map(|e| e.code)),
        (77, Some(510))
    );
    assert_eq!(m.mid().port, Some(2944));
    let p = pending(2, "<mgc>", 78);
    let m = parse(&p).unwrap();
    assert_eq!(m.version(), 2);
    assert!(matches!(m.items()[0], Item::Pending { id: 78, .. }));
}

#[test]
fn errors_are_typed_with_their_line() {
    let cases: &[(&[u8], &str, usize)] = &[
        (b"", "empty", 1),
        (b" \r\n ;x\n\0\0", "empty", 3),
        (b"SIP/2.0 200 OK\r\n", "bad_header", 1),
        (b"MEGACO/x [1.2.3.4]", "bad_header", 1),
        (b"MEGACO/1[1.2.3.4] T=1{}", "bad_header", 1),
        (b"MEGACO/1 \n[1.2.3.4", "bad_mid", 2),
        (b"MEGACO/1 [1.2.3.4]\n", "syntax", 2),
        (b"MEGACO/1 [1.2.3.4]\nX=1{}", "syntax", 2),
        (b"MEGACO/1 [1.2.3.4]\nT=1{\nC=1{\n", "unterminated", 4),
        (b"MEGACO/1 [1.2.3.4]\nT=1{\nC=x{}}", "bad_context_id", 3),
        (
            b"MEGACO/1 [1.2.3.4]\nT=1{\nC=1{A=b{M{ST=70000{}}}}}",
            "bad_stream_id",
            3,
        ),
        (b"MEGACO/1 [1.2.3.4]\nT=1{\nC=1{A=}}", "syntax", 3),
        (b"MEGACO/1 [1.2.3.4]\nT=1{C=1{A=b}}\n}", "trailing", 3),
        (b"MEGACO/1 [1.2.3.4]\nER=1{}\nT=1{}", "trailing", 3),
        (
            b"MEGACO/1 [1.2.3.4]\nT=1{C=1{A=b{E=1{\"\xff\"}}}}",
            "not_utf8",
            2,
        ),
    ];
    for &(d, kind, line) in cases {
        let e = err(d);
        assert_eq!(
            (e.kind(), e.line()),
            (kind, line),
            "{:?}: {e}",
            String::from_utf8_lossy(d)
        );
        assert!(e.to_string().starts_with(&format!("line {line}: ")));
    }
}

#[test]
fn bounds_give_typed_errors() {
    // Nesting inside a skipped descriptor.
    let deep = format!(
        "!/1 <a> T=1{{C=1{{MF=x{{E=1{{{}{}}}}}}}}}",
        "[".repeat(MAX_DEPTH),
        "]".repeat(MAX_DEPTH)
    );
    assert_eq!(err(deep.as_bytes()).kind(), "too_deep");
    let ok = format!(
        "!/1 <a> T=1{{C=1{{MF=x{{E=1{{{}{}}}}}}}}}",
        "[".repeat(MAX_DEPTH - 5),
        "]".repeat(MAX_DEPTH - 5)
    );
    parse(ok.as_bytes()).unwrap();
    // Counts.
    let many = |n: usize, one: &str| vec![one; n].join(",");
    let txns = |n: usize| format!("!/1 <a> {}", vec!["T=1{C=-{S=x}}"; n].join(" "));
    parse(txns(MAX_ITEMS).as_bytes()).unwrap();
    assert_eq!(err(txns(MAX_ITEMS + 1).as_bytes()).kind(), "too_many");
    let cmds = |n: usize| format!("!/1 <a> T=1{{C=1{{{}}}}}", many(n, "S=x"));
    parse(cmds(MAX_COMMANDS).as_bytes()).unwrap();
    assert_eq!(err(cmds(MAX_COMMANDS + 1).as_bytes()).kind(), "too_many");
    let streams = |n: usize| format!("!/1 <a> T=1{{C=1{{A=x{{M{{{}}}}}}}}}", many(n, "ST=1{}"));
    parse(streams(MAX_STREAMS).as_bytes()).unwrap();
    assert_eq!(err(streams(MAX_STREAMS + 1).as_bytes()).kind(), "too_many");
    let groups = |n: usize| {
        format!(
            "!/1 <a> T=1{{C=1{{A=x{{M{{L{{{}}}}}}}}}}}",
            "v=0\n".repeat(n)
        )
    };
    parse(groups(MAX_GROUPS).as_bytes()).unwrap();
    assert_eq!(err(groups(MAX_GROUPS + 1).as_bytes()).kind(), "too_many");
    // Work stays linear: a long run of opening braces is refused at once.
    let flood = format!("!/1 <a> T=1{{C=1{{MF=x{{E=1{}", "{".repeat(100_000));
    assert_eq!(err(flood.as_bytes()).kind(), "too_deep");
}

#[test]
fn local_and_remote_without_stream_are_stream_one() {
    let d = b"!/1 <a> T=1{C=1{MF=x{M{O{MO=SR},L{v=0\nm=audio 1 RTP/AVP 0\n},TS{BF=OFF},R{v=0\nm=audio 2 RTP/AVP 0\n},ST=2{R{v=0\nm=audio 3 RTP/AVP 0\n}}}}}}";
    let m = parse(d).unwrap();
    let c = m.commands().next().unwrap();
    assert_eq!(c.streams.len(), 2);
    assert_eq!((c.streams[0].id, c.streams[0].number()), (None, 1));
    assert_eq!(
        (c.streams[0].local.len(), c.streams[0].remote.len()),
        (1, 1)
    );
    assert_eq!((c.streams[1].id, c.streams[1].remote.len()), (Some(2), 1));
    assert_eq!(
        &d[c.streams[1].span.clone()],
        b"ST=2{R{v=0\nm=audio 3 RTP/AVP 0\n}}"
    );
    assert_eq!(MediaRole::of(&m.items()[0], c), MediaRole::Modify);
}

#[test]
fn authentication_header_and_mgc_id_to_try() {
    let d = b"AU=0x01020304:0x00000001:0x0102030405060708090a0b0c\nMEGACO/1 [10.0.0.1]:2944\nP=1{C=-{SC=ROOT{SV{MG=<mgc2.example.net>:2944,V=1}}}}";
    let m = parse(d).unwrap();
    let sc = m.commands().next().unwrap().service_change.clone().unwrap();
    let (text, span) = sc.mgc_id.unwrap();
    assert_eq!(text, "<mgc2.example.net>:2944");
    assert_eq!(&d[span], text.as_bytes());
    assert!(sc.method.is_none() && sc.address.is_none());
}

#[test]
fn context_termination_audit_and_a_termination_called_c() {
    let d = b"!/1 <mg> P=1{C=5{AV=C{RTP/1 , RTP/2},AC=Context{ER=431{\"no such context\"}},AV=C{M{L{v=0\nm=audio 1 RTP/AVP 0\n}}}}}";
    let m = parse(d).unwrap();
    let cmds: Vec<_> = m.commands().collect();
    let terms = |i: usize| -> Vec<&str> { cmds[i].terminations.iter().map(|t| t.text).collect() };
    assert_eq!(terms(0), ["RTP/1", "RTP/2"]);
    assert_eq!(terms(1), Vec::<&str>::new());
    assert_eq!(cmds[1].error.as_ref().map(|e| e.code), Some(431));
    assert_eq!(terms(2), ["C"]);
    assert_eq!(cmds[2].streams[0].local.len(), 1);
}
