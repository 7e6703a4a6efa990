//! The corpus's H.225.0 call-signaling messages (captures nobody here
//! wrote; `tests/corpus/MANIFEST.md`): each TPKT frame parses, its message
//! type and call reference are what Wireshark shows, the User-user element
//! holds X.208 data to the end of the message, and a rewrite with the same
//! data gives back the same bytes.

use pinhole_h323::q931::{Message, MessageType, X208, tpkt_frame, tpkt_payload};
use pinhole_testkit::corpus;

fn read(name: &str) -> Vec<u8> {
    std::fs::read(corpus::shared_dir().join("h323/msg").join(name)).unwrap()
}

#[test]
fn call_signaling_messages_parse_as_wireshark_shows_them() {
    for (name, kind, cr, from_dest) in [
        (
            "wiki-rtp_example-f4-setup.tpkt",
            MessageType::Setup,
            0x77f4,
            false,
        ),
        (
            "wiki-rtp_example-f6-callProceeding.tpkt",
            MessageType::CallProceeding,
            0x77f4,
            true,
        ),
        (
            "wiki-rtp_example-f8-alerting.tpkt",
            MessageType::Alerting,
            0x77f4,
            true,
        ),
        (
            "wiki-rtp_example-f10-connect-h245Address.tpkt",
            MessageType::Connect,
            0x77f4,
            true,
        ),
        (
            "wiki-jul23-f14150-releaseComplete.tpkt",
            MessageType::ReleaseComplete,
            0x0a6d,
            false,
        ),
    ] {
        let frame = read(name);
        let q = tpkt_payload(&frame).unwrap_or_else(|e| panic!("{name}: {e}"));
        let m = Message::parse(q).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.kind, kind, "{name}");
        assert_eq!(m.call_reference_value(), cr, "{name}");
        assert_eq!(m.from_destination, from_dest, "{name}");
        let uu = m
            .user_user()
            .unwrap_or_else(|| panic!("{name}: no User-user"));
        assert_eq!(uu.discriminator, X208, "{name}");
        assert_eq!(
            uu.data.end,
            q.len(),
            "{name}: User-user is the last element"
        );
        let same = m.with_user_data(&q[uu.data.clone()]).unwrap();
        assert_eq!(same, q, "{name}");
        assert_eq!(tpkt_frame(&same).unwrap(), frame, "{name}");
    }
}

#[test]
fn every_tpkt_message_of_the_corpus_is_read_or_refused_cleanly() {
    let files = corpus::files("h323/msg", ".tpkt").unwrap();
    assert!(files.len() >= 10, "{} files", files.len());
    let mut q931 = 0;
    for f in files {
        let frame = std::fs::read(&f).unwrap();
        // Several TPKT frames may share a capture's segment: cut them.
        let mut rest = &frame[..];
        while !rest.is_empty() {
            let n = match pinhole_core::framing::tpkt(rest) {
                Ok(Some(fr)) => fr.len(),
                other => panic!("{}: {other:?}", f.display()),
            };
            let payload = tpkt_payload(&rest[..n]).unwrap();
            // H.245 frames are PER, not Q.931: refused by the first octet.
            if let Ok(m) = Message::parse(payload) {
                q931 += 1;
                assert!(m.user_user().is_some(), "{}", f.display());
            }
            rest = &rest[n..];
        }
    }
    assert!(q931 >= 8, "only {q931} Q.931 messages");
}

#[test]
fn setup_elements_are_located() {
    let frame = read("wiki-rtp_example-f4-setup.tpkt");
    let q = tpkt_payload(&frame).unwrap();
    let m = Message::parse(q).unwrap();
    let ids: Vec<u8> = m.ies.iter().map(|e| e.id).collect();
    // Bearer capability, Display, User-user.
    assert_eq!(ids, [0x04, 0x28, 0x7e]);
    assert_eq!(&q[m.ie(0x28).unwrap().value.clone()], b"m.jemec\0");
    let uu = m.user_user().unwrap();
    assert_eq!(uu.data.len(), 0x85 - 1);
}
