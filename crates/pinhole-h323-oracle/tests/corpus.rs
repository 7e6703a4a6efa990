//! Every captured H.225.0 / H.245 message of the corpus decodes, with the transport addresses
//! Wireshark (tshark 4.x, `-V`) shows for the same frames.

use std::net::SocketAddr;

use pinhole_h323_oracle::{
    Kind, Report, access, decode_user_information, inspect, q931_user_user, tpkt_frames,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus/h323/msg");

/// Inspects every TPKT frame of a corpus file: Q.931 frames through their User-user element.
fn reports(file: &str) -> Vec<Report> {
    let data = std::fs::read(format!("{DIR}/{file}")).unwrap();
    tpkt_frames(&data)
        .unwrap()
        .into_iter()
        .map(|f| {
            let r = if f[0] == 0x08 {
                inspect(Kind::UserInformation, q931_user_user(f).unwrap())
            } else {
                inspect(Kind::H245, f)
            };
            r.unwrap_or_else(|e| panic!("{file}: {e}"))
        })
        .collect()
}

fn list(r: &Report) -> Vec<(String, SocketAddr)> {
    r.addresses
        .iter()
        .map(|f| (f.field.clone(), SocketAddr::new(f.ip, f.port)))
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, SocketAddr)> {
    pairs
        .iter()
        .map(|(f, a)| ((*f).to_owned(), a.parse().unwrap()))
        .collect()
}

/// The expected (field, address) list of one TPKT frame.
type Frame<'a> = &'a [(&'a str, &'a str)];

#[test]
fn every_corpus_file_decodes_with_its_addresses() {
    let cases: &[(&str, &[Frame<'_>])] = &[
        (
            "wiki-rtp_example-f4-setup.tpkt",
            &[&[
                ("destCallSignalAddress", "10.1.6.18:1720"),
                ("sourceCallSignalAddress", "10.1.3.143:32803"),
            ]],
        ),
        ("wiki-rtp_example-f6-callProceeding.tpkt", &[&[]]),
        ("wiki-rtp_example-f8-alerting.tpkt", &[&[]]),
        (
            "wiki-rtp_example-f10-connect-h245Address.tpkt",
            &[&[("h245Address", "10.1.6.18:1232")]],
        ),
        ("wiki-rtp_example-f15-h245-TCS.tpkt", &[&[]]),
        ("wiki-rtp_example-f17-h245-MSD.tpkt", &[&[]]),
        (
            "wiki-rtp_example-f22-h245-TCSAck+MSDAck-two-tpkt.tpkt",
            &[&[], &[]],
        ),
        (
            "wiki-rtp_example-f28-h245-OLC.tpkt",
            &[&[("mediaControlChannel", "10.1.3.143:5001")]],
        ),
        (
            "wiki-rtp_example-f29-h245-OLC.tpkt",
            &[&[("mediaControlChannel", "10.1.6.18:2007")]],
        ),
        (
            "wiki-rtp_example-f31-h245-OLCAck.tpkt",
            &[&[
                ("mediaChannel", "10.1.3.143:5000"),
                ("mediaControlChannel", "10.1.3.143:5001"),
            ]],
        ),
        (
            "wiki-rtp_example-f32-h245-OLCAck.tpkt",
            &[&[
                ("mediaChannel", "10.1.6.18:2006"),
                ("mediaControlChannel", "10.1.6.18:2007"),
            ]],
        ),
        (
            "wiki-jul23-f7047-setup-fastStart-tunnelling.tpkt",
            &[&[
                ("destCallSignalAddress", "177.168.209.10:1720"),
                ("sourceCallSignalAddress", "135.16.177.5:31261"),
                // fastStart[0]: forward OLC, mediaControlChannel only
                ("mediaControlChannel", "135.16.177.5:17811"),
                // fastStart[1]: reverse OLC
                ("mediaChannel", "135.16.177.5:17810"),
                ("mediaControlChannel", "135.16.177.5:17811"),
            ]],
        ),
        (
            "wiki-jul23-f7069-connect-fastStart-h245Address.tpkt",
            &[&[
                ("h245Address", "177.168.209.10:58818"),
                ("mediaChannel", "135.16.170.94:17568"),
                ("mediaControlChannel", "135.16.170.94:17569"),
                ("mediaChannel", "135.16.177.5:17810"),
                ("mediaControlChannel", "135.16.170.94:17569"),
            ]],
        ),
        ("wiki-jul23-f7084-h245-TCS.tpkt", &[&[]]),
        ("wiki-jul23-f7636-information.tpkt", &[&[]]),
        ("wiki-jul23-f14150-releaseComplete.tpkt", &[&[]]),
    ];
    let mut seen: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tpkt"))
        .collect();
    seen.sort();
    let mut listed: Vec<String> = cases.iter().map(|c| c.0.to_owned()).collect();
    listed.sort();
    assert_eq!(seen, listed, "every corpus .tpkt is covered");

    for (file, frames) in cases {
        let got = reports(file);
        assert_eq!(got.len(), frames.len(), "{file}: frames");
        for (r, want) in got.iter().zip(frames.iter()) {
            assert_eq!(list(r), expect(want), "{file}");
        }
    }
}

#[test]
fn accessors_on_real_messages() {
    let data = std::fs::read(format!(
        "{DIR}/wiki-jul23-f7069-connect-fastStart-h245Address.tpkt"
    ))
    .unwrap();
    let frames = tpkt_frames(&data).unwrap();
    let ui = decode_user_information(q931_user_user(frames[0]).unwrap()).unwrap();
    assert_eq!(access::message_name(&ui), "connect");
    assert_eq!(
        access::h245_address(&ui),
        Some("177.168.209.10:58818".parse().unwrap())
    );
    let fs = access::fast_start(&ui);
    assert_eq!(fs.len(), 2);
    let olc = pinhole_h323_oracle::decode_olc(&fs[0]).unwrap();
    let (_, fwd, rev) = access::olc_media(&olc);
    assert_eq!(
        fwd,
        Some((
            Some("135.16.170.94:17568".parse().unwrap()),
            Some("135.16.170.94:17569".parse().unwrap())
        ))
    );
    assert_eq!(rev, None);

    let data = std::fs::read(format!("{DIR}/wiki-rtp_example-f31-h245-OLCAck.tpkt")).unwrap();
    let m = pinhole_h323_oracle::decode_h245(tpkt_frames(&data).unwrap()[0]).unwrap();
    assert_eq!(access::h245_name(&m), "response.openLogicalChannelAck");
}
