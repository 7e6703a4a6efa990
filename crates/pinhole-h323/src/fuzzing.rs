//! The bodies of the `q931_parse` and `per_walk` fuzz targets, shared with
//! their corpus replay.

use crate::q931::{Message, tpkt_payload};

/// Parses arbitrary bytes as a TPKT frame (or, failing that, a bare Q.931
/// message) and checks what the parser promises: every span inside the
/// buffer and in order, and replacing the User-user data with itself
/// gives back the same bytes.
pub fn q931_parse(data: &[u8]) {
    let payload = tpkt_payload(data).unwrap_or(data);
    let Ok(m) = Message::parse(payload) else {
        return;
    };
    let mut end = m.call_reference.end + 1;
    for ie in &m.ies {
        assert_eq!(ie.span.start, end, "elements are contiguous");
        assert!(ie.value.start >= ie.span.start && ie.value.end == ie.span.end);
        end = ie.span.end;
    }
    assert_eq!(end, payload.len(), "the elements cover the message");
    if let Some(uu) = m.user_user() {
        let same = m
            .with_user_data(&payload[uu.data.clone()])
            .expect("its own data fits");
        assert_eq!(
            same, payload,
            "a rewrite with the same data changes nothing"
        );
    }
}

/// The body of the `per_walk` fuzz target: the first byte picks the PDU
/// type, the rest is walked. A walk never reads past the end, its
/// addresses lie inside the buffer and do not overlap, and a patch of
/// every address walks again to the same places: where the walk goes
/// cannot depend on the address octets it rewrites.
pub fn per_walk(data: &[u8]) {
    use crate::per::{Family, Pdu, walk};
    let Some((&pick, per)) = data.split_first() else {
        return;
    };
    let pdu = match pick % 4 {
        0 => Pdu::UserInformation,
        1 => Pdu::Ras,
        2 => Pdu::H245,
        _ => Pdu::OpenLogicalChannel,
    };
    let Ok(w) = walk(pdu, per) else {
        return;
    };
    let mut used = vec![false; per.len()];
    let mut patched = per.to_vec();
    for (i, a) in w.addresses.iter().enumerate() {
        let ip_len = if a.family == Family::V4 { 4 } else { 16 };
        for at in (a.ip_at..a.ip_at + ip_len).chain(a.port_at..a.port_at + 2) {
            assert!(!used[at], "addresses overlap at octet {at}");
            used[at] = true;
        }
        let to = match a.family {
            Family::V4 => std::net::SocketAddr::from(([198, 51, 100, i as u8], 1024 + i as u16)),
            Family::V6 => std::net::SocketAddr::from((
                [0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16],
                1024 + i as u16,
            )),
        };
        a.set(&mut patched, to).expect("same family");
    }
    for n in &w.nested {
        assert!(n.at.start <= n.at.end && n.at.end <= per.len());
    }
    let again = walk(pdu, &patched).expect("a patched PDU walks");
    assert_eq!(again.message, w.message);
    assert_eq!(again.nested, w.nested);
    assert_eq!(again.addresses, w.addresses);
}
