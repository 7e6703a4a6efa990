//! Finding the SDP in a body: the body itself, or the `application/sdp`
//! parts of a `multipart/*` body (RFC 2046 §5.1), nested one level.

use std::ops::Range;

use crate::error::ParseError;
use crate::header::{self, HeaderName, Step};
use crate::message::{Message, media_type_is};
use crate::params;
use crate::scan::{at, eq_ic, is_wsp, slice, trim};

fn err(at: usize, reason: &'static str) -> ParseError {
    ParseError::Multipart { at, reason }
}

/// Multipart nesting followed below the message body.
const MAX_NESTING: u8 = 1;

pub(crate) fn sdp_bodies(msg: &Message<'_>) -> Result<Vec<Range<usize>>, ParseError> {
    let buf = msg.buf();
    let mut out = Vec::new();
    let body = msg.body();
    match msg.header(HeaderName::ContentType) {
        Some(ct) => collect(buf, ct.value.clone(), body, 0, &mut out)?,
        // RFC 3261 §20.15 requires Content-Type with a body, but deployed
        // UAs send SDP without it (corpus: heplify 200 OK over IPv6). A body
        // that starts like SDP is taken as SDP, or its media would break.
        None => {
            let b = slice(buf, body.clone());
            if b.starts_with(b"v=0\r\n") || b.starts_with(b"v=0\n") {
                out.push(body);
            }
        }
    }
    Ok(out)
}

/// The media type part of a Content-Type value (before the first `;`).
fn media_type(buf: &[u8], value: Range<usize>) -> Range<usize> {
    let semi =
        memchr::memchr(b';', slice(buf, value.clone())).map_or(value.end, |s| value.start + s);
    trim(buf, value.start..semi)
}

/// Adds the SDP found in `content` (typed by the Content-Type `value`).
fn collect(
    buf: &[u8],
    value: Range<usize>,
    content: Range<usize>,
    depth: u8,
    out: &mut Vec<Range<usize>>,
) -> Result<(), ParseError> {
    let ty = slice(buf, media_type(buf, value.clone()));
    if media_type_is(ty, b"application", b"sdp") {
        if !content.is_empty() {
            out.push(content);
        }
        return Ok(());
    }
    if !media_type_is(ty, b"multipart", b"*") || depth > MAX_NESTING {
        return Ok(());
    }
    let boundary = boundary(buf, value)?;
    for (ct, part) in parts(buf, content, boundary)? {
        // RFC 2046 §5.1: a part without Content-Type is text/plain.
        if let Some(ct) = ct {
            collect(buf, ct, part, depth + 1, out)?;
        }
    }
    Ok(())
}

/// The `boundary` parameter of a multipart Content-Type value, unquoted.
fn boundary(buf: &[u8], value: Range<usize>) -> Result<Range<usize>, ParseError> {
    let mt = media_type(buf, value.clone());
    let mut found = None;
    params::scan(buf, mt.end, value.end, err, |p| {
        if found.is_none() && eq_ic(slice(buf, p.name.clone()), b"boundary") {
            found = p.value;
        }
    })?;
    let b = found.ok_or_else(|| err(value.start, "multipart Content-Type without boundary"))?;
    let b = if at(buf, b.start) == Some(b'"') && b.len() >= 2 {
        b.start + 1..b.end - 1
    } else {
        b
    };
    if b.is_empty() || b.len() > 70 {
        return Err(err(b.start, "boundary is empty or longer than 70 bytes"));
    }
    Ok(b)
}

/// One delimiter line: where it starts (after the line end that belongs to
/// it), where the next line starts, and whether it closes the body.
struct Delimiter {
    start: usize,
    after: usize,
    close: bool,
}

/// Finds the delimiter line for the boundary match at `b` (just after `--`).
fn delimiter(buf: &[u8], body: &Range<usize>, b: usize, blen: usize) -> Option<Delimiter> {
    let dash = b.checked_sub(2)?;
    if dash < body.start || slice(buf, dash..b) != b"--" {
        return None;
    }
    if dash > body.start && at(buf, dash - 1) != Some(b'\n') {
        return None;
    }
    let mut i = b + blen;
    let close = i + 2 <= body.end && slice(buf, i..i + 2) == b"--";
    if close {
        i += 2;
    }
    // Transport padding, then the line end (or the end of the body).
    while i < body.end && at(buf, i).is_some_and(is_wsp) {
        i += 1;
    }
    let after = if i == body.end {
        i
    } else if at(buf, i) == Some(b'\n') {
        i + 1
    } else if at(buf, i) == Some(b'\r') && i + 1 < body.end && at(buf, i + 1) == Some(b'\n') {
        i + 2
    } else {
        return None;
    };
    Some(Delimiter {
        start: dash,
        after,
        close,
    })
}

/// The parts of a multipart body: each part's Content-Type value (if any)
/// and content span.
type Parts = Vec<(Option<Range<usize>>, Range<usize>)>;

fn parts(buf: &[u8], body: Range<usize>, boundary: Range<usize>) -> Result<Parts, ParseError> {
    let needle = slice(buf, boundary.clone());
    let hay = slice(buf, body.clone());
    let mut delims: Vec<Delimiter> = Vec::new();
    for m in memchr::memmem::find_iter(hay, needle) {
        if let Some(d) = delimiter(buf, &body, body.start + m, needle.len()) {
            let close = d.close;
            delims.push(d);
            if close {
                break;
            }
        }
    }
    if !delims.last().is_some_and(|d| d.close) {
        return Err(err(body.start, "no closing boundary delimiter"));
    }
    let mut out = Vec::new();
    for pair in delims.windows(2) {
        let [open, next] = pair else { continue };
        // The line end before a delimiter belongs to the delimiter.
        let mut end = next.start;
        if end > open.after && at(buf, end - 1) == Some(b'\n') {
            end -= 1;
            if end > open.after && at(buf, end - 1) == Some(b'\r') {
                end -= 1;
            }
        }
        out.push(part(buf, open.after..end)?);
    }
    Ok(out)
}

/// Splits one part into its Content-Type value and content.
fn part(
    buf: &[u8],
    span: Range<usize>,
) -> Result<(Option<Range<usize>>, Range<usize>), ParseError> {
    // Bound the header scan to this part: it must not read the delimiter.
    let sub = buf.get(..span.end).unwrap_or(buf);
    let mut p = span.start;
    let mut ct = None;
    loop {
        match header::step(sub, p)? {
            Step::Header(h) => {
                if ct.is_none() && eq_ic(slice(sub, h.name_span.clone()), b"Content-Type") {
                    ct = Some(h.value.clone());
                }
                p = h.line.end;
            }
            Step::Blank { body_start, .. } => return Ok((ct, body_start..span.end)),
            Step::End => return Ok((ct, span.end..span.end)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(msg: &[u8]) -> Result<Vec<Vec<u8>>, ParseError> {
        let m = Message::parse(msg).unwrap();
        Ok(m.sdp_bodies()?
            .into_iter()
            .map(|r| msg[r].to_vec())
            .collect())
    }

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

    fn message(ct: &str, body: &str) -> Vec<u8> {
        format!(
            "INVITE sip:b@example.com SIP/2.0\r\nCSeq: 1 INVITE\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn untyped_body_that_looks_like_sdp() {
        let msg = format!(
            "SIP/2.0 200 OK\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        );
        assert_eq!(
            bodies(msg.as_bytes()).unwrap(),
            vec![SDP.as_bytes().to_vec()]
        );
        let msg = "SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nv=0 x";
        assert!(bodies(msg.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn plain_sdp_and_other_types() {
        assert_eq!(
            bodies(&message("application/sdp", SDP)).unwrap(),
            vec![SDP.as_bytes().to_vec()]
        );
        assert_eq!(
            bodies(&message("Application/SDP;charset=x", SDP))
                .unwrap()
                .len(),
            1
        );
        assert!(bodies(&message("application/sdp", "")).unwrap().is_empty());
        assert!(bodies(&message("text/plain", SDP)).unwrap().is_empty());
    }

    #[test]
    fn multipart_mixed_crlf_and_lf() {
        for nl in ["\r\n", "\n"] {
            let sdp = SDP.replace("\r\n", nl);
            let body = format!(
                "preamble{nl}--xyz{nl}Content-Type: text/plain{nl}{nl}hello{nl}--xyz {nl}Content-Type: application/sdp{nl}{nl}{sdp}{nl}--xyz--{nl}epilogue"
            );
            let msg = message("multipart/mixed; boundary=\"xyz\"", &body);
            assert_eq!(
                bodies(&msg).unwrap(),
                vec![sdp.as_bytes().to_vec()],
                "{nl:?}"
            );
        }
    }

    #[test]
    fn nested_one_level_only() {
        let inner = format!("--in\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--in--");
        let body = format!(
            "--out\r\nContent-Type: multipart/alternative;boundary=in\r\n\r\n{inner}\r\n--out\r\n\r\nno headers\r\n--out--\r\n"
        );
        let got = bodies(&message("multipart/mixed;boundary=out", &body)).unwrap();
        assert_eq!(got, vec![SDP.as_bytes().to_vec()]);
        // Two levels below the body are not followed.
        let deeper =
            format!("--d\r\nContent-Type: multipart/mixed;boundary=in\r\n\r\n{inner}\r\n--d--");
        let body =
            format!("--out\r\nContent-Type: multipart/mixed;boundary=d\r\n\r\n{deeper}\r\n--out--");
        assert!(
            bodies(&message("multipart/mixed;boundary=out", &body))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn boundary_lookalikes_are_not_delimiters() {
        let body = format!(
            "--b\r\nContent-Type: application/sdp\r\n\r\n{SDP}a=x:--b\r\n--bb\r\n\r\n--b--"
        );
        let got = bodies(&message("multipart/mixed;boundary=b", &body)).unwrap();
        assert_eq!(got, vec![format!("{SDP}a=x:--b\r\n--bb\r\n").into_bytes()]);
    }

    #[test]
    fn malformed_multipart() {
        for (ct, body) in [
            ("multipart/mixed", "--b\r\n\r\nx\r\n--b--"),
            ("multipart/mixed;boundary=b", "--b\r\n\r\nx\r\n"),
            ("multipart/mixed;boundary=b", "no delimiter at all"),
            ("multipart/mixed;boundary=\"\"", "--\r\n"),
            (
                "multipart/mixed;boundary=b",
                "--b\r\nbroken header\r\n\r\nx\r\n--b--",
            ),
        ] {
            assert!(
                matches!(
                    bodies(&message(ct, body)),
                    Err(ParseError::Multipart { .. } | ParseError::Header { .. })
                ),
                "{ct} {body:?}"
            );
        }
    }
}
