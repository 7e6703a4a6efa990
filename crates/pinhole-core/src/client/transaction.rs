//! One outstanding request and its RFC 8489 §6.2.1 retransmission schedule.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Retransmit;

/// What a transaction is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Purpose {
    Register,
    /// CMPH to the control address for a pinhole.
    Reserve(u64),
    /// CMPH to a relay port for a pinhole's component (0 RTP, 1 RTCP).
    Bind(u64, u8),
}

pub(super) struct Tx {
    pub(super) purpose: Purpose,
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
    payload: Vec<u8>,
    sent: u32,
    params: Retransmit,
    pub(super) next_at: Instant,
    pub(super) auth_retries: u8,
    /// A CMPH sent again after a 480 made the client re-register: a
    /// second 480 is final.
    pub(super) requeued: bool,
}

impl Tx {
    pub(super) fn new(
        purpose: Purpose,
        local: SocketAddr,
        remote: SocketAddr,
        payload: Vec<u8>,
        now: Instant,
        params: Retransmit,
        auth_retries: u8,
    ) -> Self {
        let mut tx = Self {
            purpose,
            local,
            remote,
            payload,
            sent: 1,
            params,
            next_at: now,
            auth_retries,
            requeued: false,
        };
        tx.next_at = now + tx.wait();
        tx
    }

    /// How long to wait after the latest send: RTO doubling, then Rm × RTO
    /// after the last one (0, 0.5, 1.5, 3.5 … 31.5 s, fail at 39.5 s).
    fn wait(&self) -> Duration {
        if self.sent >= self.params.rc {
            self.params.rto * self.params.rm
        } else {
            self.params.rto * 2u32.saturating_pow(self.sent - 1)
        }
    }

    /// The request's bytes (to send again on a new connection).
    pub(super) fn payload(&self) -> Vec<u8> {
        self.payload.clone()
    }

    /// At `next_at`: the payload to send again, or `None` when the
    /// transaction has timed out.
    pub(super) fn step(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.sent >= self.params.rc {
            return None;
        }
        self.sent += 1;
        self.next_at = now + self.wait();
        Some(self.payload.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8489_schedule() {
        let t0 = crate::test_instant();
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let mut tx = Tx::new(
            Purpose::Register,
            a,
            a,
            vec![1],
            t0,
            Retransmit::default(),
            0,
        );
        let mut sends = vec![0u128];
        loop {
            let at = tx.next_at;
            match tx.step(at) {
                Some(p) => {
                    assert_eq!(p, vec![1]);
                    sends.push(at.duration_since(t0).as_millis());
                }
                None => {
                    assert_eq!(at.duration_since(t0).as_millis(), 39_500);
                    break;
                }
            }
        }
        assert_eq!(sends, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    }
}
