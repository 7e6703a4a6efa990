//! Integration tests of `pinhole-h248`.
