//! Integration tests of `pinhole-sip`: the tokenizer against the shared
//! corpus, `rsip` and properties, the fuzz corpus, and the ALGs on the
//! simulated network (Fig. 12, plain phones). One test binary with a module
//! per suite: the crate and its dependencies link once.

mod corpus;
mod corpus_rewrite;
mod fig12;
mod fuzz_corpus;
mod messages;
mod plain;
mod props;
mod rsip_oracle;
