//! The walker: interprets the skip tables over a PDU, records where the
//! transport addresses and nested PDUs are, and stops as soon as nothing
//! of interest can follow (the netfilter H.323 helper's shape).

use super::bits::{Bits, Len};
use super::schema;
use super::ty::{CONTEXT, Choice, Field, GUID, HIT, LABEL, NO_UB, OPT, Seq, Size, TEXT, Ty, VALUE};
use super::{Address, Family, NestedPdu, Pdu, PerError, PerReason, Seg, Text, Value, Walk};

/// Recursion bound: the schema's own depth to an address is under 30, so
/// a deeper value is hostile.
const MAX_DEPTH: u32 = 64;

/// Whether the walk reached the end of a value, or stopped inside it with
/// nothing left to find (then everything enclosing stops too).
#[derive(PartialEq, Eq)]
enum Flow {
    End,
    Stopped,
}

type W = Result<Flow, Box<PerError>>;

pub(crate) struct Walker<'a, 'o> {
    r: Bits<'a>,
    out: &'o mut Walk,
    /// The name of the TransportAddress (or alias) component being walked.
    label: &'static str,
    /// The innermost [`CONTEXT`] component being walked.
    context: &'static str,
    /// The component being walked, and the SEQUENCE OF index in it.
    at_field: &'static str,
    at_index: usize,
    /// The nested PDU being walked (an index into `out.nested`).
    nested: Option<usize>,
    depth: u32,
}

impl<'a, 'o> Walker<'a, 'o> {
    pub(crate) fn run(pdu: Pdu, buf: &'a [u8], out: &'o mut Walk) -> Result<(), Box<PerError>> {
        let mut w = Walker {
            r: Bits::new(buf),
            out,
            label: "",
            context: "",
            at_field: "",
            at_index: 0,
            nested: None,
            depth: 0,
        };
        w.ty(root(pdu), false)
            .map(|_| ())
            .map_err(|e| e.within(Seg::Name(pdu.type_name())))
    }

    fn fail(&self, reason: PerReason) -> Box<PerError> {
        Box::new(PerError {
            bit: self.r.pos,
            reason,
            path: Vec::new(),
        })
    }

    fn ty(&mut self, t: &'static Ty, need_end: bool) -> W {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fail(PerReason::TooDeep));
        }
        let r = self.value(t, need_end);
        self.depth -= 1;
        r
    }

    fn value(&mut self, t: &'static Ty, need_end: bool) -> W {
        let at = self.r.pos;
        let r = match *t {
            Ty::Null => Ok(()),
            Ty::Bool => self.r.skip(1),
            Ty::Int { range, ext, .. } => self.int(range, ext),
            Ty::Enum { n, ext } => self.enumerated(n, ext),
            Ty::Octets(sz) => self.strings(sz, 8, true),
            Ty::Bits(sz) => self.strings(sz, 1, false),
            Ty::Chars(sz, b) => self.strings(sz, b, false),
            Ty::Oid | Ty::Open => self.open().map(|_| ()),
            Ty::Seq(s) => return self.seq(s, need_end),
            Ty::SeqOf(sz, item, hit) => return self.seq_of(sz, item, hit, need_end),
            Ty::Choice(c) => return self.choice(c, need_end),
            Ty::Nested(inner) => return self.nested_pdu(inner),
            Ty::Unwalked => Err(PerReason::Unwalked),
        };
        r.map(|()| Flow::End).map_err(|reason| {
            let mut e = self.fail(reason);
            e.bit = e.bit.max(at);
            e
        })
    }

    fn int(&mut self, range: u64, ext: bool) -> Result<(), PerReason> {
        if (ext && self.r.bit()?) || range == 0 {
            return self.counted_octets();
        }
        self.r.constrained(range).map(|_| ())
    }

    fn enumerated(&mut self, n: u16, ext: bool) -> Result<(), PerReason> {
        if ext && self.r.bit()? {
            return self.r.small().map(|_| ());
        }
        let v = self.r.constrained(u64::from(n))?;
        if v >= u64::from(n) {
            return Err(PerReason::BadIndex);
        }
        Ok(())
    }

    /// A length determinant and that many octets (fragments included).
    fn counted_octets(&mut self) -> Result<(), PerReason> {
        loop {
            let len = self.r.length()?;
            self.r.octets(len.n)?;
            if !len.more {
                return Ok(());
            }
        }
    }

    /// Steps over an open type; returns its content's bit range.
    fn open(&mut self) -> Result<(usize, usize), PerReason> {
        let len = self.r.length()?;
        let start = self.r.pos;
        self.r.octets(len.n)?;
        if len.more {
            self.counted_octets()?;
            return Err(PerReason::Fragmented);
        }
        Ok((start, self.r.pos))
    }

    /// The length of a SIZE-constrained value (X.691 §11.9.3.3–5), and
    /// whether it was fixed by the constraint (no determinant on the wire).
    fn size(&mut self, sz: Size) -> Result<(Len, bool), PerReason> {
        if sz.ext && self.r.bit()? {
            return Ok((self.r.length()?, false));
        }
        if sz.ub == NO_UB {
            return Ok((self.r.length()?, false));
        }
        if sz.lb == sz.ub {
            let n = sz.lb as usize;
            return Ok((Len { n, more: false }, true));
        }
        if sz.lb > sz.ub {
            return Err(PerReason::BadLength);
        }
        let n = self.r.constrained(u64::from(sz.ub - sz.lb) + 1)? as usize + sz.lb as usize;
        if n > sz.ub as usize {
            return Err(PerReason::BadLength);
        }
        Ok((Len { n, more: false }, false))
    }

    /// OCTET STRING, BIT STRING and the known-multiplier character strings:
    /// `unit` bits per element (X.691 §16, §17, §30). `octets` says the
    /// unit is an octet, whose fixed sizes of one or two stay unaligned.
    fn strings(&mut self, sz: Size, unit: u8, octets: bool) -> Result<(), PerReason> {
        let unit = usize::from(unit);
        let (mut len, fixed) = self.size(sz)?;
        loop {
            let bits = len.n * unit;
            // Aligned unless short: a fixed size of ≤ 16 bits, or a
            // constrained one whose upper bound fits 16 bits.
            let short = if fixed {
                bits <= 16
            } else {
                sz.ub != NO_UB && (sz.ub as usize) * unit <= 16 && !octets
            };
            if !short && bits > 0 {
                self.r.align()?;
            }
            self.r.skip(bits)?;
            if !len.more {
                return Ok(());
            }
            len = self.r.length()?;
        }
    }

    fn field(&mut self, f: &'static Field, need_end: bool) -> W {
        if f.flags & (VALUE | TEXT | GUID) != 0 {
            return self
                .record(f)
                .map(|()| Flow::End)
                .map_err(|r| self.fail(r).within(Seg::Name(f.name)));
        }
        let (label, context, at_field) = (self.label, self.context, self.at_field);
        if f.has(LABEL) {
            self.label = f.name;
        }
        if f.has(CONTEXT) {
            self.context = f.name;
        }
        self.at_field = f.name;
        let r = self.ty(f.ty, need_end);
        self.label = label;
        self.context = context;
        self.at_field = at_field;
        r.map_err(|e| e.within(Seg::Name(f.name)))
    }

    /// Reads a component whose value or place the walk records.
    fn record(&mut self, f: &'static Field) -> Result<(), PerReason> {
        match *f.ty {
            Ty::Int {
                lb,
                range,
                ext: false,
            } if range > 0 && lb >= 0 && f.has(VALUE) => {
                let v = self.r.constrained(range)?;
                if v >= range {
                    return Err(PerReason::BadIndex);
                }
                self.push_value(f.name, v + lb as u64);
            }
            Ty::Bool if f.has(VALUE) => {
                let v = self.r.bit()?;
                self.push_value(f.name, u64::from(v));
            }
            Ty::Octets(sz) if f.has(GUID) && sz.lb == 16 && sz.ub == 16 => {
                let at = self.r.octets(16)?;
                if self.nested.is_none() && self.out.call_id_at.is_none() {
                    self.out.call_id_at = Some(at);
                }
            }
            Ty::Chars(sz, bits) if f.has(TEXT) => {
                let (len, fixed) = self.size(sz)?;
                if len.more {
                    return Err(PerReason::Fragmented);
                }
                let unit = usize::from(bits);
                let total = len.n * unit;
                let short = if fixed {
                    total <= 16
                } else {
                    sz.ub != NO_UB && (sz.ub as usize) * unit <= 16
                };
                if !short && total > 0 {
                    self.r.align()?;
                }
                let bit = self.r.pos;
                self.r.skip(total)?;
                self.out.texts.push(Text {
                    field: self.label,
                    alternative: f.name,
                    bit,
                    len: len.n,
                    bits,
                    nested: self.nested,
                });
            }
            _ => return Err(PerReason::Unwalked),
        }
        Ok(())
    }

    fn push_value(&mut self, name: &'static str, value: u64) {
        self.out.values.push(Value {
            name,
            value,
            context: self.context,
            nested: self.nested,
        });
    }

    fn seq(&mut self, s: &'static Seq, need_end: bool) -> W {
        let ext_present = s.ext && self.bit()?;
        let nopt = s.nopt;
        let bitmap = self.bits(nopt)?;
        if let Some(family) = s.addr {
            return self.address(s, family, ext_present);
        }
        let stop = if need_end { s.root.len() } else { s.stop };
        let exts_needed = ext_present && (need_end || s.ext_hit);
        let mut left = nopt;
        for (i, f) in s.root.iter().enumerate() {
            if i >= stop {
                return Ok(Flow::Stopped);
            }
            if f.has(OPT) {
                left -= 1;
                if (bitmap >> left) & 1 == 0 {
                    continue;
                }
            }
            let child_needs_end = need_end || i + 1 < stop || exts_needed;
            if self.field(f, child_needs_end)? == Flow::Stopped {
                return Ok(Flow::Stopped);
            }
        }
        if !ext_present {
            return Ok(Flow::End);
        }
        if !exts_needed {
            return Ok(Flow::Stopped);
        }
        self.extensions(s.exts)
    }

    /// An IP address and port (H.225.0 `ipAddress`/`ip6Address`, H.245
    /// `iPAddress`/`iP6Address`): both octet-aligned, so they patch in place.
    fn address(&mut self, s: &'static Seq, family: Family, ext_present: bool) -> W {
        let ip_len = match family {
            Family::V4 => 4,
            Family::V6 => 16,
        };
        let ip_at = self
            .r
            .octets(ip_len)
            .map_err(|r| self.fail(r).within(Seg::Name(s.root[0].name)))?;
        let port_at = self
            .r
            .octets(2)
            .map_err(|r| self.fail(r).within(Seg::Name(s.root[1].name)))?;
        self.out.addresses.push(Address {
            field: self.label,
            context: self.context,
            family,
            ip_at,
            port_at,
            nested: self.nested,
        });
        if ext_present {
            return self.extensions(s.exts);
        }
        Ok(Flow::End)
    }

    /// The extension additions of a SEQUENCE (X.691 §19.7–9): a count, a
    /// presence bitmap, then each present addition as an open type. The
    /// ones this schema does not know (a newer peer's) are stepped over.
    fn extensions(&mut self, exts: &'static [Field]) -> W {
        let n = self.small()? + 1;
        let map_at = self.r.pos;
        self.skip(n)?;
        for i in 0..n {
            if self.r.buf[(map_at + i) / 8] & (0x80 >> ((map_at + i) % 8)) == 0 {
                continue;
            }
            match exts.get(i) {
                Some(f) if f.has(HIT) => self.inside_open(f)?,
                _ => {
                    self.open().map_err(|r| self.fail(r))?;
                }
            }
        }
        Ok(Flow::End)
    }

    /// Walks `f` inside an open type, bounded by its length, then steps to
    /// its end whatever the walk needed.
    fn inside_open(&mut self, f: &'static Field) -> Result<(), Box<PerError>> {
        let len = self.r.length().map_err(|r| self.fail(r))?;
        if len.more {
            return Err(self.fail(PerReason::Fragmented).within(Seg::Name(f.name)));
        }
        self.r.align().map_err(|r| self.fail(r))?;
        let start = self.r.pos;
        let end = start + len.n * 8;
        // A cut value is still walked as far as it goes, so that the error
        // names the place inside where the bits ran out.
        let outer = self.r.end;
        self.r.end = end.min(outer);
        let r = self.field(f, false);
        self.r.end = outer;
        r?;
        if end > self.r.end {
            return Err(self.fail(PerReason::Truncated).within(Seg::Name(f.name)));
        }
        self.r.pos = end;
        Ok(())
    }

    fn choice(&mut self, c: &'static Choice, need_end: bool) -> W {
        if c.ext && self.bit()? {
            let idx = self.small()?;
            let f = c.exts.get(idx);
            if let Some(f) = f {
                self.message(c, f);
            }
            match f {
                Some(f) if f.has(HIT) => self.inside_open(f)?,
                _ => {
                    self.open().map_err(|r| self.fail(r))?;
                }
            }
            return Ok(Flow::End);
        }
        let idx = self
            .r
            .constrained(c.root.len() as u64)
            .map_err(|r| self.fail(r))? as usize;
        let Some(f) = c.root.get(idx) else {
            return Err(self.fail(PerReason::BadIndex));
        };
        self.message(c, f);
        if !need_end && !f.has(HIT) {
            return Ok(Flow::Stopped);
        }
        self.field(f, need_end)
    }

    fn message(&mut self, c: &Choice, f: &'static Field) {
        if !c.message {
            return;
        }
        let slot = match self.nested {
            None => &mut self.out.message,
            Some(i) => &mut self.out.nested[i].message,
        };
        if slot.is_empty() {
            *slot = f.name;
        }
    }

    fn seq_of(&mut self, sz: Size, item: &'static Ty, hit: bool, need_end: bool) -> W {
        let (mut len, _) = self.size(sz).map_err(|r| self.fail(r))?;
        if !need_end && !hit && len.n > 0 {
            return Ok(Flow::Stopped);
        }
        let mut index = 0;
        loop {
            for j in 0..len.n {
                self.at_index = index;
                let needs_end = need_end || j + 1 < len.n || len.more;
                let flow = self
                    .ty(item, needs_end)
                    .map_err(|e| e.within(Seg::Index(index)))?;
                if flow == Flow::Stopped {
                    return Ok(Flow::Stopped);
                }
                index += 1;
            }
            if !len.more {
                return Ok(Flow::End);
            }
            len = self.r.length().map_err(|r| self.fail(r))?;
        }
    }

    /// An OCTET STRING holding an H.245 PDU (fastStart, h245Control): its
    /// content is octet-aligned, so offsets inside are offsets in the
    /// whole buffer, and its addresses patch in place like any other.
    fn nested_pdu(&mut self, inner: &'static Ty) -> W {
        let len = self.r.length().map_err(|r| self.fail(r))?;
        if len.more {
            return Err(self.fail(PerReason::Fragmented));
        }
        self.r.align().map_err(|r| self.fail(r))?;
        let start = self.r.pos;
        let end = start + len.n * 8;
        let pdu = if std::ptr::eq(inner, &schema::OPEN_LOGICAL_CHANNEL) {
            Pdu::OpenLogicalChannel
        } else {
            Pdu::H245
        };
        self.out.nested.push(NestedPdu {
            field: self.at_field,
            index: self.at_index,
            pdu,
            at: start / 8..(end / 8).min(self.r.buf.len()),
            message: "",
        });
        let (outer_nested, outer_end, outer_context) = (self.nested, self.r.end, self.context);
        self.nested = Some(self.out.nested.len() - 1);
        self.context = "";
        self.r.end = end.min(outer_end);
        let r = self.nested_message(inner);
        self.nested = outer_nested;
        self.context = outer_context;
        self.r.end = outer_end;
        r?;
        if end > outer_end {
            return Err(self.fail(PerReason::Truncated));
        }
        self.r.pos = end;
        Ok(Flow::End)
    }

    /// Walks a nested PDU; its message is named like the top level's.
    fn nested_message(&mut self, inner: &'static Ty) -> Result<(), Box<PerError>> {
        self.ty(inner, false)?;
        if let Some(n) = self.nested.and_then(|i| self.out.nested.get_mut(i))
            && n.message.is_empty()
            && n.pdu == Pdu::OpenLogicalChannel
        {
            n.message = "openLogicalChannel";
        }
        Ok(())
    }

    fn bit(&mut self) -> Result<bool, Box<PerError>> {
        self.r.bit().map_err(|r| self.fail(r))
    }

    fn bits(&mut self, n: usize) -> Result<u64, Box<PerError>> {
        if n > 64 {
            return Err(self.fail(PerReason::TooLong));
        }
        self.r.bits(n as u32).map_err(|r| self.fail(r))
    }

    fn skip(&mut self, n: usize) -> Result<(), Box<PerError>> {
        self.r.skip(n).map_err(|r| self.fail(r))
    }

    fn small(&mut self) -> Result<usize, Box<PerError>> {
        self.r.small().map_err(|r| self.fail(r))
    }
}

fn root(pdu: Pdu) -> &'static Ty {
    match pdu {
        Pdu::UserInformation => &schema::USER_INFORMATION,
        Pdu::Ras => &schema::RAS_MESSAGE,
        Pdu::H245 => &schema::MULTIMEDIA_SYSTEM_CONTROL_MESSAGE,
        Pdu::OpenLogicalChannel => &schema::OPEN_LOGICAL_CHANNEL,
    }
}
