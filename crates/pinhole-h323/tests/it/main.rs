//! Integration tests of `pinhole-h323`: Q.931 over TPKT against the real
//! H.323 messages of the shared corpus, properties, and the fuzz seed
//! corpus. One test binary.

mod build;
mod corpus;
mod erlang;
mod fig15;
mod fig16;
mod fuzz_corpus;
mod mpr;
mod props;
mod rasn;
mod walk;
