#!/usr/bin/env bash
# Runs the pipeline on the embedded default: in-process Kafka-protocol broker, SQLite store
# under data/, the sample interactions produced first; the HTTP API, the dashboard and the
# ops endpoints on 127.0.0.1:9898.
# Keeps running (Ctrl-C drains and stops). Extra arguments go to `insights run`, e.g.
# `scripts/run.sh --until-idle` to exit once the samples are processed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release --locked --bin insights
# libgomp (libtorch's OpenMP) spins while idle unless told not to; the pipeline's other
# threads need those cores.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "${CARGO_TARGET_DIR:-target}/release/insights" run --input samples/interactions.jsonl "$@"
