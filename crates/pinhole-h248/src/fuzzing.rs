//! Body of the `h248_parse` fuzz target (filled in with the parser).

/// Parses `data`.
pub fn h248_parse(data: &[u8]) {
    let _ = crate::parse(data);
}
