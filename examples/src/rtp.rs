//! Test RTP: packets whose payload is a function of their header, so the
//! receiver can tell an intact packet from a damaged or foreign one, and a
//! tally of what arrived.

/// RTP header length (no CSRC, no extension).
pub const HEADER: usize = 12;
/// Payload length: 20 ms of PCMU.
pub const PAYLOAD: usize = 160;

/// Packet `seq` of stream `ssrc` (RFC 3550 header, payload type 0).
pub fn packet(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(HEADER + PAYLOAD);
    p.extend_from_slice(&[0x80, 0x00]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..PAYLOAD).map(|i| fill(ssrc, seq, i)));
    p
}

fn fill(ssrc: u32, seq: u16, i: usize) -> u8 {
    (ssrc as u8) ^ (seq as u8).wrapping_add(i as u8)
}

/// The SSRC and sequence number of an intact test packet, `None` for
/// anything else.
pub fn check(p: &[u8]) -> Option<(u32, u16)> {
    if p.len() != HEADER + PAYLOAD || p.first() != Some(&0x80) {
        return None;
    }
    let seq = u16::from_be_bytes([*p.get(2)?, *p.get(3)?]);
    let ssrc = u32::from_be_bytes([*p.get(8)?, *p.get(9)?, *p.get(10)?, *p.get(11)?]);
    let payload = p.get(HEADER..)?;
    payload
        .iter()
        .enumerate()
        .all(|(i, &b)| b == fill(ssrc, seq, i))
        .then_some((ssrc, seq))
}

/// What arrived (or left) on a media port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Datagrams.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Intact test packets among them.
    pub intact: u64,
    /// SSRCs of the intact ones, in order of first arrival.
    pub ssrcs: Vec<u32>,
}

impl Tally {
    /// Counts one datagram.
    pub fn add(&mut self, p: &[u8]) {
        self.packets += 1;
        self.bytes += p.len() as u64;
        if let Some((ssrc, _)) = check(p) {
            self.intact += 1;
            if !self.ssrcs.contains(&ssrc) {
                self.ssrcs.push(ssrc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_check_and_damage_is_seen() {
        let p = packet(0xabcd_0001, 7);
        assert_eq!(p.len(), HEADER + PAYLOAD);
        assert_eq!(check(&p), Some((0xabcd_0001, 7)));
        let mut bad = p.clone();
        bad[HEADER + 5] ^= 1;
        assert_eq!(check(&bad), None);
        assert_eq!(check(&p[..HEADER + 3]), None);
        let mut t = Tally::default();
        t.add(&p);
        t.add(&bad);
        assert_eq!((t.packets, t.intact, t.bytes), (2, 1, 2 * 172));
        assert_eq!(t.ssrcs, [0xabcd_0001]);
    }
}
