//! The aligned-PER walker on the corpus's real H.225.0 and H.245 messages.

use std::net::SocketAddr;

use pinhole_h323::per::{Family, Pdu, walk};
use pinhole_h323::q931::{Message, tpkt_payload};
use pinhole_testkit::corpus;

fn read(name: &str) -> Vec<u8> {
    std::fs::read(corpus::shared_dir().join("h323/msg").join(name)).unwrap()
}

/// The PER PDUs of a corpus file: the User-user data of a Q.931 frame, or
/// each H.245 TPKT frame.
fn pdus(name: &str) -> Vec<(Pdu, Vec<u8>)> {
    let mut bytes = read(name);
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let frame: Vec<u8> = bytes.drain(..len.min(bytes.len())).collect();
        let payload = tpkt_payload(&frame).unwrap();
        if payload.first() == Some(&0x08) {
            let m = Message::parse(payload).unwrap();
            let uu = m.user_user().unwrap();
            out.push((Pdu::UserInformation, payload[uu.data].to_vec()));
        } else {
            out.push((Pdu::H245, payload.to_vec()));
        }
    }
    out
}

/// What a walk of `name` found, as `field=addr` with `@fastStart[i]` for
/// nested ones, and the messages.
fn found(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (pdu, per) in pdus(name) {
        let w = walk(pdu, &per).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push(format!("{}:", w.message));
        for a in &w.addresses {
            let at = a
                .nested
                .map(|n| format!("@{}[{}]", w.nested[n].field, w.nested[n].index))
                .unwrap_or_default();
            out.push(format!("{}={}{at}", a.field, a.get(&per)));
        }
        for n in &w.nested {
            out.push(format!("{}[{}]:{}", n.field, n.index, n.message));
        }
    }
    out
}

/// The values Wireshark (and pycrate) decode from these captures.
#[test]
fn corpus_addresses_are_what_the_captures_hold() {
    let cases: &[(&str, &[&str])] = &[
        (
            "wiki-jul23-f14150-releaseComplete.tpkt",
            &["releaseComplete:"],
        ),
        (
            "wiki-jul23-f7047-setup-fastStart-tunnelling.tpkt",
            &[
                "setup:",
                "destCallSignalAddress=177.168.209.10:1720",
                "sourceCallSignalAddress=135.16.177.5:31261",
                "mediaControlChannel=135.16.177.5:17811@fastStart[0]",
                "mediaChannel=135.16.177.5:17810@fastStart[1]",
                "mediaControlChannel=135.16.177.5:17811@fastStart[1]",
                "fastStart[0]:openLogicalChannel",
                "fastStart[1]:openLogicalChannel",
            ],
        ),
        (
            "wiki-jul23-f7069-connect-fastStart-h245Address.tpkt",
            &[
                "connect:",
                "h245Address=177.168.209.10:58818",
                "mediaChannel=135.16.170.94:17568@fastStart[0]",
                "mediaControlChannel=135.16.170.94:17569@fastStart[0]",
                "mediaChannel=135.16.177.5:17810@fastStart[1]",
                "mediaControlChannel=135.16.170.94:17569@fastStart[1]",
                "fastStart[0]:openLogicalChannel",
                "fastStart[1]:openLogicalChannel",
            ],
        ),
        (
            "wiki-jul23-f7084-h245-TCS.tpkt",
            &["terminalCapabilitySet:"],
        ),
        ("wiki-jul23-f7636-information.tpkt", &["information:"]),
        (
            "wiki-rtp_example-f10-connect-h245Address.tpkt",
            &["connect:", "h245Address=10.1.6.18:1232"],
        ),
        (
            "wiki-rtp_example-f15-h245-TCS.tpkt",
            &["terminalCapabilitySet:"],
        ),
        (
            "wiki-rtp_example-f17-h245-MSD.tpkt",
            &["masterSlaveDetermination:"],
        ),
        (
            "wiki-rtp_example-f22-h245-TCSAck+MSDAck-two-tpkt.tpkt",
            &["terminalCapabilitySetAck:", "masterSlaveDeterminationAck:"],
        ),
        (
            "wiki-rtp_example-f28-h245-OLC.tpkt",
            &["openLogicalChannel:", "mediaControlChannel=10.1.3.143:5001"],
        ),
        (
            "wiki-rtp_example-f29-h245-OLC.tpkt",
            &["openLogicalChannel:", "mediaControlChannel=10.1.6.18:2007"],
        ),
        (
            "wiki-rtp_example-f31-h245-OLCAck.tpkt",
            &[
                "openLogicalChannelAck:",
                "mediaChannel=10.1.3.143:5000",
                "mediaControlChannel=10.1.3.143:5001",
            ],
        ),
        (
            "wiki-rtp_example-f32-h245-OLCAck.tpkt",
            &[
                "openLogicalChannelAck:",
                "mediaChannel=10.1.6.18:2006",
                "mediaControlChannel=10.1.6.18:2007",
            ],
        ),
        (
            "wiki-rtp_example-f4-setup.tpkt",
            &[
                "setup:",
                "destCallSignalAddress=10.1.6.18:1720",
                "sourceCallSignalAddress=10.1.3.143:32803",
            ],
        ),
        (
            "wiki-rtp_example-f6-callProceeding.tpkt",
            &["callProceeding:"],
        ),
        ("wiki-rtp_example-f8-alerting.tpkt", &["alerting:"]),
    ];
    for (name, want) in cases {
        assert_eq!(found(name), *want, "{name}");
    }
    // Every corpus file is covered.
    let dir = corpus::shared_dir().join("h323/msg");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), cases.len());
}

/// Every PDU of the corpus, with the addresses its walk finds.
pub(crate) fn all_pdus() -> Vec<(String, Pdu, Vec<u8>)> {
    let dir = corpus::shared_dir().join("h323/msg");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        for (pdu, per) in pdus(&name) {
            out.push((name.clone(), pdu, per));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
    out
}

/// A patch of every address changes those octets and no other, and the
/// walk of the result finds the new values at the same places.
#[test]
fn a_patch_changes_only_the_address_octets() {
    for (name, pdu, per) in all_pdus() {
        let w = walk(pdu, &per).unwrap();
        let mut out = per.clone();
        let mut touched = vec![false; per.len()];
        for (i, a) in w.addresses.iter().enumerate() {
            let to: SocketAddr = match a.family {
                Family::V4 => format!("203.0.113.{}:{}", i + 1, 40000 + i)
                    .parse()
                    .unwrap(),
                Family::V6 => format!("[2001:db8::{}]:{}", i + 1, 40000 + i)
                    .parse()
                    .unwrap(),
            };
            a.set(&mut out, to).unwrap();
            let ip_len = if a.family == Family::V4 { 4 } else { 16 };
            touched[a.ip_at..a.ip_at + ip_len].fill(true);
            touched[a.port_at..a.port_at + 2].fill(true);
        }
        for (i, t) in touched.iter().enumerate() {
            if !t {
                assert_eq!(out[i], per[i], "{name}: octet {i} changed");
            }
        }
        let again = walk(pdu, &out).unwrap();
        assert_eq!(again.message, w.message, "{name}");
        assert_eq!(again.addresses.len(), w.addresses.len(), "{name}");
        for (i, (a, b)) in w.addresses.iter().zip(&again.addresses).enumerate() {
            assert_eq!((a.ip_at, a.port_at), (b.ip_at, b.port_at), "{name}");
            assert_eq!(b.get(&out).port(), 40000 + i as u16, "{name}");
        }
    }
}

/// A v4 address cannot become v6 in place: a typed error, nothing written.
#[test]
fn a_family_change_is_refused_and_writes_nothing() {
    let (_, pdu, per) = all_pdus()
        .into_iter()
        .find(|(n, ..)| n.contains("f31-h245-OLCAck"))
        .unwrap();
    let w = walk(pdu, &per).unwrap();
    let mut out = per.clone();
    let e = w.addresses[0]
        .set(&mut out, "[2001:db8::1]:5000".parse().unwrap())
        .unwrap_err();
    assert_eq!(e.field, "mediaChannel");
    assert_eq!(e.from, Family::V4);
    assert_eq!(out, per);
}

/// Every truncation of every PDU: a typed error with the path to where the
/// bits ran out, or a walk that stopped before the cut; never a panic, and
/// never an address past the end.
#[test]
fn truncations_are_typed_errors_with_a_path() {
    let mut errors = 0;
    for (name, pdu, per) in all_pdus() {
        let full = walk(pdu, &per).unwrap();
        for cut in 0..per.len() {
            match walk(pdu, &per[..cut]) {
                Ok(w) => {
                    for a in &w.addresses {
                        assert!(a.port_at + 2 <= cut, "{name} cut at {cut}");
                    }
                    assert!(w.addresses.len() <= full.addresses.len());
                }
                Err(e) => {
                    errors += 1;
                    assert!(e.bit <= cut * 8 + 8, "{name} cut {cut}: {e}");
                    assert!(e.path().starts_with(pdu.type_name()), "{e}");
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
    assert!(errors > 100, "{errors}");
}

/// The path names the nested fastStart element where a value breaks.
#[test]
fn an_error_inside_fast_start_names_the_element() {
    let (_, pdu, per) = all_pdus()
        .into_iter()
        .find(|(n, ..)| n.contains("setup-fastStart"))
        .unwrap();
    let w = walk(pdu, &per).unwrap();
    let second = w.nested[1].at.clone();
    // Cut the PDU inside the second element's last address.
    let cut = w.addresses.last().unwrap().port_at + 1;
    assert!(second.contains(&cut));
    let e = walk(pdu, &per[..cut]).unwrap_err();
    assert_eq!(e.kind(), "truncated");
    let path = e.path();
    assert!(
        path.starts_with("H323-UserInformation.h323-uu-pdu.h323-message-body.setup.fastStart[1]."),
        "{path}"
    );
    assert!(
        path.ends_with("mediaControlChannel.unicastAddress.iPAddress.tsapIdentifier"),
        "{path}"
    );
}

/// The values the ALG reads on the way (checked against pycrate's and
/// Wireshark's decoding): channel numbers (INTEGER (1..65535), coded as
/// the offset from 1), session IDs, h245Tunneling, the aliases, the GUID.
#[test]
fn values_aliases_and_contexts_on_the_way() {
    let get = |file: &str| {
        let (_, pdu, per) = all_pdus().into_iter().find(|(n, ..)| n == file).unwrap();
        let w = walk(pdu, &per).unwrap();
        (w, per)
    };
    let (w, _) = get("wiki-rtp_example-f28-h245-OLC.tpkt");
    assert_eq!(w.value("forwardLogicalChannelNumber", None, ""), Some(101));
    assert_eq!(
        w.value("sessionID", None, "forwardLogicalChannelParameters"),
        Some(1)
    );
    assert_eq!(w.addresses[0].context, "forwardLogicalChannelParameters");
    let (w, _) = get("wiki-rtp_example-f31-h245-OLCAck.tpkt");
    assert_eq!(w.value("forwardLogicalChannelNumber", None, ""), Some(61));
    assert_eq!(
        w.value("sessionID", None, "forwardMultiplexAckParameters"),
        Some(1)
    );
    assert!(
        w.addresses
            .iter()
            .all(|a| a.context == "forwardMultiplexAckParameters")
    );

    let (w, per) = get("wiki-jul23-f7047-setup-fastStart-tunnelling.tpkt");
    assert_eq!(w.value("h245Tunneling", None, ""), Some(1));
    assert_eq!(w.value("forwardLogicalChannelNumber", Some(1), ""), Some(1));
    assert_eq!(
        w.value("sessionID", Some(1), "reverseLogicalChannelParameters"),
        Some(1)
    );
    let aliases: Vec<_> = w
        .texts
        .iter()
        .map(|t| format!("{}.{}={}", t.field, t.alternative, t.decode(&per)))
        .collect();
    assert_eq!(
        aliases,
        [
            "sourceAddress.h323-ID=v00ipt14",
            "destinationAddress.dialedDigits=0008025"
        ]
    );
    let contexts: Vec<_> = w.addresses.iter().map(|a| a.context).collect();
    assert_eq!(
        contexts,
        [
            "",
            "",
            "forwardLogicalChannelParameters",
            "reverseLogicalChannelParameters",
            "reverseLogicalChannelParameters"
        ]
    );
    let guid = w.call_id_at.unwrap();
    assert!(guid + 16 <= per.len());

    let (w, per) = get("wiki-rtp_example-f4-setup.tpkt");
    assert_eq!(w.value("h245Tunneling", None, ""), Some(0));
    assert_eq!(w.texts.len(), 1);
    assert_eq!(w.texts[0].decode(&per), "m.jemec");
    // The Setup's callIdentifier and the Connect's are the same call.
    let (c, cper) = get("wiki-rtp_example-f10-connect-h245Address.tpkt");
    let (a, b) = (w.call_id_at.unwrap(), c.call_id_at.unwrap());
    assert_eq!(per[a..a + 16], cper[b..b + 16]);
}
