//! WebSocket frames (RFC 6455 section 5): one direction of a connection
//! after the opening handshake, bytes in, messages out.

/// What a direction's bytes gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A whole text or binary message, unmasked, continuations joined.
    Message(Vec<u8>),
    /// A message that cannot be delivered, and why.
    Dropped(&'static str),
}

/// The frames cannot be followed any further.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WsError {
    #[error("WebSocket frame with reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("fragmented WebSocket control frame")]
    FragmentedControl,
    #[error("WebSocket continuation frame without a message to continue")]
    UnexpectedContinuation,
    #[error("WebSocket data frame inside an unfinished fragmented message")]
    InterruptedMessage,
}

/// A data message being joined from frames.
#[derive(Debug)]
struct Message {
    data: Vec<u8>,
    /// RSV1 on the first frame: permessage-deflate (RFC 7692), not inflated here.
    compressed: bool,
    too_big: bool,
}

/// One direction's frame decoder.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    /// Bytes not yet consumed: at most one frame header plus one payload
    /// within the size limit.
    buf: Vec<u8>,
    /// Payload bytes still to be thrown away (a frame over the limit).
    skip: u64,
    msg: Option<Message>,
}

/// A parsed frame header.
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    header_len: usize,
}

impl Decoder {
    /// Feeds the next bytes; messages completed go to `out`. A message
    /// longer than `max` is dropped without buffering it.
    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        max: usize,
        out: &mut Vec<Event>,
    ) -> Result<(), WsError> {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let result = loop {
            let rest = self.buf.get(pos..).unwrap_or_default();
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                pos += n;
                self.skip -= n as u64;
                if self.skip > 0 {
                    break Ok(());
                }
                continue;
            }
            let Some(h) = header(rest) else {
                break Ok(());
            };
            let max64 = max as u64;
            if h.len > max64 {
                pos += h.header_len;
                self.skip = h.len;
                if let Err(e) = self.frame(&h, Vec::new(), true, max, out) {
                    break Err(e);
                }
                continue;
            }
            // h.len <= max, so it fits in usize.
            let len = h.len as usize;
            let Some(body) = rest.get(h.header_len..h.header_len + len) else {
                break Ok(());
            };
            let mut payload = body.to_vec();
            if let Some(key) = h.mask {
                for (b, k) in payload.iter_mut().zip(key.iter().cycle()) {
                    *b ^= k;
                }
            }
            pos += h.header_len + len;
            if let Err(e) = self.frame(&h, payload, false, max, out) {
                break Err(e);
            }
        };
        self.buf.drain(..pos.min(self.buf.len()));
        result
    }

    fn frame(
        &mut self,
        h: &Header,
        payload: Vec<u8>,
        too_big: bool,
        max: usize,
        out: &mut Vec<Event>,
    ) -> Result<(), WsError> {
        match h.opcode {
            0x8..=0xF if !h.fin => return Err(WsError::FragmentedControl),
            // Close, ping, pong and reserved control frames carry no
            // signaling.
            0x8..=0xF => return Ok(()),
            0x1 | 0x2 => {
                if self.msg.is_some() {
                    return Err(WsError::InterruptedMessage);
                }
                self.msg = Some(Message {
                    data: payload,
                    compressed: h.rsv1,
                    too_big,
                });
            }
            0x0 => {
                let Some(m) = self.msg.as_mut() else {
                    return Err(WsError::UnexpectedContinuation);
                };
                if too_big || m.data.len() + payload.len() > max {
                    m.too_big = true;
                    m.data = Vec::new();
                } else if !m.too_big {
                    m.data.extend_from_slice(&payload);
                }
            }
            op => return Err(WsError::ReservedOpcode(op)),
        }
        if h.fin
            && let Some(m) = self.msg.take()
        {
            out.push(if m.compressed {
                Event::Dropped("compressed WebSocket message (permessage-deflate) not inflated")
            } else if m.too_big {
                Event::Dropped("WebSocket message bigger than the flow buffer limit")
            } else {
                Event::Message(m.data)
            });
        }
        Ok(())
    }
}

/// The frame header at the start of `b`, if all of it is there.
fn header(b: &[u8]) -> Option<Header> {
    let (&b0, rest) = b.split_first()?;
    let (&b1, rest) = rest.split_first()?;
    let (len, rest, ext) = match b1 & 0x7F {
        126 => {
            let (l, rest) = rest.split_first_chunk::<2>()?;
            (u64::from(u16::from_be_bytes(*l)), rest, 2)
        }
        127 => {
            let (l, rest) = rest.split_first_chunk::<8>()?;
            (u64::from_be_bytes(*l), rest, 8)
        }
        n => (u64::from(n), rest, 0),
    };
    let mask = if b1 & 0x80 != 0 {
        Some(*rest.first_chunk::<4>()?)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode: b0 & 0x0F,
        len,
        header_len: 2 + ext + if mask.is_some() { 4 } else { 0 },
        mask,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as a client sends it (masked).
    fn frame(fin: bool, opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut f = vec![u8::from(fin) << 7 | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=65535 => {
                f.push(0x80 | 126);
                f.extend((n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend((n as u64).to_be_bytes());
            }
        }
        f.extend(key);
        f.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        f
    }

    #[test]
    fn masked_fragmented_message_across_feeds() {
        let mut bytes = frame(false, 1, b"INVITE sip:", [1, 2, 3, 4]);
        bytes.extend(frame(true, 9, b"ping", [9, 9, 9, 9])); // control inside
        bytes.extend(frame(true, 0, b"bob@x SIP/2.0", [5, 6, 7, 8]));
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for chunk in bytes.chunks(3) {
            d.feed(chunk, 1 << 20, &mut out).unwrap();
        }
        assert_eq!(
            out,
            vec![Event::Message(b"INVITE sip:bob@x SIP/2.0".to_vec())]
        );
        assert!(d.buf.is_empty());
    }

    #[test]
    fn sixteen_and_sixty_four_bit_lengths() {
        let big = vec![b'a'; 300];
        let mut bytes = frame(true, 2, &big, [0xAA, 0, 0xFF, 1]);
        assert_eq!(bytes[1], 0x80 | 126);
        // A 64-bit length (RFC 6455 allows it for any size).
        bytes.extend([0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 3, b'x', b'y', b'z']);
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.feed(&bytes, 1 << 20, &mut out).unwrap();
        assert_eq!(
            out,
            vec![Event::Message(big), Event::Message(b"xyz".to_vec())]
        );
    }

    #[test]
    fn too_big_is_skipped_and_the_next_frame_still_decodes() {
        let mut bytes = frame(true, 1, &[b'q'; 200], [1, 1, 1, 1]);
        bytes.extend(frame(true, 1, b"ok", [2, 2, 2, 2]));
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for chunk in bytes.chunks(7) {
            d.feed(chunk, 100, &mut out).unwrap();
        }
        assert_eq!(
            out,
            vec![
                Event::Dropped("WebSocket message bigger than the flow buffer limit"),
                Event::Message(b"ok".to_vec())
            ]
        );
    }

    #[test]
    fn protocol_errors() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        assert_eq!(
            d.feed(&frame(true, 0, b"x", [0; 4]), 100, &mut out),
            Err(WsError::UnexpectedContinuation)
        );
        let mut d = Decoder::default();
        assert_eq!(
            d.feed(&frame(false, 8, b"", [0; 4]), 100, &mut out),
            Err(WsError::FragmentedControl)
        );
        let mut d = Decoder::default();
        assert_eq!(
            d.feed(&frame(true, 3, b"", [0; 4]), 100, &mut out),
            Err(WsError::ReservedOpcode(3))
        );
        let mut d = Decoder::default();
        let mut two = frame(false, 1, b"a", [0; 4]);
        two.extend(frame(true, 1, b"b", [0; 4]));
        assert_eq!(
            d.feed(&two, 100, &mut out),
            Err(WsError::InterruptedMessage)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn compressed_message_is_reported_not_delivered() {
        let mut f = frame(true, 1, b"\x01\x02", [0; 4]);
        f[0] |= 0x40;
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.feed(&f, 100, &mut out).unwrap();
        assert!(matches!(out[..], [Event::Dropped(_)]));
    }
}
