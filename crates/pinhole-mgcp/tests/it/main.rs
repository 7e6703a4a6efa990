//! Integration tests of `pinhole-mgcp`: the parser and rewriter against the
//! corpus, exact bytes and properties, the fuzz corpus, and the ALGs on the
//! simulated network (Figs. 9 and 10) and under hostile input. One test
//! binary with a module per suite: the crate and its dependencies link once.

mod common;
mod corpus;
mod fig10;
mod fig9;
mod fuzz_corpus;
mod messages;
mod props;
mod proxy_props;
mod refusal;
