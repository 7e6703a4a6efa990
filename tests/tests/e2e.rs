//! End-to-end flows of the control plane and the media relay model on the
#![allow(missing_docs)]
//! simulated network with NAT firewalls (Figs. 6, 7, 8, 11 and variants).
//! One test binary, several modules (link time).

#[path = "e2e/attacks.rs"]
mod attacks;
#[path = "e2e/common.rs"]
mod common;
#[path = "e2e/media.rs"]
mod media;
#[path = "e2e/registration.rs"]
mod registration;
