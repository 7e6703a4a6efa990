//! Integration tests of `pinhole-sip`: the tokenizer against the shared
//! corpus, `rsip` and properties, the fuzz corpus, and the ALGs on the
//! simulated network (Fig. 12, plain phones), what the proxies refuse
//! (issue 18: RFC 4475 §3.1.2, unreadable SDP). One test binary with a module
//! per suite: the crate and its dependencies link once.

mod corpus;
mod corpus_rewrite;
mod fig12;
mod fuzz_corpus;
mod messages;
mod plain;
mod props;
mod refusal;
mod rsip_oracle;
mod transport;
