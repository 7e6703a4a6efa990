//! Every message of the corpus `h248/` folder (see the shared corpus
//! MANIFEST.md, section "H.248 / MEGACO"): the captured Ericsson-style
//! messages with their expected structure and SDP media, the RFC 3525
//! Appendix I examples (reflowed by the RFC formatter: they must read,
//! their broken SDP need not), and every H.248 datagram of the capture.

use std::net::SocketAddr;
use std::path::PathBuf;

use pinhole_h248::{Command, CommandKind, ContextId, Item, MediaRole, MidKind, parse, rewrite_all};
use pinhole_sdp::{Host, Sdp};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/h248")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Each stream of an SDP group as `kind host:port`, `$` for CHOOSE.
fn media_of(sdp: &Sdp<'_>) -> Vec<String> {
    sdp.media()
        .iter()
        .map(|m| {
            let c = m
                .connection
                .clone()
                .or_else(|| sdp.session_connection().cloned());
            let host = match c.map(|c| c.host) {
                Some(Host::Ip(ip)) => ip.to_string(),
                Some(Host::Fqdn(f)) => f.to_owned(),
                None => "-".to_owned(),
            };
            let port = if m.choose {
                "$".to_owned()
            } else {
                m.port.to_string()
            };
            format!("{} {host}:{port}", m.kind)
        })
        .collect()
}

/// One command: kind, termination, the media of each Local and of each
/// Remote group, and its role.
type Cmd = (
    CommandKind,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    MediaRole,
);

use CommandKind::{Add, AuditValue, Modify, Notify, Subtract};
use MediaRole as Role;

const IMSS: (MidKind, &str, Option<u16>) = (MidKind::Domain, "iMSS", None);
const MG: (MidKind, &str, Option<u16>) = (MidKind::Ip4, "10.23.1.42", Some(2944));

/// File, mId, reply?, transaction id, context, commands.
type Row = (
    &'static str,
    (MidKind, &'static str, Option<u16>),
    bool,
    u32,
    ContextId,
    &'static [Cmd],
);

const AUDIO_L: &str = "audio 10.23.1.52:16756";
const AUDIO_R: &str = "audio 10.35.60.100:15580";
const IMAGE_R0: &str = "image 10.35.60.100:0";

const WIKI: &[Row] = &[
    (
        "wiki-FAX-f1-AuditValue-null-ctx.megaco",
        IMSS,
        false,
        555282713,
        ContextId::Null,
        &[(AuditValue, "DS/1/5", &[], &[], Role::None)],
    ),
    (
        "wiki-FAX-f3-AuditValue-reply.megaco",
        MG,
        true,
        555282713,
        ContextId::Null,
        &[(AuditValue, "ds/1/5", &[], &[], Role::None)],
    ),
    (
        "wiki-FAX-f4-AuditValue-reply-ctx-all.megaco",
        MG,
        true,
        555282714,
        ContextId::All,
        &[(AuditValue, "ds/1/5", &[], &[], Role::None)],
    ),
    (
        "wiki-FAX-f21-Add-CHOOSE-RTP-wildcard.megaco",
        IMSS,
        false,
        555282723,
        ContextId::Choose,
        &[
            (Add, "DS/4/24", &[], &[], Role::None),
            (Add, "RTP/$", &["audio $:$", "image $:$"], &[], Role::None),
        ],
    ),
    (
        "wiki-FAX-f22-Add-reply-Local-sdp.megaco",
        MG,
        true,
        555282723,
        ContextId::Id(191),
        &[
            (Add, "ds/4/24", &[], &[], Role::None),
            (
                Add,
                "RTP/1727",
                &[AUDIO_L, "image 10.23.1.52:0"],
                &[],
                Role::Answer,
            ),
        ],
    ),
    (
        "wiki-FAX-f35-Modify-signal.megaco",
        IMSS,
        false,
        555282724,
        ContextId::Id(191),
        &[(Modify, "DS/4/24", &[], &[], Role::None)],
    ),
    (
        "wiki-FAX-f36-Modify-reply.megaco",
        MG,
        true,
        555282724,
        ContextId::Id(191),
        &[(Modify, "ds/4/24", &[], &[], Role::None)],
    ),
    (
        "wiki-FAX-f56-Modify-Local-Remote.megaco",
        IMSS,
        false,
        555282730,
        ContextId::Id(191),
        &[(
            Modify,
            "RTP/1727",
            &[AUDIO_L, "image 10.23.1.52:$"],
            &[AUDIO_R, IMAGE_R0],
            Role::Modify,
        )],
    ),
    (
        "wiki-FAX-f57-Modify-reply-Local-Remote.megaco",
        MG,
        true,
        555282730,
        ContextId::Id(191),
        &[(
            Modify,
            "RTP/1727",
            &[AUDIO_L, "image 10.23.1.52:0"],
            &[AUDIO_R],
            Role::Answer,
        )],
    ),
    (
        "wiki-FAX-f58-Modify-Remote.megaco",
        IMSS,
        false,
        555282731,
        ContextId::Id(191),
        &[(Modify, "RTP/1727", &[AUDIO_L], &[], Role::None)],
    ),
    (
        "wiki-FAX-f60-Modify-reply.megaco",
        MG,
        true,
        555282731,
        ContextId::Id(191),
        &[(Modify, "RTP/1727", &[AUDIO_L], &[], Role::Answer)],
    ),
    (
        "wiki-FAX-f170-Modify-to-T38.megaco",
        IMSS,
        false,
        555282732,
        ContextId::Id(191),
        &[(
            Modify,
            "RTP/1727",
            &[AUDIO_L, "image 10.23.1.52:$"],
            &[AUDIO_R, IMAGE_R0],
            Role::Modify,
        )],
    ),
    (
        "wiki-FAX-f171-Modify-reply-T38.megaco",
        MG,
        true,
        555282732,
        ContextId::Id(191),
        &[(
            Modify,
            "RTP/1727",
            &[AUDIO_L, "image 10.23.1.52:0"],
            &[AUDIO_R],
            Role::Answer,
        )],
    ),
    (
        "wiki-FAX-f174-Notify.megaco",
        MG,
        false,
        3989,
        ContextId::Id(191),
        &[(Notify, "ds/4/24", &[], &[], Role::None)],
    ),
    (
        "wiki-FAX-f175-Notify-reply.megaco",
        IMSS,
        true,
        3989,
        ContextId::Id(191),
        &[(Notify, "DS/4/24", &[], &[], Role::None)],
    ),
    (
        "wiki-FAX-f3097-Modify-RC.megaco",
        IMSS,
        false,
        555282749,
        ContextId::Id(191),
        &[(Modify, "RTP/1727", &["image 10.23.1.52:$"], &[], Role::None)],
    ),
    (
        "wiki-FAX-f3098-Modify-reply.megaco",
        MG,
        true,
        555282749,
        ContextId::Id(191),
        &[(
            Modify,
            "RTP/1727",
            &["image 10.23.1.52:16756"],
            &[],
            Role::Answer,
        )],
    ),
    (
        "wiki-FAX-f3121-Modify.megaco",
        IMSS,
        false,
        555282750,
        ContextId::Id(191),
        &[(
            Modify,
            "RTP/1727",
            &["audio 10.23.1.52:$", "image 10.23.1.52:16756"],
            &[],
            Role::None,
        )],
    ),
    (
        "wiki-FAX-f3122-Modify-reply.megaco",
        MG,
        true,
        555282750,
        ContextId::Id(191),
        &[(
            Modify,
            "RTP/1727",
            &[AUDIO_L, "image 10.23.1.52:16756"],
            &[],
            Role::Answer,
        )],
    ),
    (
        "wiki-FAX-f3146-Modify-back-to-audio.megaco",
        IMSS,
        false,
        555282751,
        ContextId::Id(191),
        &[(
            Modify,
            "RTP/1727",
            &[AUDIO_L, "image 10.23.1.52:16756"],
            &[AUDIO_R, IMAGE_R0],
            Role::Modify,
        )],
    ),
    (
        "wiki-FAX-f3147-Modify-reply.megaco",
        MG,
        true,
        555282751,
        ContextId::Id(191),
        &[(
            Modify,
            "RTP/1727",
            &[AUDIO_L, "image 10.23.1.52:16756"],
            &[AUDIO_R],
            Role::Answer,
        )],
    ),
    (
        "wiki-FAX-f7201-Subtract-two.megaco",
        IMSS,
        false,
        555282771,
        ContextId::Id(191),
        &[
            (Subtract, "RTP/1727", &[], &[], Role::Teardown),
            (Subtract, "DS/4/24", &[], &[], Role::Teardown),
        ],
    ),
    (
        "wiki-FAX-f7204-Subtract-reply-statistics.megaco",
        MG,
        true,
        555282771,
        ContextId::Id(191),
        &[
            (Subtract, "RTP/1727", &[], &[], Role::None),
            (Subtract, "ds/4/24", &[], &[], Role::None),
        ],
    ),
];

fn groups_media(m: &pinhole_h248::Message<'_>, c: &Command<'_>, local: bool) -> Vec<String> {
    c.streams
        .iter()
        .flat_map(|s| if local { &s.local } else { &s.remote })
        .flat_map(|g| {
            let sdp = m
                .sdp(g)
                .unwrap_or_else(|e| panic!("group {:?}: {e}", g.span));
            let media = media_of(&sdp);
            assert_eq!(media.len(), 1, "one stream per group");
            media
        })
        .collect()
}

#[test]
fn wiki_messages_read_with_their_media() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("wiki-") && n.ends_with(".megaco"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = WIKI.iter().map(|r| r.0.to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed, "every captured message is in the table");
    for &(file, (kind, host, port), is_reply, id, ctx, cmds) in WIKI {
        let d = read(file);
        let m = parse(&d).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(m.version(), 1, "{file}");
        assert_eq!(
            (m.mid().kind, m.mid().host, m.mid().port),
            (kind, host, port),
            "{file}"
        );
        assert_eq!(m.items().len(), 1, "{file}");
        let item = &m.items()[0];
        assert_eq!(item.id(), Some(id), "{file}");
        let actions = match item {
            Item::Request(r) if !is_reply => &r.actions,
            Item::Reply(r) if is_reply => {
                assert!(r.error.is_none() && !r.immediate_ack, "{file}");
                &r.actions
            }
            other => panic!("{file}: {other:?}"),
        };
        assert_eq!(actions.len(), 1, "{file}");
        assert_eq!(actions[0].context, ctx, "{file}");
        let got = &actions[0].commands;
        assert_eq!(got.len(), cmds.len(), "{file}");
        for (c, &(kind, term, local, remote, role)) in got.iter().zip(cmds) {
            assert_eq!(c.kind, kind, "{file}");
            assert_eq!(c.terminations.len(), 1, "{file}");
            assert_eq!(c.terminations[0].text, term, "{file}");
            assert_eq!(groups_media(&m, c, true), local, "{file} {term} Local");
            assert_eq!(groups_media(&m, c, false), remote, "{file} {term} Remote");
            assert_eq!(MediaRole::of(item, c), role, "{file} {term}");
        }
    }
}

#[test]
fn wiki_details() {
    // The audit of a termination that is not in context * fails with 435.
    let d = read("wiki-FAX-f4-AuditValue-reply-ctx-all.megaco");
    let m = parse(&d).unwrap();
    let Item::Reply(r) = &m.items()[0] else {
        panic!()
    };
    let e = r.actions[0].commands[0].error.as_ref().unwrap();
    assert_eq!(e.code, 435);
    assert_eq!(
        e.reason,
        Some("TerminationId_id_is_not_in_specified_Context")
    );
    // Stream 0 of the audit reply has a LocalControl and no SDP.
    let d = read("wiki-FAX-f3-AuditValue-reply.megaco");
    let m = parse(&d).unwrap();
    let Item::Reply(r) = &m.items()[0] else {
        panic!()
    };
    let s = &r.actions[0].commands[0].streams;
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].id, s[0].local.len(), s[0].remote.len()),
        (Some(0), 0, 0)
    );
    // The first group of f21 starts right after `L{` with an LF-only line;
    // the groups of one descriptor touch, and the last one ends before `}`.
    let d = read("wiki-FAX-f21-Add-CHOOSE-RTP-wildcard.megaco");
    let m = parse(&d).unwrap();
    let Item::Request(r) = &m.items()[0] else {
        panic!()
    };
    let g = &r.actions[0].commands[1].streams[0].local;
    assert_eq!(d[g[0].span.start - 2..g[0].span.start].to_vec(), b"L{");
    assert_eq!(g[0].span.end, g[1].span.start);
    assert!(d[g[0].span.clone()].starts_with(b"v=0\r\nc=IN IP4 $\r\n"));
    assert_eq!(&d[g[1].span.end..g[1].span.end + 1], b"}");
    // f3121's empty Remote holds no group.
    let d = read("wiki-FAX-f3121-Modify.megaco");
    let m = parse(&d).unwrap();
    let Item::Request(r) = &m.items()[0] else {
        panic!()
    };
    let s = &r.actions[0].commands[0].streams;
    assert_eq!((s.len(), s[0].id, s[0].remote.len()), (1, None, 0));
}

#[test]
fn wiki_rewrite_all_keeps_everything_outside_sdp() {
    let to: SocketAddr = "203.0.113.10:40000".parse().unwrap();
    for &(file, .., cmds) in WIKI {
        let d = read(file);
        let with_sdp = cmds.iter().any(|c| !c.2.is_empty() || !c.3.is_empty());
        let Ok(out) = rewrite_all(&d, to) else {
            assert!(!with_sdp, "{file}");
            continue;
        };
        assert!(with_sdp, "{file}");
        let (a, b) = (parse(&d).unwrap(), parse(&out).unwrap());
        let (ga, gb): (Vec<_>, Vec<_>) = (a.groups().collect(), b.groups().collect());
        assert_eq!(ga.len(), gb.len(), "{file}");
        let (mut i, mut j) = (0, 0);
        for (x, y) in ga.iter().zip(&gb) {
            assert_eq!(d[i..x.span.start], out[j..y.span.start], "{file}");
            (i, j) = (x.span.end, y.span.end);
            // Every enabled stream of the group now points at the relay.
            let sdp = b.sdp(y).unwrap();
            for m in sdp.media().iter().filter(|m| !m.is_disabled()) {
                let ep = sdp.endpoint(m, "192.0.2.1".parse().unwrap()).unwrap();
                assert_eq!(ep.addr.ip(), to.ip(), "{file}");
            }
        }
        assert_eq!(d[i..], out[j..], "{file}");
    }
}

/// The RFC 3525 Appendix I examples: reflowed, not wire-exact. Every one
/// reads; the SDP of those whose Local/Remote kept one line per SDP line
/// (none did) would read too. Expected per file: transaction id and the
/// number of commands and SDP groups.
#[test]
fn rfc_examples_read() {
    let table: &[(&str, u32, usize, usize)] = &[
        ("rfc3525-appI-T9998-request-MG1-to-MGC.megaco", 9998, 1, 0),
        ("rfc3525-appI-T9998-reply-MGC-to-MG1.megaco", 9998, 1, 0),
        ("rfc3525-appI-T9999-request-MGC-to-MG1.megaco", 9999, 1, 0),
        ("rfc3525-appI-T10000-request-MG1-to-MGC.megaco", 10000, 1, 0),
        ("rfc3525-appI-T10000-reply-MGC-to-MG1.megaco", 10000, 1, 0),
        ("rfc3525-appI-T10001-reply-MG1-to-MGC.megaco", 10001, 1, 0),
        ("rfc3525-appI-T10002-request-MG1-to-MGC.megaco", 10002, 1, 0),
        ("rfc3525-appI-T10002-reply-MGC-to-MG1.megaco", 10002, 1, 0),
        ("rfc3525-appI-T10003-request-MGC-to-MG1.megaco", 10003, 2, 1),
        ("rfc3525-appI-T10003-reply-MG1-to-MGC.megaco", 10003, 2, 1),
        ("rfc3525-appI-T10005-request-MGC-to-MG1.megaco", 10005, 2, 1),
        ("rfc3525-appI-T10005-reply-MG1-to-MGC.megaco", 10005, 2, 0),
        ("rfc3525-appI-T10006-reply-MG1-to-MGC.megaco", 10006, 2, 0),
        ("rfc3525-appI-T50003-reply-MG2-to-MGC.megaco", 50003, 2, 1),
        ("rfc3525-appI-T50005-request-MG2-to-MGC.megaco", 50005, 1, 0),
        ("rfc3525-appI-T50005-reply-MGC-to-MG2.megaco", 50005, 1, 0),
        ("rfc3525-appI-T50006-request-MGC-to-MG2.megaco", 50006, 1, 0),
        ("rfc3525-appI-T50007-request-MGC-to-MG2.megaco", 50007, 1, 0),
        ("rfc3525-appI-T50008-request-MG2-to-MGC.megaco", 50008, 1, 0),
        ("rfc3525-appI-T50008-reply-MGC-to-MG2.megaco", 50008, 1, 0),
        ("rfc3525-appI-T50009-request-MGC-to-MG2.megaco", 50009, 2, 0),
    ];
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rfc3525-"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = table.iter().map(|r| r.0.to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed);
    for &(file, id, commands, groups) in table {
        let d = read(file);
        let m = parse(&d).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(m.items().len(), 1, "{file}");
        assert_eq!(m.items()[0].id(), Some(id), "{file}");
        assert_eq!(m.commands().count(), commands, "{file}");
        assert_eq!(m.groups().count(), groups, "{file}");
        assert_eq!(
            m.mid().port.is_none(),
            file.contains("T9998-request"),
            "{file}"
        );
        for g in m.groups() {
            // Reflowed SDP: several SDP lines on one printed line. Where it
            // reads, every `m=` line starting a line is a stream found.
            let text = &d[g.span.clone()];
            let m_lines = text
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"m="))
                .count();
            match m.sdp(g) {
                Ok(sdp) => assert_eq!(sdp.media().len(), m_lines, "{file}"),
                Err(e) => assert!(e.line().is_some(), "{file}: {e}"),
            }
        }
    }
    // The ServiceChange of T9998 and its reply.
    let d = read("rfc3525-appI-T9998-request-MG1-to-MGC.megaco");
    let m = parse(&d).unwrap();
    let sc = m.commands().next().unwrap().service_change.clone().unwrap();
    assert_eq!(sc.method, Some("Restart"));
    assert_eq!(sc.profile, Some("ResGW/1"));
    let (addr, span) = sc.address.unwrap();
    assert_eq!((addr, &d[span]), ("55555", &b"55555"[..]));
    assert!(m.commands().next().unwrap().terminations[0].is_root());
}

/// The H.248 datagrams of the capture: UDP payloads to or from port 2944
/// or 2945. tshark counts 130 megaco frames (MANIFEST.md).
#[test]
fn capture_datagrams_all_parse() {
    let bytes = std::fs::read(dir().join("pcap/wiki-FAX-Call-t38-CA-TDM-SIP-FB-1.pcap")).unwrap();
    let cap = pinhole_capture::read(&bytes).unwrap();
    let (mut datagrams, mut groups, mut answers, mut offers) = (0, 0, 0, 0);
    for u in &cap.units {
        let port = |p: u16| p == 2944 || p == 2945;
        if u.transport != pinhole_capture::Transport::Udp
            || !(port(u.src.port()) || port(u.dst.port()))
        {
            continue;
        }
        let m = parse(&u.payload).unwrap_or_else(|e| panic!("frame {}: {e}", u.frame));
        datagrams += 1;
        for g in m.groups() {
            let sdp = m
                .sdp(g)
                .unwrap_or_else(|e| panic!("frame {}: group {:?}: {e}", u.frame, g.span));
            assert!(!sdp.media().is_empty(), "frame {}", u.frame);
            groups += 1;
        }
        for item in m.items() {
            if let Item::Request(r) = item {
                offers += r
                    .actions
                    .iter()
                    .flat_map(|a| &a.commands)
                    .filter(|c| MediaRole::of(item, c) == MediaRole::Modify)
                    .count();
            }
            if let Item::Reply(r) = item {
                answers += r
                    .actions
                    .iter()
                    .flat_map(|a| &a.commands)
                    .filter(|c| MediaRole::of(item, c) == MediaRole::Answer)
                    .count();
            }
        }
    }
    eprintln!("{datagrams} datagrams, {groups} SDP groups, {offers} modifies, {answers} answers");
    assert_eq!(datagrams, 130);
    // The wiki files hold every frame with SDP: 33 groups, the Modify
    // requests with a Remote (f56, f170, f3146) and the replies with a
    // Local (f22, f57, f60, f171, f3098, f3122, f3147).
    assert_eq!((groups, offers, answers), (33, 3, 7));
}

/// Each `wiki-FAX-f<N>-…` file is the UDP payload of frame N of the
/// capture, byte for byte.
#[test]
fn wiki_files_are_the_capture_frames() {
    let bytes = std::fs::read(dir().join("pcap/wiki-FAX-Call-t38-CA-TDM-SIP-FB-1.pcap")).unwrap();
    let cap = pinhole_capture::read(&bytes).unwrap();
    for &(file, ..) in WIKI {
        let n: u64 = file["wiki-FAX-f".len()..]
            .split('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let u = cap
            .units
            .iter()
            .find(|u| u.frame == n)
            .unwrap_or_else(|| panic!("{file}"));
        assert_eq!(u.payload, read(file), "{file}");
    }
}
