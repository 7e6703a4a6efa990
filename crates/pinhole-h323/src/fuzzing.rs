//! The body of the `q931_parse` fuzz target, and its corpus replay.

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
