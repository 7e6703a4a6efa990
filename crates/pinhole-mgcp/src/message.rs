//! A datagram cut into messages (piggybacking, RFC 3435 §3.6), each into
//! its first line, parameter lines and session description (§3.1), as
//! spans of the datagram.

use pinhole_core::intent::PlannedEndpoint;
use pinhole_core::patch::Patch;
use pinhole_sdp::{RewriteOptions, Sdp, SdpError};

use crate::error::{Error, ErrorKind};
use crate::head::{self, Command, Endpoint, Head, Response, Span, Verb};
use crate::lines::{Line, Lines, is_blank, is_separator};
use crate::media::MediaRole;
use crate::params::{self, Param, ResponseAck};

/// One MGCP message of a datagram: every span is a byte range of the whole
/// datagram, so edits of several piggybacked messages go into one
/// [`Patch`] of the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    buf: &'a [u8],
    span: Span,
    line: usize,
    head: Head<'a>,
    params: Vec<Param<'a>>,
    sdp: Option<Span>,
    sdp_line: usize,
    /// Where the next piggybacked message starts.
    next: Next,
}

/// Where the message after one starts: byte and line number.
type Next = Option<(usize, usize)>;

/// `buf` without the NUL bytes some stacks and captures end it with.
fn limit(buf: &[u8]) -> usize {
    buf.len() - buf.iter().rev().take_while(|&&b| b == 0).count()
}

/// Parses the message at byte `at` (line `no`) of `buf`, which ends at
/// `end` (trailing NULs cut off).
fn parse_one(buf: &[u8], end: usize, at: usize, no: usize) -> Result<Message<'_>, Error> {
    let view = buf.get(..end).unwrap_or_default();
    // The header section: up to a blank line, a separator or the end.
    let mut stop = None;
    for l in Lines::new(view, at, no) {
        let bytes = view.get(l.start..l.end).unwrap_or_default();
        if l.start == at {
            if is_blank(bytes) || is_separator(bytes) {
                return Err(Error::new(l.no, ErrorKind::Empty));
            }
        } else if is_blank(bytes) || is_separator(bytes) {
            stop = Some((l, is_separator(bytes)));
            break;
        }
    }
    let header_end = stop.map_or(end, |(l, _)| l.start);
    // One UTF-8 check for the whole header section (the SDP may be in any
    // charset: it is not read here).
    let header =
        std::str::from_utf8(view.get(at..header_end).unwrap_or_default()).map_err(|e| {
            let bad = at + e.valid_up_to();
            let line = Lines::new(view, at, no)
                .find(|l| l.next > bad)
                .map_or(no, |l| l.no);
            Error::new(line, ErrorKind::NotUtf8)
        })?;
    let text = |l: &Line| header.get(l.start - at..l.end - at).unwrap_or_default();
    let mut lines = Lines::new(view.get(..header_end).unwrap_or_default(), at, no);
    let Some(first) = lines.next() else {
        return Err(Error::new(no, ErrorKind::Empty));
    };
    let head = head::parse(text(&first), first.start, first.no)?;
    let mut msg = Message {
        buf,
        span: at..end,
        line: no,
        head,
        // Most messages have a handful of parameter lines: one allocation.
        params: Vec::with_capacity(8),
        sdp: None,
        sdp_line: 0,
        next: None,
    };
    for l in lines {
        let p = params::parse(text(&l), l.start, l.no).map_err(|k| Error::new(l.no, k))?;
        msg.params.push(p);
    }
    let next = match stop {
        None => None,
        Some((l, true)) => {
            msg.span.end = l.start;
            Some((l.next, l.no + 1))
        }
        Some((l, false)) => {
            // The session description: up to a separator or the end.
            let start = l.next;
            let body = view.get(start..).unwrap_or_default();
            let next = separator(body).map(|(sep, after)| {
                msg.span.end = start + sep;
                let lines = count_lines(body.get(..sep).unwrap_or_default());
                (start + after, l.no + 1 + lines + 1)
            });
            let body = view.get(start..msg.span.end).unwrap_or_default();
            if body.iter().any(|b| !b.is_ascii_whitespace()) {
                // A bare CR before a separator ends the MGCP line, but SDP
                // knows no bare-CR line end: leave it out of the SDP, so a
                // line the rewrite adds at its end cannot swallow the
                // separator (found by fuzzing).
                let end = if next.is_some() && body.ends_with(b"\r") {
                    msg.span.end - 1
                } else {
                    msg.span.end
                };
                msg.sdp = Some(start..end);
                msg.sdp_line = l.no + 1;
            }
            next
        }
    };
    // Nothing but blanks after a final separator: no further message.
    msg.next = next.filter(|&(at, _)| {
        view.get(at..)
            .is_some_and(|r| r.iter().any(|b| !b.is_ascii_whitespace()))
    });
    Ok(msg)
}

/// The first separator line of `body` (which starts at a line start): its
/// start and the byte after its line end. Looks only at periods, so an SDP
/// body is not cut into lines here.
fn separator(body: &[u8]) -> Option<(usize, usize)> {
    memchr::memchr_iter(b'.', body).find_map(|i| {
        let line_start = i == 0 || matches!(body.get(i - 1), Some(b'\n' | b'\r'));
        if !line_start {
            return None;
        }
        let blanks = body
            .get(i + 1..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let after = i + 1 + blanks;
        match (body.get(after), body.get(after + 1)) {
            (None, _) => Some((i, after)),
            (Some(b'\r'), Some(b'\n')) => Some((i, after + 2)),
            (Some(b'\r' | b'\n'), _) => Some((i, after + 1)),
            _ => None,
        }
    })
}

/// The line ends in `bytes` (CRLF, LF or CR each count once).
fn count_lines(bytes: &[u8]) -> usize {
    Lines::new(bytes, 0, 1).filter(|l| l.next > l.end).count()
}

/// The messages of a datagram, in order; stops after the first error.
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    buf: &'a [u8],
    end: usize,
    next: Next,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (at, no) = self.next.take()?;
        let r = parse_one(self.buf, self.end, at, no);
        if let Ok(m) = &r {
            self.next = m.next;
        }
        Some(r)
    }
}

/// Iterates over the messages of a datagram: one, or several piggybacked
/// with a line holding a single `.` between them (RFC 3435 §3.6).
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages {
        buf,
        end: limit(buf),
        next: Some((0, 1)),
    }
}

/// Parses every message of a datagram (see [`messages`]).
///
/// ```
/// let d = b"200 1203 OK\r\n.\r\nDLCX 1210 aaln/1@rgw.example.net MGCP 1.0\r\nC: A3C47F21456789F0\r\nI: FDE234C8\r\n";
/// let msgs = pinhole_mgcp::parse_datagram(d)?;
/// assert_eq!(msgs.len(), 2);
/// assert_eq!(msgs[0].code(), Some(200));
/// assert_eq!(msgs[1].transaction_id(), 1210);
/// assert_eq!(&d[msgs[1].span()], &d[16..]);
/// # Ok::<(), pinhole_mgcp::Error>(())
/// ```
pub fn parse_datagram(buf: &[u8]) -> Result<Vec<Message<'_>>, Error> {
    messages(buf).collect()
}

impl<'a> Message<'a> {
    /// Parses a datagram that holds exactly one message; several
    /// piggybacked ones are an [`ErrorKind::Piggybacked`] error at the
    /// separator (use [`parse_datagram`] for those).
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let msg = parse_one(buf, limit(buf), 0, 1)?;
        match msg.next {
            None => Ok(msg),
            Some((_, no)) => Err(Error::new(no - 1, ErrorKind::Piggybacked)),
        }
    }

    /// The whole datagram.
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// This message's bytes in the datagram: from its first line up to the
    /// separator line after it, or the end of the datagram (less trailing
    /// NULs).
    pub fn span(&self) -> Span {
        self.span.clone()
    }

    /// The datagram line this message starts on (1-based).
    pub fn line(&self) -> usize {
        self.line
    }

    /// The command line or response line.
    pub fn head(&self) -> &Head<'a> {
        &self.head
    }

    /// The command line, for a command.
    pub fn command(&self) -> Option<&Command<'a>> {
        match &self.head {
            Head::Command(c) => Some(c),
            Head::Response(_) => None,
        }
    }

    /// The response line, for a response.
    pub fn response(&self) -> Option<&Response<'a>> {
        match &self.head {
            Head::Response(r) => Some(r),
            Head::Command(_) => None,
        }
    }

    /// The verb, for a command.
    pub fn verb(&self) -> Option<Verb<'a>> {
        self.command().map(|c| c.verb)
    }

    /// The response code, for a response.
    pub fn code(&self) -> Option<u16> {
        self.response().map(|r| r.code)
    }

    /// The transaction id (of the command, or of the command answered).
    pub fn transaction_id(&self) -> u32 {
        match &self.head {
            Head::Command(c) => c.transaction_id,
            Head::Response(r) => r.transaction_id,
        }
    }

    /// The endpoint name, for a command.
    pub fn endpoint(&self) -> Option<&Endpoint<'a>> {
        self.command().map(|c| &c.endpoint)
    }

    /// Every parameter line, in order.
    pub fn params(&self) -> &[Param<'a>] {
        &self.params
    }

    /// The first parameter called `name` (any letter case).
    pub fn param(&self, name: &str) -> Option<&Param<'a>> {
        self.params.iter().find(|p| p.is(name))
    }

    /// Every parameter called `name`, in order (`L:` may repeat in audit
    /// responses).
    pub fn params_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Param<'a>> + 's {
        self.params.iter().filter(move |p| p.is(name))
    }

    /// The value of the first parameter called `name`.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.param(name).map(|p| p.value)
    }

    /// `C:` CallId (§3.2.2.2).
    pub fn call_id(&self) -> Option<&'a str> {
        self.value("C")
    }

    /// `I:` ConnectionId (§3.2.2.5); a list in some audit responses.
    pub fn connection_id(&self) -> Option<&'a str> {
        self.value("I")
    }

    /// `M:` ConnectionMode (§3.2.2.6): `sendrecv`, `recvonly`, …
    pub fn mode(&self) -> Option<&'a str> {
        self.value("M")
    }

    /// `X:` RequestIdentifier (§3.2.2.7).
    pub fn request_id(&self) -> Option<&'a str> {
        self.value("X")
    }

    /// `R:` RequestedEvents (§3.2.2.8).
    pub fn requested_events(&self) -> Option<&'a str> {
        self.value("R")
    }

    /// `O:` ObservedEvents (§3.2.2.10).
    pub fn observed_events(&self) -> Option<&'a str> {
        self.value("O")
    }

    /// `N:` NotifiedEntity (§3.2.2.3).
    pub fn notified_entity(&self) -> Option<&'a str> {
        self.value("N")
    }

    /// `L:` LocalConnectionOptions (§3.2.2.4), the first one.
    pub fn local_connection_options(&self) -> Option<&'a str> {
        self.value("L")
    }

    /// `K:` ResponseAck (§3.2.2.19): the transaction ids whose responses
    /// this command acknowledges; `None` without a `K:` line.
    pub fn response_ack(&self) -> Result<Option<ResponseAck>, Error> {
        match self.param("K") {
            None => Ok(None),
            Some(p) => ResponseAck::parse(p.value)
                .map(Some)
                .map_err(|k| Error::new(p.line, k)),
        }
    }

    /// Where the session description is (the bytes after the empty line,
    /// up to the separator or the end); `None` when there is none or it is
    /// blank.
    pub fn sdp_span(&self) -> Option<Span> {
        self.sdp.clone()
    }

    /// True when the message carries a session description.
    pub fn has_sdp(&self) -> bool {
        self.sdp.is_some()
    }

    /// The session description: the RemoteConnectionDescriptor of a CRCX
    /// or MDCX, the LocalConnectionDescriptor of a response (§3.5). Its
    /// spans are relative to [`Message::sdp_span`]; errors name the
    /// datagram line.
    pub fn sdp(&self) -> Result<Option<Sdp<'a>>, Error> {
        let Some(span) = self.sdp.clone() else {
            return Ok(None);
        };
        let body = self.buf.get(span).unwrap_or_default();
        Sdp::parse(body).map(Some).map_err(|e| self.sdp_error(e))
    }

    /// An SDP error at the datagram line it is on.
    fn sdp_error(&self, e: SdpError) -> Error {
        let line = e.line().map_or(self.sdp_line, |l| self.sdp_line + l - 1);
        Error::new(line, ErrorKind::Sdp(e))
    }

    /// What the message does to the call's media (see [`MediaRole`]).
    pub fn media_role(&self) -> MediaRole {
        MediaRole::of(self)
    }

    /// Records in `patch` (of the whole datagram) the edits that write
    /// `plan` into this message's session description, `sdp` being
    /// [`Message::sdp`]'s result for this message. Nothing else changes:
    /// MGCP has no length field. On an error `patch` is as it was.
    pub fn rewrite_sdp(
        &self,
        sdp: &Sdp<'_>,
        plan: &[PlannedEndpoint],
        opts: &RewriteOptions,
        patch: &mut Patch,
    ) -> Result<(), Error> {
        let mut part = Patch::new();
        self.rewrite_sdp_with(sdp, plan, opts, &mut part, patch)
    }

    /// [`Message::rewrite_sdp`] with a caller's scratch patch, reused
    /// across messages so the hot path allocates nothing (it is cleared
    /// first).
    pub fn rewrite_sdp_with(
        &self,
        sdp: &Sdp<'_>,
        plan: &[PlannedEndpoint],
        opts: &RewriteOptions,
        scratch: &mut Patch,
        patch: &mut Patch,
    ) -> Result<(), Error> {
        let Some(span) = self.sdp.clone() else {
            return Err(Error::new(self.line, ErrorKind::NoSdp));
        };
        scratch.clear();
        sdp.rewrite(plan, opts, scratch)
            .map_err(|e| self.sdp_error(e))?;
        patch.extend_shifted(scratch, span.start);
        Ok(())
    }
}
