#!/usr/bin/env bash
# Fault injection in production mode on this machine (benches/RESULTS.md, "Chaos"): the
# local cluster (scripts/cluster.sh: Tansu, PostgreSQL, one process per processor, the
# views/API process) drafting with a real llama.cpp server, N sample interactions produced
# at a steady rate, and while they flow: SIGKILL of each process in turn (then started
# again), PostgreSQL stopped and started, the LLM server stalled (SIGSTOP) and resumed.
# Then, once the pipeline has drained: events counted by type, nothing lost (every input
# scrubbed or dead-lettered, every scrubbed one scored, every scored one drafted, every
# draft approved or sent to review), nothing duplicated (one event of each type per
# interaction), and the hash chain verified. Prints a markdown table.
#
#   benches/chaos.sh [--count N] [--rate R]      # default 6000 at 50/s
#
# Not part of .ci/run. It stops and starts the machine's PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
count=6000 rate=50
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    *) echo "chaos: unknown argument $1" >&2; exit 2 ;;
  esac
done
scripts/setup.sh >/dev/null
cargo build --release --locked --bin insights >&2
bin="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/insights"
export PGHOST=127.0.0.1 PGUSER=postgres OMP_WAIT_POLICY=PASSIVE
work=$(mktemp -d /tmp/insights-chaos.XXXXXX)
export INSIGHTS_CLUSTER_DIR="$work/cluster"
db=insights_chaos
pg_version=$(ls /etc/postgresql | sort -V | tail -n1)
llm_pid=""
producer_pid=""
cleanup() {
  [ -n "$llm_pid" ] && { kill -CONT "$llm_pid" 2>/dev/null; kill "$llm_pid" 2>/dev/null; } || true
  [ -n "$producer_pid" ] && kill "$producer_pid" 2>/dev/null || true
  pg_isready -q || pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start || true
  scripts/cluster.sh down >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  echo "chaos: logs kept in $work/cluster/logs" >&2
}
trap cleanup EXIT
trap "exit 130" INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
q() { psql -d "$db" -Atc "$1"; }
t0=$(date +%s)
since() { echo $(( $(date +%s) - t0 )); }
rows=()

python3 samples/generate.py --count "$count" --seed 11 > "$work/input.jsonl"
# The small LLM drafts about one reply a second on this machine's two cores: the chaos run
# lets it draft what it can take (120 a minute, no waiting for a rate-limit permit or a
# free slot, 4 s a call, no retries: a batch of drafts takes as long as its slowest) and
# the other backends the rest, so that the run is about faults, not about the model's
# speed.
sed -e 's/^requests_per_minute = .*/requests_per_minute = 120/' -e 's/^max_queue_ms = .*/max_queue_ms = 0/' \
  -e 's/^timeout_ms = .*/timeout_ms = 4000/' -e 's/^max_retries = .*/max_retries = 0/' \
  topology.toml > "$work/topology.toml"
grep -q '^max_queue_ms = 0' "$work/topology.toml" || { echo "chaos: cannot set the LLM's rate limit" >&2; exit 1; }
export INSIGHTS_TOPOLOGY="$work/topology.toml"
psql -d postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
llm_port=$(free_port)
.tools/llm-venv/bin/python scripts/llm_server.py --port "$llm_port" > "$work/llm.log" 2>&1 &
llm_pid=$!
for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$llm_port/health" >/dev/null && break; sleep 0.5; done
curl -fs "http://127.0.0.1:$llm_port/health" >/dev/null || { echo "chaos: the LLM server did not start" >&2; exit 1; }
scripts/cluster.sh up --bin "$bin" --store "postgres://postgres@127.0.0.1:5432/$db" \
  --kafka-port "$(free_port)" --api-port "$(free_port)" --llm-url "http://127.0.0.1:$llm_port/v1" >&2
# shellcheck disable=SC1091
source "$INSIGHTS_CLUSTER_DIR/cluster.env"

t0=$(date +%s)
"$bin" produce --file "$work/input.jsonl" --rate "$rate" > "$work/produce.log" 2>&1 &
producer_pid=$!

# Waits until every process is alive and ready again; echoes the seconds it took.
healthy_after() {
  local start deadline
  start=$(date +%s)
  deadline=$(( start + 180 ))
  until scripts/cluster.sh status >/dev/null 2>&1 \
      && ! scripts/cluster.sh status 2>/dev/null | awk '($4 == "yes" || $4 == "no") && $1 != "tansu" && $5 != "yes" {bad=1} END {exit !bad}'; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "chaos: the cluster did not recover in 180 s" >&2; scripts/cluster.sh status >&2; exit 1; }
    sleep 0.5
  done
  echo $(( $(date +%s) - start ))
}

kill_and_restart() { # PROCESS
  sleep 4
  local at head_before
  at=$(since)
  head_before=$(q "SELECT position FROM store_head")
  scripts/cluster.sh stop "$1" --kill >/dev/null
  sleep 2
  scripts/cluster.sh start "$1" >/dev/null
  rows+=("| SIGKILL $1, started again 2 s later | ${at} s | store at $head_before | ready again after $(healthy_after) s |")
}

for p in privacy-1 sentiment-1 response-1 fairness-1 api; do kill_and_restart "$p"; done

sleep 4
at=$(since)
pg_ctlcluster --skip-systemctl-redirect "$pg_version" main stop -m fast
sleep 15
pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
for _ in $(seq 1 60); do pg_isready -q && break; sleep 0.5; done
rows+=("| PostgreSQL stopped (fast shutdown) for 15 s | ${at} s | every process retrying | ready again after $(healthy_after) s |")

sleep 4
at=$(since)
kill -STOP "$llm_pid"
sleep 30
kill -CONT "$llm_pid"
rows+=("| LLM server stalled (SIGSTOP) for 30 s | ${at} s | drafts fall back (timeouts, breaker) | ready again after $(healthy_after) s |")

wait "$producer_pid" || { echo "chaos: producing failed" >&2; cat "$work/produce.log" >&2; exit 1; }
producer_pid=""
produced_at=$(since)

# Drained: every input scrubbed or dead-lettered, every scored one drafted, the store still.
deadline=$(( $(date +%s) + 1800 ))
while :; do
  IFS='|' read -r x s d <<< "$(q "SELECT
      (SELECT count(*) FROM events WHERE event_type = 'InteractionScrubbed'
         OR (event_type = 'DeadLettered' AND correlation_id LIKE 'kafka:interactions.raw/%')),
      (SELECT count(*) FROM events WHERE event_type = 'SentimentScored'),
      (SELECT count(*) FROM events WHERE event_type = 'ResponseDrafted')")"
  [ "$x" -ge "$count" ] && [ "$d" -ge "$s" ] && [ "$s" -gt 0 ] && break
  [ "$(date +%s)" -lt "$deadline" ] || { echo "chaos: not drained in 30 min (inputs handled $x, scored $s, drafted $d)" >&2; exit 1; }
  sleep 2
done
last=-1
while head=$(q "SELECT position FROM store_head"); [ "$head" != "$last" ]; do last=$head; sleep 5; done
drained_at=$(since)

counts=$(q "SELECT event_type, count(*), count(DISTINCT correlation_id) FROM events GROUP BY 1 ORDER BY 1")
scrubbed=$(q "SELECT count(*) FROM events WHERE event_type = 'InteractionScrubbed'")
dead_raw=$(q "SELECT count(*) FROM events WHERE event_type = 'DeadLettered' AND correlation_id LIKE 'kafka:interactions.raw/%'")
dead_other=$(q "SELECT count(*) FROM events WHERE event_type = 'DeadLettered' AND correlation_id NOT LIKE 'kafka:interactions.raw/%'")
scored=$(q "SELECT count(*) FROM events WHERE event_type = 'SentimentScored'")
drafted=$(q "SELECT count(*) FROM events WHERE event_type = 'ResponseDrafted'")
decided=$(q "SELECT count(*) FROM events WHERE event_type IN ('ResponseApproved', 'ReviewRequested')")
duplicates=$(q "SELECT coalesce(sum(n - d), 0) FROM (SELECT count(*) n, count(DISTINCT correlation_id) d FROM events
  WHERE event_type IN ('InteractionScrubbed', 'SentimentScored', 'ResponseDrafted') GROUP BY event_type) t")
lost=$(( count - scrubbed - dead_raw ))
verify=$("$bin" store verify 2>&1 | tail -n 1) || verify="FAILED: $verify"

echo
echo "chaos: $count interactions at $rate/s, produced by $produced_at s, drained by $drained_at s"
echo
echo "| fault | at | state | recovery |"
echo "|---|---:|---|---|"
printf '%s\n' "${rows[@]}"
echo "| broker restart | — | not run | the wheel's Tansu 0.6.0 stores only in memory (its PostgreSQL and file engines are not built in; S3 needs a server): a restart empties every topic, which no consumer can survive |"
echo
echo "| check | value |"
echo "|---|---:|"
echo "| inputs | $count |"
echo "| scrubbed | $scrubbed |"
echo "| dead-lettered at privacy (malformed samples) | $dead_raw |"
echo "| dead-lettered downstream | $dead_other |"
echo "| **lost** (inputs − scrubbed − dead-lettered) | **$lost** |"
echo "| scored / drafted / approved or sent to review | $scored / $drafted / $decided |"
echo "| **duplicated** (events of one type for one interaction, beyond the first) | **$duplicates** |"
echo "| chain | $verify |"
echo
echo "Events by type (count, distinct interactions):"
echo "$counts" | sed 's/^/    /'
[ "$lost" -eq 0 ] && [ "$duplicates" -eq 0 ] && [ "$scored" -eq "$scrubbed" ] && [ "$drafted" -eq "$scored" ] \
  && [ "$decided" -eq "$drafted" ] && [ "$dead_other" -eq 0 ] && [[ "$verify" != FAILED* ]] \
  || { echo "chaos: FAILED" >&2; exit 1; }
echo "chaos: 0 lost, 0 duplicated, chain intact"
