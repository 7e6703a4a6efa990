//! Property tests: no input panics; generated valid messages parse to what
//! was generated; Content-Length fixes re-parse; a stream of generated
//! messages cut at random points frames back into the same messages.

use std::ops::Range;

use pinhole_core::patch::Patch;
use pinhole_sip::{
    Frame, HeaderName, Message, Uri, Via, fix_content_length, frame, fuzzing, name_addrs,
};
use proptest::prelude::*;
use proptest::sample::select;

/// One generated header: the name as written, what it should parse as, and
/// its value as written (folds included, no outer white space).
#[derive(Clone, Debug)]
struct GenHeader {
    name: String,
    kind: HeaderName,
    sep: &'static str,
    value: String,
}

#[derive(Clone, Debug)]
struct GenMessage {
    method: Option<String>,
    status: u16,
    /// Line end per line (start line first); folds use their line's.
    ends: Vec<&'static str>,
    headers: Vec<GenHeader>,
    branches: Vec<String>,
    body: Vec<u8>,
    content_length: Option<&'static str>,
    call_id: String,
    cseq: (u32, String),
    from_tag: String,
}

impl GenMessage {
    fn end(&self, i: usize) -> &'static str {
        self.ends[i % self.ends.len()]
    }

    fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match &self.method {
            Some(m) => out.extend_from_slice(format!("{m} sip:bob@example.com SIP/2.0").as_bytes()),
            None => {
                out.extend_from_slice(format!("SIP/2.0 {} Some Reason", self.status).as_bytes())
            }
        }
        out.extend_from_slice(self.end(0).as_bytes());
        for (i, h) in self.all_headers().iter().enumerate() {
            let le = self.end(i + 1);
            let value = h.value.replace("\u{1}", le);
            out.extend_from_slice(format!("{}{}{value}{le}", h.name, h.sep).as_bytes());
        }
        out.extend_from_slice(self.end(self.headers.len() + 2).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// The headers including Content-Length, which goes last.
    fn all_headers(&self) -> Vec<GenHeader> {
        let mut all = self.headers.clone();
        if let Some(name) = self.content_length {
            all.push(GenHeader {
                name: name.into(),
                kind: HeaderName::ContentLength,
                sep: ": ",
                value: self.body.len().to_string(),
            });
        }
        all
    }
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,11}"
}

/// Writes `long` in one of its spellings.
fn spelled(long: &'static str, compact: Option<&'static str>) -> impl Strategy<Value = String> {
    let mut forms = vec![
        long.to_string(),
        long.to_ascii_lowercase(),
        long.to_ascii_uppercase(),
    ];
    if let Some(c) = compact {
        forms.push(c.to_string());
        forms.push(c.to_ascii_uppercase());
    }
    select(forms)
}

/// Replaces some single spaces with a fold (`\u{1}` stands for the line
/// end, which depends on the line) followed by SP or HTAB.
fn folded(value: String) -> impl Strategy<Value = String> {
    let spaces = value.matches(' ').count();
    proptest::collection::vec((any::<bool>(), select(vec![" ", "\t", "   "])), spaces).prop_map(
        move |choices| {
            let mut out = String::new();
            let mut it = choices.iter();
            for c in value.chars() {
                match (c, it.next_if_space(c)) {
                    (' ', Some((true, ws))) => {
                        out.push('\u{1}');
                        out.push_str(ws);
                    }
                    _ => out.push(c),
                }
            }
            out
        },
    )
}

trait NextIfSpace<'a> {
    fn next_if_space(&mut self, c: char) -> Option<&'a (bool, &'static str)>;
}

impl<'a, I: Iterator<Item = &'a (bool, &'static str)>> NextIfSpace<'a> for I {
    fn next_if_space(&mut self, c: char) -> Option<&'a (bool, &'static str)> {
        if c == ' ' { self.next() } else { None }
    }
}

fn header(
    name: impl Strategy<Value = String>,
    kind: HeaderName,
    value: impl Strategy<Value = String>,
) -> impl Strategy<Value = GenHeader> {
    (
        name,
        select(vec![": ", ":", " : ", "\t:  "]),
        value.prop_flat_map(folded),
    )
        .prop_map(move |(name, sep, value)| GenHeader {
            name,
            kind,
            sep,
            value,
        })
}

fn message() -> impl Strategy<Value = GenMessage> {
    let method = prop_oneof![
        select(vec![
            "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE"
        ])
        .prop_map(String::from),
        token(),
    ];
    let ends = prop_oneof![
        Just(vec!["\r\n"]),
        Just(vec!["\n"]),
        proptest::collection::vec(select(vec!["\r\n", "\n"]), 1..8),
    ];
    let branches = proptest::collection::vec(token(), 1..4);
    (
        proptest::option::of(method),
        100u16..700,
        ends,
        branches,
        (token(), token(), any::<u32>(), token()),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::option::of(select(vec!["Content-Length", "content-length", "l", "L"])),
        proptest::collection::vec((token(), "[!-~]([ -~]{0,20}[!-~])?"), 0..3),
        any::<bool>(),
    )
        .prop_flat_map(
            |(
                method,
                status,
                ends,
                branches,
                (call, tag, seq, cmethod),
                body,
                cl,
                ext,
                split_via,
            )| {
                let cseq_method = method.clone().unwrap_or(cmethod);
                let vias: Vec<String> = branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        format!(
                            "SIP/2.0/UDP host{i}.example.com:{};branch=z9hG4bK{b}",
                            5060 + i
                        )
                    })
                    .collect();
                let mut hs: Vec<BoxedStrategy<GenHeader>> = Vec::new();
                if split_via {
                    for v in &vias {
                        hs.push(
                            header(spelled("Via", Some("v")), HeaderName::Via, Just(v.clone()))
                                .boxed(),
                        );
                    }
                } else {
                    hs.push(
                        header(
                            spelled("Via", Some("v")),
                            HeaderName::Via,
                            Just(vias.join(" , ")),
                        )
                        .boxed(),
                    );
                }
                hs.push(
                    header(
                        spelled("From", Some("f")),
                        HeaderName::From,
                        Just(format!("\"Alice A\" <sip:alice@example.com>;tag={tag}")),
                    )
                    .boxed(),
                );
                hs.push(
                    header(
                        spelled("To", Some("t")),
                        HeaderName::To,
                        Just("<sip:bob@example.com>".to_string()),
                    )
                    .boxed(),
                );
                hs.push(
                    header(
                        spelled("Call-ID", Some("i")),
                        HeaderName::CallId,
                        Just(format!("{call}@10.0.0.1")),
                    )
                    .boxed(),
                );
                hs.push(
                    header(
                        spelled("CSeq", None),
                        HeaderName::CSeq,
                        Just(format!("{seq} {cseq_method}")),
                    )
                    .boxed(),
                );
                hs.push(
                    header(
                        spelled("Max-Forwards", None),
                        HeaderName::MaxForwards,
                        Just("70".to_string()),
                    )
                    .boxed(),
                );
                hs.push(
                    header(
                        spelled("Content-Type", Some("c")),
                        HeaderName::ContentType,
                        Just("application/sdp".to_string()),
                    )
                    .boxed(),
                );
                for (n, v) in &ext {
                    hs.push(
                        header(Just(format!("X-{n}")), HeaderName::Other, Just(v.clone())).boxed(),
                    );
                }
                let call_id = format!("{call}@10.0.0.1");
                (
                    hs.prop_shuffle(),
                    Just((
                        method,
                        status,
                        ends,
                        branches,
                        body,
                        cl,
                        call_id,
                        (seq, cseq_method),
                        tag,
                    )),
                )
            },
        )
        .prop_map(
            |(
                headers,
                (method, status, ends, branches, body, content_length, call_id, cseq, from_tag),
            )| GenMessage {
                method,
                status,
                ends,
                headers,
                branches,
                body,
                content_length,
                call_id,
                cseq,
                from_tag,
            },
        )
}

fn check_parsed(g: &GenMessage, raw: &[u8]) -> Result<(), TestCaseError> {
    let m = Message::parse(raw).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    match &g.method {
        Some(method) => prop_assert_eq!(m.method(), Some(method.as_str())),
        None => prop_assert_eq!(m.status(), Some(g.status)),
    }
    let all = g.all_headers();
    prop_assert_eq!(m.headers().len(), all.len());
    for (i, (h, want)) in m.headers().iter().zip(&all).enumerate() {
        prop_assert_eq!(h.name, want.kind);
        prop_assert_eq!(&raw[h.name_span.clone()], want.name.as_bytes());
        let value = want.value.replace("\u{1}", g.end(i + 1));
        prop_assert_eq!(m.value(h), value.as_bytes());
    }
    prop_assert_eq!(m.call_id(), Some(g.call_id.as_bytes()));
    prop_assert_eq!(m.cseq(), Some((g.cseq.0, g.cseq.1.as_str())));
    prop_assert_eq!(m.from_tag(), Some(g.from_tag.as_bytes()));
    prop_assert_eq!(m.to_tag(), None);
    prop_assert_eq!(m.max_forwards(), Ok(Some(70)));
    prop_assert_eq!(&raw[m.body()], &g.body[..]);
    prop_assert!(m.trailing().is_empty());
    prop_assert_eq!(m.content_length(), g.content_length.map(|_| g.body.len()));
    prop_assert_eq!(m.line_ending(), g.end(0).as_bytes());
    let branches: Vec<&[u8]> = m
        .vias()
        .iter()
        .map(|v| &raw[v.branch.clone().unwrap()])
        .collect();
    // In header order (split Via headers were shuffled).
    let want: Vec<String> = all
        .iter()
        .filter(|h| h.kind == HeaderName::Via)
        .flat_map(|h| {
            h.value.split("branch=").skip(1).map(|b| {
                b.chars()
                    .take_while(|c| !matches!(c, ' ' | ',' | '\u{1}'))
                    .collect::<String>()
            })
        })
        .collect();
    prop_assert_eq!(want.len(), g.branches.len());
    prop_assert_eq!(
        branches,
        want.iter().map(String::as_bytes).collect::<Vec<_>>()
    );
    prop_assert_eq!(
        m.sdp_bodies().unwrap().len(),
        usize::from(!g.body.is_empty())
    );
    Ok(())
}

/// Arbitrary non-overlapping edits inside `body`.
fn body_edits() -> impl Strategy<Value = Vec<(u16, u16, Vec<u8>)>> {
    proptest::collection::vec(
        (
            any::<u16>(),
            0u16..20,
            proptest::collection::vec(any::<u8>(), 0..30),
        ),
        0..5,
    )
}

/// Records `edits` (made disjoint, inside `body`) in `p`; returns the body
/// they should produce, built by hand.
fn apply_edits(
    p: &mut Patch,
    raw: &[u8],
    body: Range<usize>,
    edits: &[(u16, u16, Vec<u8>)],
) -> Vec<u8> {
    let len = body.len();
    let mut spans: Vec<(usize, usize, &[u8])> = edits
        .iter()
        .map(|(at, n, with)| {
            let s = usize::from(*at) % (len + 1);
            (s, (s + usize::from(*n)).min(len), with.as_slice())
        })
        .collect();
    spans.sort_by_key(|&(s, e, _)| (s, e));
    let old = &raw[body.clone()];
    let mut out = Vec::new();
    let mut at = 0;
    for (s, e, with) in spans {
        // Skip edits overlapping the previous one, and a second insert at
        // the same point (its order would be the patch's business).
        if s < at || (s == at && at > 0 && s == e) {
            continue;
        }
        p.replace(body.start + s..body.start + e, with);
        out.extend_from_slice(&old[at..s]);
        out.extend_from_slice(with);
        at = e;
    }
    out.extend_from_slice(&old[at..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzzing::sip_parse(&data);
    }

    #[test]
    fn arbitrary_spans_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..200),
        a in 0usize..260,
        b in 0usize..260,
    ) {
        let _ = Uri::parse(&data, a..b);
        let _ = name_addrs(&data, a..b);
        let _ = Via::parse_value(&data, a..b);
        let _ = frame(&data);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        g in message(),
        muts in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut raw = g.render();
        for (at, byte, op) in muts {
            let i = usize::from(at) % (raw.len() + 1);
            match op {
                0 if i < raw.len() => raw[i] = byte,
                1 => raw.insert(i, byte),
                _ if i < raw.len() => { raw.remove(i); }
                _ => {}
            }
        }
        fuzzing::sip_parse(&raw);
    }

    #[test]
    fn generated_messages_parse_to_what_was_generated(g in message()) {
        let raw = g.render();
        check_parsed(&g, &raw)?;
    }

    #[test]
    fn content_length_fix_after_random_body_edits(g in message(), edits in body_edits()) {
        let raw = g.render();
        let m = Message::parse(&raw).unwrap();
        let body = m.body();
        let mut p = Patch::new();
        let new_body = apply_edits(&mut p, &raw, body.clone(), &edits);
        fix_content_length(&m, &mut p);
        let out = p.apply(&raw).unwrap();
        let again = Message::parse(&out).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&out[again.body()], &new_body[..]);
        if m.content_length().is_some() || new_body.len() != body.len() {
            prop_assert_eq!(again.content_length(), Some(new_body.len()));
        } else {
            prop_assert_eq!(again.content_length(), None);
        }
        // Every header but Content-Length is byte for byte the same.
        let before: Vec<&[u8]> = m.headers().iter().filter(|h| h.name != HeaderName::ContentLength).map(|h| &raw[h.line.clone()]).collect();
        let after: Vec<&[u8]> = again.headers().iter().filter(|h| h.name != HeaderName::ContentLength).map(|h| &out[h.line.clone()]).collect();
        prop_assert_eq!(before, after);
    }

    #[test]
    fn a_stream_cut_anywhere_frames_back_into_its_messages(
        msgs in proptest::collection::vec((message(), 0usize..3), 1..5),
        cuts in proptest::collection::vec(any::<u16>(), 0..12),
    ) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (mut g, keepalives) in msgs {
            g.content_length.get_or_insert("Content-Length");
            let raw = g.render();
            for _ in 0..keepalives {
                stream.extend_from_slice(b"\r\n\r\n");
            }
            stream.extend_from_slice(&raw);
            want.push(raw);
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| usize::from(c) % (stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut buffer = Vec::new();
        let mut got = Vec::new();
        let mut from = 0;
        for cut in cuts {
            buffer.extend_from_slice(&stream[from..cut]);
            from = cut;
            loop {
                match frame(&buffer).map_err(|e| TestCaseError::fail(format!("{e}")))? {
                    Some(Frame::Keepalive(n)) => { buffer.drain(..n); }
                    Some(Frame::Message(n)) => { got.push(buffer.drain(..n).collect::<Vec<u8>>()); }
                    None => break,
                }
            }
        }
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(got, want);
    }
}
