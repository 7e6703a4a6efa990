//! Integration tests of `pinhole-h248`: the parser and rewriter against
//! the corpus, exact bytes and properties, and the fuzz corpus. One test
//! binary with a module per suite: the crate and its dependencies link
//! once.

mod common;
mod corpus;
mod fig13;
mod fig14;
mod fuzz_corpus;
mod messages;
mod props;
