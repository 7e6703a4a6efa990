//! Q.931 as H.225.0 uses it (ITU-T Q.931 §4, H.225.0 §7): the protocol
//! discriminator, the call reference, the message type and the information
//! elements, located as spans of the caller's buffer; the User-user
//! element, whose two-octet length H.225.0 fixes, carries the
//! `H323-UserInformation` in aligned PER.

use std::ops::Range;

use crate::error::Q931Error;

/// Q.931's protocol discriminator (the first octet).
pub const PROTOCOL_DISCRIMINATOR: u8 = 0x08;

/// The User-user information element (Q.931 §4.5.30).
pub const USER_USER: u8 = 0x7E;

/// The User-user protocol discriminator of X.208/X.209 coded user
/// information: H.225.0's `H323-UserInformation`.
pub const X208: u8 = 0x05;

/// The Q.931 message types H.225.0 uses (Q.931 Table 4-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageType {
    /// ALERTING.
    Alerting,
    /// CALL PROCEEDING.
    CallProceeding,
    /// CONNECT.
    Connect,
    /// CONNECT ACKNOWLEDGE.
    ConnectAck,
    /// PROGRESS.
    Progress,
    /// SETUP.
    Setup,
    /// SETUP ACKNOWLEDGE.
    SetupAck,
    /// RELEASE COMPLETE.
    ReleaseComplete,
    /// FACILITY.
    Facility,
    /// INFORMATION.
    Information,
    /// NOTIFY.
    Notify,
    /// USER INFORMATION (Cisco gateways send H.225.0 `information` in it).
    UserInformation,
    /// STATUS.
    Status,
    /// STATUS ENQUIRY.
    StatusEnquiry,
    /// Another code: passed on as it came.
    Other(u8),
}

impl MessageType {
    /// The type of code `c`.
    pub fn from_code(c: u8) -> Self {
        match c {
            0x01 => Self::Alerting,
            0x02 => Self::CallProceeding,
            0x07 => Self::Connect,
            0x0F => Self::ConnectAck,
            0x03 => Self::Progress,
            0x05 => Self::Setup,
            0x0D => Self::SetupAck,
            0x5A => Self::ReleaseComplete,
            0x62 => Self::Facility,
            0x7B => Self::Information,
            0x6E => Self::Notify,
            0x20 => Self::UserInformation,
            0x7D => Self::Status,
            0x75 => Self::StatusEnquiry,
            other => Self::Other(other),
        }
    }

    /// Its code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::Alerting => 0x01,
            Self::CallProceeding => 0x02,
            Self::Connect => 0x07,
            Self::ConnectAck => 0x0F,
            Self::Progress => 0x03,
            Self::Setup => 0x05,
            Self::SetupAck => 0x0D,
            Self::ReleaseComplete => 0x5A,
            Self::Facility => 0x62,
            Self::Information => 0x7B,
            Self::Notify => 0x6E,
            Self::UserInformation => 0x20,
            Self::Status => 0x7D,
            Self::StatusEnquiry => 0x75,
            Self::Other(c) => c,
        }
    }

    /// Its name as Q.931 writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Alerting => "Alerting",
            Self::CallProceeding => "CallProceeding",
            Self::Connect => "Connect",
            Self::ConnectAck => "ConnectAck",
            Self::Progress => "Progress",
            Self::Setup => "Setup",
            Self::SetupAck => "SetupAck",
            Self::ReleaseComplete => "ReleaseComplete",
            Self::Facility => "Facility",
            Self::Information => "Information",
            Self::Notify => "Notify",
            Self::UserInformation => "UserInformation",
            Self::Status => "Status",
            Self::StatusEnquiry => "StatusEnquiry",
            Self::Other(_) => "other",
        }
    }
}

/// One information element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ie {
    /// Its identifier (for a single-octet element, the whole octet).
    pub id: u8,
    /// The whole element, identifier to the last contents octet.
    pub span: Range<usize>,
    /// Its contents (empty for a single-octet element).
    pub value: Range<usize>,
}

/// The User-user element's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserUser {
    /// The two-octet length field.
    pub length: Range<usize>,
    /// Its protocol discriminator ([`X208`] for H.225.0).
    pub discriminator: u8,
    /// The user information: for H.225.0 the `H323-UserInformation` in
    /// aligned PER.
    pub data: Range<usize>,
}

/// A Q.931 message located in a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    buf: &'a [u8],
    /// The call reference value (without the flag), up to 15 octets.
    pub call_reference: Range<usize>,
    /// The call reference flag: set on messages from the side the call
    /// reference was not chosen by (the called side).
    pub from_destination: bool,
    /// The message type.
    pub kind: MessageType,
    /// The information elements, in order.
    pub ies: Vec<Ie>,
}

impl<'a> Message<'a> {
    /// Locates a Q.931 message (a TPKT frame's payload) in `buf`.
    ///
    /// Every element must end within the buffer; a truncated or foreign
    /// message is an error with the offset of what is wrong.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Q931Error> {
        let at = |i: usize| buf.get(i).copied();
        match at(0) {
            Some(PROTOCOL_DISCRIMINATOR) => {}
            Some(_) => return Err(Q931Error::at(0, "not a Q.931 protocol discriminator")),
            None => return Err(Q931Error::at(0, "empty")),
        }
        let cr_len = usize::from(at(1).ok_or(Q931Error::at(1, "no call reference length"))?);
        if cr_len & 0xF0 != 0 {
            return Err(Q931Error::at(
                1,
                "call reference length octet has its high bits set",
            ));
        }
        let cr = 2..2 + cr_len;
        if buf.len() < cr.end + 1 {
            return Err(Q931Error::at(
                buf.len(),
                "truncated call reference or message type",
            ));
        }
        let from_destination = cr_len > 0 && buf[2] & 0x80 != 0;
        let kind_octet = buf[cr.end];
        if kind_octet & 0x80 != 0 {
            return Err(Q931Error::at(cr.end, "message type with bit 8 set"));
        }
        let kind = MessageType::from_code(kind_octet);
        let mut ies = Vec::new();
        let mut i = cr.end + 1;
        while i < buf.len() {
            let id = buf[i];
            if id & 0x80 != 0 {
                // A single-octet element (Q.931 §4.5.1: shift, more data,
                // sending complete, ...).
                ies.push(Ie {
                    id,
                    span: i..i + 1,
                    value: i + 1..i + 1,
                });
                i += 1;
                continue;
            }
            // H.225.0 §7.2.2.1: the User-user element's length is two octets.
            let len_octets = if id == USER_USER { 2 } else { 1 };
            let len_at = i + 1;
            let Some(len_bytes) = buf.get(len_at..len_at + len_octets) else {
                return Err(Q931Error::at(
                    len_at,
                    "truncated information element length",
                ));
            };
            let len = len_bytes
                .iter()
                .fold(0usize, |n, &b| (n << 8) | usize::from(b));
            let value = len_at + len_octets..len_at + len_octets + len;
            if value.end > buf.len() {
                return Err(Q931Error::at(
                    len_at,
                    "information element longer than the message",
                ));
            }
            ies.push(Ie {
                id,
                span: i..value.end,
                value: value.clone(),
            });
            i = value.end;
        }
        Ok(Self {
            buf,
            call_reference: cr,
            from_destination,
            kind,
            ies,
        })
    }

    /// The buffer the spans index.
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// The call reference value as a number (the flag cleared); 0 for
    /// the dummy call reference.
    pub fn call_reference_value(&self) -> u64 {
        self.buf
            .get(self.call_reference.clone())
            .unwrap_or_default()
            .iter()
            .enumerate()
            .fold(0u64, |n, (k, &b)| {
                (n << 8) | u64::from(if k == 0 { b & 0x7F } else { b })
            })
    }

    /// The first information element with identifier `id`.
    pub fn ie(&self, id: u8) -> Option<&Ie> {
        self.ies.iter().find(|e| e.id == id)
    }

    /// The User-user element, which carries H.225.0's message; `None`
    /// without one, or when it is empty (not even its discriminator).
    pub fn user_user(&self) -> Option<UserUser> {
        let ie = self.ie(USER_USER)?;
        if ie.value.is_empty() {
            return None;
        }
        let discriminator = *self.buf.get(ie.value.start)?;
        Some(UserUser {
            length: ie.span.start + 1..ie.value.start,
            discriminator,
            data: ie.value.start + 1..ie.value.end,
        })
    }

    /// The message with the User-user data replaced by `data`: its
    /// two-octet length fixed, every other byte as it was. `Err` when the
    /// message has no User-user element or the new contents would not fit
    /// its length field.
    pub fn with_user_data(&self, data: &[u8]) -> Result<Vec<u8>, Q931Error> {
        let uu = self
            .user_user()
            .ok_or(Q931Error::at(0, "no User-user information element"))?;
        let len = u16::try_from(data.len() + 1)
            .map_err(|_| Q931Error::at(uu.length.start, "User-user data over 65534 octets"))?;
        let mut out = Vec::with_capacity(self.buf.len() + data.len());
        out.extend_from_slice(&self.buf[..uu.length.start]);
        out.extend_from_slice(&len.to_be_bytes());
        out.push(uu.discriminator);
        out.extend_from_slice(data);
        out.extend_from_slice(&self.buf[uu.data.end..]);
        Ok(out)
    }
}

/// The payload of one TPKT frame (RFC 1006): the bytes after its 4-byte
/// header, which must say exactly `frame.len()`.
pub fn tpkt_payload(frame: &[u8]) -> Result<&[u8], Q931Error> {
    match pinhole_core::framing::tpkt(frame) {
        Ok(Some(f)) if f.len() == frame.len() => Ok(&frame[4..]),
        Ok(Some(_)) => Err(Q931Error::at(2, "TPKT length differs from the frame")),
        Ok(None) => Err(Q931Error::at(frame.len(), "truncated TPKT frame")),
        Err(_) => Err(Q931Error::at(0, "not a TPKT frame")),
    }
}

/// `payload` in a TPKT frame: version 3, reserved 0, its length.
pub fn tpkt_frame(payload: &[u8]) -> Result<Vec<u8>, Q931Error> {
    let len = u16::try_from(payload.len() + 4)
        .map_err(|_| Q931Error::at(0, "payload over a TPKT frame's 65531 octets"))?;
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&[3, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}
