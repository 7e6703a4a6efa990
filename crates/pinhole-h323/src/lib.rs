//! H.323 for the Pinhole ALGs (issue 14), sans-IO and byte-faithful.
//!
//! | module | what |
//! | --- | --- |
//! | [`q931`] | TPKT (RFC 1006) and Q.931 as H.225.0 uses it, located as spans; the User-user element with its two-octet length |
//! | [`per`] | the aligned-PER walker: every IPv4/IPv6 transport address of an H.225.0, RAS or H.245 PDU (fastStart and tunneled H.245 included) by its octet offsets, patched in place; channel numbers, session IDs, aliases and the call's GUID on the way; typed errors with the bit offset and the path |
//! | [`signal`] | a whole message located: Q.931 + User-user, H.245, or RAS |
//! | [`build`] | the few messages a proxy builds itself (CALL PROCEEDING, FACILITY startH245, RELEASE COMPLETE) |
//! | [`alg`] | the MPR's and the APS's (or a smart terminal's) ALGs of Figs. 15 and 16 |
//!
//! Nothing is decoded into a value and encoded again: the walker records
//! where each address is and a rewrite patches those octets, so every
//! other bit stays as the peer sent it (the design of Linux's netfilter
//! H.323 helper). The wire rules are in `docs/wire-format.md` §9.
//!
//! ```
//! use pinhole_h323::q931::{Message, MessageType, tpkt_payload};
//! use pinhole_h323::signal::Signal;
//!
//! // A CONNECT from a real call (the corpus's rtp_example, frame 10): its
//! // h245Address names the callee's H.245 listener.
//! let frame: Vec<u8> = [
//!     "030000610802f7f40728074d2e4a454d45437e004c0522c0060008914a000300",
//!     "0a01061204d022c0000000000333313069005200f8fdf93ecd9ed6119ab20004",
//!     "76222017170c001100c0fef93ecd9ed6119ab200047622201701000100088001",
//!     "00",
//! ]
//! .concat()
//! .as_bytes()
//! .chunks(2)
//! .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
//! .collect();
//! let payload = tpkt_payload(&frame).unwrap();
//! assert_eq!(Message::parse(payload).unwrap().kind, MessageType::Connect);
//! let sig = Signal::call_signaling(payload).unwrap();
//! assert_eq!(sig.name(), "connect");
//! let h245 = sig.addresses().next().unwrap();
//! assert_eq!(h245.field, "h245Address");
//! assert_eq!(h245.get(payload).to_string(), "10.1.6.18:1232");
//!
//! // Moved to a proxy's listener in place: the same length, one address.
//! let mut out = payload.to_vec();
//! h245.set(&mut out, "203.0.113.10:1730".parse().unwrap()).unwrap();
//! assert_eq!(out.len(), payload.len());
//! let again = Signal::call_signaling(&out).unwrap();
//! assert_eq!(again.addresses().next().unwrap().get(&out).to_string(), "203.0.113.10:1730");
//! ```
#![forbid(unsafe_code)]

pub mod alg;
pub mod build;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod per;
pub mod q931;
pub mod signal;

pub use error::Q931Error;
