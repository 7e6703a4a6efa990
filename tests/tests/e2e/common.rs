//! The shared deployment lives in the testkit (the demo uses it too).

pub(crate) use pinhole_testkit::bed::*;
