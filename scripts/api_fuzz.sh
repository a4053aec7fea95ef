#!/usr/bin/env bash
# Schema-driven fuzzing of the HTTP API (schemathesis, from PyPI, in .tools/schemathesis-venv)
# against the /openapi.json of a running pipeline: without a token, then with a token of each
# role (reviewer, analyst, auditor, admin). Every check schemathesis has: no 5xx, only the
# statuses and content types the document declares (errors are JSON bodies), responses
# matching their schemas, bad input rejected, auth not ignored.
#
#   scripts/api_fuzz.sh [--bin PATH] [--max-examples N] [--max-time SECONDS_PER_ROLE] [--seed N]
#
# It starts the embedded pipeline on 300 sample interactions in a temporary directory (API
# rate limit raised so the fuzzer is not answered 429) and stops it afterwards.
# `/v1/events/stream` is left out: a server-sent event stream never ends, so every request
# to it would time out; cli/tests/embedded_pipeline.rs tests it. The one check left out,
# positive_data_acceptance (every schema-valid request answered 2xx), cannot hold for what
# depends on the store's state: `min_position` beyond the store's head names no event and
# is answered 400, and OpenAPI cannot say "at most the head". Every bound a parameter has
# on its own is in the document and enforced (negative_data_rejection checks that).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="" max_examples=30 max_time=120 seed=1
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --max-examples) max_examples=$2; shift 2 ;;
    --max-time) max_time=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) echo "api_fuzz: unknown argument $1" >&2; exit 2 ;;
  esac
done
st="$root/.tools/schemathesis-venv/bin/st"
[ -x "$st" ] || { echo "api_fuzz: schemathesis is not installed: run scripts/setup.sh" >&2; exit 1; }
if [ -z "$bin" ]; then
  cargo build --release --locked --bin insights >&2
  bin="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/insights"
fi
work=$(mktemp -d /tmp/insights-api-fuzz.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp topology.toml "$work/"
head -n 300 samples/interactions.jsonl > "$work/input.jsonl"
(cd "$work" && exec env -u INSIGHTS_BROKERS -u INSIGHTS_STORE_URL -u INSIGHTS_JWT_SECRET \
  "$bin" run --input input.jsonl --sentiment-backend lexicon --listen "127.0.0.1:$port" \
  --api-rate-limit 100000) > "$work/run.log" 2>&1 &
pid=$!
deadline=$(( $(date +%s) + 120 ))
until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/run.log" >&2; echo "api_fuzz: the pipeline exited" >&2; exit 1; }
  [ "$(date +%s)" -lt "$deadline" ] || { echo "api_fuzz: the pipeline was not ready in 120 s" >&2; exit 1; }
  sleep 0.5
done

failed=0
for role in none reviewer analyst auditor admin; do
  auth=()
  if [ "$role" != none ]; then
    token=$(cd "$work" && env -u INSIGHTS_JWT_SECRET "$bin" token issue --subject "fuzz-$role" --role "$role")
    auth=(-H "Authorization: Bearer $token")
  fi
  echo "api_fuzz: role $role"
  # From the temporary directory: schemathesis keeps its cache (.schemathesis/) where it runs.
  if ! (cd "$work" && "$st" run "http://127.0.0.1:$port/openapi.json" "${auth[@]}" \
      --checks all --exclude-checks positive_data_acceptance --exclude-path /v1/events/stream \
      --max-examples "$max_examples" --max-time "$max_time" --seed "$seed" \
      --request-timeout 10 --no-color --warnings off) > "$work/st-$role.log" 2>&1; then
    failed=1
    cat "$work/st-$role.log"
  else
    tail -n 4 "$work/st-$role.log"
  fi
done
kill -0 "$pid" 2>/dev/null || { echo "api_fuzz: the pipeline died under fuzzing" >&2; cat "$work/run.log" >&2; exit 1; }
[ "$failed" = 0 ] || { echo "api_fuzz: failures above" >&2; exit 1; }
echo "api_fuzz: clean for every role ($max_examples examples per operation, seed $seed)"
