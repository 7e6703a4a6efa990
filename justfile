# Pinhole's everyday commands. CI (`.ci/run`) calls `just ci`, which runs the
# same recipes a developer runs locally. `just` with no argument lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Crates that must stay sans-IO: no tokio anywhere in their normal dependency
# tree. Planned crates are checked as soon as they join the workspace.
# pinhole-embed (the embedding example) owns std sockets but must need
# neither tokio nor pinhole-net: that is what it demonstrates.
sansio_crates := "pinhole-core pinhole-testkit pinhole-sdp pinhole-sip pinhole-capture pinhole-mgcp pinhole-h248 pinhole-h323 pinhole-embed"

# Seconds each fuzz target gets in `fuzz-run`.
fuzz_secs := env_var_or_default("FUZZ_SECS", "30")

# List the recipes.
default:
    @"{{just_executable()}}" --justfile "{{justfile()}}" --list --unsorted

# The recipes `ci` runs, in order.
ci_steps := "fmt clippy doc sansio test netns fuzz-build fuzz-run demo"

# Everything CI checks, in CI's order, with the time each step took.
ci:
    #!/usr/bin/env bash
    set -euo pipefail
    summary=()
    for r in {{ci_steps}}; do
      echo "=== just $r"
      start=$SECONDS
      if ! "{{just_executable()}}" --justfile "{{justfile()}}" "$r"; then
        echo "=== just $r FAILED after $((SECONDS - start)) s" >&2
        [ ${#summary[@]} -eq 0 ] || printf '  %s\n' "${summary[@]}" >&2
        exit 1
      fi
      summary+=("$(printf '%-11s %5d s' "$r" $((SECONDS - start)))")
    done
    echo "=== just ci: all steps passed"
    printf '  %s\n' "${summary[@]}"

# Formatting (rustfmt defaults).
fmt:
    cargo fmt --all --check

# Lints on every target, warnings are errors.
clippy:
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Unit, property, corpus-replay, doc and integration tests.
test:
    cargo test --workspace --locked

# API docs; broken links and missing docs fail.
doc:
    RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked

# Assert that the sans-IO crates do not depend on tokio.
sansio:
    #!/usr/bin/env bash
    set -euo pipefail
    members=$(cargo metadata --no-deps --locked --format-version 1 \
      | python3 -c 'import json,sys; print("\n".join(p["name"] for p in json.load(sys.stdin)["packages"]))')
    checked=0
    for c in {{sansio_crates}}; do
      if ! grep -qx "$c" <<<"$members"; then
        echo "sansio: $c is not in the workspace yet, skipped"
        continue
      fi
      tree=$(cargo tree -p "$c" -e normal --locked --prefix none)
      if grep -Eq '^(tokio|mio|async-std|smol)( |$)' <<<"$tree"; then
        echo "sansio: FAIL: $c depends on an async runtime:" >&2
        cargo tree -p "$c" -e normal --locked -i tokio >&2 || true
        exit 1
      fi
      echo "sansio: $c ok (no tokio, mio, async-std or smol)"
      checked=$((checked + 1))
    done
    [ "$checked" -gt 0 ] || { echo "sansio: FAIL: checked no crate" >&2; exit 1; }

# The network-namespace test bed: every flow through real nftables firewalls
# (docs/netns.md). Needs root; skips loudly without it (fails when CI is set).
# Arguments filter scenarios by name; PINHOLE_NETNS_OPEN_FIREWALL=1 runs the
# negative controls with the filter rules removed.
netns *filter:
    cargo build --locked -p pinhole-examples --bins
    PINHOLE_NETNS=1 cargo test --locked -p pinhole --test netns -- {{filter}}

# Build every fuzz target on stable (cargo-fuzz with `-s none`, else a plain build).
fuzz-build:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -f fuzz/Cargo.toml ]; then
      echo "fuzz-build: NOTE: no fuzz/ crate in this tree, nothing to build"
      exit 0
    fi
    # cargo-fuzz has no --locked: check fuzz/Cargo.lock is up to date first.
    cargo fetch --manifest-path fuzz/Cargo.toml --locked
    if cargo fuzz --version >/dev/null 2>&1; then
      cargo fuzz build -s none
    else
      echo "fuzz-build: NOTE: cargo-fuzz is not installed; plain compile check only"
      cargo build --manifest-path fuzz/Cargo.toml --locked --release
    fi

# Bounded fuzz run of every target (FUZZ_SECS each, default 30); needs cargo-fuzz.
fuzz-run:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -f fuzz/Cargo.toml ]; then
      echo "fuzz-run: NOTE: no fuzz/ crate in this tree, nothing to run"
      exit 0
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
      echo "fuzz-run: NOTE: cargo-fuzz is not installed (cargo install cargo-fuzz --locked);"
      echo "fuzz-run: NOTE: no fuzzing done, only the corpus-replay tests of 'just test'"
      exit 0
    fi
    for t in $(cargo fuzz list); do
      # New inputs go to a scratch corpus under fuzz/target (ignored by git);
      # the checked-in seed corpus is only read.
      scratch="fuzz/target/corpus-run/$t"
      mkdir -p "$scratch"
      seeds=()
      [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
      echo "fuzz-run: $t for {{fuzz_secs}} s"
      cargo fuzz run -s none "$t" "$scratch" "${seeds[@]}" -- \
        -max_total_time={{fuzz_secs}} -print_final_stats=1
    done

# The hostile-load run in its full form (tests/tests/hostile.rs): floods the
# real daemons on loopback as an attacker would, then sets up a call, and
# prints what got through. The short form runs in `just test`.
hostile:
    cargo test --release --locked -p pinhole-tests --test hostile -- --ignored --nocapture

# Run the demo: the Fig. 6-8 message ladder through simulated firewalls,
# the SIP ladders of Figs. 11 (APS) and 12 (smart terminals, no APS), the
# MGCP ladders of Figs. 9 and 10, the H.248 ladders of Figs. 13 (APS) and
# 14 (the ALG beside each gateway, no APS), the H.323 ladders of Figs. 15
# (APS) and 16 (smart terminals, no APS), and a B2BUA embedding the engine.
demo:
    cargo run --release --locked -p pinhole -- demo
    cargo run --release --locked -p pinhole-examples --bin demo
    cargo run --release --locked -p pinhole-examples --bin sip_fig11
    cargo run --release --locked -p pinhole-examples --bin sip_fig12
    cargo run --release --locked -p pinhole-examples --bin mgcp_fig9
    cargo run --release --locked -p pinhole-examples --bin mgcp_fig10
    cargo run --release --locked -p pinhole-examples --bin h248_fig13
    cargo run --release --locked -p pinhole-examples --bin h248_fig14
    cargo run --release --locked -p pinhole-examples --bin h323_fig15
    cargo run --release --locked -p pinhole-examples --bin h323_fig16
    cargo run --release --locked -p pinhole-embed --bin embed_b2bua

# Criterion benchmarks (slow; not part of `ci`).
bench:
    cargo bench --workspace --locked

# SIP benchmarks: ALG rewrite vs rsip + sdp-rs, then sipp calls/s through Fig. 11 (~3 min; not in `ci`).
bench-sip:
    cargo bench -p pinhole-sip --locked --bench rewrite
    cargo test --release --locked -p pinhole-tests --test sipp -- --ignored --nocapture load_

# Check the workspace on the MSRV (needs that toolchain installed; not part of `ci`).
msrv:
    #!/usr/bin/env bash
    set -euo pipefail
    v=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
    cargo "+$v" check --workspace --all-targets --locked
