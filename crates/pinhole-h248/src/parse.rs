//! The parser: `nom` for the header and the mId, a recursive descent over
//! one cursor for the nesting (transactions, actions, commands, Media,
//! Stream, Local/Remote), and a brace-matching skip for every descriptor
//! the ALG does not read.

use std::ops::Range;

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while_m_n, take_while1};
use nom::character::complete::char;
use nom::combinator::opt;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::error::{Error, ErrorKind};
use crate::message::{
    AckRange, Action, Command, CommandKind, ContextId, ErrorDescriptor, Item, Message, Mid,
    MidKind, Reply, Request, SdpGroup, ServiceChange, Stream, TermId,
};

/// Most nested `{` and `[` in a message: the structure itself needs six
/// (transaction, action, command, Media, Stream, Local); the rest is for
/// the descriptors that are skipped.
pub const MAX_DEPTH: usize = 32;
/// Most transactions, replies, pendings and acks in a message, and most
/// ids and ranges in one `TransactionResponseAck`.
pub const MAX_ITEMS: usize = 64;
/// Most actions in one transaction.
pub const MAX_ACTIONS: usize = 64;
/// Most commands in one action.
pub const MAX_COMMANDS: usize = 64;
/// Most termination ids of one command (a `Context { … }` list in an
/// audit reply).
pub const MAX_TERMINATIONS: usize = 64;
/// Most streams in one Media descriptor.
pub const MAX_STREAMS: usize = 16;
/// Most SDP groups in one Local or Remote descriptor.
pub const MAX_GROUPS: usize = 16;

type R<T> = Result<T, Error>;

/// Parses one H.248 text message: a datagram holds exactly one (RFC 3525
/// Annex B: `MEGACO/1` or `!/1`, the mId, then transactions or an error
/// descriptor). Trailing NUL bytes are ignored; any other byte after the
/// message is an [`ErrorKind::Trailing`] error.
///
/// ```
/// let d = b"MEGACO/1 [192.0.2.1]:2944\nTransaction = 9 { Context = - { Subtract = A4444 } }";
/// let m = pinhole_h248::parse(d)?;
/// assert_eq!(m.version(), 1);
/// assert_eq!(m.mid().host, "192.0.2.1");
/// assert_eq!(m.items()[0].id(), Some(9));
/// # Ok::<(), pinhole_h248::Error>(())
/// ```
pub fn parse(d: &[u8]) -> Result<Message<'_>, Error> {
    let end = d.len() - d.iter().rev().take_while(|&&b| b == 0).count();
    let mut c = Cur {
        d,
        pos: 0,
        end,
        depth: 0,
    };
    c.message()
}

/// The 1-based line of byte `at`: CRLF, LF and a bare CR each end a line.
pub(crate) fn line_at(d: &[u8], at: usize) -> usize {
    let head = d.get(..at.min(d.len())).unwrap_or_default();
    let lf = memchr::memchr_iter(b'\n', head).count();
    let bare_cr = memchr::memchr_iter(b'\r', head)
        .filter(|&i| d.get(i + 1) != Some(&b'\n'))
        .count();
    1 + lf + bare_cr
}

/// True when `t` is the long or the compact form of a token.
fn is(t: &[u8], long: &str, short: &str) -> bool {
    t.eq_ignore_ascii_case(long.as_bytes()) || t.eq_ignore_ascii_case(short.as_bytes())
}

fn is_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Characters of a termination id (`pathNAME`, `$`, `*`, `ROOT`) and of a
/// device-name mId, with `@` and the path domain's `.` and `-`.
fn is_path(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'*' | b'_' | b'$' | b'@' | b'.' | b'-')
}

/// `SafeChar` of RFC 3525: what an unquoted VALUE is made of.
fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'+' | b'-'
                | b'&'
                | b'!'
                | b'_'
                | b'/'
                | b'\''
                | b'?'
                | b'@'
                | b'^'
                | b'`'
                | b'~'
                | b'*'
                | b'$'
                | b'\\'
                | b'('
                | b')'
                | b'%'
                | b'|'
                | b'.'
        )
}

fn ascii(b: &[u8]) -> &str {
    // Callers pass bytes of ASCII character classes only.
    std::str::from_utf8(b).unwrap_or_default()
}

/// `MegacopToken SLASH Version`: the version number.
fn header(i: &[u8]) -> IResult<&[u8], &[u8]> {
    preceded(
        (alt((tag_no_case("MEGACO"), tag("!"))), char('/')),
        take_while_m_n(1, 2, |b: u8| b.is_ascii_digit()),
    )
    .parse(i)
}

fn number(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |n, &c| {
        n.checked_mul(10)?
            .checked_add(u64::from(c.wrapping_sub(b'0')))
    })
}

/// The forms of `mId` (RFC 3525 B.2): kind, host bytes and port digits.
type MidParts<'a> = (MidKind, &'a [u8], Option<&'a [u8]>);

fn mid_parts(i: &[u8]) -> IResult<&[u8], MidParts<'_>> {
    let port = || opt(preceded(char(':'), take_while1(|b: u8| b.is_ascii_digit())));
    let addr = (
        char('['),
        take_while1(|b: u8| b.is_ascii_hexdigit() || b == b'.' || b == b':'),
        char(']'),
        port(),
    )
        .map(|(_, h, _, p): (_, &[u8], _, _)| {
            let kind = if h.contains(&b':') {
                MidKind::Ip6
            } else {
                MidKind::Ip4
            };
            (kind, h, p)
        });
    let domain = (
        char('<'),
        take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'),
        char('>'),
        port(),
    )
        .map(|(_, h, _, p)| (MidKind::Domain, h, p));
    let mtp = (
        tag_no_case("MTP"),
        char('{'),
        take_while_m_n(4, 8, |b: u8| b.is_ascii_hexdigit()),
        char('}'),
    )
        .map(|(_, _, h, _)| (MidKind::Mtp, h, None));
    let device = take_while1(is_path).map(|h| (MidKind::Device, h, None));
    alt((addr, domain, mtp, device)).parse(i)
}

fn valid_ip4(h: &[u8]) -> bool {
    let (mut parts, mut digits, mut value) = (1, 0, 0u32);
    for &b in h {
        if b == b'.' {
            if digits == 0 {
                return false;
            }
            (parts, digits, value) = (parts + 1, 0, 0);
        } else if b.is_ascii_digit() && digits < 3 {
            digits += 1;
            value = value * 10 + u32::from(b - b'0');
            if value > 255 {
                return false;
            }
        } else {
            return false;
        }
    }
    parts == 4 && digits > 0
}

/// The cursor over a datagram (`end` leaves out trailing NULs) and the
/// nesting depth of `{` and `[` at `pos`.
struct Cur<'a> {
    d: &'a [u8],
    pos: usize,
    end: usize,
    depth: usize,
}

impl<'a> Cur<'a> {
    fn err(&self, at: usize, kind: ErrorKind) -> Error {
        Error::new(line_at(self.d, at), kind)
    }

    fn rest(&self) -> &'a [u8] {
        self.d.get(self.pos..self.end).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        if self.pos < self.end {
            self.d.get(self.pos).copied()
        } else {
            None
        }
    }

    fn text(&self, r: Range<usize>) -> &'a str {
        ascii(self.d.get(r).unwrap_or_default())
    }

    /// Skips `LWSP`: spaces, tabs, line ends and comments (`;` to the end
    /// of the line).
    fn ws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b';' => {
                    let rest = self.rest();
                    self.pos += memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                }
                _ => break,
            }
        }
    }

    /// After white space: consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// After white space: `c`, or an error naming `what`.
    fn expect(&mut self, c: u8, what: &'static str) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// The error for something else than `what` at the cursor.
    fn unexpected(&self, what: &'static str) -> Error {
        if self.pos >= self.end {
            let kind = if self.depth > 0 {
                ErrorKind::Unterminated("{")
            } else {
                ErrorKind::Expected(what)
            };
            self.err(self.end, kind)
        } else {
            self.err(self.pos, ErrorKind::Expected(what))
        }
    }

    /// After white space: a `NAME` (letters, digits, `_`), maybe empty.
    fn name(&mut self) -> &'a [u8] {
        self.ws();
        let rest = self.rest();
        let n = rest.iter().take_while(|&&b| is_name(b)).count();
        self.pos += n;
        rest.get(..n).unwrap_or_default()
    }

    /// `{`, one level deeper.
    fn open(&mut self, what: &'static str) -> R<()> {
        self.expect(b'{', what)?;
        self.deeper(self.pos - 1)
    }

    fn deeper(&mut self, at: usize) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(at, ErrorKind::TooDeep));
        }
        Ok(())
    }

    /// The elements of a `{ … }` list whose `{` has been read, up to and
    /// with its `}`: `f` reads one element. An empty list and a comma
    /// before the `}` are tolerated (RFC 3525's own examples have one).
    fn list(&mut self, mut f: impl FnMut(&mut Self) -> R<()>) -> R<()> {
        loop {
            if self.eat(b'}') {
                self.depth -= 1;
                return Ok(());
            }
            if self.peek().is_none() {
                return Err(self.unexpected("`}`"));
            }
            f(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
    }

    /// Skips one element of a list, whatever it is, from the cursor up to
    /// the `,` or `}` that ends it at this level: nested `{}` and `[]` are
    /// matched, quoted strings and comments jumped over.
    fn skip(&mut self) -> R<()> {
        let base = self.depth;
        let start = self.pos;
        while let Some(b) = self.peek() {
            match b {
                b'{' | b'[' => self.deeper(self.pos)?,
                b'}' | b']' | b',' if self.depth == base => break,
                b'}' | b']' => self.depth -= 1,
                b'"' => {
                    self.quoted()?;
                    continue;
                }
                b';' => {
                    self.ws();
                    continue;
                }
                _ => {}
            }
            self.pos += 1;
        }
        if self.peek().is_none() {
            self.depth = base;
            return Err(self.err(self.end, ErrorKind::Unterminated("{")));
        }
        if self.pos == start {
            return Err(self.unexpected("a descriptor"));
        }
        Ok(())
    }

    /// A quoted string at the cursor: the text between the quotes (a `\`
    /// escapes the next byte) and its span.
    fn quoted(&mut self) -> R<(&'a str, Range<usize>)> {
        let open = self.pos;
        let start = open + 1;
        let mut i = start;
        loop {
            match self.d.get(i) {
                Some(b'"') if i < self.end => break,
                Some(b'\\') if i + 1 < self.end => i += 2,
                Some(_) if i < self.end => i += 1,
                _ => return Err(self.err(open, ErrorKind::Unterminated("quoted string"))),
            }
        }
        self.pos = i + 1;
        let text = std::str::from_utf8(self.d.get(start..i).unwrap_or_default())
            .map_err(|_| self.err(start, ErrorKind::NotUtf8))?;
        Ok((text, start..i))
    }

    /// `EQUAL`.
    fn equal(&mut self) -> R<()> {
        self.expect(b'=', "`=`")
    }

    /// A decimal number of at most `max` digits and `limit` in value.
    fn uint(&mut self, max: usize, limit: u64, kind: ErrorKind) -> R<u64> {
        self.ws();
        let at = self.pos;
        // A plain loop: this runs for every id of every message.
        let ds = self.rest();
        let n = ds.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > max {
            return Err(self.err(at, kind));
        }
        self.pos += n;
        match number(ds.get(..n).unwrap_or_default()) {
            Some(v) if v <= limit => Ok(v),
            _ => Err(self.err(at, kind)),
        }
    }

    fn u32(&mut self, kind: ErrorKind) -> R<u32> {
        let n = self.uint(10, u64::from(u32::MAX), kind)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn message(&mut self) -> R<Message<'a>> {
        self.ws();
        if self.peek().is_none() {
            return Err(self.err(self.end, ErrorKind::Empty));
        }
        // An authentication header (`AU = 0x…:0x…:0x…`) comes first: its
        // value holds no white space.
        let at = self.pos;
        if is(self.name(), "Authentication", "AU") && self.eat(b'=') {
            let rest = self.rest();
            self.pos += rest.iter().take_while(|b| !b.is_ascii_whitespace()).count();
        } else {
            self.pos = at;
        }
        self.ws();
        let at = self.pos;
        let (_, v) =
            header(self.rest()).map_err(|_| self.err(at, ErrorKind::BadHeader("no MEGACO/N")))?;
        let version = number(v)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| self.err(at, ErrorKind::BadHeader("version")))?;
        self.pos = v.as_ptr() as usize - self.d.as_ptr() as usize + v.len();
        let after_version = self.pos;
        self.ws();
        if self.pos == after_version {
            return Err(self.err(
                self.pos,
                ErrorKind::BadHeader("no separator after the version"),
            ));
        }
        let mid = self.mid()?;
        let mut msg = Message {
            bytes: self.d,
            version,
            mid,
            items: Vec::new(),
            error: None,
        };
        self.ws();
        let first = self.pos;
        let tok = self.name();
        if is(tok, "Error", "ER") {
            msg.error = Some(self.error_descriptor(first)?);
        } else {
            self.pos = first;
            loop {
                self.ws();
                if self.peek().is_none() {
                    break;
                }
                // After a transaction, what is not a token is not another.
                if !msg.items.is_empty() && !self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
                    return Err(self.err(self.pos, ErrorKind::Trailing));
                }
                if msg.items.len() == MAX_ITEMS {
                    return Err(self.err(self.pos, ErrorKind::TooMany("transactions")));
                }
                let item = self.item()?;
                msg.items.push(item);
                // Tolerated: a comma between transactions.
                self.eat(b',');
            }
            if msg.items.is_empty() {
                return Err(self.unexpected("a transaction or an error descriptor"));
            }
        }
        self.ws();
        if self.pos < self.end {
            return Err(self.err(self.pos, ErrorKind::Trailing));
        }
        Ok(msg)
    }

    fn mid(&mut self) -> R<Mid<'a>> {
        let at = self.pos;
        let Ok((after, (kind, host, port))) = mid_parts(self.rest()) else {
            return Err(self.err(at, ErrorKind::BadMid("not an address, domain or name")));
        };
        let len = self.rest().len() - after.len();
        let offset = |s: &[u8]| s.as_ptr() as usize - self.d.as_ptr() as usize;
        let text = self.text(at..at + len);
        // The host is inside the text: a slice of it, not a second check.
        let host_at = offset(host) - at;
        let host_text = text.get(host_at..host_at + host.len()).unwrap_or_default();
        match kind {
            MidKind::Ip4 if !valid_ip4(host) => {
                return Err(self.err(at, ErrorKind::BadMid("IPv4 address")));
            }
            MidKind::Ip6 if host_text.parse::<std::net::Ipv6Addr>().is_err() => {
                return Err(self.err(at, ErrorKind::BadMid("IPv6 address")));
            }
            MidKind::Domain if !host.first().is_some_and(u8::is_ascii_alphanumeric) => {
                return Err(self.err(at, ErrorKind::BadMid("domain name")));
            }
            _ => {}
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                number(p)
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| self.err(at, ErrorKind::BadMid("port")))?,
            ),
        };
        self.pos = at + len;
        Ok(Mid {
            kind,
            text,
            host: host_text,
            port,
            span: at..at + len,
        })
    }

    fn item(&mut self) -> R<Item<'a>> {
        let start = self.pos;
        let tok = self.name();
        if is(tok, "Transaction", "T") {
            self.equal()?;
            let id = self.u32(ErrorKind::BadTransactionId)?;
            self.open("`{`")?;
            let mut actions = Vec::new();
            self.list(|c| {
                let a = c.action()?;
                if actions.len() == MAX_ACTIONS {
                    return Err(c.err(a.span.start, ErrorKind::TooMany("actions")));
                }
                actions.push(a);
                Ok(())
            })?;
            Ok(Item::Request(Request {
                id,
                span: start..self.pos,
                actions,
            }))
        } else if is(tok, "Reply", "P") {
            self.equal()?;
            let id = self.u32(ErrorKind::BadTransactionId)?;
            self.open("`{`")?;
            let mut reply = Reply {
                id,
                span: start..start,
                immediate_ack: false,
                actions: Vec::new(),
                error: None,
            };
            self.list(|c| {
                let at = c.pos;
                let tok = c.name();
                if is(tok, "ImmAckRequired", "IA") {
                    reply.immediate_ack = true;
                } else if is(tok, "Error", "ER") {
                    reply.error = Some(c.error_descriptor(at)?);
                } else {
                    c.pos = at;
                    let a = c.action()?;
                    if reply.actions.len() == MAX_ACTIONS {
                        return Err(c.err(a.span.start, ErrorKind::TooMany("actions")));
                    }
                    reply.actions.push(a);
                }
                Ok(())
            })?;
            reply.span = start..self.pos;
            Ok(Item::Reply(reply))
        } else if is(tok, "Pending", "PN") {
            self.equal()?;
            let id = self.u32(ErrorKind::BadTransactionId)?;
            // The grammar wants `{ }`; some stacks leave them out.
            let before = self.pos;
            if self.eat(b'{') {
                self.expect(b'}', "`}`")?;
            } else {
                self.pos = before;
            }
            Ok(Item::Pending {
                id,
                span: start..self.pos,
            })
        } else if is(tok, "TransactionResponseAck", "K") {
            self.open("`{`")?;
            let mut ranges = Vec::new();
            self.list(|c| {
                let at = c.pos;
                let first = c.u32(ErrorKind::BadResponseAck)?;
                let last = if c.eat(b'-') {
                    c.u32(ErrorKind::BadResponseAck)?
                } else {
                    first
                };
                if first > last {
                    return Err(c.err(at, ErrorKind::BadResponseAck));
                }
                if ranges.len() == MAX_ITEMS {
                    return Err(c.err(at, ErrorKind::TooMany("acknowledged ranges")));
                }
                ranges.push(AckRange { first, last });
                Ok(())
            })?;
            Ok(Item::ResponseAck {
                ranges,
                span: start..self.pos,
            })
        } else {
            self.pos = start;
            Err(self.unexpected("Transaction, Reply, Pending or TransactionResponseAck"))
        }
    }

    /// `Context = id { … }`: commands, context properties (skipped) and,
    /// in a reply, an error descriptor.
    fn action(&mut self) -> R<Action<'a>> {
        self.ws();
        let start = self.pos;
        if !is(self.name(), "Context", "C") {
            self.pos = start;
            return Err(self.unexpected("Context"));
        }
        self.equal()?;
        self.ws();
        let at = self.pos;
        let context = match self.peek() {
            Some(b'-') => ContextId::Null,
            Some(b'$') => ContextId::Choose,
            Some(b'*') => ContextId::All,
            Some(b) if b.is_ascii_digit() => ContextId::Id(self.u32(ErrorKind::BadContextId)?),
            _ => return Err(self.err(at, ErrorKind::BadContextId)),
        };
        if !matches!(context, ContextId::Id(_)) {
            self.pos += 1;
        }
        self.open("`{`")?;
        let mut action = Action {
            context,
            span: start..start,
            commands: Vec::new(),
            error: None,
        };
        self.list(|c| {
            let at = c.pos;
            let mut tok = c.name();
            let (mut optional, mut wildcard_reply) = (false, false);
            // `O-` and `W-` prefixes, in that order by the grammar; either
            // order is read.
            while tok.len() == 1 && c.peek() == Some(b'-') {
                match tok.first().map(u8::to_ascii_uppercase) {
                    Some(b'O') => optional = true,
                    Some(b'W') => wildcard_reply = true,
                    _ => break,
                }
                c.pos += 1;
                tok = c.name();
            }
            if let Some(kind) = command_kind(tok) {
                let mut cmd = c.command(kind, at)?;
                cmd.optional = optional;
                cmd.wildcard_reply = wildcard_reply;
                if action.commands.len() == MAX_COMMANDS {
                    return Err(c.err(at, ErrorKind::TooMany("commands")));
                }
                action.commands.push(cmd);
            } else if optional || wildcard_reply {
                return Err(c.err(at, ErrorKind::Expected("a command after O- or W-")));
            } else if is(tok, "Error", "ER") {
                action.error = Some(c.error_descriptor(at)?);
            } else {
                // Topology, Priority, Emergency, ContextAudit, …
                c.pos = at;
                c.skip()?;
            }
            Ok(())
        })?;
        action.span = start..self.pos;
        Ok(action)
    }

    /// A command (or command reply) after its token: `= TerminationID
    /// [{ … }]`.
    fn command(&mut self, kind: CommandKind, start: usize) -> R<Command<'a>> {
        self.equal()?;
        let mut cmd = Command {
            kind,
            span: start..start,
            optional: false,
            wildcard_reply: false,
            terminations: Vec::with_capacity(1),
            streams: Vec::new(),
            service_change: None,
            error: None,
        };
        let term = self.term_id()?;
        let audit = matches!(kind, CommandKind::AuditValue | CommandKind::AuditCapability);
        // `AuditValue = Context { t1, t2 }` (contextTerminationAudit): the
        // terminations of the context, or an error. A termination may be
        // called `C` too: when the list does not read, it is one.
        if audit && is(term.text.as_bytes(), "Context", "C") {
            let (pos, depth) = (self.pos, self.depth);
            if let Ok(Some(list)) = self.context_terminations() {
                cmd.terminations = list.0;
                cmd.error = list.1;
                cmd.span = start..self.pos;
                return Ok(cmd);
            }
            (self.pos, self.depth) = (pos, depth);
        }
        cmd.terminations.push(term);
        let before = self.pos;
        if !self.eat(b'{') {
            self.pos = before;
            cmd.span = start..self.pos;
            return Ok(cmd);
        }
        self.deeper(self.pos - 1)?;
        self.list(|c| {
            let at = c.pos;
            let tok = c.name();
            if is(tok, "Media", "M") && c.eat(b'{') {
                c.deeper(c.pos - 1)?;
                c.media(&mut cmd.streams)
            } else if is(tok, "Error", "ER") {
                cmd.error = Some(c.error_descriptor(at)?);
                Ok(())
            } else if kind == CommandKind::ServiceChange && is(tok, "Services", "SV") {
                c.open("`{`")?;
                cmd.service_change = Some(c.services()?);
                Ok(())
            } else {
                c.pos = at;
                c.skip()
            }
        })?;
        cmd.span = start..self.pos;
        Ok(cmd)
    }

    /// The `{ t1, t2 }` or `{ Error … }` of a contextTerminationAudit;
    /// `None` without a `{`.
    #[allow(clippy::type_complexity)]
    fn context_terminations(
        &mut self,
    ) -> R<Option<(Vec<TermId<'a>>, Option<ErrorDescriptor<'a>>)>> {
        if !self.eat(b'{') {
            return Ok(None);
        }
        self.deeper(self.pos - 1)?;
        let (mut terms, mut error) = (Vec::new(), None);
        self.list(|c| {
            let at = c.pos;
            if is(c.name(), "Error", "ER") {
                error = Some(c.error_descriptor(at)?);
                return Ok(());
            }
            c.pos = at;
            if terms.len() == MAX_TERMINATIONS {
                return Err(c.err(at, ErrorKind::TooMany("terminations")));
            }
            terms.push(c.term_id()?);
            Ok(())
        })?;
        Ok(Some((terms, error)))
    }

    fn term_id(&mut self) -> R<TermId<'a>> {
        self.ws();
        let at = self.pos;
        let n = self.rest().iter().take_while(|&&b| is_path(b)).count();
        if n == 0 {
            return Err(self.unexpected("a termination id"));
        }
        self.pos += n;
        Ok(TermId {
            text: self.text(at..self.pos),
            span: at..self.pos,
        })
    }

    /// The Media descriptor's elements, its `{` read: Stream descriptors,
    /// and Local/Remote directly inside (the implicit stream 1).
    fn media(&mut self, streams: &mut Vec<Stream<'a>>) -> R<()> {
        let media_at = self.pos - 1;
        // The implicit stream's index in `streams`, once it exists.
        let mut implicit: Option<usize> = None;
        self.list(|c| {
            let at = c.pos;
            let tok = c.name();
            let local = is(tok, "Local", "L");
            if local || is(tok, "Remote", "R") {
                let idx = match implicit {
                    Some(i) => i,
                    None => {
                        c.room(streams, at)?;
                        streams.push(Stream {
                            id: None,
                            local: Vec::new(),
                            remote: Vec::new(),
                            span: media_at..media_at,
                            _text: std::marker::PhantomData,
                        });
                        implicit = Some(streams.len() - 1);
                        streams.len() - 1
                    }
                };
                match streams.get_mut(idx) {
                    Some(s) => c.octets(if local { &mut s.local } else { &mut s.remote }),
                    None => Ok(()),
                }
            } else if is(tok, "Stream", "ST") {
                c.equal()?;
                let id = c.uint(5, u64::from(u16::MAX), ErrorKind::BadStreamId)?;
                c.room(streams, at)?;
                c.open("`{`")?;
                let mut s = Stream {
                    id: Some(u16::try_from(id).unwrap_or(u16::MAX)),
                    local: Vec::new(),
                    remote: Vec::new(),
                    span: at..at,
                    _text: std::marker::PhantomData,
                };
                c.list(|c| {
                    let at = c.pos;
                    let tok = c.name();
                    if is(tok, "Local", "L") {
                        c.octets(&mut s.local)?;
                    } else if is(tok, "Remote", "R") {
                        c.octets(&mut s.remote)?;
                    } else {
                        c.pos = at;
                        c.skip()?;
                    }
                    Ok(())
                })?;
                s.span = at..c.pos;
                streams.push(s);
                Ok(())
            } else {
                // LocalControl, TerminationState, …
                c.pos = at;
                c.skip()
            }
        })?;
        if let Some(s) = implicit.and_then(|i| streams.get_mut(i)) {
            s.span.end = self.pos;
        }
        Ok(())
    }

    fn room(&self, streams: &[Stream<'a>], at: usize) -> R<()> {
        if streams.len() == MAX_STREAMS {
            return Err(self.err(at, ErrorKind::TooMany("streams")));
        }
        Ok(())
    }

    /// A Local or Remote descriptor's `{ octetString }`, its token read:
    /// the SDP groups in it. The body runs to the first `}` not escaped
    /// as `\}`.
    fn octets(&mut self, out: &mut Vec<SdpGroup>) -> R<()> {
        self.expect(b'{', "`{`")?;
        let open = self.pos - 1;
        if self.depth + 1 > MAX_DEPTH {
            return Err(self.err(open, ErrorKind::TooDeep));
        }
        let body = self.rest();
        let close = memchr::memchr_iter(b'}', body)
            .find(|&i| i == 0 || body.get(i - 1) != Some(&b'\\'))
            .ok_or_else(|| self.err(open, ErrorKind::Unterminated("Local or Remote descriptor")))?;
        let start = self.pos;
        self.pos += close + 1;
        let mut n = 0;
        split_groups(body.get(..close).unwrap_or_default(), |g| {
            if n == MAX_GROUPS {
                return Err(self.err(start + g.start, ErrorKind::TooMany("SDP groups")));
            }
            n += 1;
            out.push(SdpGroup {
                span: start + g.start..start + g.end,
            });
            Ok(())
        })
    }

    /// The ServiceChange descriptor's parameters, its `{` read.
    fn services(&mut self) -> R<ServiceChange<'a>> {
        let mut sc = ServiceChange::default();
        self.list(|c| {
            let at = c.pos;
            let tok = c.name();
            let slot = if is(tok, "Method", "MT") {
                Some(&mut sc.method)
            } else if is(tok, "Reason", "RE") {
                Some(&mut sc.reason)
            } else if is(tok, "Profile", "PF") {
                Some(&mut sc.profile)
            } else {
                None
            };
            if let Some(slot) = slot {
                c.equal()?;
                *slot = Some(c.value()?.0);
            } else if is(tok, "ServiceChangeAddress", "AD") {
                c.equal()?;
                sc.address = Some(c.value()?);
            } else if is(tok, "MgcIdToTry", "MG") {
                c.equal()?;
                sc.mgc_id = Some(c.value()?);
            } else {
                c.pos = at;
                c.skip()?;
            }
            Ok(())
        })?;
        Ok(sc)
    }

    /// A parameter value: a quoted string (its text), an mId or a run of
    /// `SafeChar`s, with its span.
    fn value(&mut self) -> R<(&'a str, Range<usize>)> {
        self.ws();
        let at = self.pos;
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'[' | b'<') => {
                let mid = self.mid()?;
                Ok((mid.text, mid.span))
            }
            _ => {
                let n = self.rest().iter().take_while(|&&b| is_safe(b)).count();
                if n == 0 {
                    return Err(self.unexpected("a value"));
                }
                self.pos += n;
                Ok((self.text(at..self.pos), at..self.pos))
            }
        }
    }

    /// `Error = code { "text" }`, its token (at `start`) read. The braces
    /// are optional here (some stacks leave them out), and an unquoted
    /// text is taken as it is.
    fn error_descriptor(&mut self, start: usize) -> R<ErrorDescriptor<'a>> {
        self.equal()?;
        let code = self.uint(4, 9999, ErrorKind::BadErrorCode)?;
        let mut e = ErrorDescriptor {
            code: u16::try_from(code).unwrap_or(u16::MAX),
            reason: None,
            span: start..start,
        };
        let before = self.pos;
        if self.eat(b'{') {
            self.deeper(self.pos - 1)?;
            self.ws();
            if self.peek() != Some(b'}') {
                e.reason = Some(self.value()?.0);
            }
            self.expect(b'}', "`}`")?;
            self.depth -= 1;
        } else {
            self.pos = before;
        }
        e.span = start..self.pos;
        Ok(e)
    }
}

fn command_kind(t: &[u8]) -> Option<CommandKind> {
    Some(match t {
        _ if is(t, "Add", "A") => CommandKind::Add,
        _ if is(t, "Modify", "MF") => CommandKind::Modify,
        _ if is(t, "Subtract", "S") => CommandKind::Subtract,
        _ if is(t, "Move", "MV") => CommandKind::Move,
        _ if is(t, "AuditValue", "AV") => CommandKind::AuditValue,
        _ if is(t, "AuditCapability", "AC") => CommandKind::AuditCapability,
        _ if is(t, "Notify", "N") => CommandKind::Notify,
        _ if is(t, "ServiceChange", "SC") => CommandKind::ServiceChange,
        _ => return None,
    })
}

/// Calls `f` with each SDP group of an octet string, relative to it:
/// each starts at a line beginning with `v=` (the first at the first
/// non-blank byte) and ends where the next starts; the last ends with its
/// last line's end, so blanks before the `}` stay outside.
fn split_groups(body: &[u8], mut f: impl FnMut(Range<usize>) -> R<()>) -> R<()> {
    let Some(first) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok(());
    };
    let last = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .unwrap_or(first);
    let mut end = last + 1;
    // A bare CR ends an H.248 line but no SDP line: it stays outside the
    // group, so a line the rewrite appends cannot run into what follows
    // (the next group's `v=`; found by fuzzing).
    match (body.get(end), body.get(end + 1)) {
        (Some(b'\r'), Some(b'\n')) => end += 2,
        (Some(b'\n'), _) => end += 1,
        _ => {}
    }
    let mut start = first;
    let view = body.get(..end).unwrap_or_default();
    // `v` is rarer than a line end: fewer stops.
    for i in memchr::memchr_iter(b'v', view) {
        if i > first
            && view.get(i + 1) == Some(&b'=')
            && matches!(view.get(i - 1), Some(b'\n' | b'\r'))
        {
            let bare_cr = view.get(i - 1) == Some(&b'\r');
            f(start..i - usize::from(bare_cr))?;
            start = i;
        }
    }
    f(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp_groups(body: &[u8]) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        split_groups(body, |g| {
            out.push(g);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn groups_split_at_v_lines_and_leave_blanks_out() {
        let b = b" \r\nv=0\r\nm=a\r\nv=0\nm=b\n  ";
        let g = sdp_groups(b);
        assert_eq!(g, vec![3..13, 13..21]);
        assert_eq!(&b[g[1].clone()], b"v=0\nm=b\n");
        assert!(sdp_groups(b"  \r\n ").is_empty());
        assert_eq!(sdp_groups(b"v=0 x"), vec![0..5]);
        // A bare CR before the next group or the end stays outside.
        assert_eq!(sdp_groups(b"v=0\rm=a\rv=0\r\nm=b\r \r"), vec![0..7, 8..16]);
        // `v=` inside a line does not start a group.
        assert_eq!(sdp_groups(b"a=x v=0\r\n"), vec![0..9]);
    }

    #[test]
    fn lines_count_every_kind_of_line_end() {
        let d = b"a\r\nb\nc\rd";
        assert_eq!(line_at(d, 0), 1);
        assert_eq!(line_at(d, 3), 2);
        assert_eq!(line_at(d, 5), 3);
        assert_eq!(line_at(d, 7), 4);
        assert_eq!(line_at(d, 100), 4);
    }

    #[test]
    fn mid_forms() {
        let m = |s: &str| {
            parse(format!("!/1 {s} K{{1}}").as_bytes()).map(|m| {
                let mid = m.mid().clone();
                (mid.kind, mid.host.to_owned(), mid.port, mid.text.to_owned())
            })
        };
        assert_eq!(
            m("[10.1.1.1]:2944").unwrap(),
            (
                MidKind::Ip4,
                "10.1.1.1".into(),
                Some(2944),
                "[10.1.1.1]:2944".into()
            )
        );
        assert_eq!(m("[2001:db8::1]").unwrap().0, MidKind::Ip6);
        assert_eq!(m("<mg.example>:55").unwrap().2, Some(55));
        assert_eq!(m("mtp{0A0B0C}").unwrap().1, "0A0B0C");
        assert_eq!(m("mg1/gw@x.net").unwrap().0, MidKind::Device);
        assert_eq!(m("[10.1.1.256]").unwrap_err().kind(), "bad_mid");
        assert_eq!(m("[10.1.1.1]:65536").unwrap_err().kind(), "bad_mid");
        assert_eq!(m("[1:2:3]").unwrap_err().kind(), "bad_mid");
    }
}
