#!/usr/bin/env bash
# View queries under load (the figures in benches/RESULTS.md, "Views over HTTP"): runs the
# sample pipeline on the embedded default with the API, waits until every view has caught
# up, then drives three view endpoints with wrk (Debian's; closed loop, so each run shows
# the throughput the server reaches and the latency at that load); then stops the server
# and times `insights replay --rebuild all` over the same log.
#
#   benches/views_load.sh [DURATION_S] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
duration=${1:-20}
connections=${2:-8}
scripts/setup.sh >/dev/null
if ! command -v wrk >/dev/null; then
  apt-get install -y --no-install-recommends wrk >/dev/null
fi
cargo build --release --locked --bin insights
bin="${CARGO_TARGET_DIR:-target}/release/insights"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
dir=$(mktemp -d)
cp topology.toml "$dir/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$dir" && exec "$bin" run --listen "127.0.0.1:$port" --sentiment-backend lexicon \
  --api-rate-limit 1000000 --input "$root/samples/interactions.jsonl" >run.log 2>&1) &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 240); do grep -q 'dashboard: ' "$dir/run.log" && break; sleep 0.5; done
token=$(grep -o '#token=[A-Za-z0-9._-]*' "$dir/run.log" | cut -d= -f2)
[ -n "$token" ] || { cat "$dir/run.log"; echo "no token" >&2; exit 1; }
# Wait until the pipeline has drained and every view has applied the whole log.
last=0
for _ in $(seq 300); do
  head=$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/views" |
    python3 -c 'import json,sys; b=json.load(sys.stdin); print(b["head"] if all(v["lag"]==0 for v in b["views"]) else 0)')
  if [ "$head" -gt 12000 ] && [ "$head" = "$last" ]; then break; fi
  last=$head
  sleep 3
done
echo "store head $head; views caught up"
for path in "/v1/views/sentiment?granularity=day&group_by=channel" "/v1/views/responses" \
            "/v1/views/conversations?limit=20"; do
  echo "== GET $path ($connections connections, ${duration}s)"
  wrk -t2 -c"$connections" -d"${duration}s" --latency -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port$path" | grep -E 'Requests/sec|Latency|50%|90%|99%|Non-2xx'
done
kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
start=$(date +%s.%N)
(cd "$dir" && "$bin" replay --rebuild all 2>&1 | tail -1)
end=$(date +%s.%N)
python3 -c "import sys; h,s,e=map(float,sys.argv[1:]); print(f'rebuild all six views: {int(h)} events in {e-s:.2f} s = {6*h/(e-s):,.0f} view-events/s')" "$head" "$start" "$end"
