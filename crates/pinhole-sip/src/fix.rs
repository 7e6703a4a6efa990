//! Keeping Content-Length right after body edits.

use pinhole_core::patch::Patch;

use crate::message::Message;

/// After body edits are recorded in `patch`, records the Content-Length
/// fix: replaces the value digits if the length changed (a compact `l:`
/// stays compact; an unchanged value is left byte for byte), or, if there
/// is no Content-Length and the body length changed, inserts
/// `Content-Length: N` before the empty line, with the message's line
/// ending.
///
/// The body's new length is its old length plus the patch's
/// [`Patch::delta_within`] the body span. A message without the empty line
/// (RFC 4475 `baddn`) has no body to edit.
///
/// ```
/// use pinhole_core::patch::Patch;
/// use pinhole_sip::{fix_content_length, Message};
///
/// let raw = b"MESSAGE sip:a@b SIP/2.0\r\nl: 2\r\n\r\nhi";
/// let msg = Message::parse(raw).unwrap();
/// let mut patch = Patch::new();
/// patch.replace(msg.body(), b"hello");
/// fix_content_length(&msg, &mut patch);
/// assert_eq!(patch.apply(raw).unwrap(), b"MESSAGE sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhello");
/// ```
pub fn fix_content_length(msg: &Message<'_>, patch: &mut Patch) {
    let body = msg.body();
    let new_len = body
        .len()
        .saturating_add_signed(patch.delta_within(body.clone()));
    match msg.content_length_header() {
        Some(h) if msg.content_length() != Some(new_len) => {
            patch.replace_int(h.value.clone(), new_len as u64);
        }
        Some(_) => {}
        None if new_len != body.len() => {
            let at = msg.headers_end();
            let le = if msg.line_ending() == b"\r\n" {
                "\r\n"
            } else {
                "\n"
            };
            patch.replace_fmt(at..at, format_args!("Content-Length: {new_len}{le}"));
        }
        None => {}
    }
}
