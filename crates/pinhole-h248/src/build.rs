//! Small writers for the ALG's own replies: long-form tokens, CRLF line
//! ends, so that any peer reads them.

use std::io::Write as _;

/// A reply that fails transaction `transaction_id` as a whole:
///
/// ```text
/// MEGACO/1 [10.1.1.1]:2944
/// Reply = 10 {
///   Error = 500 {"reason"}
/// }
/// ```
///
/// `mid` is written as given (e.g. [`crate::Mid::text`]). A `"` or `\` in
/// `reason` is escaped with `\`, and a line end becomes a space, so the
/// reply parses back.
///
/// ```
/// let r = pinhole_h248::error_reply(1, "[10.1.1.1]:2944", 10, 500, "No resources");
/// assert_eq!(r, b"MEGACO/1 [10.1.1.1]:2944\r\nReply = 10 {\r\n  Error = 500 {\"No resources\"}\r\n}\r\n");
/// let m = pinhole_h248::parse(&r)?;
/// let pinhole_h248::Item::Reply(reply) = &m.items()[0] else { unreachable!() };
/// assert_eq!(reply.error.as_ref().unwrap().reason, Some("No resources"));
/// # Ok::<(), pinhole_h248::Error>(())
/// ```
pub fn error_reply(
    version: u8,
    mid: &str,
    transaction_id: u32,
    code: u16,
    reason: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + mid.len() + reason.len());
    let _ = write!(
        out,
        "MEGACO/{version} {mid}\r\nReply = {transaction_id} {{\r\n  Error = {code} {{\""
    );
    for c in reason.chars() {
        match c {
            '"' | '\\' => {
                out.push(b'\\');
                out.push(c as u8);
            }
            '\r' | '\n' => out.push(b' '),
            _ => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.extend_from_slice(b"\"}\r\n}\r\n");
    out
}

/// A `Pending` for transaction `transaction_id`: the request is being
/// worked on, do not resend it yet.
///
/// ```
/// let p = pinhole_h248::pending(1, "<mgc.example.net>:2944", 7);
/// assert_eq!(p, b"MEGACO/1 <mgc.example.net>:2944\r\nPending = 7 {}\r\n");
/// assert_eq!(pinhole_h248::parse(&p)?.items()[0].id(), Some(7));
/// # Ok::<(), pinhole_h248::Error>(())
/// ```
pub fn pending(version: u8, mid: &str, transaction_id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + mid.len());
    let _ = write!(
        out,
        "MEGACO/{version} {mid}\r\nPending = {transaction_id} {{}}\r\n"
    );
    out
}
