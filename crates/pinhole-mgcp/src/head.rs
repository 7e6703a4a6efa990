//! The first line of a message: a command line (verb, transaction id,
//! endpoint name, protocol version; RFC 3435 §3.2.1) or a response line
//! (code, transaction id, optional package and commentary; §3.3). Built
//! with `nom` over the line's bytes; every field keeps its span in the
//! datagram.

use std::net::IpAddr;
use std::ops::Range;

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_till1, take_while_m_n, take_while1};
use nom::character::complete::{digit1, space0, space1};
use nom::combinator::{all_consuming, opt, recognize, rest};
use nom::sequence::{delimited, preceded};
use nom::{IResult, Offset, Parser};

use crate::error::{Error, ErrorKind};

/// A byte range of the datagram.
pub type Span = Range<usize>;

/// The largest transaction id (RFC 3435 §3.2.1.2: 1 to 999,999,999).
pub const MAX_TRANSACTION_ID: u32 = 999_999_999;

/// A command verb (RFC 3435 §2.3, §3.2.1.1). Verbs compare without regard
/// to letter case; the text as written is in the datagram at
/// [`Command::verb_span`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb<'a> {
    /// EndpointConfiguration.
    Epcf,
    /// CreateConnection.
    Crcx,
    /// ModifyConnection.
    Mdcx,
    /// DeleteConnection.
    Dlcx,
    /// NotificationRequest.
    Rqnt,
    /// Notify.
    Ntfy,
    /// AuditEndpoint.
    Auep,
    /// AuditConnection.
    Aucx,
    /// RestartInProgress.
    Rsip,
    /// An extension verb (four letters or digits, the first a letter), as
    /// written.
    Other(&'a str),
}

impl<'a> Verb<'a> {
    /// The verb for `text` (any letter case); `Other` when it is no RFC
    /// 3435 verb. The text is not checked here.
    pub fn from_text(text: &'a str) -> Self {
        const KNOWN: [(&str, Verb<'static>); 9] = [
            ("CRCX", Verb::Crcx),
            ("MDCX", Verb::Mdcx),
            ("DLCX", Verb::Dlcx),
            ("RQNT", Verb::Rqnt),
            ("NTFY", Verb::Ntfy),
            ("AUEP", Verb::Auep),
            ("AUCX", Verb::Aucx),
            ("RSIP", Verb::Rsip),
            ("EPCF", Verb::Epcf),
        ];
        KNOWN
            .iter()
            .find(|(name, _)| text.eq_ignore_ascii_case(name))
            .map_or(Verb::Other(text), |(_, v)| *v)
    }

    /// The verb in upper case for the RFC 3435 verbs; an extension verb as
    /// written.
    pub fn as_str(&self) -> &'a str {
        match self {
            Self::Epcf => "EPCF",
            Self::Crcx => "CRCX",
            Self::Mdcx => "MDCX",
            Self::Dlcx => "DLCX",
            Self::Rqnt => "RQNT",
            Self::Ntfy => "NTFY",
            Self::Auep => "AUEP",
            Self::Aucx => "AUCX",
            Self::Rsip => "RSIP",
            Self::Other(t) => t,
        }
    }
}

/// The domain part of an endpoint name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A domain name (or `#number`), as written.
    Name(&'a str),
    /// `[IPv4]` or `[IPv6]`, without the brackets.
    Ip(IpAddr),
}

/// An endpoint name `local@domain[:port]` (RFC 3435 §2.1.1, §3.2.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint<'a> {
    /// The whole name, as written.
    pub text: &'a str,
    /// Where it is.
    pub span: Span,
    /// The local name (`aaln/1`, `*`, `ds/ds1-1/$`).
    pub local: &'a str,
    /// Where the local name is.
    pub local_span: Span,
    /// The domain as written, brackets included, port excluded.
    pub domain: &'a str,
    /// Where the domain is.
    pub domain_span: Span,
    /// The domain read: a name, or the address inside the brackets.
    pub host: Host<'a>,
    /// The `:port` after the domain, when given.
    pub port: Option<u16>,
    /// Where the port digits are.
    pub port_span: Option<Span>,
}

impl Endpoint<'_> {
    /// True when a term of the local name is the wildcard `*` (all) or `$`
    /// (any) (§2.1.2).
    pub fn is_wildcard(&self) -> bool {
        self.local.split('/').any(|t| t == "*" || t == "$")
    }
}

/// The protocol version of a command (§3.2.1.4): `MGCP 1.0`, `MGCP 0.1`,
/// `MGCP 1.0 NCS 1.0` (a profile after the version).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version<'a> {
    /// The whole version field, as written.
    pub text: &'a str,
    /// Where it is.
    pub span: Span,
    /// The major version.
    pub major: u16,
    /// The minor version.
    pub minor: u16,
    /// The profile name and version, e.g. `NCS 1.0`.
    pub profile: Option<&'a str>,
}

/// A command line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Command<'a> {
    /// The verb.
    pub verb: Verb<'a>,
    /// Where the verb is.
    pub verb_span: Span,
    /// The transaction id, 1..=999999999.
    pub transaction_id: u32,
    /// Where it is.
    pub transaction_span: Span,
    /// The endpoint the command is for.
    pub endpoint: Endpoint<'a>,
    /// The protocol version.
    pub version: Version<'a>,
}

/// A response line (§3.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Response<'a> {
    /// The three-digit code, 0..=999 (`000` is a response acknowledgement).
    pub code: u16,
    /// Where it is.
    pub code_span: Span,
    /// The transaction id of the command answered.
    pub transaction_id: u32,
    /// Where it is.
    pub transaction_span: Span,
    /// A package name `/pkg` before the commentary (for package-specific
    /// codes, §3.3), without its slash.
    pub package: Option<&'a str>,
    /// The commentary (`OK`); `None` when the line ends after the
    /// transaction id (or with blanks only).
    pub commentary: Option<&'a str>,
    /// Where the commentary is.
    pub commentary_span: Option<Span>,
}

impl Response<'_> {
    /// `000`: the response acknowledgement (§3.5.6).
    pub fn is_ack(&self) -> bool {
        self.code == 0
    }

    /// 1xx: a provisional response; the final one follows.
    pub fn is_provisional(&self) -> bool {
        (100..200).contains(&self.code)
    }

    /// 2xx: the command succeeded.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 2xx and up: the final response to the command.
    pub fn is_final(&self) -> bool {
        self.code >= 200
    }
}

/// The first line of a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Head<'a> {
    /// A command.
    Command(Command<'a>),
    /// A response.
    Response(Response<'a>),
}

fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Parser results here carry no error detail: the caller knows which
/// field failed.
type Res<'a, T> = IResult<&'a [u8], T, ()>;

/// The token at the front of `i` (up to a blank).
fn token(i: &[u8]) -> Res<'_, &[u8]> {
    take_till1(is_wsp).parse(i)
}

/// Blanks, then a token.
fn field(i: &[u8]) -> Res<'_, &[u8]> {
    preceded(space1, token).parse(i)
}

/// Optional blanks.
fn blanks(i: &[u8]) -> &[u8] {
    space0::<_, ()>(i).map_or(i, |(r, _)| r)
}

/// A transaction id: 1 to 9 digits, not zero.
fn transaction_id(t: &[u8]) -> Option<u32> {
    if t.is_empty() || t.len() > 9 || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = t
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d.wrapping_sub(b'0')));
    (n >= 1).then_some(n)
}

/// Digits as a number, `None` past `max` (callers pass digits only).
fn decimal(t: &[u8], max: u32) -> Option<u32> {
    t.iter().try_fold(0u32, |n, d| {
        n.checked_mul(10)?
            .checked_add(u32::from(d.wrapping_sub(b'0')))
            .filter(|&n| n <= max)
    })
}

fn number<T: std::str::FromStr>(t: &[u8]) -> Option<T> {
    std::str::from_utf8(t).ok()?.parse().ok()
}

/// Parses the first line `text`, which starts at byte `base` of the
/// datagram and is line `no`.
/// Whether `name` is a specific endpoint name (`local@domain`, no
/// wildcard) that a command may be sent to: what a gateway's `Z:` must be
/// before the ALG uses it.
pub(crate) fn is_specific_endpoint(name: &str) -> bool {
    let line = format!("AUEP 1 {name} MGCP 1.0");
    matches!(parse(&line, 0, 1), Ok(Head::Command(c)) if !c.endpoint.is_wildcard() && c.endpoint.text == name)
}

pub(crate) fn parse(text: &str, base: usize, no: usize) -> Result<Head<'_>, Error> {
    let line = text.trim_end_matches([' ', '\t']);
    let bytes = line.as_bytes();
    let err = |kind| Error::new(no, kind);
    // Slices of `bytes` back to text and datagram spans; the cuts are at
    // ASCII bytes, so they are character boundaries.
    let span = |s: &[u8]| {
        let at = bytes.offset(s);
        base + at..base + at + s.len()
    };
    let text_of = |s: &[u8]| {
        let at = bytes.offset(s);
        line.get(at..at + s.len()).unwrap_or_default()
    };
    match bytes.first() {
        None => return Err(err(ErrorKind::Empty)),
        Some(c) if c.is_ascii_digit() => {}
        Some(_) => {
            return command(bytes, &span, &text_of)
                .map_err(err)
                .map(Head::Command);
        }
    }
    // code SP transaction-id [SP "/" package] [SP commentary]
    let Ok((r, code)) = token(bytes) else {
        return Err(err(ErrorKind::BadResponseCode));
    };
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(err(ErrorKind::BadResponseCode));
    }
    let Ok((r, tx)) = field(r) else {
        return Err(err(ErrorKind::BadTransactionId));
    };
    let transaction_id = transaction_id(tx).ok_or(err(ErrorKind::BadTransactionId))?;
    let r = blanks(r);
    let (r, package) = opt(preceded(tag("/"), token)).parse(r).unwrap_or((r, None));
    let r = blanks(r);
    let commentary = (!r.is_empty()).then_some(r);
    Ok(Head::Response(Response {
        code: decimal(code, 999)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or_default(),
        code_span: span(code),
        transaction_id,
        transaction_span: span(tx),
        package: package.map(text_of),
        commentary: commentary.map(text_of),
        commentary_span: commentary.map(span),
    }))
}

type SpanOf<'f> = dyn Fn(&[u8]) -> Span + 'f;
type TextOf<'f, 'a> = dyn Fn(&[u8]) -> &'a str + 'f;

fn command<'a>(
    bytes: &[u8],
    span: &SpanOf<'_>,
    text_of: &TextOf<'_, 'a>,
) -> Result<Command<'a>, ErrorKind> {
    let (r, verb) = token(bytes).map_err(|_| ErrorKind::BadVerb)?;
    let verb_ok = verb.len() == 4
        && verb.first().is_some_and(u8::is_ascii_alphabetic)
        && verb.iter().all(u8::is_ascii_alphanumeric);
    if !verb_ok {
        return Err(ErrorKind::BadVerb);
    }
    let (r, tx) = field(r).map_err(|_| ErrorKind::BadCommandLine("no transaction id"))?;
    let transaction_id = transaction_id(tx).ok_or(ErrorKind::BadTransactionId)?;
    let (r, ep) = field(r).map_err(|_| ErrorKind::BadCommandLine("no endpoint name"))?;
    let endpoint = endpoint(ep, span, text_of)?;
    let (_, version_text) = preceded(space1::<_, ()>, rest)
        .parse(r)
        .map_err(|_| ErrorKind::BadCommandLine("no protocol version"))?;
    let version = version(version_text, span, text_of)?;
    Ok(Command {
        verb: Verb::from_text(text_of(verb)),
        verb_span: span(verb),
        transaction_id,
        transaction_span: span(tx),
        endpoint,
        version,
    })
}

fn is_domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'#')
}

fn endpoint<'a>(
    t: &[u8],
    span: &SpanOf<'_>,
    text_of: &TextOf<'_, 'a>,
) -> Result<Endpoint<'a>, ErrorKind> {
    let bracketed = recognize(delimited(
        tag("["),
        take_while1(|c: u8| c.is_ascii_hexdigit() || matches!(c, b'.' | b':')),
        tag("]"),
    ));
    let mut parser = all_consuming((
        take_till1(|c| c == b'@'),
        tag("@"),
        alt((bracketed, take_while1(is_domain_char))),
        opt(preceded(tag(":"), digit1)),
    ));
    let parsed: IResult<_, _, ()> = parser.parse(t);
    let Ok((_, (local, _, domain, port))) = parsed else {
        return Err(ErrorKind::BadEndpoint(
            match t.iter().position(|&c| c == b'@') {
                None => "no @domain",
                Some(0) => "no local name",
                Some(_) => "bad domain name or port",
            },
        ));
    };
    let host = match domain {
        [b'[', inner @ .., b']'] => {
            Host::Ip(number(inner).ok_or(ErrorKind::BadEndpoint("bad address in brackets"))?)
        }
        _ => Host::Name(text_of(domain)),
    };
    let port = match port {
        Some(p) => Some((
            decimal(p, 65_535)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(ErrorKind::BadEndpoint("bad port"))?,
            span(p),
        )),
        None => None,
    };
    Ok(Endpoint {
        text: text_of(t),
        span: span(t),
        local: text_of(local),
        local_span: span(local),
        domain: text_of(domain),
        domain_span: span(domain),
        host,
        port: port.as_ref().map(|p| p.0),
        port_span: port.map(|p| p.1),
    })
}

fn version<'a>(
    t: &[u8],
    span: &SpanOf<'_>,
    text_of: &TextOf<'_, 'a>,
) -> Result<Version<'a>, ErrorKind> {
    let mut parser = all_consuming((
        tag_no_case("MGCP"),
        space1,
        take_while_m_n(1, 4, |c: u8| c.is_ascii_digit()),
        tag("."),
        take_while_m_n(1, 4, |c: u8| c.is_ascii_digit()),
        opt(preceded(space1, rest)),
    ));
    let parsed: IResult<_, _, ()> = parser.parse(t);
    let Ok((_, (_, _, major, _, minor, profile))) = parsed else {
        return Err(ErrorKind::BadVersion);
    };
    Ok(Version {
        text: text_of(t),
        span: span(t),
        major: decimal(major, 9_999)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(ErrorKind::BadVersion)?,
        minor: decimal(minor, 9_999)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(ErrorKind::BadVersion)?,
        profile: profile.filter(|p| !p.is_empty()).map(text_of),
    })
}
