#!/usr/bin/env bash
# End-to-end throughput and latency of the whole pipeline (benches/RESULTS.md, "End to
# end"). Production mode: Tansu on loopback, the machine's PostgreSQL, `insights topics
# create`, one `insights run --processor NAME` process per processor plus a `--views-only`
# process, interactions produced by a third-party client (Python confluent-kafka,
# idempotent). Embedded mode: `insights run --until-idle --input FILE` (in-process broker,
# SQLite). Reports interactions/s from the first to the last stored event, produce →
# `ResponseDrafted` stored latency (p50/p99), and how long the views take to reach the
# store's head once the input stops.
#
#   benches/e2e.sh [--count N] [--backend lexicon|transformer] [--mode production|embedded|both]
#                  [--rate R]      # produce at R/s (latency at a given load); default: all at once
#                  [--bin PATH]    # measure this binary (e.g. an older commit's) instead of building
#
# The OpenTelemetry variables apply (OTEL_EXPORTER_OTLP_ENDPOINT=… measures with traces on).
set -euo pipefail
cd "$(dirname "$0")/.."
count=30000 backend=lexicon mode=both rate=0 bin=
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --bin) bin=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    *) echo "e2e: unknown argument $1" >&2; exit 2 ;;
  esac
done
scripts/setup.sh >/dev/null
if [ -z "$bin" ]; then
  cargo build --release --locked --bin insights
  bin="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/insights"
fi
export OMP_WAIT_POLICY=PASSIVE PGHOST=127.0.0.1 PGUSER=postgres
work=$(mktemp -d /tmp/insights-e2e.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
python3 samples/generate.py --count "$count" --seed 7 > "$work/input.jsonl"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_us() { date +%s%6N; }
# CPU time (user + system, clock ticks) of a process; of PostgreSQL's processes together
# (backends that exit meanwhile are not counted: the pipeline's connections are pooled).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() { local s=0 p; for p in $(pgrep -x postgres); do s=$(( s + $(cpu_ticks "$p") )); done; echo "$s"; }

# The polls go through one psql session (`db_open`, `q`): a psql process and a server
# backend per poll, twice a second, took about 5% of the machine's CPU from the pipeline
# being measured (perf, 10,000 interactions; psql alone 4% of all samples).
db_open() { coproc DB { psql -d "$1" -At 2>&1; }; }
db_close() { echo '\q' >&"${DB[1]}"; wait "$DB_PID" 2>/dev/null || true; }
# The first line of the answer to one query (an error's first line on error).
q() {
  printf '%s;\n\\echo __end__\n' "$1" >&"${DB[1]}"
  local line first= n=0
  while read -t 30 -r line <&"${DB[0]}"; do
    [ "$line" = __end__ ] && { echo "$first"; return 0; }
    [ $n -eq 0 ] && first=$line
    n=$((n + 1))
  done
  echo "e2e: no answer from psql to: $1" >&2
  return 1
}

# Seconds (one decimal) until the command prints a line equal to $2; fails after $3 s.
wait_for() { # CMD EXPECTED TIMEOUT WHAT
  local deadline=$(( $(date +%s) + $3 ))
  until [ "$(eval "$1" 2>/dev/null)" = "$2" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "e2e: timed out waiting for $4" >&2; return 1; fi
    sleep 0.2
  done
}

production() {
  local port db url brokers
  port=$(free_port)
  .tools/bin/tansu broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ \
    > "$work/tansu.log" 2>&1 &
  pids+=($!); names=(tansu)
  brokers="127.0.0.1:$port"
  db=insights_e2e
  psql -d postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  url="postgres://postgres@127.0.0.1:5432/$db"
  export INSIGHTS_BROKERS=$brokers INSIGHTS_STORE_URL=$url
  export INSIGHTS_PRIVACY_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export INSIGHTS_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  for _ in $(seq 1 50); do "$bin" topics create >/dev/null 2>&1 && break; sleep 0.2; done
  for p in privacy sentiment response fairness; do
    "$bin" run --processor "$p" --sentiment-backend "$backend" --listen "127.0.0.1:$(free_port)" \
      > "$work/$p.log" 2>&1 &
    pids+=($!); names+=("$p")
  done
  "$bin" run --views-only --listen "127.0.0.1:$(free_port)" > "$work/views.log" 2>&1 &
  pids+=($!); names+=(views)
  # Every worker has joined its group once it logs nothing new for a moment; a warm-up
  # message through the whole chain says so for sure.
  echo '{"interaction_id":"warm-up","conversation_id":"warm-up","customer_id":"w","channel":"chat","text":"hello there, thanks","sent_at":"2026-01-01T00:00:00Z"}' > "$work/warm.jsonl"
  .tools/venv/bin/python benches/e2e_produce.py --brokers "$brokers" --file "$work/warm.jsonl" --times /dev/null >/dev/null
  db_open "$db"
  wait_for "q \"SELECT count(*) FROM events WHERE event_type='ResponseDrafted'\"" 1 180 "the warm-up interaction to be drafted"
  local start_head
  start_head=$(q "SELECT position FROM store_head")
  local cpu_before=() pg_before i
  for i in "${!pids[@]}"; do cpu_before+=("$(cpu_ticks "${pids[$i]}")"); done
  pg_before=$(pg_ticks)
  .tools/venv/bin/python benches/e2e_produce.py --brokers "$brokers" --file "$work/input.jsonl" \
    --times "$work/times.tsv" --rate "$rate"
  local produced_at drafted
  produced_at=$(now_us)
  # Done when every scored interaction has its draft (some inputs are dead-lettered).
  local deadline=$(( $(date +%s) + 1800 ))
  # The counts are read once the head stands still for a poll (a cheap read until then).
  local head last=-1
  while :; do
    head=$(q "SELECT position FROM store_head")
    if [ "$head" != "$last" ]; then
      last=$head
      [ "$(date +%s)" -ge "$deadline" ] && { echo "e2e: timed out; the store's head at $head" >&2; return 1; }
      sleep 0.5
      continue
    fi
    drafted=$(q "SELECT (SELECT count(*) FROM events WHERE event_type='ResponseDrafted') - 1, (SELECT count(*) FROM events WHERE event_type='SentimentScored') - 1, (SELECT count(*) FROM events WHERE event_type IN ('InteractionScrubbed','DeadLettered')) - 1")
    IFS='|' read -r d s x <<< "$drafted"
    [ "$x" -ge "$count" ] && [ "$d" -ge "$s" ] && [ "$s" -gt 0 ] && break
    [ "$(date +%s)" -ge "$deadline" ] && { echo "e2e: timed out; drafted/scored/scrubbed: $drafted" >&2; return 1; }
    sleep 0.5
  done
  # The store stops growing when fairness has reported on what it can.
  last=-1
  while head=$(q "SELECT position FROM store_head"); [ "$head" != "$last" ]; do last=$head; sleep 2; done
  local stopped
  stopped=$(now_us)
  wait_for "q \"SELECT bool_and(position >= $head) FROM projection_checkpoints\"" t 600 "the views to reach the head"
  db_close
  local caught_up
  caught_up=$(now_us)
  local tick cpu="CPU seconds from the first produce to the views at head:"
  tick=$(getconf CLK_TCK)
  for i in "${!pids[@]}"; do
    cpu+=" ${names[$i]} $(awk -v a="$(cpu_ticks "${pids[$i]}")" -v b="${cpu_before[$i]}" -v t="$tick" 'BEGIN {printf "%.1f", (a - b) / t}')"
  done
  cpu+=" postgres $(awk -v a="$(pg_ticks)" -v b="$pg_before" -v t="$tick" 'BEGIN {printf "%.1f", (a - b) / t}')"
  psql -d $db -Atc "SELECT correlation_id, recorded_at FROM events WHERE event_type='ResponseDrafted'" > "$work/drafted.tsv"
  psql -d $db -Atc "SELECT min(recorded_at), max(recorded_at) FROM events WHERE position > $start_head" > "$work/span.txt"
  python3 - "$work" "$count" "$backend" "$rate" "$(( (caught_up - stopped) / 1000 ))" "$(( (stopped - produced_at) / 1000 ))" <<'PY'
import sys
work, count, backend, rate, views_ms, drain_ms = sys.argv[1:]
times = dict(l.rstrip("\n").split("\t") for l in open(f"{work}/times.tsv"))
pairs = [(int(times[c]), int(r) - int(times[c])) for c, r in (l.rstrip("\n").split("|") for l in open(f"{work}/drafted.tsv")) if c in times]
lat = sorted(l for _, l in pairs)
# Past the start: what was produced 2 s or more after the first message (the first
# seconds carry the start-up: every customer new to the vault, caches empty).
first = min(t for t, _ in pairs)
steady = sorted(l for t, l in pairs if t - first >= 2_000_000) or lat
lo, hi = (int(x) for x in open(f"{work}/span.txt").read().strip().split("|"))
q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] / 1000
print(f"production | {backend} | {count} | rate {rate or 'max'} | {int(count) / ((hi - lo) / 1e6):.0f} interactions/s "
      f"| p50 {q(lat, 0.5):.0f} ms | p99 {q(lat, 0.99):.0f} ms | after the first 2 s: p50 {q(steady, 0.5):.0f} ms p99 {q(steady, 0.99):.0f} ms | drafts {len(lat)} "
      f"| views at head {int(views_ms) / 1000:.1f} s after the store stopped growing (stops {int(drain_ms) / 1000:.1f} s after the last produce)")
PY
  echo "$cpu"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  psql -d postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null
  unset INSIGHTS_BROKERS INSIGHTS_STORE_URL
}

embedded() {
  local dir="$work/embedded" t0 t1
  mkdir -p "$dir"
  cp topology.toml "$dir/"
  t0=$(now_us)
  (cd "$dir" && "$bin" run --until-idle --input "$work/input.jsonl" --sentiment-backend "$backend" --listen off) > "$work/embedded.log" 2>&1
  t1=$(now_us)
  sqlite3_span=$(python3 - "$dir/data/insights.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
lo, hi = c.execute("SELECT min(recorded_at), max(recorded_at) FROM events").fetchone()
views = c.execute("SELECT min(position) FROM projection_checkpoints").fetchone()[0]
head = c.execute("SELECT max(position) FROM events").fetchone()[0]
print(f"{(hi - lo) / 1e6:.2f} {views} {head}")
PY
)
  read -r span views head <<< "$sqlite3_span"
  echo "embedded | $backend | $count | $(python3 -c "print(f'{$count / $span:.0f}')") interactions/s from first to last stored event | whole command $(( (t1 - t0) / 1000 )) ms (start-up, produce, drain, views settled: checkpoint $views of head $head)"
}

echo "mode | backend | interactions | load | throughput | latency p50 | p99 | steady p50/p99 | drafts | views"
case $mode in
  production) production ;;
  embedded) embedded ;;
  both) production; embedded ;;
  *) echo "e2e: --mode production|embedded|both" >&2; exit 2 ;;
esac
