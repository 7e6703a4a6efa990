use super::*;

fn gateway(ports: (u16, u16)) -> Gateway {
    Gateway::new(MgConfig {
        mid: "<mg1.corp1.example>".into(),
        media_ip: "10.1.0.10".parse().unwrap(),
        media_ports: PortRange::new(ports.0, ports.1).unwrap(),
        first_transaction: 41,
    })
}

/// An Add as OTP's MGC writes it in pretty text (docs/megaco.md).
fn add_pretty(id: u32, remote: Option<&str>) -> Vec<u8> {
    let remote = remote.map_or(String::new(), |r| {
        let (ip, port) = r.split_once(':').unwrap();
        format!(
            ",\n            Remote {{\nv=0\nc=IN IP4 {ip}\nm=audio {port} RTP/AVP 0\n            }}"
        )
    });
    format!(
        "MEGACO/1 [127.0.0.91]:29603\nTransaction = {id} {{\n\tContext = $ {{\n\t\tAdd = $ {{\n\t\t\tMedia {{\n\t\t\t\tLocalControl {{\n\t\t\t\t\tMode = SendReceive\n\t\t\t\t}},\n            Local {{\nv=0\nc=IN IP4 $\nm=audio $ RTP/AVP 0\n            }}{remote}\n\t\t\t}}\n\t\t}}\n\t}}\n}}\n"
    )
    .into_bytes()
}

fn request(id: u32, ctx: &str, body: &str) -> Vec<u8> {
    format!("MEGACO/1 [127.0.0.91]:29603\nTransaction = {id} {{\n  Context = {ctx} {{\n    {body}\n  }}\n}}\n")
        .into_bytes()
}

/// The reply's first action: context and command replies (kind, names).
fn reply_of(bytes: &[u8]) -> (ContextId, Vec<(CommandKind, String)>, Option<SocketAddr>) {
    let msg = parse(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)));
    let Some(Item::Reply(r)) = msg.items().first() else {
        panic!("not a reply: {}", String::from_utf8_lossy(bytes));
    };
    assert!(r.error.is_none(), "{}", String::from_utf8_lossy(bytes));
    let a = &r.actions[0];
    let cmds = a
        .commands
        .iter()
        .map(|c| (c.kind, c.terminations[0].text.to_owned()))
        .collect();
    let local = a
        .commands
        .iter()
        .find_map(|c| c.streams.first()?.local.first().cloned())
        .map(|g| {
            msg.sdp(&g)
                .unwrap()
                .endpoints("0.0.0.0".parse().unwrap())
                .unwrap()[0]
                .addr
        });
    (a.context, cmds, local)
}

fn error_code(bytes: &[u8]) -> u16 {
    let msg = parse(bytes).unwrap();
    let Some(Item::Reply(r)) = msg.items().first() else {
        panic!("not a reply");
    };
    r.error.as_ref().expect("an error reply").code
}

fn events(g: &mut Gateway) -> Vec<MgEvent> {
    std::iter::from_fn(|| g.poll_event()).collect()
}

#[test]
fn the_service_change_is_a_restart_on_root_and_its_reply_announces_the_gateway() {
    let mut g = gateway((4000, 4099));
    let sc = g.service_change().to_vec();
    let msg = parse(&sc).unwrap();
    assert_eq!(msg.mid().text, "<mg1.corp1.example>");
    let cmd = msg.commands().next().unwrap();
    assert_eq!(cmd.kind, CommandKind::ServiceChange);
    assert!(cmd.terminations[0].is_root());
    assert_eq!(cmd.service_change.as_ref().unwrap().method, Some("Restart"));
    assert_eq!(msg.items()[0].id(), Some(41));
    // A reply to another transaction announces nothing.
    let other = b"MEGACO/1 [127.0.0.91]:29603\nReply = 40 { Context = - { ServiceChange = ROOT { Services { Version = 1 } } } }\n";
    assert_eq!(g.handle(other), None);
    assert!(!g.registered());
    let ok = b"MEGACO/1 [127.0.0.91]:29603\nReply = 41 { Context = - { ServiceChange = ROOT { Services { Version = 1 } } } }\n";
    assert_eq!(g.handle(ok), None);
    assert!(g.registered());
    assert_eq!(events(&mut g), [MgEvent::Registered { version: 1 }]);

    let mut refused = gateway((4000, 4099));
    let err = pinhole_h248::error_reply(1, "[127.0.0.91]:29603", 41, 403, "No");
    assert_eq!(refused.handle(&err), None);
    assert!(!refused.registered());
    assert_eq!(events(&mut refused), [MgEvent::Refused { code: 403 }]);
}

#[test]
fn the_mgc_ladder_in_pretty_text_adds_modifies_and_subtracts() {
    let mut g = gateway((4001, 4099));
    let r = g.handle(&add_pretty(10, None)).unwrap();
    assert!(r.starts_with(b"MEGACO/1 <mg1.corp1.example>\r\nReply = 10 {"));
    let (ctx, cmds, local) = reply_of(&r);
    assert_eq!(ctx, ContextId::Id(1));
    assert_eq!(cmds, [(CommandKind::Add, "rtp/1".to_owned())]);
    // The first even port of the range: an RTP/RTCP pair.
    assert_eq!(local, Some("10.1.0.10:4002".parse().unwrap()));
    assert_eq!(g.terminations()[0].remote, None);

    // A second call gets its own context, termination and pair, and its
    // Remote at once.
    let r = g
        .handle(&add_pretty(11, Some("203.0.113.10:30000")))
        .unwrap();
    let (ctx, cmds, local) = reply_of(&r);
    assert_eq!(ctx, ContextId::Id(2));
    assert_eq!(cmds[0].1, "rtp/2");
    assert_eq!(local, Some("10.1.0.10:4004".parse().unwrap()));
    assert_eq!(
        g.terminations()[1].remote,
        Some("203.0.113.10:30000".parse().unwrap())
    );

    let modify = request(
        12,
        "1",
        "Modify = rtp/1 {\n Media {\n Remote {\nv=0\nc=IN IP4 203.0.113.10\nm=audio 30002 RTP/AVP 0\n }\n }\n }",
    );
    let (ctx, cmds, _) = reply_of(&g.handle(&modify).unwrap());
    assert_eq!(
        (ctx, cmds),
        (
            ContextId::Id(1),
            vec![(CommandKind::Modify, "rtp/1".to_owned())]
        )
    );
    assert_eq!(
        g.terminations()[0].remote,
        Some("203.0.113.10:30002".parse().unwrap())
    );
    assert_eq!(g.sending().count(), 2);

    let (_, cmds, _) = reply_of(&g.handle(&request(13, "1", "Subtract = rtp/1")).unwrap());
    assert_eq!(cmds, [(CommandKind::Subtract, "rtp/1".to_owned())]);
    // `*` subtracts every termination of the context, each named.
    let (_, cmds, _) = reply_of(&g.handle(&request(14, "2", "Subtract = *")).unwrap());
    assert_eq!(cmds, [(CommandKind::Subtract, "rtp/2".to_owned())]);
    assert!(g.terminations().iter().all(|t| t.subtracted));
    assert_eq!(g.sending().count(), 0);
    let ev = events(&mut g);
    let (l1, l2) = (
        "10.1.0.10:4002".parse().unwrap(),
        "10.1.0.10:4004".parse().unwrap(),
    );
    assert_eq!(
        ev,
        [
            MgEvent::Added {
                call: 1,
                context: 1,
                termination: "rtp/1".into(),
                media: l1,
                remote: None
            },
            MgEvent::Added {
                call: 2,
                context: 2,
                termination: "rtp/2".into(),
                media: l2,
                remote: Some("203.0.113.10:30000".parse().unwrap())
            },
            MgEvent::Modified {
                call: 1,
                context: 1,
                termination: "rtp/1".into(),
                remote: Some("203.0.113.10:30002".parse().unwrap())
            },
            MgEvent::Subtracted {
                call: 1,
                context: 1,
                termination: "rtp/1".into(),
                request: "rtp/1".into()
            },
            MgEvent::Subtracted {
                call: 2,
                context: 2,
                termination: "rtp/2".into(),
                request: "*".into()
            },
        ]
    );
    // The context is gone with its last termination.
    assert_eq!(
        error_code(&g.handle(&request(15, "2", "Subtract = *")).unwrap()),
        411
    );
}

#[test]
fn a_compact_request_gets_a_compact_reply_that_parses() {
    let mut g = gateway((4000, 4099));
    let add = b"!/1 [127.0.0.91]:29603\nT=20{C=${A=${M{O{MO=SR},L{\nv=0\nc=IN IP4 $\nm=audio $ RTP/AVP 0\n}}}}}\n";
    let r = g.handle(add).unwrap();
    assert!(
        r.starts_with(b"!/1 <mg1.corp1.example>\nP=20{C=1{A=rtp/1{M{L{"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    let (ctx, cmds, local) = reply_of(&r);
    assert_eq!((ctx, cmds[0].0), (ContextId::Id(1), CommandKind::Add));
    assert_eq!(local, Some("10.1.0.10:4000".parse().unwrap()));
    let sub = b"!/1 [127.0.0.91]:29603\nT=21{C=1{S=*}}\n";
    let r = g.handle(sub).unwrap();
    assert_eq!(r, b"!/1 <mg1.corp1.example>\nP=21{C=1{S=rtp/1}}\n");
    let bad = b"!/1 [127.0.0.91]:29603\nT=22{C=1{S=*}}\n";
    let r = g.handle(bad).unwrap();
    assert!(r.starts_with(b"!/1 <mg1.corp1.example>\nP=22{ER=411"));
    assert_eq!(error_code(&r), 411);
}

#[test]
fn a_repeated_request_gets_the_same_reply_and_changes_nothing() {
    let mut g = gateway((4000, 4099));
    let first = g.handle(&add_pretty(30, None)).unwrap();
    let again = g.handle(&add_pretty(30, None)).unwrap();
    assert_eq!(first, again);
    assert_eq!(g.terminations().len(), 1);
    assert_eq!(events(&mut g).len(), 1);
}

#[test]
fn refused_requests_change_nothing() {
    let mut g = gateway((4000, 4003));
    reply_of(&g.handle(&add_pretty(1, None)).unwrap());
    reply_of(&g.handle(&add_pretty(2, None)).unwrap());
    events(&mut g);
    // Two pairs in 4000-4003: the third Add finds no RTP port.
    assert_eq!(error_code(&g.handle(&add_pretty(3, None)).unwrap()), 510);
    // Unknown termination, unknown context, a command not implemented.
    assert_eq!(
        error_code(&g.handle(&request(4, "1", "Modify = rtp/9")).unwrap()),
        430
    );
    assert_eq!(
        error_code(&g.handle(&request(5, "7", "Subtract = rtp/1")).unwrap()),
        411
    );
    assert_eq!(
        error_code(
            &g.handle(&request(
                6,
                "1",
                "Notify = rtp/1 { ObservedEvents = 1 { g/sc } }"
            ))
            .unwrap()
        ),
        501
    );
    // A Remote with no address to send to.
    let bad = request(
        7,
        "1",
        "Modify = rtp/1 { Media { Remote {\nv=0\nm=audio 0 RTP/AVP 0\n } } }",
    );
    assert_eq!(error_code(&g.handle(&bad).unwrap()), 441);
    // A Subtract whose second command fails subtracts nothing.
    let two = request(8, "1", "Subtract = rtp/1, Subtract = rtp/9");
    assert_eq!(error_code(&g.handle(&two).unwrap()), 430);
    assert!(g.terminations().iter().all(|t| !t.subtracted));
    assert_eq!(g.terminations().len(), 2);
    assert!(events(&mut g).is_empty());
    // Not H.248 at all: no answer.
    assert_eq!(g.handle(b"hello"), None);
}

#[test]
fn audit_value_of_root_and_a_live_termination_is_answered() {
    let mut g = gateway((4000, 4099));
    reply_of(&g.handle(&add_pretty(1, None)).unwrap());
    let (ctx, cmds, _) = reply_of(
        &g.handle(&request(2, "-", "AuditValue = ROOT { Audit { } }"))
            .unwrap(),
    );
    assert_eq!(
        (ctx, cmds),
        (
            ContextId::Null,
            vec![(CommandKind::AuditValue, "ROOT".to_owned())]
        )
    );
    reply_of(
        &g.handle(&request(3, "1", "AuditValue = rtp/1 { Audit { } }"))
            .unwrap(),
    );
    assert_eq!(
        error_code(
            &g.handle(&request(4, "1", "AuditValue = rtp/7 { Audit { } }"))
                .unwrap()
        ),
        430
    );
}

#[test]
fn the_result_line_reads_like_the_megaco_mg_escripts() {
    let mut g = gateway((4000, 4099));
    g.handle(&add_pretty(1, Some("203.0.113.10:30000")))
        .unwrap();
    let t = g.termination_at("10.1.0.10:4000".parse().unwrap()).unwrap();
    let from: SocketAddr = "203.0.113.10:30000".parse().unwrap();
    t.receive(from, &crate::rtp::packet(7, 1));
    t.receive(from, b"junk");
    t.sent.add(&crate::rtp::packet(8, 1));
    assert_eq!(
        g.terminations()[0].result_line(),
        "RESULT call=1 context=1 termination=rtp/1 rtp_sent=1 rtp_received=1 rtp_bad=1 \
         remote=203.0.113.10:30000 from=203.0.113.10:30000 subtracted=false"
    );
    assert!(
        g.termination_at("10.1.0.10:4002".parse().unwrap())
            .is_none()
    );
}
