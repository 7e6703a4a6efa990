//! Writing commands and responses, for call agents, gateways and tests.
//! The caller's text is written as given: a value with a line end in it
//! makes a message that does not parse.

use std::io::Write as _;

use pinhole_sdp::LineEnding;

use crate::head::{Command, Response};

/// Builds a command (see [`Command::builder`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandBuilder {
    verb: String,
    transaction_id: u32,
    endpoint: String,
    version: String,
    body: Body,
}

/// Builds a response (see [`Response::builder`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseBuilder {
    code: u16,
    transaction_id: u32,
    commentary: Option<String>,
    body: Body,
}

/// Parameter lines, session description and line ending.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Body {
    params: Vec<(String, String)>,
    sdp: Option<Vec<u8>>,
    eol: LineEnding,
}

impl Body {
    fn new() -> Self {
        Self {
            params: Vec::new(),
            sdp: None,
            eol: LineEnding::CrLf,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        let eol = self.eol.as_bytes();
        out.extend_from_slice(eol);
        for (name, value) in &self.params {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(eol);
        }
        if let Some(sdp) = &self.sdp {
            out.extend_from_slice(eol);
            out.extend_from_slice(sdp);
        }
    }
}

impl Command<'_> {
    /// A command `verb transaction_id endpoint MGCP 1.0`, CRLF line ends.
    ///
    /// ```
    /// use pinhole_mgcp::{Command, Message, MediaRole};
    ///
    /// let sdp = b"v=0\r\nc=IN IP4 10.0.0.7\r\nm=audio 4000 RTP/AVP 0\r\n";
    /// let bytes = Command::builder("CRCX", 1204, "aaln/1@gw1.corp1.example")
    ///     .param("C", "A3C47F21456789F0")
    ///     .param("M", "recvonly")
    ///     .sdp(sdp)
    ///     .to_bytes();
    /// let m = Message::parse(&bytes)?;
    /// assert_eq!(m.call_id(), Some("A3C47F21456789F0"));
    /// assert_eq!(m.media_role(), MediaRole::Offer);
    /// assert_eq!(&bytes[m.sdp_span().unwrap()], sdp);
    /// # Ok::<(), pinhole_mgcp::Error>(())
    /// ```
    pub fn builder(verb: &str, transaction_id: u32, endpoint: &str) -> CommandBuilder {
        CommandBuilder {
            verb: verb.to_owned(),
            transaction_id,
            endpoint: endpoint.to_owned(),
            version: "MGCP 1.0".to_owned(),
            body: Body::new(),
        }
    }
}

impl CommandBuilder {
    /// Another protocol version field (`MGCP 1.0 NCS 1.0`, `MGCP 0.1`).
    pub fn version(mut self, version: &str) -> Self {
        version.clone_into(&mut self.version);
        self
    }

    /// Adds a parameter line `name: value`.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.body.params.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds the session description, after an empty line.
    pub fn sdp(mut self, body: &[u8]) -> Self {
        self.body.sdp = Some(body.to_vec());
        self
    }

    /// Ends lines with a bare LF instead of CRLF (the SDP is as given).
    pub fn lf(mut self) -> Self {
        self.body.eol = LineEnding::Lf;
        self
    }

    /// Appends the message to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "{} {} {} {}",
            self.verb, self.transaction_id, self.endpoint, self.version
        );
        self.body.write(out);
    }

    /// The message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

impl Response<'_> {
    /// A response `code transaction_id`, no commentary, CRLF line ends.
    pub fn builder(code: u16, transaction_id: u32) -> ResponseBuilder {
        ResponseBuilder {
            code,
            transaction_id,
            commentary: None,
            body: Body::new(),
        }
    }
}

impl ResponseBuilder {
    /// The commentary after the transaction id (`OK`).
    pub fn commentary(mut self, text: &str) -> Self {
        self.commentary = Some(text.to_owned());
        self
    }

    /// Adds a parameter line `name: value`.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.body.params.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds the session description, after an empty line.
    pub fn sdp(mut self, body: &[u8]) -> Self {
        self.body.sdp = Some(body.to_vec());
        self
    }

    /// Ends lines with a bare LF instead of CRLF.
    pub fn lf(mut self) -> Self {
        self.body.eol = LineEnding::Lf;
        self
    }

    /// Appends the message to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "{:03} {}", self.code, self.transaction_id);
        if let Some(c) = &self.commentary {
            let _ = write!(out, " {c}");
        }
        self.body.write(out);
    }

    /// The message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// A response in one call: `code transaction_id [comment]`, the parameter
/// lines, and the session description when given; CRLF line ends.
///
/// ```
/// let r = pinhole_mgcp::response(200, 1204, Some("OK"), &[("I", "FDE234C8")], None);
/// assert_eq!(r, b"200 1204 OK\r\nI: FDE234C8\r\n");
/// ```
pub fn response(
    code: u16,
    transaction_id: u32,
    comment: Option<&str>,
    params: &[(&str, &str)],
    sdp: Option<&[u8]>,
) -> Vec<u8> {
    let mut b = Response::builder(code, transaction_id);
    if let Some(c) = comment {
        b = b.commentary(c);
    }
    for (name, value) in params {
        b = b.param(name, value);
    }
    if let Some(s) = sdp {
        b = b.sdp(s);
    }
    b.to_bytes()
}

/// Piggybacks messages into one datagram (RFC 3435 §3.6): a line with a
/// single `.` between each two, in the line ending of the message before
/// it (one is added to a message that does not end with one).
///
/// ```
/// let d = pinhole_mgcp::piggyback(&[b"200 1 OK\r\n", b"200 2 OK\r\n"]);
/// assert_eq!(d, b"200 1 OK\r\n.\r\n200 2 OK\r\n");
/// assert_eq!(pinhole_mgcp::parse_datagram(&d).unwrap().len(), 2);
/// ```
pub fn piggyback(messages: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages.iter().map(|m| m.len() + 4).sum());
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            let prev = messages.get(i - 1).copied().unwrap_or_default();
            let eol: &[u8] = if prev.ends_with(b"\r\n") || !prev.ends_with(b"\n") {
                b"\r\n"
            } else {
                b"\n"
            };
            if !prev.ends_with(b"\n") {
                out.extend_from_slice(eol);
            }
            out.push(b'.');
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(m);
    }
    out
}
