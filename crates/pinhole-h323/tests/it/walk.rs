//! The aligned-PER walker on the corpus's real H.225.0 and H.245 messages.

use pinhole_h323::per::{Pdu, walk};
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

#[test]
fn print_all() {
    let dir = corpus::shared_dir().join("h323/msg");
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    for name in names {
        for (pdu, per) in pdus(&name) {
            match walk(pdu, &per) {
                Ok(w) => {
                    let a: Vec<_> = w.addresses.iter().map(|a| format!("{}={}{}", a.field, a.get(&per), a.nested.map(|n| format!("@{}[{}]", w.nested[n].field, w.nested[n].index)).unwrap_or_default())).collect();
                    let n: Vec<_> = w.nested.iter().map(|n| format!("{}[{}]:{}", n.field, n.index, n.message)).collect();
                    println!("{name}: {} {:?} {:?}", w.message, a, n);
                }
                Err(e) => println!("{name}: ERROR {e}"),
            }
        }
    }
}
