//! H.323 signaling for the Pinhole H.323 ALG (issue 14), sans-IO and
//! byte-faithful: TPKT framing (RFC 1006, over TCP: `pinhole_core::framing`
//! cuts the stream) and Q.931 as H.225.0 uses it, located as spans of the
//! caller's buffer, with the User-user information element that carries
//! the `H323-UserInformation` (aligned PER). A rewrite replaces only the
//! User-user data and fixes its length; every other byte stays as it came.
//!
//! The aligned-PER walker that finds the transport addresses inside the
//! User-user data (and H.245) builds on this layer.
//!
//! ```
//! use pinhole_h323::q931::{Message, MessageType, X208, tpkt_frame, tpkt_payload};
//!
//! // A CALL PROCEEDING: call reference 0x77f4 (from the called side), a
//! // User-user element with 3 octets of PER.
//! let q931 = [0x08, 0x02, 0xf7, 0xf4, 0x02, 0x7e, 0x00, 0x04, 0x05, 0x21, 0x80, 0x06];
//! let frame = tpkt_frame(&q931).unwrap();
//! let m = Message::parse(tpkt_payload(&frame).unwrap()).unwrap();
//! assert_eq!(m.kind, MessageType::CallProceeding);
//! assert!(m.from_destination);
//! assert_eq!(m.call_reference_value(), 0x77f4);
//! let uu = m.user_user().unwrap();
//! assert_eq!(uu.discriminator, X208);
//! assert_eq!(&q931[uu.data.clone()], &[0x21, 0x80, 0x06]);
//! // New PER data of another length: the element's length follows.
//! let longer = m.with_user_data(&[0x21, 0x80, 0x06, 0x00]).unwrap();
//! assert_eq!(&longer[5..8], &[0x7e, 0x00, 0x05]);
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
