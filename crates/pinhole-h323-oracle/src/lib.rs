//! Independent test oracle for the Pinhole H.323 ALG.
#![allow(missing_docs)]

mod generated;

pub use generated::h235_security_messages as h235;
pub use generated::h323_messages as h225;
pub use generated::multimedia_system_control as h245;
