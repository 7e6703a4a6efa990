//! Independent test oracle for the Pinhole H.323 ALG.
//!
//! * [`h225`], [`h235`], [`h245`]: rasn bindings generated from the ITU modules (H.225.0 v6 with
//!   H.235, H.245 v13) by `tools/asn1/regen.sh`, aligned PER through [`rasn::aper`].
//! * [`inspect`]: decodes a PDU (and the H.245 PDUs nested in its OCTET STRINGs) and lists every
//!   unicast IPv4/IPv6 transport address in encoding order, plus a canonical text of the value
//!   with those addresses masked ([`Report::norm`]).
//! * [`build`]: realistic H.225.0 call-signalling, RAS and H.245 PDUs as aligned-PER bytes.
//! * [`access`]: small accessors (message names, `h245Address`, `fastStart`, OLC media).
//! * [`tpkt_frames`], [`q931_user_user`]: unwrap captured signalling down to the PER bytes.
//!
//! How [`inspect`] traverses: every generated type derives `Debug`; the `{:?}` text is parsed
//! back into a generic tree (SEQUENCE = `Type { field: value }`, CHOICE = `alternative(value)`,
//! SEQUENCE OF = `[..]`), which is walked in declaration order (= PER encoding order here). A
//! transport address is recognised by its generated type, wherever it occurs:
//! `TransportAddressIpAddress`/`TransportAddressIp6Address` (H.225 `TransportAddress`
//! `ipAddress`/`ip6Address`) and `UnicastAddressIPAddress`/`UnicastAddressIP6Address` (H.245
//! `TransportAddress.unicastAddress` `iPAddress`/`iP6Address`). Field names are mapped back to
//! the ASN.1 identifiers with a table emitted by the generator.
#![allow(missing_docs)]

mod generated;
mod tree;

pub mod access;
pub mod build;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rasn::{Decode, Encode};

pub use generated::h235_security_messages as h235;
pub use generated::h323_messages as h225;
pub use generated::multimedia_system_control as h245;
pub use rasn;

use tree::Node;

/// The top-level PDU type of an aligned-PER buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// H.225.0 `H323-UserInformation` (the Q.931 User-user data).
    UserInformation,
    /// H.225.0 `RasMessage`.
    Ras,
    /// H.245 `MultimediaSystemControlMessage`.
    H245,
}

/// One unicast IPv4/IPv6 transport address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// ASN.1 identifier of the nearest enclosing named component (SEQUENCE component or CHOICE
    /// alternative, not counting the alternatives of `TransportAddress` itself).
    pub field: String,
    pub ip: IpAddr,
    pub port: u16,
}

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every unicast IPv4/IPv6 transport address, in encoding order, nested PDUs in place.
    pub addresses: Vec<Found>,
    /// Canonical text of the whole decoded value (nested PDUs decoded) with the ip and port of
    /// every reported address replaced by `*`.
    pub norm: String,
}

/// Decodes `per` as `kind` and reports its transport addresses (see the crate docs).
///
/// `fastStart` elements (H.245 `OpenLogicalChannel`), `h245Control` and `parallelH245Control`
/// elements (`MultimediaSystemControlMessage`) are decoded too; one that does not decode is an
/// error naming its path.
pub fn inspect(kind: Kind, per: &[u8]) -> Result<Report, String> {
    let mut root = match kind {
        Kind::UserInformation => tree::parse(&format!("{:?}", decode_user_information(per)?))?,
        Kind::Ras => tree::parse(&format!("{:?}", decode_ras(per)?))?,
        Kind::H245 => tree::parse(&format!("{:?}", decode_h245(per)?))?,
    };
    if kind != Kind::H245 {
        expand_nested(&mut root, &mut Vec::new())?;
    }
    let mut addresses = Vec::new();
    collect(&root, None, &mut addresses)?;
    let mut norm = String::new();
    tree::render(&root, &mut norm, &mut |n| {
        address_of(n).ok().flatten().map(|_| {
            let Node::Struct(name, _) = n else {
                unreachable!()
            };
            format!("{name}{{*}}")
        })
    });
    Ok(Report { addresses, norm })
}

fn decode<T: Decode>(what: &str, per: &[u8]) -> Result<T, String> {
    rasn::aper::decode::<T>(per).map_err(|e| format!("{what}: {e}"))
}

/// Encodes any generated value in aligned PER.
pub fn encode<T: Encode>(value: &T) -> Result<Vec<u8>, String> {
    rasn::aper::encode(value).map_err(|e| e.to_string())
}

pub fn decode_user_information(per: &[u8]) -> Result<h225::H323UserInformation, String> {
    decode("H323-UserInformation", per)
}

pub fn decode_ras(per: &[u8]) -> Result<h225::RasMessage, String> {
    decode("RasMessage", per)
}

pub fn decode_h245(per: &[u8]) -> Result<h245::MultimediaSystemControlMessage, String> {
    decode("MultimediaSystemControlMessage", per)
}

/// A `fastStart` element.
pub fn decode_olc(per: &[u8]) -> Result<h245::OpenLogicalChannel, String> {
    decode("OpenLogicalChannel", per)
}

/// ASN.1 identifier of a rust field (`owner` = its struct) or CHOICE variant (`owner` = None).
fn asn_name(owner: Option<&str>, rust: &str) -> String {
    use generated::identifiers::IDENTIFIERS;
    let found = match owner {
        Some(o) => IDENTIFIERS
            .binary_search_by(|(t, f, _)| (*t, *f).cmp(&(o, rust)))
            .ok()
            .map(|i| IDENTIFIERS[i].2),
        None => IDENTIFIERS.iter().find(|(_, f, _)| *f == rust).map(|e| e.2),
    };
    found.unwrap_or(rust).to_owned()
}

/// Decodes a nested PDU to its `{:?}` text.
type NestedDecoder = fn(&[u8]) -> Result<String, String>;

/// Replaces the OCTET STRINGs holding H.245 PDUs by their decoded trees.
fn expand_nested(n: &mut Node, path: &mut Vec<String>) -> Result<(), String> {
    match n {
        Node::Struct(owner, fields) => {
            for (f, v) in fields.iter_mut() {
                let name = asn_name(Some(owner), f);
                path.push(name.clone());
                let nested: Option<(&'static str, NestedDecoder)> = match name.as_str() {
                    "fastStart" => Some(("OpenLogicalChannel", |b| {
                        decode_olc(b).map(|v| format!("{v:?}"))
                    })),
                    "h245Control" | "parallelH245Control" => {
                        Some(("MultimediaSystemControlMessage", |b| {
                            decode_h245(b).map(|v| format!("{v:?}"))
                        }))
                    }
                    _ => None,
                };
                match (nested, v) {
                    (Some((label, dec)), Node::Tuple(some, items)) if some == "Some" => {
                        let [Node::List(elems)] = items.as_mut_slice() else {
                            return Err(format!("{}: not a SEQUENCE OF", path.join(".")));
                        };
                        for (i, e) in elems.iter_mut().enumerate() {
                            let Node::Bytes(b) = e else {
                                return Err(format!(
                                    "{}[{i}]: not an OCTET STRING",
                                    path.join(".")
                                ));
                            };
                            let text =
                                dec(b).map_err(|err| format!("{}[{i}]: {err}", path.join(".")))?;
                            *e = Node::Nested(label, Box::new(tree::parse(&text)?));
                        }
                    }
                    (_, v) => expand_nested(v, path)?,
                }
                path.pop();
            }
        }
        Node::Tuple(name, items) => {
            let named = name.starts_with(|c: char| c.is_ascii_lowercase());
            if named {
                path.push(asn_name(None, name));
            }
            for v in items {
                expand_nested(v, path)?;
            }
            if named {
                path.pop();
            }
        }
        Node::List(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                path.push(format!("[{i}]"));
                expand_nested(v, path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// `Some((ip, port))` if `n` is one of the four unicast IP address types.
fn address_of(n: &Node) -> Result<Option<(IpAddr, u16)>, String> {
    let Node::Struct(name, fields) = n else {
        return Ok(None);
    };
    let (len, ip_field, port_field) = match name.as_str() {
        "TransportAddressIpAddress" => (4, "ip", "port"),
        "TransportAddressIp6Address" => (16, "ip", "port"),
        "UnicastAddressIPAddress" => (4, "network", "tsap_identifier"),
        "UnicastAddressIP6Address" => (16, "network", "tsap_identifier"),
        _ => return Ok(None),
    };
    let shape = || format!("unexpected shape of {name}: {fields:?}");
    let [(f1, Node::Bytes(ip)), (f2, Node::Atom(port))] = fields.as_slice() else {
        return Err(shape());
    };
    if f1 != ip_field || f2 != port_field || ip.len() != len {
        return Err(shape());
    }
    let port: u16 = port.parse().map_err(|_| shape())?;
    let ip = if len == 4 {
        IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip.as_slice()).unwrap()))
    } else {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip.as_slice()).unwrap()))
    };
    Ok(Some((ip, port)))
}

/// True for the alternatives of a `TransportAddress` leading to an address (not named fields).
fn is_transport_alternative(name: &str, items: &[Node]) -> bool {
    match (name, items) {
        ("ipAddress" | "ip6Address" | "iPAddress" | "iP6Address", [child]) => {
            matches!(address_of(child), Ok(Some(_)))
        }
        ("unicastAddress", [Node::Tuple(n, i)]) => is_transport_alternative(n, i),
        _ => false,
    }
}

fn collect(n: &Node, field: Option<&str>, out: &mut Vec<Found>) -> Result<(), String> {
    if let Some((ip, port)) = address_of(n)? {
        let field = field.ok_or("transport address outside any named component")?;
        out.push(Found {
            field: field.to_owned(),
            ip,
            port,
        });
        return Ok(());
    }
    match n {
        Node::Struct(owner, fields) => {
            for (f, v) in fields {
                collect(v, Some(&asn_name(Some(owner), f)), out)?;
            }
        }
        Node::Tuple(name, items) => {
            let own = if name.starts_with(|c: char| c.is_ascii_lowercase())
                && !is_transport_alternative(name, items)
            {
                Some(asn_name(None, name))
            } else {
                None
            };
            for v in items {
                collect(v, own.as_deref().or(field), out)?;
            }
        }
        Node::List(items) | Node::Bits(items) => {
            for v in items {
                collect(v, field, out)?;
            }
        }
        Node::Nested(_, inner) => collect(inner, field, out)?,
        Node::Bytes(_) | Node::Str(_) | Node::Atom(_) => {}
    }
    Ok(())
}

/// The TPKT frames (RFC 1006: `03 00 len16`, len counting the header) of a byte stream, as
/// payloads.
pub fn tpkt_frames(mut data: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut frames = Vec::new();
    while !data.is_empty() {
        if data.len() < 4 || data[0] != 3 {
            return Err("not a TPKT header".into());
        }
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if len < 4 || len > data.len() {
            return Err(format!("TPKT length {len} with {} bytes", data.len()));
        }
        frames.push(&data[4..len]);
        data = &data[len..];
    }
    Ok(frames)
}

/// The `H323-UserInformation` PER of a Q.931 message: the data of its User-user element (0x7E,
/// two-octet length, protocol discriminator 0x05) after the discriminator.
pub fn q931_user_user(q931: &[u8]) -> Result<&[u8], String> {
    if q931.first() != Some(&0x08) {
        return Err("not Q.931".into());
    }
    let crl = usize::from(*q931.get(1).ok_or("short")? & 0x0f);
    let mut i = 2 + crl + 1; // call reference, message type
    while i < q931.len() {
        let id = q931[i];
        if id & 0x80 != 0 {
            i += 1; // single-octet element
            continue;
        }
        if id == 0x7e {
            let len = usize::from(u16::from_be_bytes([
                *q931.get(i + 1).ok_or("short")?,
                *q931.get(i + 2).ok_or("short")?,
            ]));
            let data = q931
                .get(i + 3..i + 3 + len)
                .ok_or("User-user past the end")?;
            return match data.split_first() {
                Some((0x05, per)) => Ok(per),
                _ => Err("User-user without protocol discriminator 0x05".into()),
            };
        }
        let len = usize::from(*q931.get(i + 1).ok_or("short")?);
        i += 2 + len;
    }
    Err("no User-user element".into())
}
