//! The walker against an independent codec: Erlang/OTP's asn1, compiled
//! from the same ITU modules (`pinhole_testkit::erlang_asn1`). For every
//! corpus PDU and a set built by the Erlang encoder (IPv6, RAS,
//! `h245Control`, `parallelH245Control`): the addresses the walker finds
//! are the ones the codec decodes, in order and by field; and after the
//! walker patches every address, the codec decodes the result to the same
//! value with only those addresses changed.

use std::net::SocketAddr;

use pinhole_h323::per::{Family, Pdu, walk};
use pinhole_testkit::erlang_asn1::{self, Kind, Oracle};

/// PDUs the Erlang encoder built (`erlang_asn1`'s own tests): an RRQ with
/// IPv6 `callSignalAddress`, `rasAddress` and a `transportID` alias; a
/// Connect with an OLC Ack in `h245Control`; a Setup with an OLC in
/// `parallelH245Control`.
const BUILT: [(Pdu, &str); 3] = [
    (
        Pdu::Ras,
        "0E800006060008914A0006000200C000020106B83020010DB800000000000000000000000106B80100C000020106B700000240040061006C006900630065810700C633640713C40000000000340B0002000100010001000100",
    ),
    (
        Pdu::UserInformation,
        "22C0060008914A0003000A01061204D022C0000000000333313069005200F8FDF93ECD9ED6119AB20004762220171D0C001100C0FEF93ECD9ED6119AB20004762220170100010010C001001D011B22C000640480145C00000A01061207D6000A01061207D703000180",
    ),
    (
        Pdu::UserInformation,
        "20A8060008914A0004014006006D002E006A0065006D0065006322C00900003D1443616C6C67656E33323320706F67616373616D00000A302E39616C706861340000000A01061206B800F8FDF93ECD9ED6119AB200047622201700D50D800407000A01038F80231100C0FEF93ECD9ED6119AB200047622201701000100010001001501130300003C0C201D800A040001000A01061207D710800100",
    ),
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn kind(p: Pdu) -> Kind {
    match p {
        Pdu::UserInformation => Kind::UserInformation,
        Pdu::Ras => Kind::Ras,
        Pdu::H245 => Kind::H245,
        Pdu::OpenLogicalChannel => Kind::OpenLogicalChannel,
    }
}

fn cases() -> Vec<(String, Pdu, Vec<u8>)> {
    let mut v = super::walk::all_pdus();
    for (i, (p, h)) in BUILT.iter().enumerate() {
        v.push((format!("erlang-built-{i}"), *p, unhex(h)));
    }
    v
}

#[test]
fn the_walker_finds_what_the_erlang_codec_decodes() {
    if !erlang_asn1::available() {
        eprintln!("skipped: erl is not installed (CI installs erlang-base and erlang-asn1)");
        return;
    }
    let mut oracle = Oracle::start().unwrap();
    let cases = cases();
    let mut addresses = 0;
    let mut v6 = 0;
    for (name, pdu, per) in &cases {
        let w = walk(*pdu, per).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = oracle
            .inspect(kind(*pdu), per)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<(String, SocketAddr)> = w
            .addresses
            .iter()
            .map(|a| (a.field.to_string(), a.get(per)))
            .collect();
        let want_list: Vec<(String, SocketAddr)> = want
            .addresses
            .iter()
            .map(|f| (f.field.clone(), SocketAddr::new(f.ip, f.port)))
            .collect();
        assert_eq!(got, want_list, "{name}");
        addresses += got.len();
        v6 += w
            .addresses
            .iter()
            .filter(|a| a.family == Family::V6)
            .count();

        // Patch every address; the codec sees only those changed.
        let mut out = per.clone();
        let mut moved = Vec::new();
        for (i, a) in w.addresses.iter().enumerate() {
            let to: SocketAddr = match a.family {
                Family::V4 => format!("198.51.100.{}:{}", 10 + i, 20000 + i)
                    .parse()
                    .unwrap(),
                Family::V6 => format!("[2001:db8:ffff::{}]:{}", 10 + i, 20000 + i)
                    .parse()
                    .unwrap(),
            };
            a.set(&mut out, to).unwrap();
            moved.push((a.field.to_string(), to));
        }
        let after = oracle
            .inspect(kind(*pdu), &out)
            .unwrap_or_else(|e| panic!("{name} patched: {e}"));
        assert_eq!(
            after.norm, want.norm,
            "{name}: a patch changed more than addresses"
        );
        let after_list: Vec<(String, SocketAddr)> = after
            .addresses
            .iter()
            .map(|f| (f.field.clone(), SocketAddr::new(f.ip, f.port)))
            .collect();
        assert_eq!(after_list, moved, "{name}");
    }
    assert_eq!(addresses, 29);
    assert_eq!(v6, 1);
}
