#!/usr/bin/env bash
# Runs the pipeline on the embedded default: in-process broker, SQLite store under data/,
# sample interactions, HTTP views. Extra arguments go to `insights run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release --locked --bin insights
exec target/release/insights run "$@"
