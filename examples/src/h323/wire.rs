//! The bytes on the wire around the rasn-encoded PDUs: TPKT framing of a
//! TCP byte stream (RFC 1006) and the Q.931 envelope H.225.0 uses (a
//! 2-octet call reference, a few information elements, the User-user
//! element carrying the `H323-UserInformation`).

/// Q.931 message types (Q.931 Table 4-2) an H.323 terminal uses.
pub mod kind {
    /// ALERTING.
    pub const ALERTING: u8 = 0x01;
    /// CALL PROCEEDING.
    pub const CALL_PROCEEDING: u8 = 0x02;
    /// PROGRESS.
    pub const PROGRESS: u8 = 0x03;
    /// SETUP.
    pub const SETUP: u8 = 0x05;
    /// CONNECT.
    pub const CONNECT: u8 = 0x07;
    /// RELEASE COMPLETE.
    pub const RELEASE_COMPLETE: u8 = 0x5a;
    /// FACILITY.
    pub const FACILITY: u8 = 0x62;
    /// STATUS ENQUIRY.
    pub const STATUS_ENQUIRY: u8 = 0x75;
    /// STATUS.
    pub const STATUS: u8 = 0x7d;
}

/// The name of a Q.931 message type, as the report lists it.
pub fn kind_name(k: u8) -> String {
    match k {
        kind::ALERTING => "Alerting".into(),
        kind::CALL_PROCEEDING => "CallProceeding".into(),
        kind::PROGRESS => "Progress".into(),
        kind::SETUP => "Setup".into(),
        kind::CONNECT => "Connect".into(),
        kind::RELEASE_COMPLETE => "ReleaseComplete".into(),
        kind::FACILITY => "Facility".into(),
        kind::STATUS_ENQUIRY => "StatusEnquiry".into(),
        kind::STATUS => "Status".into(),
        other => format!("Q931-0x{other:02x}"),
    }
}

/// Bearer capability (Q.931 §4.5.5) of an H.323 voice call: ITU-T coding,
/// speech; circuit mode, 64 kbit/s; user information layer 1 G.711 µ-law.
pub const BEARER_CAPABILITY_SPEECH: [u8; 5] = [0x04, 0x03, 0x80, 0x90, 0xa2];

/// Cause (Q.931 §4.5.12): ITU-T coding, location user, #16 normal call
/// clearing.
pub const CAUSE_NORMAL_CLEARING: [u8; 4] = [0x08, 0x02, 0x80, 0x90];

/// The fixed part of a received Q.931 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The call reference value (flag cleared).
    pub crv: u16,
    /// The call reference flag: set on messages from the called side.
    pub from_destination: bool,
    /// The message type.
    pub kind: u8,
}

/// Reads the protocol discriminator, the call reference (H.225.0 uses two
/// octets) and the message type.
pub fn parse_header(q931: &[u8]) -> Result<Header, String> {
    match q931 {
        [0x08, 0x02, hi, lo, kind, ..] => Ok(Header {
            crv: u16::from_be_bytes([hi & 0x7f, *lo]),
            from_destination: hi & 0x80 != 0,
            kind: *kind,
        }),
        [0x08, len, ..] => Err(format!("call reference of {len} octets (H.225.0 uses 2)")),
        [_, ..] => Err("not Q.931 (protocol discriminator)".into()),
        [] => Err("empty".into()),
    }
}

/// A Q.931 message: the header, the information elements `ies` (whole
/// elements, in ascending identifier order, all below User-user) and the
/// User-user element carrying `per` (an `H323-UserInformation`).
pub fn q931(crv: u16, from_destination: bool, kind: u8, ies: &[&[u8]], per: &[u8]) -> Vec<u8> {
    let cr = crv & 0x7fff | if from_destination { 0x8000 } else { 0 };
    // The User-user length is two octets (H.225.0 §7.2.2.1); it counts the
    // protocol discriminator. A PDU over 64 KiB cannot be sent: truncating
    // the length would be worse than the (never seen) clamp.
    let uu_len = u16::try_from(per.len() + 1).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(per.len() + 16);
    out.extend_from_slice(&[0x08, 0x02]);
    out.extend_from_slice(&cr.to_be_bytes());
    out.push(kind);
    for ie in ies {
        out.extend_from_slice(ie);
    }
    out.push(0x7e);
    out.extend_from_slice(&uu_len.to_be_bytes());
    out.push(0x05);
    out.extend_from_slice(per);
    out
}

/// `payload` in a TPKT frame (version 3, reserved 0, the length counting
/// the 4-octet header).
pub fn tpkt(payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 4).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&[3, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Cuts a TCP byte stream into TPKT payloads, whatever the segmentation:
/// several frames in one read, one frame over several reads.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    /// Octets skipped to find a frame header again.
    pub skipped: u64,
}

impl Deframer {
    /// Appends what was read.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame's payload, if there is one. Garbage (a
    /// header that is not `03 00` or a length under 4) is skipped up to the
    /// next `03 00` and counted in [`Deframer::skipped`].
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.buf.len() < 4 {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
            if self.buf[0] != 3 || self.buf[1] != 0 || len < 4 {
                let skip = self
                    .buf
                    .windows(2)
                    .skip(1)
                    .position(|w| w == [3, 0])
                    .map_or(self.buf.len() - 1, |p| p + 1);
                tracing::warn!(skip, "TPKT: not a frame header, resynchronising");
                self.skipped += skip as u64;
                self.buf.drain(..skip);
                continue;
            }
            if self.buf.len() < len {
                return None;
            }
            let payload = self.buf[4..len].to_vec();
            self.buf.drain(..len);
            return Some(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_joined() {
        let a = tpkt(b"hello");
        let b = tpkt(b"world!");
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        let mut d = Deframer::default();
        d.push(&stream[..3]);
        assert_eq!(d.next_frame(), None);
        d.push(&stream[3..a.len() + 2]);
        assert_eq!(d.next_frame().as_deref(), Some(&b"hello"[..]));
        assert_eq!(d.next_frame(), None);
        d.push(&stream[a.len() + 2..]);
        assert_eq!(d.next_frame().as_deref(), Some(&b"world!"[..]));
        assert_eq!(d.next_frame(), None);
    }

    #[test]
    fn garbage_is_skipped() {
        let mut d = Deframer::default();
        d.push(&[9, 9, 9]);
        d.push(&tpkt(b"x"));
        assert_eq!(d.next_frame().as_deref(), Some(&b"x"[..]));
        assert_eq!(d.skipped, 3);
    }

    #[test]
    fn q931_round_trip() {
        let m = q931(
            0x1234,
            true,
            kind::CONNECT,
            &[&CAUSE_NORMAL_CLEARING],
            b"per",
        );
        let h = parse_header(&m).unwrap();
        assert_eq!(
            (h.crv, h.from_destination, h.kind),
            (0x1234, true, kind::CONNECT)
        );
        assert_eq!(pinhole_h323_oracle::q931_user_user(&m).unwrap(), b"per");
        assert!(parse_header(&[0x08, 0x01, 0x05, 0x05]).is_err());
    }
}
