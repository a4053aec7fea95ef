#!/usr/bin/env python3
"""Prints criterion medians as a Markdown table, with ratios against the named peers.

Usage: summarize.py TARGET/criterion
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = {}
for est in sorted(root.glob("*/*/*/new/estimates.json")) + sorted(root.glob("*/*/new/estimates.json")):
    bench_dir = est.parent.parent
    bench = json.loads((est.parent / "benchmark.json").read_text())
    name = bench["full_id"]
    median_ns = json.loads(est.read_text())["median"]["point_estimate"]
    elements = (bench.get("throughput") or {}).get("Elements")
    rows[name] = (median_ns, elements)

print("| benchmark | median per iteration | median throughput |")
print("|---|---:|---:|")
def rate(name):
    ns, el = rows[name]
    return el / (ns / 1e9) if el else None
for name, (ns, el) in rows.items():
    r = rate(name)
    print(f"| `{name}` | {ns / 1e6:.3f} ms | {r:,.0f} events/s |" if r else f"| `{name}` | {ns / 1e6:.3f} ms | |")

print()
print("| batch | ours (PostgreSQL) | Message DB | ours / Message DB | COPY | ours / COPY |")
print("|---:|---:|---:|---:|---:|---:|")
for n in (1, 100, 1000):
    ours = rows.get(f"append_1kb/postgres/batch_{n}")
    mdb = rows.get(f"append_1kb/message_db_write_message/batch_{n}")
    copy = rows.get(f"append_1kb/postgres_copy_limit/batch_{n}")
    if not ours:
        continue
    o = rate(f"append_1kb/postgres/batch_{n}")
    m = rate(f"append_1kb/message_db_write_message/batch_{n}") if mdb else None
    c = rate(f"append_1kb/postgres_copy_limit/batch_{n}") if copy else None
    fmt = lambda v: f"{v:,.0f}/s" if v else "n/a"
    ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "n/a"
    print(f"| {n} | {fmt(o)} | {fmt(m)} | {ratio(o, m)} | {fmt(c)} | {ratio(o, c)} |")
