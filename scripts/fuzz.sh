#!/usr/bin/env bash
# Fuzzes every decoder of outside input with libFuzzer (cargo-fuzz): raw interactions and
# envelopes in JSON, Avro single-object and the Confluent wire format, and the audit bundle
# `insights replay --verify --file` reads. Not part of .ci/run (RESULTS.md says how long it
# ran clean). A crash leaves its input in fuzz/artifacts/TARGET/ and fails the script; add
# it under fuzz/regressions/TARGET/, where cli/tests/fuzz_regressions.rs replays every
# input on each test run.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     # default 60
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
# cargo-fuzz needs nightly flags (sanitizers); the pinned stable toolchain allows them so.
export RUSTC_BOOTSTRAP=1 PATH="$PWD/.tools/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/customerai-insights/target}-fuzz"
if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz: installing cargo-fuzz 0.12.0 into .tools/bin"
  cargo install cargo-fuzz --version 0.12.0 --locked --root .tools
fi
# Seeds: values generated from the Avro schemas in every format, and a valid bundle.
corpus="$PWD/fuzz/corpus"
INSIGHTS_FUZZ_CORPUS="$corpus" CARGO_TARGET_DIR="${CARGO_TARGET_DIR%-fuzz}" \
  cargo test -q --locked -p insights-schemas --test roundtrip_props the_seed_corpus_decodes
INSIGHTS_FUZZ_CORPUS="$corpus" CARGO_TARGET_DIR="${CARGO_TARGET_DIR%-fuzz}" \
  cargo test -q --locked -p insights-event-store --lib bundle::tests
for target in decode_interaction decode_envelope audit_bundle; do
  mkdir -p "$corpus/$target"
  [ -d "fuzz/regressions/$target" ] && cp -n "fuzz/regressions/$target"/* "$corpus/$target/" 2>/dev/null || true
  echo "fuzz: $target for ${seconds} s ($(ls "$corpus/$target" | wc -l) inputs in its corpus)"
  log="fuzz/artifacts/$target.log"
  mkdir -p fuzz/artifacts
  if ! (cd fuzz && cargo fuzz run "$target" "$corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1) > "$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target crashed; the input is in fuzz/artifacts/$target/ (log: $log)" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^Done [0-9]+ runs" "$log" || tail -n 3 "$log"
done
echo "fuzz: every target ran ${seconds} s without a crash"
