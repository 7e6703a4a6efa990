//! Small accessors for terminals built on the oracle.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{h225, h245};

/// The CHOICE alternative names leading the `{:?}` text, e.g. `["request", "openLogicalChannel"]`.
fn alternatives(debug: &str, depth: usize) -> String {
    debug.split('(').take(depth).collect::<Vec<_>>().join(".")
}

/// The message body alternative, e.g. `setup`, `connect`, `releaseComplete`.
pub fn message_name(ui: &h225::H323UserInformation) -> String {
    alternatives(&format!("{:?}", ui.h323_uu_pdu.h323_message_body), 1)
}

/// The RAS alternative, e.g. `registrationRequest`.
pub fn ras_name(m: &h225::RasMessage) -> String {
    alternatives(&format!("{m:?}"), 1)
}

/// The H.245 message, e.g. `request.openLogicalChannel`, `command.endSessionCommand`.
pub fn h245_name(m: &h245::MultimediaSystemControlMessage) -> String {
    alternatives(&format!("{m:?}"), 2)
}

fn socket(ip: &[u8], port: u16) -> Option<SocketAddr> {
    let ip = match ip.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// An H.225.0 `ipAddress`/`ip6Address` as a socket address.
pub fn h225_socket(a: &h225::TransportAddress) -> Option<SocketAddr> {
    match a {
        h225::TransportAddress::ipAddress(a) => socket(&a.ip, a.port),
        h225::TransportAddress::ip6Address(a) => socket(&a.ip, a.port),
        _ => None,
    }
}

/// An H.245 unicast `iPAddress`/`iP6Address` as a socket address.
pub fn h245_socket(a: &h245::TransportAddress) -> Option<SocketAddr> {
    match a {
        h245::TransportAddress::unicastAddress(h245::UnicastAddress::iPAddress(a)) => {
            socket(&a.network, a.tsap_identifier)
        }
        h245::TransportAddress::unicastAddress(h245::UnicastAddress::iP6Address(a)) => {
            socket(&a.network, a.tsap_identifier)
        }
        _ => None,
    }
}

/// The `h245Address` of a Setup, CallProceeding, Alerting, Connect, Facility or Progress.
pub fn h245_address(ui: &h225::H323UserInformation) -> Option<SocketAddr> {
    use h225::H323UUPDUH323MessageBody as B;
    let a = match &ui.h323_uu_pdu.h323_message_body {
        B::setup(m) => m.h245_address.as_ref(),
        B::callProceeding(m) => m.h245_address.as_ref(),
        B::connect(m) => m.h245_address.as_ref(),
        B::alerting(m) => m.h245_address.as_ref(),
        B::facility(m) => m.h245_address.as_ref(),
        B::progress(m) => m.h245_address.as_ref(),
        _ => None,
    };
    a.and_then(h225_socket)
}

/// The `fastStart` elements (PER of `OpenLogicalChannel`s) of any UUIE that has them.
pub fn fast_start(ui: &h225::H323UserInformation) -> Vec<Vec<u8>> {
    use h225::H323UUPDUH323MessageBody as B;
    let f = match &ui.h323_uu_pdu.h323_message_body {
        B::setup(m) => m.fast_start.as_ref(),
        B::callProceeding(m) => m.fast_start.as_ref(),
        B::connect(m) => m.fast_start.as_ref(),
        B::alerting(m) => m.fast_start.as_ref(),
        B::information(m) => m.fast_start.as_ref(),
        B::facility(m) => m.fast_start.as_ref(),
        B::progress(m) => m.fast_start.as_ref(),
        _ => None,
    };
    f.map(|v| v.iter().map(|b| b.to_vec()).collect())
        .unwrap_or_default()
}

/// The tunnelled H.245 messages (`h245Control`, PER of `MultimediaSystemControlMessage`s).
pub fn h245_control(ui: &h225::H323UserInformation) -> Vec<Vec<u8>> {
    ui.h323_uu_pdu
        .h245_control
        .as_ref()
        .map(|v| v.iter().map(|b| b.to_vec()).collect())
        .unwrap_or_default()
}

/// `h245Tunnelling` (absent = false).
pub fn h245_tunnelling(ui: &h225::H323UserInformation) -> bool {
    ui.h323_uu_pdu.h245_tunneling.unwrap_or(false)
}

/// The `callIdentifier` GUID, where the UUIE has one.
pub fn call_identifier(ui: &h225::H323UserInformation) -> Option<[u8; 16]> {
    use h225::H323UUPDUH323MessageBody as B;
    let c = match &ui.h323_uu_pdu.h323_message_body {
        B::setup(m) => m.call_identifier.as_ref(),
        B::callProceeding(m) => m.call_identifier.as_ref(),
        B::connect(m) => m.call_identifier.as_ref(),
        B::alerting(m) => m.call_identifier.as_ref(),
        B::information(m) => m.call_identifier.as_ref(),
        B::releaseComplete(m) => m.call_identifier.as_ref(),
        B::facility(m) => m.call_identifier.as_ref(),
        B::progress(m) => Some(&m.call_identifier),
        _ => None,
    };
    c.map(|c| *c.guid.0)
}

/// Media addresses of an H.225.0 parameter set: (`mediaChannel`, `mediaControlChannel`).
pub type Media = (Option<SocketAddr>, Option<SocketAddr>);

fn h2250(p: &h245::H2250LogicalChannelParameters) -> Media {
    (
        p.media_channel.as_ref().and_then(h245_socket),
        p.media_control_channel.as_ref().and_then(h245_socket),
    )
}

/// An OLC's logical channel number and the media addresses of its forward and reverse
/// H.225.0 parameters: `(channel, forward, reverse)`.
pub fn olc_media(olc: &h245::OpenLogicalChannel) -> (u16, Option<Media>, Option<Media>) {
    use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as F;
    use h245::OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters as R;
    let forward = match &olc.forward_logical_channel_parameters.multiplex_parameters {
        F::h2250LogicalChannelParameters(p) => Some(h2250(p)),
        _ => None,
    };
    let reverse = olc
        .reverse_logical_channel_parameters
        .as_ref()
        .and_then(|r| match &r.multiplex_parameters {
            Some(R::h2250LogicalChannelParameters(p)) => Some(h2250(p)),
            _ => None,
        });
    (olc.forward_logical_channel_number.0, forward, reverse)
}

/// An OLCAck's logical channel number and its (`mediaChannel`, `mediaControlChannel`).
pub fn olc_ack_media(ack: &h245::OpenLogicalChannelAck) -> (u16, Media) {
    use h245::OpenLogicalChannelAckForwardMultiplexAckParameters as A;
    let media = match &ack.forward_multiplex_ack_parameters {
        Some(A::h2250LogicalChannelAckParameters(p)) => (
            p.media_channel.as_ref().and_then(h245_socket),
            p.media_control_channel.as_ref().and_then(h245_socket),
        ),
        _ => (None, None),
    };
    (ack.forward_logical_channel_number.0, media)
}
