//! Integration tests of `pinhole-capture`: capture reading against built and real captures, properties and the fuzz corpus. One test binary with a module
//! per suite: the crate and its dependencies link once.

mod built;
mod common;
mod corpus;
mod fuzz_corpus;
mod proptests;
