//! The one rule every ALG follows for a message whose media description
//! (its SDP) it cannot read, or cannot write the relay's addresses into:
//! the message never goes on. Forwarded as it came it would name media
//! addresses that are not the relay's, so a party that believed it would
//! send media around the relay (and through no pinhole), or toward
//! whoever wrote the description.
//!
//! - A **request** (a SIP request, an MGCP command, an H.248 request) is
//!   refused toward its sender with the protocol's error: SIP 488, MGCP
//!   505, H.248 400 (each protocol crate names its own [`Rejection`]).
//! - A **response** (reply) cannot be refused: it is dropped. Its sender
//!   retransmits it and the transaction times out at the other end, as it
//!   would had the response been lost.
//!
//! Either way the ALG counts it (its `sdp_errors` counter) and logs one
//! line saying which it was. The decision, the count and the log line live
//! here so the protocols cannot drift apart.
//!
//! ```
//! use pinhole_core::alg::Rejection;
//! use pinhole_core::alg::txn::Leg;
//! use pinhole_core::alg::unreadable::{Verdict, unreadable_media};
//! use pinhole_core::wire::Protocol;
//!
//! const BAD_SDP: Rejection = Rejection::new(488, "Not Acceptable Here");
//! let mut sdp_errors = 0;
//! let v = unreadable_media(Protocol::Sip, Leg::Request, BAD_SDP, &"no v= line", &mut sdp_errors);
//! assert_eq!(v, Verdict::Refuse(BAD_SDP));
//! let v = unreadable_media(Protocol::Sip, Leg::Response, BAD_SDP, &"bad port", &mut sdp_errors);
//! assert_eq!(v, Verdict::Drop);
//! assert_eq!(sdp_errors, 2);
//! ```

use std::fmt::Display;

use super::Rejection;
use super::txn::Leg;
use crate::wire::Protocol;

/// What becomes of a message whose media description could not be read
/// or rewritten. Never "forward it as it is".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A request: answer its sender with this error; send nothing on.
    Refuse(Rejection),
    /// A response: send nothing, neither on nor back.
    Drop,
}

/// Decides, counts (`counter`, the ALG's `sdp_errors`) and logs what
/// becomes of a message of `leg` whose media description could not be
/// read or rewritten (`error` says why); `refusal` is the protocol's error
/// for a request.
pub fn unreadable_media(
    protocol: Protocol,
    leg: Leg,
    refusal: Rejection,
    error: &dyn Display,
    counter: &mut u64,
) -> Verdict {
    *counter += 1;
    match leg {
        Leg::Request => {
            tracing::warn!(?protocol, code = refusal.code, reason = refusal.reason, error = %error,
                "unreadable media description: request refused, nothing forwarded");
            Verdict::Refuse(refusal)
        }
        Leg::Response => {
            tracing::warn!(?protocol, error = %error,
                "unreadable media description: response dropped, nothing forwarded");
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_refused_a_response_dropped_and_both_counted() {
        let why = Rejection::new(505, "Unsupported RemoteConnectionDescriptor");
        let mut n = 0;
        for p in Protocol::ALL {
            assert_eq!(
                unreadable_media(p, Leg::Request, why, &"x", &mut n),
                Verdict::Refuse(why)
            );
            assert_eq!(
                unreadable_media(p, Leg::Response, why, &"x", &mut n),
                Verdict::Drop
            );
        }
        assert_eq!(n, 2 * Protocol::ALL.len() as u64);
    }
}
