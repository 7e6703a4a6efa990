//! `pinhole inspect FILE`: decodes one message and prints it as one JSON
//! line: Pinhole's control messages (one STUN-framed datagram, as raw bytes
//! or as a hex dump), SIP (`crate::sip`), MGCP (`crate::mgcp`) and H.248
//! text ([`h248`], one line per transaction, reply, pending or ack) and
//! H.323 (`crate::h323`: TPKT frames, or a RAS datagram in a `.ras` file).

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use pinhole_core::wire::{self, Class, Message, Method, RtcpMode};
use serde_json::{Value, json};

/// Largest input read.
const MAX_INPUT: u64 = 256 << 20;

/// Reads `path` (`-` for stdin), decodes it and prints one JSON line;
/// `Ok(true)` when it decoded.
pub(crate) fn run(path: &Path) -> anyhow::Result<bool> {
    let raw = read(path)?;
    if crate::capture::is_capture(&raw) {
        let s = crate::capture::inspect(&raw, &mut std::io::stdout().lock())
            .with_context(|| format!("{}", path.display()))?;
        eprintln!(
            "{}: {} frames, {} messages ({} with errors), {} other payloads",
            path.display(),
            s.frames,
            s.messages,
            s.errors,
            s.other
        );
        return Ok(true);
    }
    if path.extension().is_some_and(|e| e == "ras") {
        let v = crate::h323::inspect_ras(&raw);
        println!("{v}");
        return Ok(v["error"].is_null());
    }
    if crate::h323::looks_like_tpkt(&raw) {
        let lines = crate::h323::inspect(&raw);
        for v in &lines {
            println!("{v}");
        }
        return Ok(lines.iter().all(|v| v["error"].is_null()));
    }
    if h248::looks_like_h248(&raw) {
        let lines = h248::inspect(&raw);
        for v in &lines {
            println!("{v}");
        }
        return Ok(lines.iter().all(|v| v["error"].is_null()));
    }
    // Before the hex-dump test: `200 262662134` is all hex digits.
    if crate::mgcp::looks_like_mgcp(&raw, true) && !crate::sip::looks_like_sip(&raw) {
        let lines = crate::mgcp::inspect(&raw);
        for v in &lines {
            println!("{v}");
        }
        return Ok(lines.iter().all(|v| v["error"].is_null()));
    }
    let bytes = unhex(&raw).unwrap_or(raw);
    let v = inspect(&bytes);
    let ok = v["error"].is_null();
    println!("{v}");
    Ok(ok)
}

/// `pinhole rewrite --to ADDR:PORT FILE`: prints the message with every
/// media address moved to ADDR and consecutive ports from PORT.
pub(crate) fn rewrite(path: &Path, to: std::net::SocketAddr) -> anyhow::Result<bool> {
    use std::io::Write as _;
    let raw = read(path)?;
    let result = if path.extension().is_some_and(|e| e == "ras") {
        crate::h323::rewrite(&raw, to, true)
    } else if crate::h323::looks_like_tpkt(&raw) {
        crate::h323::rewrite(&raw, to, false)
    } else if h248::looks_like_h248(&raw) {
        pinhole_h248::rewrite_all(&raw, to).map_err(|e| e.to_string())
    } else if crate::sip::looks_like_sip(&raw) {
        crate::sip::rewrite(&raw, to)
    } else if crate::mgcp::looks_like_mgcp(&raw, true) {
        crate::mgcp::rewrite(&raw, to)
    } else {
        anyhow::bail!(
            "{}: neither a SIP message nor an MGCP datagram nor an H.248 message nor H.323 (TPKT frames, or RAS in a .ras file)",
            path.display()
        );
    };
    match result {
        Ok(out) => {
            std::io::stdout().write_all(&out)?;
            Ok(true)
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            Ok(false)
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut raw = Vec::new();
    if path == Path::new("-") {
        std::io::stdin().take(MAX_INPUT).read_to_end(&mut raw)?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?
            .take(MAX_INPUT)
            .read_to_end(&mut raw)?;
    }
    Ok(raw)
}

/// The bytes of a hex dump (whitespace, `:` and a leading `0x` allowed), or
/// `None` if `raw` is not one.
pub(crate) fn unhex(raw: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(raw).ok()?;
    let digits: Vec<u8> = text
        .split_whitespace()
        .map(|w| w.strip_prefix("0x").unwrap_or(w))
        .flat_map(|w| w.bytes().filter(|b| *b != b':'))
        .collect();
    if digits.is_empty()
        || !digits.len().is_multiple_of(2)
        || !digits.iter().all(u8::is_ascii_hexdigit)
    {
        return None;
    }
    let val = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    digits
        .chunks_exact(2)
        .map(|p| Some(val(p[0])? << 4 | val(p[1])?))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Binding => "Binding",
        Method::Register => "Registration",
        Method::Cmph => "CMPH",
        _ => "unknown method",
    }
}

fn class_name(c: Class) -> &'static str {
    match c {
        Class::Request => "request",
        Class::Indication => "indication",
        Class::Success => "success response",
        Class::Error => "error response",
    }
}

/// The JSON description of one datagram.
pub(crate) fn inspect(bytes: &[u8]) -> Value {
    // A STUN magic cookie is enough to try: a truncated or damaged control
    // message gets a decode error rather than "not control".
    let cookie = bytes.get(4..8) == Some(&[0x21, 0x12, 0xa4, 0x42][..]);
    if !wire::is_control(bytes) && !cookie {
        if crate::sip::looks_like_sip(bytes) {
            return crate::sip::inspect(bytes);
        }
        return json!({
            "protocol": null,
            "kind": null,
            "length": bytes.len(),
            "error": "neither a Pinhole control message (STUN-framed) nor SIP nor MGCP nor H.248",
        });
    }
    let m = match Message::decode(bytes) {
        Ok(m) => m,
        Err(e) => {
            return json!({
                "protocol": "pinhole-control",
                "kind": null,
                "length": bytes.len(),
                "error": e.to_string(),
                "error_kind": e.kind(),
            });
        }
    };
    let rtcp = m.rtcp_mode().map(|r| match r {
        RtcpMode::Pair => "pair",
        RtcpMode::Mux => "mux",
        RtcpMode::None => "none",
    });
    json!({
        "protocol": "pinhole-control",
        "kind": format!("{} {}", method_name(m.method()), class_name(m.class())),
        "length": bytes.len(),
        "transaction_id": hex(&m.transaction_id().0),
        "username": m.username(),
        "signaling_protocol": m.protocol().map(|p| p.name()),
        "domains": m.domains().collect::<Vec<_>>(),
        "leg_key": m.leg_key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "rtcp_mode": rtcp,
        "lifetime": m.lifetime(),
        "nonce": m.nonce().map(hex),
        "software": m.software(),
        "xor_mapped_address": m.xor_mapped_address().map(|a| a.to_string()),
        "xor_relayed_address": m.xor_relayed_address().map(|a| a.to_string()),
        "error_code": m.error_code().map(|(c, r)| json!({"code": c.0, "reason": r})),
        "unknown_required": m.unknown_required(),
        "integrity": m.has_integrity(),
        "fingerprint": m.has_fingerprint(),
        "error": null,
    })
}

/// `pinhole inspect` and `pinhole rewrite` for H.248 text (RFC 3525 Annex
/// B): one JSON line per transaction, reply, pending and ack of a message.
pub(crate) mod h248 {
    use pinhole_h248::{Action, ContextId, ErrorDescriptor, Item, MediaRole, Message};
    use serde_json::{Value, json};

    /// The H.248 ports (IANA `megaco-h248`): 2944 for text, 2945 for binary
    /// (some gateways send text there too).
    pub(crate) const PORTS: [u16; 2] = [2944, 2945];

    /// True when the message starts with `MEGACO/` or `!/` (any letter
    /// case), after any white space and `;` comments (RFC 3525 Annex B
    /// `LWSP`), as the MPR's `;pinhole-mg=` line puts one before it.
    pub(crate) fn looks_like_h248(bytes: &[u8]) -> bool {
        let mut rest = bytes;
        loop {
            match rest.split_first() {
                Some((b' ' | b'\t' | b'\r' | b'\n', tail)) => rest = tail,
                Some((b';', _)) => {
                    let end = rest
                        .iter()
                        .position(|&b| b == b'\r' || b == b'\n')
                        .unwrap_or(rest.len());
                    rest = rest.get(end..).unwrap_or_default();
                }
                _ => break,
            }
        }
        rest.get(..7)
            .is_some_and(|h| h.eq_ignore_ascii_case(b"MEGACO/"))
            || rest.starts_with(b"!/")
    }

    /// One JSON object per transaction, reply, pending and ack of the
    /// message (one for a message whose body is an error descriptor); a
    /// message that does not parse gives one object carrying the error.
    pub(crate) fn inspect(bytes: &[u8]) -> Vec<Value> {
        let m = match pinhole_h248::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                return vec![json!({
                    "protocol": "h248", "kind": null, "transaction": null, "context": null,
                    "mid": null, "media": [], "error": e.to_string(), "error_kind": e.kind(),
                })];
            }
        };
        if m.items().is_empty() {
            return vec![json!({
                "protocol": "h248",
                "kind": "Error",
                "mid": m.mid().text,
                "version": m.version(),
                "transaction": null,
                "context": null,
                "error_descriptor": m.error().map(error_descriptor),
                "media": [],
                "error": null,
            })];
        }
        m.items().iter().map(|item| describe(&m, item)).collect()
    }

    fn context(c: ContextId) -> Value {
        match c {
            ContextId::Null => json!("-"),
            ContextId::Choose => json!("$"),
            ContextId::All => json!("*"),
            ContextId::Id(n) => json!(n),
        }
    }

    fn error_descriptor(e: &ErrorDescriptor<'_>) -> Value {
        json!({"code": e.code, "reason": e.reason})
    }

    fn role_name(r: MediaRole) -> &'static str {
        match r {
            MediaRole::Offer => "offer",
            MediaRole::Modify => "modify",
            MediaRole::Answer => "answer",
            MediaRole::Teardown => "teardown",
            MediaRole::None => "none",
        }
    }

    fn describe(m: &Message<'_>, item: &Item<'_>) -> Value {
        let (actions, txn_error): (&[Action<'_>], _) = match item {
            Item::Request(r) => (&r.actions, None),
            Item::Reply(r) => (&r.actions, r.error.as_ref()),
            Item::Pending { .. } | Item::ResponseAck { .. } => (&[], None),
        };
        let commands = || actions.iter().flat_map(|a| a.commands.iter());
        let kind = match item {
            Item::Request(_) => commands()
                .next()
                .map_or("Transaction", |c| c.kind.long_name()),
            Item::Reply(_) => "Reply",
            Item::Pending { .. } => "TransactionPending",
            Item::ResponseAck { .. } => "TransactionResponseAck",
        };
        let role = commands()
            .map(|c| MediaRole::of(item, c))
            .find(|r| *r != MediaRole::None)
            .unwrap_or(MediaRole::None);
        // The first error descriptor: the transaction's, an action's, a
        // command's.
        let failed = txn_error
            .or_else(|| actions.iter().find_map(|a| a.error.as_ref()))
            .or_else(|| commands().find_map(|c| c.error.as_ref()));
        let (media, error) = media(m, actions);
        let mut v = json!({
            "protocol": "h248",
            "kind": kind,
            "mid": m.mid().text,
            "version": m.version(),
            "transaction": item.id(),
            "context": actions.first().map_or(Value::Null, |a| context(a.context)),
            "actions": actions.len(),
            "commands": commands().map(|c| c.kind.long_name()).collect::<Vec<_>>(),
            "terminations": commands()
                .flat_map(|c| c.terminations.iter().map(|t| t.text))
                .collect::<Vec<_>>(),
            "role": role_name(role),
            "error_descriptor": failed.map(error_descriptor),
            "media": media,
            "error": error,
        });
        if let Item::ResponseAck { ranges, .. } = item {
            v["acks"] = ranges.iter().map(|r| json!([r.first, r.last])).collect();
        }
        if let Item::Reply(r) = item {
            v["immediate_ack"] = json!(r.immediate_ack);
        }
        v
    }

    /// The endpoints of every Local and Remote SDP group of the actions,
    /// in datagram order, each as SIP and MGCP describe theirs plus where
    /// it was (`descriptor`, `stream`, `group`, `termination`) and `choose`
    /// (H.248's `$` port); with the last SDP error, at its datagram line.
    fn media(m: &Message<'_>, actions: &[Action<'_>]) -> (Vec<Value>, Value) {
        let mut groups = Vec::new();
        for c in actions.iter().flat_map(|a| a.commands.iter()) {
            let term = c.terminations.first().map(|t| t.text);
            for s in &c.streams {
                for (descriptor, list) in [("local", &s.local), ("remote", &s.remote)] {
                    for (i, g) in list.iter().enumerate() {
                        groups.push((g, descriptor, s.number(), i, term));
                    }
                }
            }
        }
        groups.sort_by_key(|(g, ..)| g.span.start);
        let mut media = Vec::new();
        let mut error = Value::Null;
        for (g, descriptor, stream, i, term) in groups {
            let sdp = match m.sdp(g) {
                Ok(sdp) => sdp,
                Err(e) => {
                    error = json!(m.sdp_error(g, e).to_string());
                    continue;
                }
            };
            let body = m.bytes().get(g.span.clone()).unwrap_or_default();
            match crate::sip::describe_sdp(body) {
                Ok(v) => {
                    for (mut e, sm) in v.into_iter().zip(sdp.media()) {
                        e["descriptor"] = json!(descriptor);
                        e["stream"] = json!(stream);
                        e["group"] = json!(i);
                        e["termination"] = json!(term);
                        e["choose"] = json!(sm.choose);
                        media.push(e);
                    }
                }
                Err(_) => {
                    let e = sdp
                        .endpoints(std::net::Ipv4Addr::UNSPECIFIED.into())
                        .err()
                        .map_or_else(
                            || format!("line {}: bad SDP", m.line_of(g.span.start)),
                            |e| m.sdp_error(g, e).to_string(),
                        );
                    error = json!(e);
                }
            }
        }
        (media, error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use pinhole_core::wire::{Builder, Protocol, TransactionId};

    fn cmph_request() -> Vec<u8> {
        let mut buf = [0u8; 512];
        let mut b = Builder::new(
            &mut buf,
            Method::Cmph,
            Class::Request,
            TransactionId([7; 12]),
        )
        .unwrap();
        b.username("corp1").unwrap();
        b.leg_key(b"call/A/0").unwrap();
        b.rtcp_mode(RtcpMode::Mux).unwrap();
        let n = b.finish(Some(b"secret")).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn decodes_a_cmph_request() {
        let v = inspect(&cmph_request());
        assert_eq!(v["protocol"], "pinhole-control");
        assert_eq!(v["kind"], "CMPH request");
        assert_eq!(v["username"], "corp1");
        assert_eq!(v["leg_key"], "call/A/0");
        assert_eq!(v["rtcp_mode"], "mux");
        assert_eq!(v["integrity"], true);
        assert!(v["error"].is_null());
    }

    #[test]
    fn decodes_a_registration_from_a_hex_dump() {
        let mut buf = [0u8; 512];
        let mut b = Builder::new(
            &mut buf,
            Method::Register,
            Class::Request,
            TransactionId([1; 12]),
        )
        .unwrap();
        b.username("corp2").unwrap();
        b.protocol(Protocol::Sip).unwrap();
        b.lifetime(600).unwrap();
        let n = b.finish(None).unwrap();
        let dump: String = buf[..n]
            .chunks(16)
            .map(|l| l.iter().map(|x| format!("{x:02x} ")).collect::<String>() + "\n")
            .collect();
        let bytes = unhex(dump.as_bytes()).unwrap();
        let v = inspect(&bytes);
        assert_eq!(v["kind"], "Registration request");
        assert_eq!(v["signaling_protocol"], "SIP");
        assert_eq!(v["lifetime"], 600);
    }

    #[test]
    fn recognises_h248_after_white_space_and_comments() {
        use h248::looks_like_h248;
        assert!(looks_like_h248(b"MEGACO/1 [10.0.0.1]:2944\nT=1{}"));
        assert!(looks_like_h248(b"megaco/1 <mg1>"));
        assert!(looks_like_h248(b"!/1 <iMSS>"));
        assert!(looks_like_h248(
            b";pinhole-mg=[10.0.0.2]:2944\r\n \t; another\n!/1 <mgc>"
        ));
        assert!(!looks_like_h248(b"; only a comment"));
        assert!(!looks_like_h248(b"MEGAC"));
        assert!(!looks_like_h248(b"200 1 OK\n"));
        assert!(!looks_like_h248(b"INVITE sip:a@b SIP/2.0\r\n"));
        assert!(!looks_like_h248(b"x!/1 <mgc>"));
    }

    #[test]
    fn one_h248_line_per_item() {
        let v = h248::inspect(
            b"!/1 [192.0.2.1]:2944 P=3{ER=402{\"x\"}} PN=4{} K{1-3,5} T=9{C=*{S=*}} T=10{C=-{}}",
        );
        let kinds: Vec<&str> = v.iter().map(|m| m["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Reply",
                "TransactionPending",
                "TransactionResponseAck",
                "Subtract",
                "Transaction"
            ]
        );
        assert!(v.iter().all(|m| m["protocol"] == "h248"
            && m["mid"] == "[192.0.2.1]:2944"
            && m["error"].is_null()));
        assert_eq!(v[0]["error_descriptor"]["code"], 402);
        assert_eq!(v[0]["error_descriptor"]["reason"], "x");
        assert_eq!(v[1]["transaction"], 4);
        assert!(v[2]["transaction"].is_null());
        assert_eq!(v[2]["acks"], json!([[1, 3], [5, 5]]));
        assert_eq!(v[3]["context"], "*");
        assert_eq!(v[3]["role"], "teardown");
        assert_eq!(v[4]["context"], "-");
        // A message whose body is an error descriptor.
        let v = h248::inspect(b"MEGACO/1 <mgc> Error=502{\"Not ready\"}");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["kind"], "Error");
        assert_eq!(v[0]["error_descriptor"]["code"], 502);
    }

    #[test]
    fn h248_errors_are_lines_with_an_error() {
        let v = h248::inspect(b"!/1 [192.0.2.1]:2944 T=1{C=2{A=RTP/1{");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["protocol"], "h248");
        assert!(v[0]["kind"].is_null());
        assert_eq!(v[0]["error"], "line 1: unterminated {");
        // An unreadable session description: the command still prints,
        // with the error at its datagram line.
        let v = h248::inspect(
            b"!/1 [192.0.2.1]:2944\nT=1{C=2{A=RTP/1{M{R{v=0\nc=IN IP4 10.0.0.2\nm=audio x RTP/AVP 0\n}}}}}",
        );
        assert_eq!(v[0]["kind"], "Add");
        assert!(
            v[0]["error"].as_str().unwrap().starts_with("line 4:"),
            "{}",
            v[0]
        );
    }

    #[test]
    fn reports_errors() {
        let mut m = cmph_request();
        m.truncate(m.len() - 4);
        let v = inspect(&m);
        assert_eq!(v["protocol"], "pinhole-control");
        assert!(v["error"].is_string(), "{v}");
        let v = inspect(b"HELLO world\r\n\r\n");
        assert!(v["protocol"].is_null() && v["error"].is_string());
        assert_eq!(unhex(b"zz"), None);
        assert_eq!(unhex(b"0x01 02:03"), Some(vec![1, 2, 3]));
    }
}
