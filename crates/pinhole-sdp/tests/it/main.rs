//! Integration tests of `pinhole-sdp`: the SDP locator and rewriter against the corpus, properties and the fuzz corpus. One test binary with a module
//! per suite: the crate and its dependencies link once.

mod corpus;
mod fuzz_corpus;
mod props;
