//! Properties of the Q.931 layer: any message built from random elements
//! parses back to them; truncation is an error, never a panic or a short
//! element; replacing the User-user data keeps every other byte.

use pinhole_h323::q931::{Message, USER_USER, tpkt_frame, tpkt_payload};
use proptest::prelude::*;

/// (id, contents) of a variable-length element other than User-user.
fn element() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        (0u8..0x7F).prop_filter("not User-user", |&id| id != USER_USER),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
}

fn build(cr: &[u8], kind: u8, ies: &[(u8, Vec<u8>)], uu: Option<&[u8]>) -> Vec<u8> {
    let mut m = vec![0x08, cr.len() as u8];
    m.extend_from_slice(cr);
    m.push(kind);
    for (id, v) in ies {
        m.push(*id);
        m.push(v.len() as u8);
        m.extend_from_slice(v);
    }
    if let Some(d) = uu {
        m.push(USER_USER);
        m.extend_from_slice(&((d.len() + 1) as u16).to_be_bytes());
        m.push(0x05);
        m.extend_from_slice(d);
    }
    m
}

proptest! {
    #[test]
    fn built_messages_parse_back(
        cr in proptest::collection::vec(any::<u8>(), 0..4),
        kind in 0u8..0x7F,
        ies in proptest::collection::vec(element(), 0..6),
        uu in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        new in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let m = build(&cr, kind, &ies, uu.as_deref());
        let p = Message::parse(&m).unwrap();
        prop_assert_eq!(p.kind.code(), kind);
        prop_assert_eq!(p.ies.len(), ies.len() + usize::from(uu.is_some()));
        for (got, (id, v)) in p.ies.iter().zip(&ies) {
            prop_assert_eq!(got.id, *id);
            prop_assert_eq!(&m[got.value.clone()], v.as_slice());
        }
        match &uu {
            Some(d) => {
                let u = p.user_user().unwrap();
                prop_assert_eq!(&m[u.data.clone()], d.as_slice());
                let out = p.with_user_data(&new).unwrap();
                prop_assert_eq!(out, build(&cr, kind, &ies, Some(&new)));
            }
            None => prop_assert!(p.with_user_data(&new).is_err()),
        }
        // Through TPKT and back.
        let frame = tpkt_frame(&m).unwrap();
        prop_assert_eq!(tpkt_payload(&frame).unwrap(), m.as_slice());
        // Every truncation inside an element is an error.
        for cut in cr.len() + 3..m.len() {
            if let Ok(t) = Message::parse(&m[..cut]) {
                let end = t.ies.last().map_or(cr.len() + 3, |e| e.span.end);
                prop_assert_eq!(end, cut, "a parse of a prefix ends on an element boundary");
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        pinhole_h323::fuzzing::q931_parse(&data);
    }
}

/// An empty User-user element (length 0: not even its discriminator) is
/// no User-user data, and a rewrite of it is refused (fuzzing found the
/// slice it used to take past the element).
#[test]
fn an_empty_user_user_element_has_no_data() {
    let m = [0x08, 0x01, 0x01, 0x05, 0x7e, 0x00, 0x00, 0x28, 0x01, 0x41];
    let p = Message::parse(&m).unwrap();
    assert_eq!(p.ies.len(), 2);
    assert_eq!(p.user_user(), None);
    assert!(p.with_user_data(b"x").is_err());
}

/// The corpus's PER PDUs with their fuzz-target type byte (the `per_walk`
/// seeds).
fn per_seeds() -> Vec<Vec<u8>> {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/per_walk");
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    v
}

proptest! {
    /// Real PDUs with bits flipped, octets cut or inserted walk to a
    /// typed error or to a consistent result (the fuzz property).
    #[test]
    fn damaged_pdus_walk_consistently(
        pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        insert in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let seeds = per_seeds();
        let mut data = seeds[pick.index(seeds.len())].clone();
        for (at, bit) in flips {
            let i = 1 + at.index(data.len() - 1);
            data[i] ^= 1 << bit;
        }
        if let Some((at, b)) = insert {
            let i = 1 + at.index(data.len() - 1);
            data.insert(i, b);
        }
        if let Some(c) = cut {
            data.truncate(1 + c.index(data.len() - 1));
        }
        pinhole_h323::fuzzing::per_walk(&data);
    }

    /// Random bytes as any PDU type: the same property.
    #[test]
    fn random_bytes_walk_consistently(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        pinhole_h323::fuzzing::per_walk(&data);
    }
}
