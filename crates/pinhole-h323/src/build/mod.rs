//! The few H.225.0 call-signalling messages the MPR and the APS write
//! themselves: CALL PROCEEDING, FACILITY (`startH245`) and RELEASE
//! COMPLETE, each a whole Q.931 message (without the TPKT header: frame it
//! with [`tpkt_frame`](crate::q931::tpkt_frame)) whose User-user element
//! carries the `H323-UserInformation` in aligned PER, written by the small
//! encoder [`PerWriter`].
//!
//! The PER is what an H.225.0 v6 encoder writes for these values (the ITU
//! module `H323-MESSAGES`, v6): protocol identifier version 4, every
//! extension bitmap as long as its type has additions, and the mandatory
//! extension additions present — `h245Tunneling FALSE` in `H323-UU-PDU`,
//! `multipleCalls FALSE` and `maintainConnection FALSE` in the
//! CallProceeding and Facility UUIEs.
//!
//! ```
//! use pinhole_h323::build::{CallRef, facility_start_h245};
//! use pinhole_h323::per::{Pdu, walk};
//! use pinhole_h323::q931::{Message, MessageType};
//!
//! let cr = CallRef { value: 0x77f4, from_destination: true };
//! let h245 = "192.0.2.1:1720".parse().unwrap();
//! let q931 = facility_start_h245(cr, [7; 16], h245);
//! assert_eq!(q931[..5], [0x08, 0x02, 0xf7, 0xf4, 0x62]);
//!
//! let m = Message::parse(&q931).unwrap();
//! assert_eq!(m.kind, MessageType::Facility);
//! let per = &q931[m.user_user().unwrap().data];
//! let w = walk(Pdu::UserInformation, per).unwrap();
//! assert_eq!(w.message, "facility");
//! assert_eq!(w.addresses[0].get(per), h245);
//! ```

mod per;

use std::net::{IpAddr, SocketAddr};

pub use per::{Addition, PerWriter};

use crate::q931::{MessageType, PROTOCOL_DISCRIMINATOR, USER_USER, X208};

/// H.225.0's protocol identifier for version 4, `{itu-t(0)
/// recommendation(0) h(8) 2250 version(0) 4}`: what these messages say
/// they are.
pub const PROTOCOL_IDENTIFIER: [u64; 6] = [0, 0, 8, 2250, 0, 4];

/// The Q.931 Cause information element's identifier (Q.931 §4.5.12).
pub const CAUSE: u8 = 0x08;

/// The Q.931 call reference of the leg a message is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallRef {
    /// The call reference value: 15 bits (H.225.0 uses two octets; the
    /// top bit of the `u16` is the flag's place and is not written).
    pub value: u16,
    /// The call reference flag: set on messages sent by the side that did
    /// not choose the value (the called side of the leg).
    pub from_destination: bool,
}

impl CallRef {
    /// The two octets: the value, the flag in the top bit of the first.
    pub fn octets(self) -> [u8; 2] {
        let flag = if self.from_destination { 0x8000 } else { 0 };
        ((self.value & 0x7FFF) | flag).to_be_bytes()
    }
}

/// Why a call is released: the `ReleaseCompleteReason` alternatives the
/// MPR and APS give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseReason {
    /// `noBandwidth`: bandwidth taken away or ARQ denied.
    NoBandwidth,
    /// `gatekeeperResources`: exhausted.
    GatekeeperResources,
    /// `unreachableDestination`: no transport path to the destination.
    UnreachableDestination,
    /// `destinationRejection`: rejected at the destination.
    DestinationRejection,
    /// `noPermission`: the called party's gatekeeper rejects.
    NoPermission,
    /// `calledPartyNotRegistered` (an extension alternative).
    CalledPartyNotRegistered,
    /// `securityDenied`: incompatible security settings (an extension
    /// alternative).
    SecurityDenied,
    /// `undefinedReason`.
    UndefinedReason,
}

/// Where an alternative of `ReleaseCompleteReason` is.
enum Alternative {
    /// Among the 12 root alternatives, at this index.
    Root(usize),
    /// Among the extension alternatives, at this index.
    Addition(usize),
}

impl ReleaseReason {
    /// Every reason.
    pub const ALL: [Self; 8] = [
        Self::NoBandwidth,
        Self::GatekeeperResources,
        Self::UnreachableDestination,
        Self::DestinationRejection,
        Self::NoPermission,
        Self::CalledPartyNotRegistered,
        Self::SecurityDenied,
        Self::UndefinedReason,
    ];

    /// Its ASN.1 identifier.
    pub fn name(self) -> &'static str {
        match self {
            Self::NoBandwidth => "noBandwidth",
            Self::GatekeeperResources => "gatekeeperResources",
            Self::UnreachableDestination => "unreachableDestination",
            Self::DestinationRejection => "destinationRejection",
            Self::NoPermission => "noPermission",
            Self::CalledPartyNotRegistered => "calledPartyNotRegistered",
            Self::SecurityDenied => "securityDenied",
            Self::UndefinedReason => "undefinedReason",
        }
    }

    /// The Q.850 cause value the Cause element carries with it.
    pub fn cause(self) -> u8 {
        match self {
            // no circuit/channel available
            Self::NoBandwidth | Self::GatekeeperResources => 34,
            // no route to destination
            Self::UnreachableDestination => 3,
            // call rejected
            Self::DestinationRejection | Self::NoPermission | Self::SecurityDenied => 21,
            // subscriber absent
            Self::CalledPartyNotRegistered => 20,
            // normal, unspecified
            Self::UndefinedReason => 31,
        }
    }

    fn alternative(self) -> Alternative {
        match self {
            Self::NoBandwidth => Alternative::Root(0),
            Self::GatekeeperResources => Alternative::Root(1),
            Self::UnreachableDestination => Alternative::Root(2),
            Self::DestinationRejection => Alternative::Root(3),
            Self::NoPermission => Alternative::Root(5),
            Self::UndefinedReason => Alternative::Root(11),
            Self::SecurityDenied => Alternative::Addition(1),
            Self::CalledPartyNotRegistered => Alternative::Addition(2),
        }
    }
}

/// A CALL PROCEEDING (`callProceeding`): destinationInfo with only
/// `mc FALSE, undefinedNode FALSE`, no h245Address, and the call's
/// `callIdentifier`.
pub fn call_proceeding(cr: CallRef, call_id: [u8; 16]) -> Vec<u8> {
    // CallProceeding-UUIE ::= SEQUENCE { protocolIdentifier, destinationInfo
    // EndpointType, h245Address OPTIONAL, ..., callIdentifier,
    // h245SecurityMode OPTIONAL, tokens OPTIONAL, cryptoTokens OPTIONAL,
    // fastStart OPTIONAL, multipleCalls BOOLEAN, maintainConnection
    // BOOLEAN, fastConnectRefused OPTIONAL, featureSet OPTIONAL }
    let per = user_information(BODY_CALL_PROCEEDING, |w| {
        w.bit(true); // extension additions follow
        w.bit(false); // h245Address
        w.object_identifier(&PROTOCOL_IDENTIFIER);
        // EndpointType ::= SEQUENCE { nonStandardData, vendor, gatekeeper,
        // gateway, mcu, terminal (all OPTIONAL), mc BOOLEAN, undefinedNode
        // BOOLEAN, ..., set OPTIONAL, supportedTunnelledProtocols OPTIONAL }
        w.bit(false); // no extension additions
        w.bits(0, 6); // no optional components
        w.bit(false); // mc
        w.bit(false); // undefinedNode
        w.extension_additions(
            9,
            &[
                (0, &|w: &mut PerWriter| call_identifier(w, &call_id)),
                (5, &|w| w.bit(false)), // multipleCalls
                (6, &|w| w.bit(false)), // maintainConnection
            ],
        );
    });
    q931(cr, MessageType::CallProceeding, &[], &per)
}

/// A FACILITY with reason `startH245`: the recipient should open H.245 to
/// `h245` (written as `ipAddress` or `ip6Address`); with the call's
/// `callIdentifier`.
pub fn facility_start_h245(cr: CallRef, call_id: [u8; 16], h245: SocketAddr) -> Vec<u8> {
    // Facility-UUIE ::= SEQUENCE { protocolIdentifier, alternativeAddress
    // OPTIONAL, alternativeAliasAddress OPTIONAL, conferenceID OPTIONAL,
    // reason FacilityReason, ..., callIdentifier, destExtraCallInfo,
    // remoteExtensionAddress, tokens, cryptoTokens, conferences,
    // h245Address (all OPTIONAL), fastStart OPTIONAL, multipleCalls
    // BOOLEAN, maintainConnection BOOLEAN, fastConnectRefused,
    // serviceControl, circuitInfo, featureSet, destinationInfo,
    // h245SecurityMode (all OPTIONAL) }
    let per = user_information(BODY_FACILITY, |w| {
        w.bit(true); // extension additions follow
        w.bits(0, 3); // alternativeAddress, alternativeAliasAddress, conferenceID
        w.object_identifier(&PROTOCOL_IDENTIFIER);
        // FacilityReason: 4 root alternatives, then conferenceListChoice,
        // startH245, ... (all NULL).
        w.choice_addition(1, |_| {});
        w.extension_additions(
            16,
            &[
                (0, &|w: &mut PerWriter| call_identifier(w, &call_id)),
                (6, &|w| transport_address(w, h245)),
                (8, &|w| w.bit(false)), // multipleCalls
                (9, &|w| w.bit(false)), // maintainConnection
            ],
        );
    });
    q931(cr, MessageType::Facility, &[], &per)
}

/// A RELEASE COMPLETE for `reason`: a Cause element (Q.850 cause
/// [`ReleaseReason::cause`], ITU coding, location "public network serving
/// the local user") and the `releaseComplete` UUIE with that reason and
/// the call's `callIdentifier`.
pub fn release_complete(cr: CallRef, call_id: [u8; 16], reason: ReleaseReason) -> Vec<u8> {
    // ReleaseComplete-UUIE ::= SEQUENCE { protocolIdentifier, reason
    // ReleaseCompleteReason OPTIONAL, ..., callIdentifier, tokens,
    // cryptoTokens, busyAddress, presentationIndicator,
    // screeningIndicator, capacity, serviceControl, featureSet (all
    // OPTIONAL) }
    let per = user_information(BODY_RELEASE_COMPLETE, |w| {
        w.bit(true); // extension additions follow
        w.bit(true); // reason
        w.object_identifier(&PROTOCOL_IDENTIFIER);
        // ReleaseCompleteReason: 12 root alternatives, then extension
        // alternatives (all the ones here NULL).
        match reason.alternative() {
            Alternative::Root(i) => w.choice_root(i, 12, true),
            Alternative::Addition(i) => w.choice_addition(i, |_| {}),
        }
        w.extension_additions(9, &[(0, &|w: &mut PerWriter| call_identifier(w, &call_id))]);
    });
    // Cause (Q.931 §4.5.12): ext 1, coding standard ITU-T (00), spare,
    // location 0010 (Q.850: public network serving the local user); ext 1, cause.
    let cause = [0x82, 0x80 | reason.cause()];
    q931(cr, MessageType::ReleaseComplete, &[(CAUSE, &cause)], &per)
}

/// `h323-message-body` alternatives (7 in the root).
const BODY_CALL_PROCEEDING: usize = 1;
const BODY_RELEASE_COMPLETE: usize = 5;
const BODY_FACILITY: usize = 6;
const BODY_ROOTS: usize = 7;

/// `H323-UserInformation` with `h323-uu-pdu` holding root alternative
/// `body` of `h323-message-body`, its UUIE written by `uuie`, and
/// `h245Tunneling FALSE`.
fn user_information(body: usize, uuie: impl FnOnce(&mut PerWriter)) -> Vec<u8> {
    let mut w = PerWriter::new();
    // H323-UserInformation ::= SEQUENCE { h323-uu-pdu, user-data
    // OPTIONAL, ... }
    w.bit(false); // no extension additions
    w.bit(false); // user-data
    // H323-UU-PDU ::= SEQUENCE { h323-message-body CHOICE {...},
    // nonStandardData OPTIONAL, ..., h4501SupplementaryService OPTIONAL,
    // h245Tunneling BOOLEAN, h245Control, nonStandardControl,
    // callLinkage, tunnelledSignallingMessage,
    // provisionalRespToH245Tunneling, stimulusControl, genericData (all
    // OPTIONAL) }
    w.bit(true); // extension additions follow
    w.bit(false); // nonStandardData
    w.choice_root(body, BODY_ROOTS, true);
    uuie(&mut w);
    w.extension_additions(9, &[(1, &|w: &mut PerWriter| w.bit(false))]); // h245Tunneling
    w.finish()
}

/// `CallIdentifier ::= SEQUENCE { guid GloballyUniqueID, ... }`, the GUID
/// an `OCTET STRING (SIZE(16))`.
fn call_identifier(w: &mut PerWriter, guid: &[u8; 16]) {
    w.bit(false);
    w.fixed_octets(guid);
}

/// A `TransportAddress`: `ipAddress SEQUENCE { ip OCTET STRING (SIZE(4)),
/// port INTEGER (0..65535) }` (alternative 0) or `ip6Address SEQUENCE {
/// ip OCTET STRING (SIZE(16)), port INTEGER (0..65535), ... }`
/// (alternative 3) of 7 root alternatives.
fn transport_address(w: &mut PerWriter, to: SocketAddr) {
    match to.ip() {
        IpAddr::V4(ip) => {
            w.choice_root(0, 7, true);
            w.fixed_octets(&ip.octets());
        }
        IpAddr::V6(ip) => {
            w.choice_root(3, 7, true);
            w.bit(false); // no extension additions
            w.fixed_octets(&ip.octets());
        }
    }
    w.constrained(u64::from(to.port()), 0, 65535);
}

/// The Q.931 message: protocol discriminator, the two-octet call
/// reference, the message type, the elements `ies` (id, contents; in
/// ascending id order, below User-user), then User-user with the PER.
fn q931(cr: CallRef, kind: MessageType, ies: &[(u8, &[u8])], per: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + per.len());
    out.push(PROTOCOL_DISCRIMINATOR);
    out.push(2);
    out.extend_from_slice(&cr.octets());
    out.push(kind.code());
    for (id, contents) in ies {
        out.push(*id);
        out.push(contents.len() as u8);
        out.extend_from_slice(contents);
    }
    // H.225.0 §7.2.2.1: the User-user length is two octets. These PDUs are
    // well under 64K.
    let len = u16::try_from(per.len() + 1).expect("User-user data under 64K");
    out.push(USER_USER);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(X208);
    out.extend_from_slice(per);
    out
}
