//! Just enough SDP (RFC 8866) to check where media goes: the connection
//! addresses, the media ports and the direction attributes. It is the test's
//! own reading, independent of the ALG under test, and strict: a line the
//! test relies on that does not parse is an error, not a guess.
//!
//! ```
//! use pinhole_tests::sipp::sdp::{MediaDirection, Sdp};
//!
//! let sdp = Sdp::parse(b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n")?;
//! assert_eq!(sdp.audio_addr(), Some("192.0.2.1:4000".parse().unwrap()));
//! assert_eq!(sdp.audio_direction(), Some(MediaDirection::SendOnly));
//! # Ok::<(), pinhole_tests::sipp::sdp::SdpError>(())
//! ```

use std::net::{IpAddr, SocketAddr};

/// Why an SDP body was rejected.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SdpError {
    /// The body is not UTF-8.
    #[error("SDP is not UTF-8 text")]
    NotText,
    /// A line is not `<letter>=<value>`.
    #[error("SDP line {line}: {text:?} is not <type>=<value>")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A `c=` line is not `IN IP4|IP6 <address>`.
    #[error("SDP line {line}: bad connection {text:?}")]
    BadConnection {
        /// 1-based line number.
        line: usize,
        /// The value after `c=`.
        text: String,
    },
    /// An `m=` line is not `<media> <port>[/<n>] <proto> <fmt>...`.
    #[error("SDP line {line}: bad media line {text:?}")]
    BadMedia {
        /// 1-based line number.
        line: usize,
        /// The value after `m=`.
        text: String,
    },
}

/// The media direction attributes (RFC 8866 section 6.7).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MediaDirection {
    /// `a=sendrecv`.
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl MediaDirection {
    fn from_attribute(a: &str) -> Option<Self> {
        match a {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// One `m=` section.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SdpMedia {
    /// `audio`, `video`, ...
    pub kind: String,
    /// The port (0 means the stream is disabled).
    pub port: u16,
    /// The transport, e.g. `RTP/AVP`.
    pub proto: String,
    /// The format list (payload types for RTP).
    pub formats: Vec<String>,
    /// This section's own `c=` address, if any.
    pub connection: Option<IpAddr>,
    /// This section's direction attribute, if any.
    pub direction: Option<MediaDirection>,
}

/// The parts of an SDP body the tests look at.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Sdp {
    /// The `o=` value as written (proxies may rewrite its address too).
    pub origin: Option<String>,
    /// The session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// The session-level direction attribute.
    pub direction: Option<MediaDirection>,
    /// The `m=` sections in order.
    pub media: Vec<SdpMedia>,
}

impl Sdp {
    /// Parses an SDP body. Lines may end in CRLF or LF; blank lines and
    /// lines the tests do not need are skipped.
    pub fn parse(body: &[u8]) -> Result<Self, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        let mut sdp = Self::default();
        for (i, raw) in text.split('\n').enumerate() {
            let line_no = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let (kind, value) = match line.split_once('=') {
                Some((k, v)) if k.len() == 1 => (k, v),
                _ => {
                    return Err(SdpError::BadLine {
                        line: line_no,
                        text: line.to_owned(),
                    });
                }
            };
            match kind {
                "o" => sdp.origin = Some(value.to_owned()),
                "c" => {
                    let addr = parse_connection(value).ok_or_else(|| SdpError::BadConnection {
                        line: line_no,
                        text: value.to_owned(),
                    })?;
                    match sdp.media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => sdp.connection = Some(addr),
                    }
                }
                "m" => {
                    let m = parse_media(value).ok_or_else(|| SdpError::BadMedia {
                        line: line_no,
                        text: value.to_owned(),
                    })?;
                    sdp.media.push(m);
                }
                "a" => {
                    if let Some(d) = MediaDirection::from_attribute(value) {
                        match sdp.media.last_mut() {
                            Some(m) => m.direction = Some(d),
                            None => sdp.direction = Some(d),
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(sdp)
    }

    /// The first `audio` section.
    pub fn audio(&self) -> Option<&SdpMedia> {
        self.media.iter().find(|m| m.kind == "audio")
    }

    /// Where the first audio stream wants its RTP: its own `c=` address or
    /// the session's, and its port.
    pub fn audio_addr(&self) -> Option<SocketAddr> {
        let m = self.audio()?;
        let ip = m.connection.or(self.connection)?;
        Some(SocketAddr::new(ip, m.port))
    }

    /// The first audio stream's direction: its own attribute, else the
    /// session's, else `None` (which SDP reads as sendrecv).
    pub fn audio_direction(&self) -> Option<MediaDirection> {
        self.audio()?.direction.or(self.direction)
    }
}

/// `IN IP4 192.0.2.1`, `IN IP4 224.2.1.1/127` or `IN IP6 2001:db8::1`.
fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut parts = value.split(' ');
    let (net, ty, addr) = (parts.next()?, parts.next()?, parts.next()?);
    if net != "IN" || parts.next().is_some() {
        return None;
    }
    // Multicast IPv4 carries /ttl[/count]; IPv6 may carry /count.
    let addr = addr.split('/').next()?;
    let ip: IpAddr = addr.parse().ok()?;
    match (ty, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

/// `audio 49170[/2] RTP/AVP 0 8`.
fn parse_media(value: &str) -> Option<SdpMedia> {
    let mut parts = value.split(' ');
    let kind = parts.next().filter(|k| !k.is_empty())?;
    let port = parts.next()?.split('/').next()?.parse().ok()?;
    let proto = parts.next().filter(|p| !p.is_empty())?;
    let formats: Vec<String> = parts.map(str::to_owned).collect();
    if formats.is_empty() || formats.iter().any(String::is_empty) {
        return None;
    }
    Some(SdpMedia {
        kind: kind.to_owned(),
        port,
        proto: proto.to_owned(),
        formats,
        connection: None,
        direction: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OFFER: &[u8] = b"v=0\r\n\
        o=- 1 1 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        c=IN IP4 127.0.0.1\r\n\
        t=0 0\r\n\
        m=audio 36000 RTP/AVP 0 101\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=sendrecv\r\n";

    #[test]
    fn reads_connection_port_and_direction() {
        let sdp = Sdp::parse(OFFER).unwrap();
        assert_eq!(sdp.origin.as_deref(), Some("- 1 1 IN IP4 127.0.0.1"));
        assert_eq!(sdp.connection, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(sdp.media.len(), 1);
        let m = &sdp.media[0];
        assert_eq!(
            (m.kind.as_str(), m.port, m.proto.as_str()),
            ("audio", 36000, "RTP/AVP")
        );
        assert_eq!(m.formats, ["0", "101"]);
        assert_eq!(sdp.audio_addr(), Some("127.0.0.1:36000".parse().unwrap()));
        assert_eq!(sdp.audio_direction(), Some(MediaDirection::SendRecv));
        assert_eq!(sdp.direction, None);
    }

    #[test]
    fn media_level_connection_and_direction_win() {
        let body = b"v=0\nc=IN IP4 192.0.2.1\na=recvonly\n\
            m=video 5000 RTP/AVP 96\nc=IN IP4 192.0.2.9\n\
            m=audio 4000/2 RTP/AVP 0\nc=IN IP6 2001:db8::7\na=inactive\n";
        let sdp = Sdp::parse(body).unwrap();
        assert_eq!(sdp.direction, Some(MediaDirection::RecvOnly));
        assert_eq!(sdp.media[0].connection, Some("192.0.2.9".parse().unwrap()));
        assert_eq!(
            sdp.audio_addr(),
            Some("[2001:db8::7]:4000".parse().unwrap())
        );
        assert_eq!(sdp.audio_direction(), Some(MediaDirection::Inactive));
    }

    #[test]
    fn session_direction_applies_when_media_has_none() {
        let sdp = Sdp::parse(b"c=IN IP4 192.0.2.1\na=sendonly\nm=audio 4000 RTP/AVP 0\n").unwrap();
        assert_eq!(sdp.audio_direction(), Some(MediaDirection::SendOnly));
        let sdp = Sdp::parse(b"m=audio 4000 RTP/AVP 0\n").unwrap();
        assert_eq!(sdp.audio_direction(), None);
        // No c= anywhere: no address to send to.
        assert_eq!(sdp.audio_addr(), None);
    }

    #[test]
    fn multicast_ttl_is_dropped() {
        let sdp = Sdp::parse(b"c=IN IP4 224.2.1.1/127/3\n").unwrap();
        assert_eq!(sdp.connection, Some("224.2.1.1".parse().unwrap()));
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        assert_eq!(
            Sdp::parse(b"v=0\r\nhello\r\n"),
            Err(SdpError::BadLine {
                line: 2,
                text: "hello".into()
            })
        );
        assert_eq!(
            Sdp::parse(b"v=0\nc=IN IP4 example.com\n"),
            Err(SdpError::BadConnection {
                line: 2,
                text: "IN IP4 example.com".into()
            })
        );
        assert!(matches!(
            Sdp::parse(b"c=IN IP6 192.0.2.1\n"),
            Err(SdpError::BadConnection { .. })
        ));
        assert!(matches!(
            Sdp::parse(b"c=IN IP4 192.0.2.1 x\n"),
            Err(SdpError::BadConnection { .. })
        ));
        assert!(matches!(
            Sdp::parse(b"m=audio 70000 RTP/AVP 0\n"),
            Err(SdpError::BadMedia { line: 1, .. })
        ));
        assert!(matches!(
            Sdp::parse(b"m=audio 4000 RTP/AVP\n"),
            Err(SdpError::BadMedia { .. })
        ));
        assert!(matches!(
            Sdp::parse(b"m=audio 4000  RTP/AVP 0\n"),
            Err(SdpError::BadMedia { .. })
        ));
        assert_eq!(Sdp::parse(&[0xff, b'\n']), Err(SdpError::NotText));
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Sdp::parse(&body);
        }

        #[test]
        fn finds_any_written_address(
            ip in any::<std::net::Ipv4Addr>(),
            port in any::<u16>(),
            crlf in any::<bool>(),
            dir in prop::sample::select(vec!["sendrecv", "sendonly", "recvonly", "inactive"]),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let body = format!("v=0{eol}o=- 1 1 IN IP4 {ip}{eol}s=-{eol}c=IN IP4 {ip}{eol}t=0 0{eol}m=audio {port} RTP/AVP 0{eol}a={dir}{eol}");
            let sdp = Sdp::parse(body.as_bytes()).unwrap();
            prop_assert_eq!(sdp.audio_addr(), Some(SocketAddr::new(ip.into(), port)));
            prop_assert_eq!(sdp.audio_direction(), MediaDirection::from_attribute(dir));
        }
    }
}
