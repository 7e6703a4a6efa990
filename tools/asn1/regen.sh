#!/bin/sh
# Regenerates crates/pinhole-h323-oracle/src/generated/{h225,h245,identifiers}.rs from the ITU ASN.1
# modules in tests/corpus/asn1 (H.225.0 v6 + H.235 compiled together, H.245 v13 alone) with
# rasn-compiler 0.16.0 (pinned in tools/asn1/gen/Cargo.toml; the generator is a standalone cargo
# project so the workspace does not depend on rasn-compiler). Deterministic: running it twice
# gives the same files; CI needs only the committed output.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/crates/pinhole-h323-oracle/src/generated"
: "${CARGO_TARGET_DIR:=$root/target/asn1-gen}"
export CARGO_TARGET_DIR
cargo run --release --quiet --manifest-path "$root/tools/asn1/gen/Cargo.toml" -- \
    "$root/tests/corpus/asn1" "$out"
rustfmt --edition 2024 "$out/h225.rs" "$out/h245.rs" "$out/identifiers.rs"
echo "regenerated $out"
