#!/usr/bin/env bash
# The production topology on one machine, without Docker: Tansu (the pinned wheel's
# broker), PostgreSQL (the machine's, or --store), the topics, each processor as its own
# process (replicas configurable), and the views/API process.
#
#   scripts/cluster.sh up [--store URL] [--replicas NAME=N[,NAME=N...]] [--backend lexicon|transformer]
#                         [--llm-url URL] [--kafka-port P] [--api-port P] [--bin PATH]
#   scripts/cluster.sh status      # each process: pid, port, alive, ready; the store's head
#   scripts/cluster.sh env         # export lines for the insights CLI against this cluster
#   scripts/cluster.sh stop NAME [--kill]   # one process (privacy-1, api, tansu, ...): SIGTERM or SIGKILL
#   scripts/cluster.sh start NAME  # start a stopped process again, as `up` did
#   scripts/cluster.sh down        # SIGTERM every process (SIGKILL after 20 s), broker last
#
# State lives under data/cluster/ (INSIGHTS_CLUSTER_DIR): secrets generated once and kept
# (privacy.key, jwt.secret, mode 0600: the same key keeps pseudonyms stable across
# restarts), one log per process under logs/, pids under run/, cluster.env, and
# prometheus.yml with prometheus-targets.json (every process's /metrics and the alert
# rules of deploy/prometheus: `prometheus --config.file=data/cluster/prometheus.yml`).
# Tansu from the wheel stores messages in memory (this build has no PostgreSQL or file
# storage): `down` loses what the topics held, never what the store holds.
#
# Traces: set OTEL_EXPORTER_OTLP_ENDPOINT (and any other OTEL_* variable) for `up`; every
# process exports its spans there (service.name insights-PROCESSOR, insights-views).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${INSIGHTS_CLUSTER_DIR:-data/cluster}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}

die() { echo "cluster: $*" >&2; exit 1; }

processors() { # the topology's processors, in order
  awk -F'[].[]' '/^\[processors\.[a-z_]+\]$/ {print $3}' "${INSIGHTS_TOPOLOGY:-topology.toml}"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Waits until the command succeeds; fails naming what it waited for.
wait_for() { # TIMEOUT_S WHAT CMD...
  local limit=$1 what=$2
  local deadline=$(( $(date +%s) + limit ))
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${limit} s waiting for $what"
    sleep 0.3
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

secret() { # FILE: 32 random bytes as hex, created once
  [ -s "$1" ] || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$1")
}

start() { # NAME PORT CMD...: starts a process in the background, logging to logs/NAME.log
  local name=$1 port=$2
  shift 2
  alive "$dir/run/$name.pid" && die "$name is already running (pid $(cat "$dir/run/$name.pid")); run down first"
  printf '%q ' "$@" > "$dir/run/$name.cmd"
  "$@" >> "$dir/logs/$name.log" 2>&1 &
  echo $! > "$dir/run/$name.pid"
  echo "$port" > "$dir/run/$name.port"
}

# Starts a stopped (or killed) process again, as `up` started it.
restart() { # NAME
  local name=${1:?which process (see status)}
  [ -f "$dir/run/$name.cmd" ] || die "no process $name (see status)"
  alive "$dir/run/$name.pid" && die "$name is running (pid $(cat "$dir/run/$name.pid"))"
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
  # exec: the background job is the process itself, so its pid is the one recorded.
  (eval "exec $(cat "$dir/run/$name.cmd")") >> "$dir/logs/$name.log" 2>&1 &
  echo $! > "$dir/run/$name.pid"
  echo "cluster: $name started again (pid $!)"
}

# Stops one process: SIGTERM (drains its batch and commits), or SIGKILL with --kill.
stop() { # NAME [--kill]
  local name=${1:?which process (see status)} signal=TERM
  [ "${2:-}" = --kill ] && signal=KILL
  alive "$dir/run/$name.pid" || die "$name is not running"
  kill -"$signal" "$(cat "$dir/run/$name.pid")"
  local deadline=$(( $(date +%s) + 30 ))
  while alive "$dir/run/$name.pid"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$name did not stop in 30 s after SIG$signal"
    sleep 0.1
  done
  echo "cluster: $name stopped (SIG$signal)"
}

up() {
  local store="" replicas="" backend=lexicon llm_url="" kafka_port=9092 api_port=8080 bin=""
  while [ $# -gt 0 ]; do
    case $1 in
      --store) store=$2; shift 2 ;;
      --replicas) replicas=$2; shift 2 ;;
      --backend) backend=$2; shift 2 ;;
      --llm-url) llm_url=$2; shift 2 ;;
      --kafka-port) kafka_port=$2; shift 2 ;;
      --api-port) api_port=$2; shift 2 ;;
      --bin) bin=$2; shift 2 ;;
      *) die "unknown argument $1 (see the top of scripts/cluster.sh)" ;;
    esac
  done
  for f in "$dir"/run/*.pid; do
    [ -e "$f" ] && alive "$f" && die "already up ($(basename "$f" .pid) is running); run down first"
  done
  rm -rf "$dir/run"
  mkdir -p "$dir/run" "$dir/logs"
  scripts/setup.sh >/dev/null
  if [ -z "$bin" ]; then
    cargo build --release --locked --bin insights >&2
    bin="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/insights"
  fi
  [ -x "$bin" ] || die "no insights binary at $bin"
  echo "$bin" > "$dir/run/bin"
  if [ -z "$store" ]; then
    store="postgres://$PGUSER@$PGHOST:5432/insights"
    command -v psql >/dev/null || die "psql not found: pass --store postgres://... of a running PostgreSQL"
    psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname='insights'" | grep -q 1 \
      || psql -d postgres -qc "CREATE DATABASE insights" \
      || die "cannot create database insights on $PGHOST (pass --store)"
  fi
  secret "$dir/privacy.key"
  secret "$dir/jwt.secret"
  local brokers="127.0.0.1:$kafka_port"
  cat > "$dir/cluster.env" <<EOF
export INSIGHTS_BROKERS=$brokers
export INSIGHTS_STORE_URL=$store
export INSIGHTS_JWT_SECRET=\$(cat $dir/jwt.secret)
export INSIGHTS_PRIVACY_KEY=\$(cat $dir/privacy.key)
EOF
  # Traces: the OpenTelemetry variables given to `up` (OTEL_EXPORTER_OTLP_ENDPOINT, ...)
  # reach every process, and a process started again later.
  local var
  for var in $(compgen -e | grep '^OTEL_' || true); do
    printf 'export %s=%q\n' "$var" "${!var}" >> "$dir/cluster.env"
  done
  export INSIGHTS_BROKERS=$brokers INSIGHTS_STORE_URL=$store
  local common=(--privacy-key-file "$dir/privacy.key" --jwt-secret-file "$dir/jwt.secret")

  start tansu "$kafka_port" .tools/bin/tansu broker --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine memory://tansu/
  wait_for 60 "the broker on $brokers to create the topics" "$bin" topics create

  local name n i port targets=()
  for name in $(processors); do
    n=$(tr ',' '\n' <<< "$replicas" | awk -F= -v p="$name" '$1 == p {print $2}')
    for i in $(seq 1 "${n:-1}"); do
      port=$(free_port)
      local args=(run --processor "$name" --listen "127.0.0.1:$port" "${common[@]}")
      [ "$name" = sentiment ] && args+=(--sentiment-backend "$backend")
      [ -n "$llm_url" ] && [ "$name" = response ] && args+=(--llm-url "$llm_url")
      start "$name-$i" "$port" "$bin" "${args[@]}"
      targets+=("\"127.0.0.1:$port\"")
    done
  done
  start api "$api_port" "$bin" run --views-only --listen "127.0.0.1:$api_port" "${common[@]}"
  targets+=("\"127.0.0.1:$api_port\"")
  printf '[{"targets": [%s], "labels": {"job": "insights"}}]\n' "$(IFS=,; echo "${targets[*]}")" \
    > "$dir/prometheus-targets.json"
  cat > "$dir/prometheus.yml" <<EOF
# Written by scripts/cluster.sh: every process of the local cluster, with the alert rules.
global:
  scrape_interval: 5s
  evaluation_interval: 15s
rule_files:
  - $root/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: insights
    file_sd_configs:
      - files: [$dir/prometheus-targets.json]
EOF

  local pidfile
  for pidfile in "$dir"/run/*.pid; do
    name=$(basename "$pidfile" .pid)
    [ "$name" = tansu ] && continue
    port=$(cat "$dir/run/$name.port")
    wait_for 300 "$name to be ready on 127.0.0.1:$port/readyz (log: $dir/logs/$name.log)" \
      sh -c "kill -0 $(cat "$pidfile") && curl -fsS http://127.0.0.1:$port/readyz"
  done
  echo "cluster: up. Broker $brokers, store $store, API http://127.0.0.1:$api_port"
  echo "cluster: produce with: source $dir/cluster.env && $bin produce --file samples/interactions.jsonl"
  status
}

status() {
  [ -d "$dir/run" ] || { echo "cluster: not up"; return 0; }
  printf '%-14s %-8s %-6s %-6s %s\n' PROCESS PID PORT ALIVE READY
  local pidfile name port ok ready down=0
  for pidfile in "$dir"/run/*.pid; do
    [ -e "$pidfile" ] || continue
    name=$(basename "$pidfile" .pid)
    port=$(cat "$dir/run/$name.port" 2>/dev/null || echo -)
    if alive "$pidfile"; then ok=yes; else ok=no; down=$((down + 1)); fi
    ready=-
    if [ "$ok" = yes ] && [ "$name" != tansu ]; then
      ready=$(curl -fsS -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" 2>/dev/null || true)
      [ "$ready" = 200 ] && ready=yes || ready="no ($ready)"
    fi
    printf '%-14s %-8s %-6s %-6s %s\n' "$name" "$(cat "$pidfile")" "$port" "$ok" "$ready"
  done
  if [ -f "$dir/cluster.env" ]; then
    # shellcheck disable=SC1091
    (source "$dir/cluster.env" && "$(cat "$dir/run/bin")" store head 2>/dev/null \
      | sed 's/^/store: /') || true
  fi
  [ "$down" -eq 0 ] || { echo "cluster: $down process(es) not running; logs in $dir/logs" >&2; return 1; }
}

down() {
  [ -d "$dir/run" ] || { echo "cluster: not up"; return 0; }
  local pidfile name
  # Processes first (they commit what they finished), the broker last.
  for pidfile in "$dir"/run/*.pid; do
    name=$(basename "$pidfile" .pid)
    [ "$name" = tansu ] || { alive "$pidfile" && kill -TERM "$(cat "$pidfile")" 2>/dev/null || true; }
  done
  local deadline=$(( $(date +%s) + 20 ))
  for pidfile in "$dir"/run/*.pid; do
    name=$(basename "$pidfile" .pid)
    [ "$name" = tansu ] && continue
    while alive "$pidfile" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
    if alive "$pidfile"; then
      echo "cluster: $name did not stop in 20 s; SIGKILL" >&2
      kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    fi
  done
  if alive "$dir/run/tansu.pid"; then
    kill -TERM "$(cat "$dir/run/tansu.pid")" 2>/dev/null || true
    sleep 0.5
    alive "$dir/run/tansu.pid" && kill -KILL "$(cat "$dir/run/tansu.pid")" 2>/dev/null || true
  fi
  rm -rf "$dir/run"
  echo "cluster: down (secrets and logs kept in $dir)"
}

case ${1:-} in
  up) shift; up "$@" ;;
  stop) shift; stop "$@" ;;
  start) shift; restart "$@" ;;
  down) down ;;
  status) status ;;
  env) cat "$dir/cluster.env" 2>/dev/null || die "not up" ;;
  *) echo "usage: scripts/cluster.sh up|down|status|env|stop NAME [--kill]|start NAME (see the top of the script)" >&2; exit 2 ;;
esac
