//! Integration tests of `pinhole-core`: the engines and the wire codec against oracles, properties and the fuzz corpus. One test binary with a module
//! per suite: the crate and its dependencies link once.

mod amplification;
mod client_props;
mod fuzz_corpus;
mod mpr_props;
mod wire_oracle;
