//! A generic value tree parsed from the `{:?}` rendering of a decoded rasn value.
//!
//! rasn-generated types derive `Debug`, which prints every SEQUENCE as `Type { field: value, .. }`,
//! every CHOICE as `alternative(value)` (the generated variants keep the ASN.1 identifiers),
//! OPTIONAL as `Some(..)`/`None`, SEQUENCE OF as `[..]` and OCTET STRING (`bytes::Bytes`) as
//! `b"..."`. Parsing that text back gives a traversal of the whole value, in declaration order
//! (= PER encoding order: the modules have no SET and no second extension marker), without a
//! hand-written visitor for 16k lines of bindings.

use std::fmt::Write as _;

/// One node of a decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// `Type { field: value, .. }`
    Struct(String, Vec<(String, Self)>),
    /// `Name(values..)`: a CHOICE alternative (lower-case name), `Some`, or a newtype.
    Tuple(String, Vec<Self>),
    /// `[values..]`
    List(Vec<Self>),
    /// `b"..."`
    Bytes(Vec<u8>),
    /// `BitVec<..> { addr: .. } [bits]`: only the bits are kept (the rest has a pointer).
    Bits(Vec<Self>),
    /// A string literal, kept as printed (with its quotes).
    Str(String),
    /// Anything else: numbers, `None`, `true`, `()`, unit variants.
    Atom(String),
    /// A nested PDU decoded from an OCTET STRING (label = its type).
    Nested(&'static str, Box<Self>),
}

/// Parses the `{:?}` text of a value.
pub(crate) fn parse(text: &str) -> Result<Node, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let n = p.value()?;
    if p.i != p.s.len() {
        return Err(p.err("trailing text"));
    }
    Ok(n)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        let end = (self.i + 40).min(self.s.len());
        format!(
            "debug parse: {what} at {}: {:?}",
            self.i,
            String::from_utf8_lossy(&self.s[self.i..end])
        )
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, lit: &str) -> Result<(), String> {
        if self.eat(lit) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {lit:?}")))
        }
    }

    fn value(&mut self) -> Result<Node, String> {
        match self.peek() {
            None => Err(self.err("end of text")),
            Some(b'b') if self.s.get(self.i + 1) == Some(&b'"') => {
                self.i += 1;
                let raw = self.quoted()?;
                Ok(Node::Bytes(unescape_bytes(&raw).map_err(|e| self.err(&e))?))
            }
            Some(b'"') => Ok(Node::Str(self.quoted()?)),
            Some(b'[') => {
                self.i += 1;
                Ok(Node::List(self.seq(b']')?))
            }
            Some(b'(') if self.eat("()") => Ok(Node::Atom("()".into())),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.named(),
            Some(_) => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b')' | b']' | b'}' | b' ') {
                        break;
                    }
                    self.i += 1;
                }
                if start == self.i {
                    return Err(self.err("unexpected character"));
                }
                Ok(Node::Atom(
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                ))
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' {
                self.i += 1;
            } else {
                break;
            }
        }
        // `r#type` prints as `type`; generic arguments (`BitVec<u8, Msb0>`) are skipped.
        let name = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        if self.peek() == Some(b'<') {
            let mut depth = 0;
            while let Some(c) = self.peek() {
                self.i += 1;
                match c {
                    b'<' => depth += 1,
                    b'>' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        name
    }

    fn named(&mut self) -> Result<Node, String> {
        let name = self.ident();
        if self.eat(" { ") || self.eat(" {") {
            let mut fields = Vec::new();
            loop {
                if self.eat("}") {
                    break;
                }
                if self.eat(" }") {
                    break;
                }
                if self.eat("..") {
                    continue; // non-exhaustive marker
                }
                let f = self.ident();
                self.expect(": ")?;
                let v = self.value()?;
                fields.push((f, v));
                if !self.eat(", ") {
                    self.eat(" ");
                }
            }
            if name == "BitVec" {
                // bitvec prints its (pointer-bearing) header, then the bits as a list.
                self.expect(" ")?;
                self.expect("[")?;
                return Ok(Node::Bits(self.seq(b']')?));
            }
            Ok(Node::Struct(name, fields))
        } else if self.eat("(") {
            let items = self.seq(b')')?;
            // rasn's OctetString prints as `OctetString(b"..")`.
            if name == "OctetString" && matches!(items.as_slice(), [Node::Bytes(_)]) {
                return Ok(items.into_iter().next().unwrap());
            }
            Ok(Node::Tuple(name, items))
        } else {
            Ok(Node::Atom(name))
        }
    }

    /// Comma-separated values up to `close` (the opener already eaten).
    fn seq(&mut self, close: u8) -> Result<Vec<Node>, String> {
        let mut v = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(v);
            }
            v.push(self.value()?);
            if !self.eat(", ") && self.peek() != Some(close) {
                return Err(self.err("expected ', ' or a closing bracket"));
            }
        }
    }

    /// A `"..."` literal (the opening quote at `self.i`), returned with its escapes as printed.
    fn quoted(&mut self) -> Result<String, String> {
        self.expect("\"")?;
        let start = self.i;
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'\\') => self.i += 2,
                Some(b'"') => break,
                Some(_) => self.i += 1,
            }
        }
        let raw = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(raw)
    }
}

/// Undoes `bytes::Bytes`'s Debug escaping (`\xNN`, `\n`, `\r`, `\t`, `\0`, `\\`, `\"`).
fn unescape_bytes(raw: &str) -> Result<Vec<u8>, String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = *b.get(i + 1).ok_or("dangling backslash")?;
        i += 2;
        out.push(match c {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'0' => 0,
            b'\\' => b'\\',
            b'"' => b'"',
            b'\'' => b'\'',
            b'x' => {
                let h = raw.get(i..i + 2).ok_or("short \\x escape")?;
                i += 2;
                u8::from_str_radix(h, 16).map_err(|e| e.to_string())?
            }
            other => return Err(format!("unknown escape \\{}", other as char)),
        });
    }
    Ok(out)
}

/// Canonical text of a tree; `mask` replaces a node's text (used for addresses).
pub(crate) fn render(n: &Node, out: &mut String, mask: &mut dyn FnMut(&Node) -> Option<String>) {
    if let Some(m) = mask(n) {
        out.push_str(&m);
        return;
    }
    match n {
        Node::Struct(name, fields) => {
            out.push_str(name);
            out.push('{');
            for (i, (f, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(f);
                out.push(':');
                render(v, out, mask);
            }
            out.push('}');
        }
        Node::Tuple(name, items) => {
            out.push_str(name);
            out.push('(');
            render_list(items, out, mask);
            out.push(')');
        }
        Node::List(items) => {
            out.push('[');
            render_list(items, out, mask);
            out.push(']');
        }
        Node::Bits(items) => {
            out.push_str("bits[");
            render_list(items, out, mask);
            out.push(']');
        }
        Node::Bytes(b) => {
            out.push_str("0x");
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
        }
        Node::Str(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        Node::Atom(a) => out.push_str(a),
        Node::Nested(label, inner) => {
            out.push_str(label);
            out.push('<');
            render(inner, out, mask);
            out.push('>');
        }
    }
}

fn render_list(items: &[Node], out: &mut String, mask: &mut dyn FnMut(&Node) -> Option<String>) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        render(v, out, mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_rasn_prints() {
        let t = parse(
            r#"A { x: Some([b"\x01a\"\\", b""]), y: None, z: alt(B { p: -5 }), w: (), s: "q\"z", e: unit }"#,
        )
        .unwrap();
        let Node::Struct(name, f) = t else { panic!() };
        assert_eq!(name, "A");
        assert_eq!(
            f[0].1,
            Node::Tuple(
                "Some".into(),
                vec![Node::List(vec![
                    Node::Bytes(vec![1, b'a', b'"', b'\\']),
                    Node::Bytes(vec![])
                ])]
            )
        );
        assert_eq!(f[1].1, Node::Atom("None".into()));
        assert_eq!(f[3].1, Node::Atom("()".into()));
        assert_eq!(f[5].1, Node::Atom("unit".into()));
    }
}
