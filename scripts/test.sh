#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/setup.sh), then runs every test of
# every crate against the real parts (SQLite, the machine's PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo test --workspace --locked "$@"
