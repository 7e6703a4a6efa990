//! Builders of realistic PDUs, returned as aligned-PER bytes.
//!
//! H.225.0 call signalling builders return the `H323-UserInformation` PER (wrap it with
//! [`q931`] for the wire); RAS builders a `RasMessage`; H.245 builders a
//! `MultimediaSystemControlMessage`, except [`olc`] which returns a bare `OpenLogicalChannel`
//! (a `fastStart` element; [`olc_msg`] wraps it). A `SocketAddr` becomes `ipAddress` /
//! `iPAddress` for IPv4 and `ip6Address` / `iP6Address` for IPv6. Protocol identifiers are
//! H.225.0 v6 `{0 0 8 2250 0 6}` and H.245 v13 `{0 0 8 245 0 13}`.
//!
//! The builders panic only on values the ASN.1 constraints reject (e.g. an empty alias).

use std::net::{IpAddr, SocketAddr};

use rasn::types::{BmpString, FixedOctetString, ObjectIdentifier, OctetString, SetOf};

use crate::{h225, h245};

const H225_OID: &[u32] = &[0, 0, 8, 2250, 0, 6];
const H245_OID: &[u32] = &[0, 0, 8, 245, 0, 13];

fn enc<T: rasn::Encode>(v: &T) -> Vec<u8> {
    crate::encode(v).unwrap_or_else(|e| panic!("encoding a built PDU: {e}"))
}

fn oid(arcs: &'static [u32]) -> ObjectIdentifier {
    ObjectIdentifier::new(arcs).expect("valid OID")
}

fn ip_bytes(ip: IpAddr) -> OctetString {
    match ip {
        IpAddr::V4(v4) => OctetString::from(v4.octets().to_vec()),
        IpAddr::V6(v6) => OctetString::from(v6.octets().to_vec()),
    }
}

/// H.225.0 `TransportAddress` of a socket address.
pub fn h225_address(sa: SocketAddr) -> h225::TransportAddress {
    match sa.ip() {
        IpAddr::V4(_) => h225::TransportAddress::ipAddress(h225::TransportAddressIpAddress {
            ip: ip_bytes(sa.ip()),
            port: sa.port(),
        }),
        IpAddr::V6(_) => h225::TransportAddress::ip6Address(h225::TransportAddressIp6Address {
            ip: ip_bytes(sa.ip()),
            port: sa.port(),
        }),
    }
}

/// H.245 `TransportAddress` (unicast) of a socket address.
pub fn h245_address(sa: SocketAddr) -> h245::TransportAddress {
    let u = match sa.ip() {
        IpAddr::V4(_) => h245::UnicastAddress::iPAddress(h245::UnicastAddressIPAddress {
            network: ip_bytes(sa.ip()),
            tsap_identifier: sa.port(),
        }),
        IpAddr::V6(_) => h245::UnicastAddress::iP6Address(h245::UnicastAddressIP6Address {
            network: ip_bytes(sa.ip()),
            tsap_identifier: sa.port(),
        }),
    };
    h245::TransportAddress::unicastAddress(u)
}

/// A `BMPString` from UTF-16 code units (not from the UTF-8 bytes).
pub fn bmp(s: &str) -> BmpString {
    let mut b = BmpString::default();
    b.extend(s.encode_utf16());
    b
}

/// `AliasAddress.h323-ID`.
pub fn h323_id(s: &str) -> h225::AliasAddress {
    h225::AliasAddress::h323_ID(bmp(s))
}

fn guid(b: [u8; 16]) -> h225::GloballyUniqueID {
    h225::GloballyUniqueID(FixedOctetString::new(b))
}

fn call_identifier(call_id: [u8; 16]) -> h225::CallIdentifier {
    h225::CallIdentifier {
        guid: guid(call_id),
    }
}

fn conference_id(conf_id: [u8; 16]) -> h225::ConferenceIdentifier {
    h225::ConferenceIdentifier(guid(conf_id))
}

fn h225_protocol() -> h225::ProtocolIdentifier {
    h225::ProtocolIdentifier(oid(H225_OID))
}

fn terminal() -> h225::EndpointType {
    h225::EndpointType {
        non_standard_data: None,
        vendor: Some(vendor()),
        gatekeeper: None,
        gateway: None,
        mcu: None,
        terminal: Some(h225::TerminalInfo {
            non_standard_data: None,
        }),
        mc: false,
        undefined_node: false,
        set: None,
        supported_tunnelled_protocols: None,
    }
}

fn vendor() -> h225::VendorIdentifier {
    h225::VendorIdentifier {
        vendor: h225::H221NonStandard {
            t35_country_code: 0,
            t35_extension: 0,
            manufacturer_code: 0,
        },
        product_id: Some(OctetString::from_static(b"pinhole-oracle")),
        version_id: Some(OctetString::from_static(b"1")),
        enterprise_number: None,
    }
}

fn octets(v: &[Vec<u8>]) -> Option<Vec<OctetString>> {
    (!v.is_empty()).then(|| v.iter().map(|b| OctetString::from(b.clone())).collect())
}

/// Wraps a message body in `H323-UserInformation` and encodes it.
pub fn user_information(
    body: h225::H323UUPDUH323MessageBody,
    tunnel: bool,
    h245_control: &[Vec<u8>],
) -> Vec<u8> {
    enc(&h225::H323UserInformation {
        h323_uu_pdu: h225::H323UUPDU {
            h323_message_body: body,
            non_standard_data: None,
            h4501_supplementary_service: None,
            h245_tunneling: Some(tunnel),
            h245_control: octets(h245_control),
            non_standard_control: None,
            call_linkage: None,
            tunnelled_signalling_message: None,
            provisional_resp_to_h245_tunneling: None,
            stimulus_control: None,
            generic_data: None,
        },
        user_data: None,
    })
}

/// A Setup: h323-IDs as source and destination aliases, `h245Address`,
/// `sourceCallSignalAddress`, `destCallSignalAddress`, `fastStart` and `parallelH245Control`
/// (none when the slice is empty; the `h245_control` elements go to `H323-UU-PDU.h245Control`).
#[allow(clippy::too_many_arguments)]
pub fn setup(
    call_id: [u8; 16],
    conf_id: [u8; 16],
    src_alias: &str,
    dst_alias: &str,
    h245: Option<SocketAddr>,
    src_csa: Option<SocketAddr>,
    dst_csa: Option<SocketAddr>,
    fast_start: &[Vec<u8>],
    tunnel: bool,
    h245_control: &[Vec<u8>],
) -> Vec<u8> {
    setup_with_parallel(
        call_id,
        conf_id,
        src_alias,
        dst_alias,
        h245,
        src_csa,
        dst_csa,
        fast_start,
        tunnel,
        h245_control,
        &[],
    )
}

/// [`setup`] with `parallelH245Control` elements as well.
#[allow(clippy::too_many_arguments)]
pub fn setup_with_parallel(
    call_id: [u8; 16],
    conf_id: [u8; 16],
    src_alias: &str,
    dst_alias: &str,
    h245: Option<SocketAddr>,
    src_csa: Option<SocketAddr>,
    dst_csa: Option<SocketAddr>,
    fast_start: &[Vec<u8>],
    tunnel: bool,
    h245_control: &[Vec<u8>],
    parallel_h245_control: &[Vec<u8>],
) -> Vec<u8> {
    let body = h225::SetupUUIE {
        protocol_identifier: h225_protocol(),
        h245_address: h245.map(h225_address),
        source_address: Some(vec![h323_id(src_alias)]),
        source_info: terminal(),
        destination_address: Some(vec![h323_id(dst_alias)]),
        dest_call_signal_address: dst_csa.map(h225_address),
        dest_extra_call_info: None,
        dest_extra_crv: None,
        active_mc: false,
        conference_id: conference_id(conf_id),
        conference_goal: h225::SetupUUIEConferenceGoal::create(()),
        call_services: None,
        call_type: h225::CallType::pointToPoint(()),
        source_call_signal_address: src_csa.map(h225_address),
        remote_extension_address: None,
        call_identifier: Some(call_identifier(call_id)),
        h245_security_capability: None,
        tokens: None,
        crypto_tokens: None,
        fast_start: octets(fast_start),
        media_wait_for_connect: Some(false),
        can_overlap_send: Some(false),
        endpoint_identifier: None,
        multiple_calls: Some(false),
        maintain_connection: Some(false),
        connection_parameters: None,
        language: None,
        presentation_indicator: None,
        screening_indicator: None,
        service_control: None,
        symmetric_operation_required: None,
        capacity: None,
        circuit_info: None,
        desired_protocols: None,
        needed_features: None,
        desired_features: None,
        supported_features: None,
        parallel_h245_control: octets(parallel_h245_control),
        additional_source_addresses: None,
        hop_count: None,
    };
    user_information(
        h225::H323UUPDUH323MessageBody::setup(body),
        tunnel,
        h245_control,
    )
}

/// A CallProceeding.
pub fn call_proceeding(
    call_id: [u8; 16],
    h245: Option<SocketAddr>,
    fast_start: &[Vec<u8>],
    tunnel: bool,
) -> Vec<u8> {
    let body = h225::CallProceedingUUIE {
        protocol_identifier: h225_protocol(),
        destination_info: terminal(),
        h245_address: h245.map(h225_address),
        call_identifier: Some(call_identifier(call_id)),
        h245_security_mode: None,
        tokens: None,
        crypto_tokens: None,
        fast_start: octets(fast_start),
        multiple_calls: Some(false),
        maintain_connection: Some(false),
        fast_connect_refused: None,
        feature_set: None,
    };
    user_information(
        h225::H323UUPDUH323MessageBody::callProceeding(body),
        tunnel,
        &[],
    )
}

/// An Alerting.
pub fn alerting(
    call_id: [u8; 16],
    h245: Option<SocketAddr>,
    fast_start: &[Vec<u8>],
    tunnel: bool,
) -> Vec<u8> {
    let body = h225::AlertingUUIE {
        protocol_identifier: h225_protocol(),
        destination_info: terminal(),
        h245_address: h245.map(h225_address),
        call_identifier: Some(call_identifier(call_id)),
        h245_security_mode: None,
        tokens: None,
        crypto_tokens: None,
        fast_start: octets(fast_start),
        multiple_calls: Some(false),
        maintain_connection: Some(false),
        alerting_address: None,
        presentation_indicator: None,
        screening_indicator: None,
        fast_connect_refused: None,
        service_control: None,
        capacity: None,
        feature_set: None,
    };
    user_information(h225::H323UUPDUH323MessageBody::alerting(body), tunnel, &[])
}

/// A Connect.
pub fn connect(
    call_id: [u8; 16],
    conf_id: [u8; 16],
    h245: Option<SocketAddr>,
    fast_start: &[Vec<u8>],
    tunnel: bool,
    h245_control: &[Vec<u8>],
) -> Vec<u8> {
    let body = h225::ConnectUUIE {
        protocol_identifier: h225_protocol(),
        h245_address: h245.map(h225_address),
        destination_info: terminal(),
        conference_id: conference_id(conf_id),
        call_identifier: Some(call_identifier(call_id)),
        h245_security_mode: None,
        tokens: None,
        crypto_tokens: None,
        fast_start: octets(fast_start),
        multiple_calls: Some(false),
        maintain_connection: Some(false),
        language: None,
        connected_address: None,
        presentation_indicator: None,
        screening_indicator: None,
        fast_connect_refused: None,
        service_control: None,
        capacity: None,
        feature_set: None,
    };
    user_information(
        h225::H323UUPDUH323MessageBody::connect(body),
        tunnel,
        h245_control,
    )
}

/// A Facility: reason `startH245` when `h245` is given, `callForwarded` when only
/// `alternative_address` is, else `undefinedReason`.
pub fn facility(
    call_id: [u8; 16],
    conf_id: [u8; 16],
    alternative_address: Option<SocketAddr>,
    h245: Option<SocketAddr>,
    fast_start: &[Vec<u8>],
    tunnel: bool,
    h245_control: &[Vec<u8>],
) -> Vec<u8> {
    let reason = match (h245, alternative_address) {
        (Some(_), _) => h225::FacilityReason::startH245(()),
        (None, Some(_)) => h225::FacilityReason::callForwarded(()),
        (None, None) => h225::FacilityReason::undefinedReason(()),
    };
    let body = h225::FacilityUUIE {
        protocol_identifier: h225_protocol(),
        alternative_address: alternative_address.map(h225_address),
        alternative_alias_address: None,
        conference_id: Some(conference_id(conf_id)),
        reason,
        call_identifier: Some(call_identifier(call_id)),
        dest_extra_call_info: None,
        remote_extension_address: None,
        tokens: None,
        crypto_tokens: None,
        conferences: None,
        h245_address: h245.map(h225_address),
        fast_start: octets(fast_start),
        multiple_calls: Some(false),
        maintain_connection: Some(false),
        fast_connect_refused: None,
        service_control: None,
        circuit_info: None,
        feature_set: None,
        destination_info: None,
        h245_security_mode: None,
    };
    user_information(
        h225::H323UUPDUH323MessageBody::facility(body),
        tunnel,
        h245_control,
    )
}

/// A Progress.
pub fn progress(
    call_id: [u8; 16],
    h245: Option<SocketAddr>,
    fast_start: &[Vec<u8>],
    tunnel: bool,
) -> Vec<u8> {
    let body = h225::ProgressUUIE {
        protocol_identifier: h225_protocol(),
        destination_info: terminal(),
        h245_address: h245.map(h225_address),
        call_identifier: call_identifier(call_id),
        h245_security_mode: None,
        tokens: None,
        crypto_tokens: None,
        fast_start: octets(fast_start),
        multiple_calls: Some(false),
        maintain_connection: Some(false),
        fast_connect_refused: None,
    };
    user_information(h225::H323UUPDUH323MessageBody::progress(body), tunnel, &[])
}

/// A ReleaseComplete (reason `undefinedReason`).
pub fn release_complete(call_id: [u8; 16], tunnel: bool) -> Vec<u8> {
    let body = h225::ReleaseCompleteUUIE {
        protocol_identifier: h225_protocol(),
        reason: Some(h225::ReleaseCompleteReason::undefinedReason(())),
        call_identifier: Some(call_identifier(call_id)),
        tokens: None,
        crypto_tokens: None,
        busy_address: None,
        presentation_indicator: None,
        screening_indicator: None,
        capacity: None,
        service_control: None,
        feature_set: None,
    };
    user_information(
        h225::H323UUPDUH323MessageBody::releaseComplete(body),
        tunnel,
        &[],
    )
}

/// A Q.931 message carrying `per` (an `H323-UserInformation`) in its User-user element, as
/// H.225.0 sends it (without the TPKT header): protocol discriminator 0x08, a 2-octet call
/// reference (`from_destination` sets the flag), `message_type` (e.g. 0x05 Setup, 0x02
/// CallProceeding, 0x01 Alerting, 0x07 Connect, 0x62 Facility, 0x03 Progress, 0x5a
/// ReleaseComplete), then User-user (0x7E, 2-octet length, discriminator 0x05, `per`).
pub fn q931(call_reference: u16, from_destination: bool, message_type: u8, per: &[u8]) -> Vec<u8> {
    let cr = call_reference & 0x7fff | if from_destination { 0x8000 } else { 0 };
    let len = u16::try_from(per.len() + 1).expect("User-user too long");
    let mut out = vec![0x08, 0x02];
    out.extend_from_slice(&cr.to_be_bytes());
    out.push(message_type);
    out.push(0x7e);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(0x05);
    out.extend_from_slice(per);
    out
}

/// A TPKT frame around `payload`.
pub fn tpkt(payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 4).expect("TPKT payload too long");
    let mut out = vec![3, 0];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

// ---------------------------------------------------------------- H.245

fn lcn(channel: u16) -> h245::LogicalChannelNumber {
    h245::LogicalChannelNumber(channel)
}

fn g711_ulaw() -> h245::DataType {
    h245::DataType::audioData(h245::AudioCapability::g711Ulaw64k(20))
}

fn h2250_params(
    media: Option<SocketAddr>,
    media_control: Option<SocketAddr>,
) -> h245::H2250LogicalChannelParameters {
    h245::H2250LogicalChannelParameters {
        non_standard: None,
        session_id: 1,
        associated_session_id: None,
        media_channel: media.map(h245_address),
        media_guaranteed_delivery: None,
        media_control_channel: media_control.map(h245_address),
        media_control_guaranteed_delivery: None,
        silence_suppression: Some(false),
        destination: None,
        dynamic_rtppayload_type: None,
        media_packetization: None,
        transport_capability: None,
        redundancy_encoding: None,
        source: None,
    }
}

/// An `OpenLogicalChannel` for G.711 µ-law audio (20 frames), session 1, as a `fastStart`
/// element (bare OLC PER). `reverse == false`: forward parameters carry the audio and the
/// H.225.0 parameters (`mediaChannel`, `mediaControlChannel`), no reverse parameters.
/// `reverse == true`: forward `nullData`/`none`, reverse parameters carry the audio and the
/// H.225.0 parameters (the receive proposal of a fastStart offer).
pub fn olc(
    channel: u16,
    media_control: Option<SocketAddr>,
    media: Option<SocketAddr>,
    reverse: bool,
) -> Vec<u8> {
    enc(&olc_value(channel, media_control, media, reverse))
}

/// The value [`olc`] encodes.
pub fn olc_value(
    channel: u16,
    media_control: Option<SocketAddr>,
    media: Option<SocketAddr>,
    reverse: bool,
) -> h245::OpenLogicalChannel {
    let params = h2250_params(media, media_control);
    let (forward, reverse_params) = if reverse {
        (
            h245::OpenLogicalChannelForwardLogicalChannelParameters {
                port_number: None,
                data_type: h245::DataType::nullData(()),
                multiplex_parameters:
                    h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::none(()),
                forward_logical_channel_dependency: None,
                replacement_for: None,
            },
            Some(h245::OpenLogicalChannelReverseLogicalChannelParameters {
                data_type: g711_ulaw(),
                multiplex_parameters: Some(
                    h245::OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(params),
                ),
                reverse_logical_channel_dependency: None,
                replacement_for: None,
            }),
        )
    } else {
        (
            h245::OpenLogicalChannelForwardLogicalChannelParameters {
                port_number: None,
                data_type: g711_ulaw(),
                multiplex_parameters:
                    h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(params),
                forward_logical_channel_dependency: None,
                replacement_for: None,
            },
            None,
        )
    };
    h245::OpenLogicalChannel {
        forward_logical_channel_number: lcn(channel),
        forward_logical_channel_parameters: forward,
        reverse_logical_channel_parameters: reverse_params,
        separate_stack: None,
        encryption_sync: None,
        generic_information: None,
    }
}

fn request(r: h245::RequestMessage) -> Vec<u8> {
    enc(&h245::MultimediaSystemControlMessage::request(r))
}

fn response(r: h245::ResponseMessage) -> Vec<u8> {
    enc(&h245::MultimediaSystemControlMessage::response(r))
}

fn command(c: h245::CommandMessage) -> Vec<u8> {
    enc(&h245::MultimediaSystemControlMessage::command(c))
}

/// [`olc`] as a `MultimediaSystemControlMessage` (request).
pub fn olc_msg(
    channel: u16,
    media_control: Option<SocketAddr>,
    media: Option<SocketAddr>,
    reverse: bool,
) -> Vec<u8> {
    request(h245::RequestMessage::openLogicalChannel(olc_value(
        channel,
        media_control,
        media,
        reverse,
    )))
}

/// An `OpenLogicalChannelAck` with H.225.0 ack parameters (`mediaChannel`,
/// `mediaControlChannel`, session 1).
pub fn olc_ack(channel: u16, media: SocketAddr, media_control: SocketAddr) -> Vec<u8> {
    let ack = h245::OpenLogicalChannelAck {
        forward_logical_channel_number: lcn(channel),
        reverse_logical_channel_parameters: None,
        separate_stack: None,
        forward_multiplex_ack_parameters: Some(
            h245::OpenLogicalChannelAckForwardMultiplexAckParameters::h2250LogicalChannelAckParameters(
                h245::H2250LogicalChannelAckParameters {
                    non_standard: None,
                    session_id: Some(1),
                    media_channel: Some(h245_address(media)),
                    media_control_channel: Some(h245_address(media_control)),
                    dynamic_rtppayload_type: None,
                    flow_control_to_zero: None,
                    port_number: None,
                },
            ),
        ),
        encryption_sync: None,
        generic_information: None,
    };
    response(h245::ResponseMessage::openLogicalChannelAck(ack))
}

/// A `CloseLogicalChannel` (source `user`).
pub fn close_logical_channel(channel: u16) -> Vec<u8> {
    request(h245::RequestMessage::closeLogicalChannel(
        h245::CloseLogicalChannel {
            forward_logical_channel_number: lcn(channel),
            source: h245::CloseLogicalChannelSource::user(()),
            reason: None,
        },
    ))
}

/// A `CloseLogicalChannelAck`.
pub fn close_logical_channel_ack(channel: u16) -> Vec<u8> {
    response(h245::ResponseMessage::closeLogicalChannelAck(
        h245::CloseLogicalChannelAck {
            forward_logical_channel_number: lcn(channel),
        },
    ))
}

/// A `RequestChannelClose`.
pub fn request_channel_close(channel: u16) -> Vec<u8> {
    request(h245::RequestMessage::requestChannelClose(
        h245::RequestChannelClose {
            forward_logical_channel_number: lcn(channel),
            qos_capability: None,
            reason: None,
        },
    ))
}

/// An `EndSessionCommand` (`disconnect`).
pub fn end_session_command() -> Vec<u8> {
    command(h245::CommandMessage::endSessionCommand(
        h245::EndSessionCommand::disconnect(()),
    ))
}

/// A minimal `TerminalCapabilitySet`: one capability (receive G.711 µ-law, 20 frames, entry 1)
/// in one descriptor.
pub fn tcs(sequence_number: u8) -> Vec<u8> {
    let entry = h245::CapabilityTableEntry {
        capability_table_entry_number: h245::CapabilityTableEntryNumber(1),
        capability: Some(h245::Capability::receiveAudioCapability(
            h245::AudioCapability::g711Ulaw64k(20),
        )),
    };
    let descriptor = h245::CapabilityDescriptor {
        capability_descriptor_number: h245::CapabilityDescriptorNumber(0),
        simultaneous_capabilities: Some(SetOf::from_vec(vec![h245::AlternativeCapabilitySet(
            vec![h245::CapabilityTableEntryNumber(1)],
        )])),
    };
    request(h245::RequestMessage::terminalCapabilitySet(
        h245::TerminalCapabilitySet {
            sequence_number: h245::SequenceNumber(sequence_number),
            protocol_identifier: oid(H245_OID),
            multiplex_capability: None,
            capability_table: Some(SetOf::from_vec(vec![entry])),
            capability_descriptors: Some(SetOf::from_vec(vec![descriptor])),
            generic_information: None,
        },
    ))
}

/// A `TerminalCapabilitySetAck`.
pub fn tcs_ack(sequence_number: u8) -> Vec<u8> {
    response(h245::ResponseMessage::terminalCapabilitySetAck(
        h245::TerminalCapabilitySetAck {
            sequence_number: h245::SequenceNumber(sequence_number),
            generic_information: None,
        },
    ))
}

/// A `MasterSlaveDetermination`.
pub fn msd(terminal_type: u8, status_determination_number: u32) -> Vec<u8> {
    request(h245::RequestMessage::masterSlaveDetermination(
        h245::MasterSlaveDetermination {
            terminal_type,
            status_determination_number,
        },
    ))
}

/// A `MasterSlaveDeterminationAck`; `master` is the decision for the *receiver*.
pub fn msd_ack(master: bool) -> Vec<u8> {
    let decision = if master {
        h245::MasterSlaveDeterminationAckDecision::master(())
    } else {
        h245::MasterSlaveDeterminationAckDecision::slave(())
    };
    response(h245::ResponseMessage::masterSlaveDeterminationAck(
        h245::MasterSlaveDeterminationAck { decision },
    ))
}

// ---------------------------------------------------------------- RAS

fn ras(m: h225::RasMessage) -> Vec<u8> {
    enc(&m)
}

fn seq(n: u16) -> h225::RequestSeqNum {
    h225::RequestSeqNum(n)
}

fn endpoint_id(s: &str) -> h225::EndpointIdentifier {
    h225::EndpointIdentifier(bmp(s))
}

fn addresses(v: &[SocketAddr]) -> Vec<h225::TransportAddress> {
    v.iter().copied().map(h225_address).collect()
}

/// GatekeeperRequest with `rasAddress`.
pub fn grq(seq_num: u16, ras_address: SocketAddr, alias: &str) -> Vec<u8> {
    ras(h225::RasMessage::gatekeeperRequest(
        h225::GatekeeperRequest {
            request_seq_num: seq(seq_num),
            protocol_identifier: h225_protocol(),
            non_standard_data: None,
            ras_address: h225_address(ras_address),
            endpoint_type: terminal(),
            gatekeeper_identifier: None,
            call_services: None,
            endpoint_alias: Some(vec![h323_id(alias)]),
            alternate_endpoints: None,
            tokens: None,
            crypto_tokens: None,
            authentication_capability: None,
            algorithm_oids: None,
            integrity: None,
            integrity_check_value: None,
            supports_alt_gk: None,
            feature_set: None,
            generic_data: None,
            supports_assigned_gk: None,
            assigned_gatekeeper: None,
        },
    ))
}

/// GatekeeperConfirm with `rasAddress`.
pub fn gcf(seq_num: u16, ras_address: SocketAddr, gatekeeper: &str) -> Vec<u8> {
    ras(h225::RasMessage::gatekeeperConfirm(
        h225::GatekeeperConfirm {
            request_seq_num: seq(seq_num),
            protocol_identifier: h225_protocol(),
            non_standard_data: None,
            gatekeeper_identifier: Some(h225::GatekeeperIdentifier(bmp(gatekeeper))),
            ras_address: h225_address(ras_address),
            alternate_gatekeeper: None,
            authentication_mode: None,
            tokens: None,
            crypto_tokens: None,
            algorithm_oid: None,
            integrity: None,
            integrity_check_value: None,
            feature_set: None,
            generic_data: None,
            assigned_gatekeeper: None,
            rehoming_model: None,
        },
    ))
}

/// RegistrationRequest with `callSignalAddress` and `rasAddress` lists.
pub fn rrq(
    seq_num: u16,
    call_signal_address: &[SocketAddr],
    ras_address: &[SocketAddr],
    alias: &str,
) -> Vec<u8> {
    ras(h225::RasMessage::registrationRequest(
        h225::RegistrationRequest {
            request_seq_num: seq(seq_num),
            protocol_identifier: h225_protocol(),
            non_standard_data: None,
            discovery_complete: false,
            call_signal_address: addresses(call_signal_address),
            ras_address: addresses(ras_address),
            terminal_type: terminal(),
            terminal_alias: Some(vec![h323_id(alias)]),
            gatekeeper_identifier: None,
            endpoint_vendor: vendor(),
            alternate_endpoints: None,
            time_to_live: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            keep_alive: Some(false),
            endpoint_identifier: None,
            will_supply_uuies: Some(false),
            maintain_connection: Some(false),
            alternate_transport_addresses: None,
            additive_registration: None,
            terminal_alias_pattern: None,
            supports_alt_gk: None,
            usage_reporting_capability: None,
            multiple_calls: None,
            supported_h248_packages: None,
            call_credit_capability: None,
            capacity_reporting_capability: None,
            capacity: None,
            feature_set: None,
            generic_data: None,
            restart: None,
            supports_acfsequences: None,
            supports_assigned_gk: None,
            assigned_gatekeeper: None,
            transport_qos: None,
            language: None,
        },
    ))
}

/// RegistrationConfirm with a `callSignalAddress` list.
pub fn rcf(seq_num: u16, call_signal_address: &[SocketAddr], endpoint: &str) -> Vec<u8> {
    ras(h225::RasMessage::registrationConfirm(
        h225::RegistrationConfirm {
            request_seq_num: seq(seq_num),
            protocol_identifier: h225_protocol(),
            non_standard_data: None,
            call_signal_address: addresses(call_signal_address),
            terminal_alias: None,
            gatekeeper_identifier: None,
            endpoint_identifier: endpoint_id(endpoint),
            alternate_gatekeeper: None,
            time_to_live: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            will_respond_to_irr: Some(false),
            pre_granted_arq: None,
            maintain_connection: Some(false),
            service_control: None,
            supports_additive_registration: None,
            terminal_alias_pattern: None,
            supported_prefixes: None,
            usage_spec: None,
            feature_server_alias: None,
            capacity_reporting_spec: None,
            feature_set: None,
            generic_data: None,
            assigned_gatekeeper: None,
            rehoming_model: None,
            transport_qos: None,
        },
    ))
}

/// AdmissionRequest with `destCallSignalAddress` and `srcCallSignalAddress`.
#[allow(clippy::too_many_arguments)]
pub fn arq(
    seq_num: u16,
    endpoint: &str,
    call_id: [u8; 16],
    conf_id: [u8; 16],
    call_reference: u16,
    src_alias: &str,
    dest_csa: Option<SocketAddr>,
    src_csa: Option<SocketAddr>,
    answer_call: bool,
) -> Vec<u8> {
    ras(h225::RasMessage::admissionRequest(h225::AdmissionRequest {
        request_seq_num: seq(seq_num),
        call_type: h225::CallType::pointToPoint(()),
        call_model: None,
        endpoint_identifier: endpoint_id(endpoint),
        destination_info: None,
        dest_call_signal_address: dest_csa.map(h225_address),
        dest_extra_call_info: None,
        src_info: vec![h323_id(src_alias)],
        src_call_signal_address: src_csa.map(h225_address),
        band_width: h225::BandWidth(1280),
        call_reference_value: h225::CallReferenceValue(call_reference),
        non_standard_data: None,
        call_services: None,
        conference_id: conference_id(conf_id),
        active_mc: false,
        answer_call,
        can_map_alias: Some(false),
        call_identifier: Some(call_identifier(call_id)),
        src_alternatives: None,
        dest_alternatives: None,
        gatekeeper_identifier: None,
        tokens: None,
        crypto_tokens: None,
        integrity_check_value: None,
        transport_qos: None,
        will_supply_uuies: Some(false),
        call_linkage: None,
        gateway_data_rate: None,
        capacity: None,
        circuit_info: None,
        desired_protocols: None,
        desired_tunnelled_protocol: None,
        feature_set: None,
        generic_data: None,
        can_map_src_alias: None,
    }))
}

/// AdmissionConfirm (direct call model) with `destCallSignalAddress`.
pub fn acf(seq_num: u16, dest_csa: SocketAddr) -> Vec<u8> {
    ras(h225::RasMessage::admissionConfirm(h225::AdmissionConfirm {
        request_seq_num: seq(seq_num),
        band_width: h225::BandWidth(1280),
        call_model: h225::CallModel::direct(()),
        dest_call_signal_address: h225_address(dest_csa),
        irr_frequency: None,
        non_standard_data: None,
        destination_info: None,
        dest_extra_call_info: None,
        destination_type: None,
        remote_extension_address: None,
        alternate_endpoints: None,
        tokens: None,
        crypto_tokens: None,
        integrity_check_value: None,
        transport_qos: None,
        will_respond_to_irr: Some(false),
        uuies_requested: None,
        language: None,
        alternate_transport_addresses: None,
        use_specified_transport: None,
        circuit_info: None,
        usage_spec: None,
        supported_protocols: None,
        service_control: None,
        multiple_calls: None,
        feature_set: None,
        generic_data: None,
        modified_src_info: None,
        assigned_gatekeeper: None,
    }))
}

/// LocationRequest for `dst_alias` with `replyAddress`.
pub fn lrq(seq_num: u16, dst_alias: &str, reply_address: SocketAddr) -> Vec<u8> {
    ras(h225::RasMessage::locationRequest(h225::LocationRequest {
        request_seq_num: seq(seq_num),
        endpoint_identifier: None,
        destination_info: vec![h323_id(dst_alias)],
        non_standard_data: None,
        reply_address: h225_address(reply_address),
        source_info: None,
        can_map_alias: None,
        gatekeeper_identifier: None,
        tokens: None,
        crypto_tokens: None,
        integrity_check_value: None,
        desired_protocols: None,
        desired_tunnelled_protocol: None,
        feature_set: None,
        generic_data: None,
        hop_count: None,
        circuit_info: None,
        call_identifier: None,
        band_width: None,
        source_endpoint_info: None,
        can_map_src_alias: None,
        language: None,
    }))
}

/// LocationConfirm with `callSignalAddress` and `rasAddress`.
pub fn lcf(seq_num: u16, call_signal_address: SocketAddr, ras_address: SocketAddr) -> Vec<u8> {
    ras(h225::RasMessage::locationConfirm(h225::LocationConfirm {
        request_seq_num: seq(seq_num),
        call_signal_address: h225_address(call_signal_address),
        ras_address: h225_address(ras_address),
        non_standard_data: None,
        destination_info: None,
        dest_extra_call_info: None,
        destination_type: None,
        remote_extension_address: None,
        alternate_endpoints: None,
        tokens: None,
        crypto_tokens: None,
        integrity_check_value: None,
        alternate_transport_addresses: None,
        supported_protocols: None,
        multiple_calls: None,
        feature_set: None,
        generic_data: None,
        circuit_info: None,
        service_control: None,
        modified_src_info: None,
        band_width: None,
    }))
}

/// DisengageRequest (`normalDrop`).
pub fn drq(
    seq_num: u16,
    endpoint: &str,
    call_id: [u8; 16],
    conf_id: [u8; 16],
    call_reference: u16,
) -> Vec<u8> {
    ras(h225::RasMessage::disengageRequest(h225::DisengageRequest {
        request_seq_num: seq(seq_num),
        endpoint_identifier: endpoint_id(endpoint),
        conference_id: conference_id(conf_id),
        call_reference_value: h225::CallReferenceValue(call_reference),
        disengage_reason: h225::DisengageReason::normalDrop(()),
        non_standard_data: None,
        call_identifier: Some(call_identifier(call_id)),
        gatekeeper_identifier: None,
        tokens: None,
        crypto_tokens: None,
        integrity_check_value: None,
        answered_call: Some(false),
        call_linkage: None,
        capacity: None,
        circuit_info: None,
        usage_information: None,
        termination_cause: None,
        service_control: None,
        generic_data: None,
    }))
}

/// DisengageConfirm.
pub fn dcf(seq_num: u16) -> Vec<u8> {
    ras(h225::RasMessage::disengageConfirm(h225::DisengageConfirm {
        request_seq_num: seq(seq_num),
        non_standard_data: None,
        tokens: None,
        crypto_tokens: None,
        integrity_check_value: None,
        capacity: None,
        circuit_info: None,
        usage_information: None,
        generic_data: None,
        assigned_gatekeeper: None,
    }))
}

/// InfoRequest with an optional `replyAddress`.
pub fn irq(seq_num: u16, call_reference: u16, reply_address: Option<SocketAddr>) -> Vec<u8> {
    ras(h225::RasMessage::infoRequest(h225::InfoRequest {
        request_seq_num: seq(seq_num),
        call_reference_value: h225::CallReferenceValue(call_reference),
        non_standard_data: None,
        reply_address: reply_address.map(h225_address),
        call_identifier: None,
        tokens: None,
        crypto_tokens: None,
        integrity_check_value: None,
        uuies_requested: None,
        call_linkage: None,
        usage_info_requested: None,
        segmented_response_supported: None,
        next_segment_requested: None,
        capacity_info_requested: None,
        generic_data: None,
        assigned_gatekeeper: None,
    }))
}

/// InfoRequestResponse with `rasAddress` and a `callSignalAddress` list.
pub fn irr(
    seq_num: u16,
    endpoint: &str,
    ras_address: SocketAddr,
    call_signal_address: &[SocketAddr],
) -> Vec<u8> {
    ras(h225::RasMessage::infoRequestResponse(
        h225::InfoRequestResponse {
            non_standard_data: None,
            request_seq_num: seq(seq_num),
            endpoint_type: terminal(),
            endpoint_identifier: endpoint_id(endpoint),
            ras_address: h225_address(ras_address),
            call_signal_address: addresses(call_signal_address),
            endpoint_alias: None,
            per_call_info: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            need_response: Some(false),
            capacity: None,
            irr_status: None,
            unsolicited: Some(false),
            generic_data: None,
        },
    ))
}

/// UnregistrationRequest with a `callSignalAddress` list.
pub fn urq(seq_num: u16, call_signal_address: &[SocketAddr], endpoint: Option<&str>) -> Vec<u8> {
    ras(h225::RasMessage::unregistrationRequest(
        h225::UnregistrationRequest {
            request_seq_num: seq(seq_num),
            call_signal_address: addresses(call_signal_address),
            endpoint_alias: None,
            non_standard_data: None,
            endpoint_identifier: endpoint.map(endpoint_id),
            alternate_endpoints: None,
            gatekeeper_identifier: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            reason: None,
            endpoint_alias_pattern: None,
            supported_prefixes: None,
            alternate_gatekeeper: None,
            generic_data: None,
            assigned_gatekeeper: None,
        },
    ))
}

/// UnregistrationConfirm.
pub fn ucf(seq_num: u16) -> Vec<u8> {
    ras(h225::RasMessage::unregistrationConfirm(
        h225::UnregistrationConfirm {
            request_seq_num: seq(seq_num),
            non_standard_data: None,
            tokens: None,
            crypto_tokens: None,
            integrity_check_value: None,
            generic_data: None,
            assigned_gatekeeper: None,
        },
    ))
}
