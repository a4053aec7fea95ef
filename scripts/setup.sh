#!/usr/bin/env bash
# Installs and starts what CustomerAI Insights needs on this machine. Idempotent: every step
# checks first and skips what is already there, so a rerun takes seconds.
#
#   scripts/setup.sh          what the pipeline and the tests need
#
# Environment:
#   INSIGHTS_TEST_DATABASE_URL   PostgreSQL for the tests (default postgres://postgres@127.0.0.1:5432/test)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

need_cargo() {
  command -v cargo >/dev/null 2>&1 && return
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH" && return
  die "cargo not found: install Rust (https://rustup.rs) and rerun"
}

# The tests need a PostgreSQL on 127.0.0.1:5432 with a database `test` (trust auth). Start
# the machine's cluster if it is installed but down.
ensure_postgres() {
  local url="${INSIGHTS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
      say "starting PostgreSQL"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
      for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL is not reachable on 127.0.0.1:5432 (needed by the tests)"
  fi
  if command -v psql >/dev/null 2>&1 && ! psql "$url" -Atqc 'select 1' >/dev/null 2>&1; then
    say "creating database test"
    psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE test' >/dev/null 2>&1 || true
    psql "$url" -Atqc 'select 1' >/dev/null || die "cannot connect to $url"
  fi
}

need_cargo
ensure_postgres
say "ready"
