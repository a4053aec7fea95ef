#!/usr/bin/env python3
"""Per-language span evaluation of `insights scrub` on customer-service text, with Presidio
beside it on the same sentences.

    benches/privacy_multilingual.py [--count 1000] [--seed 42] [--insights target/release/insights]
    benches/privacy_multilingual.py --split train --insights OLD --insights NEW [--seed 42]
    benches/privacy_multilingual.py --throughput-only [--insights B] [--rounds 3]

Run with the evaluation venv (.tools/eval-venv; benches/run.sh creates it). Sentences come
from processors/privacy/data/generate_multilingual.py: our own templates in English, German,
French, Spanish and Dutch, filled by Faker's locales of each language's countries.

- The default (`--split test`) scores the **held-out templates** (`template_id % 5 == 0`),
  which no tagger was trained or selected on, filled with values of another seed (42; the
  taggers learned on seed 1). Each sentence is scrubbed with its language declared (as the
  pipeline does when the interaction carries one) and, for the undeclared column, without.
  Presidio (analyzer 2.2.366 with spaCy's English small model, the only one packaged for
  this spaCy among the five languages' small models besides French) runs on the same
  sentences with `language="en"`: its pattern recognizers are language-independent, its
  NER is English.
- `--split train` scores sentences from the training templates (fresh values, seed 42) for
  each `--insights` binary: a paired comparison of two builds that never looks at the test
  templates. The trainer's cross-validated figures (the model cards) are the honest
  development measure; this one is optimistic (the templates were trained on).

Figures per language: span precision and recall whatever the type (any-PII; a span found
with the wrong type still hides the value), typed F2, any-PII F2; IoU >= 0.5 (see
privacy_eval.py). Throughput: sentences/s of `insights scrub` and of Presidio's analyzer,
on all five languages' sentences together. Ours twice: a fresh process over the sentences
(start-up on one sentence subtracted; what the process builds as it first meets the text
still counts), and steady state (a process given the sentences four times over, less one
pass: a running privacy processor).

`--throughput-only` times, on the training templates' sentences (no figures, so no look at
the held-out templates), ours on one thread (`--threads 1`) and on every core (the
default), and Presidio in one process and in one process per core (each with its own
analyzer, warmed up before the clock starts, the sentences dealt out in turn): like for
like per core and per machine.
"""
import argparse
import json
import logging
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from privacy_eval import any_pii, presidio_analyzer, prf, score  # noqa: E402

LANGUAGES = ["en", "de", "fr", "es", "nl"]
GENERATOR = pathlib.Path(__file__).parent.parent / "processors/privacy/data/generate_multilingual.py"


def sentences(language, split, count, seed):
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as f:
        path = f.name
    subprocess.run([sys.executable, str(GENERATOR), "--language", language, "--split", split,
                    "--count", str(count), "--seed", str(seed), "--out", path],
                   check=True, capture_output=True)
    rows = [json.loads(line) for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines()]
    return [(r["text"], [(s["type"], s["start"], s["end"]) for s in r["spans"]]) for r in rows]


def throughput(binary, texts, startup, threads=None):
    """(sentences/s of a fresh process over `texts`, start-up subtracted; sentences/s in
    steady state: the three more passes of a process given `texts` four times over, against
    the one pass). The first counts what a fresh process pays as it meets the text (models
    of the other languages loaded on first use, regex states built as patterns meet new
    text, libphonenumber's plans compiled); the second is a long-running privacy processor."""
    once = scrub(binary, texts, threads=threads)[1]
    four = scrub(binary, list(texts) * 4, threads=threads)[1]
    return len(texts) / max(once - startup, 1e-6), 3 * len(texts) / max(four - once, 1e-6)


def median(values):
    return sorted(values)[len(values) // 2]


def scrub(binary, texts, language=None, threads=None):
    """(spans per text, seconds); `threads` None: the binary's default."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t, **({"language": language} if language else {})}) + "\n")
        path = f.name
    env = {**os.environ, "INSIGHTS_PRIVACY_KEY": "00" * 32}
    started = time.perf_counter()
    # A binary from before `--threads` runs on one thread and does not know the flag.
    extra = ["--threads", str(threads)] if threads and knows_threads(binary) else []
    out = subprocess.run([binary, "scrub", "--file", path, *extra], capture_output=True, text=True,
                         env=env)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"{binary} scrub failed: {out.stderr}")
    spans = [[(s["type"], s["start"], s["end"]) for s in json.loads(line)["spans"]]
             for line in out.stdout.splitlines()]
    return spans, seconds


_ANALYZER = None


def _presidio_worker_start(barrier):
    global _ANALYZER
    _ANALYZER = presidio_analyzer()
    barrier.wait()


def _presidio_ready(_):
    return _ANALYZER is not None


def _presidio_analyze(texts):
    return sum(len(_ANALYZER.analyze(text=t, language="en")) for t in texts)


def presidio_rate(texts, processes):
    """Presidio's sentences/s over `texts` in `processes` worker processes, each with its
    own analyzer built and warmed up before the clock starts."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes)
    with ctx.Pool(processes, initializer=_presidio_worker_start, initargs=(barrier,)) as pool:
        # No worker takes a task before its analyzer is built; the barrier holds each until
        # every one is, so after this every worker is warm.
        assert all(pool.map(_presidio_ready, range(processes), chunksize=1))
        started = time.perf_counter()
        pool.map(_presidio_analyze, [texts[i::processes] for i in range(processes)], chunksize=1)
        return len(texts) / (time.perf_counter() - started)


def throughput_only(args, data):
    all_texts = [t for lang in LANGUAGES for t, _ in data[lang]]
    print(f"{len(all_texts):,} sentences from the TRAINING templates (seed {args.seed}), all five "
          f"languages, undeclared\n")
    throughput_table(args.insights, all_texts, args.rounds, presidio=True)


def throughput_table(binaries, texts, rounds, presidio):
    """Ours on one thread and on every core, fresh process and steady state (medians of
    `rounds`), and with `presidio` Presidio in one process and in one per core."""
    cores = os.cpu_count() or 1
    rows = []
    for binary in binaries:
        for threads in (1, cores):
            startup = min(scrub(binary, texts[:1], threads=threads)[1] for _ in range(3))
            runs = [throughput(binary, texts, startup, threads) for _ in range(rounds)]
            fresh, steady = (median([r[i] for r in runs]) for i in (0, 1))
            rows.append((f"insights scrub --threads {threads} ({binary})", fresh, steady, startup))
    print(f"Throughput, {len(texts):,} sentences, all languages, undeclared; {cores} cores; medians "
          f"of {rounds} rounds (start-up on one sentence, best of three, subtracted)\n")
    if not presidio:
        print("| system | start-up s | sentences/s, fresh process | sentences/s, steady state |\n"
              "|---|---:|---:|---:|")
        for name, fresh, steady, startup in rows:
            print(f"| {name} | {startup:.2f} | {fresh:,.0f} | {steady:,.0f} |")
        return
    os.environ.setdefault("TLDEXTRACT_CACHE", str(pathlib.Path(".tools/tldextract-cache").resolve()))
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    rate = {n: median([presidio_rate(texts, n) for _ in range(rounds)]) for n in (1, cores)}
    print("| system | start-up s | sentences/s, fresh process | sentences/s, steady state | "
          f"fresh, steady / Presidio 1 process | fresh, steady / Presidio {cores} processes |\n"
          "|---|---:|---:|---:|---:|---:|")
    for name, fresh, steady, startup in rows:
        print(f"| {name} | {startup:.2f} | {fresh:,.0f} | {steady:,.0f} | "
              f"{fresh / rate[1]:.0f}x, {steady / rate[1]:.0f}x | "
              f"{fresh / rate[cores]:.0f}x, {steady / rate[cores]:.0f}x |")
    for n, r in rate.items():
        print(f"| Presidio + spaCy sm, {n} process{'es' if n > 1 else ''} | | {r:,.0f} | | | |")


def knows_threads(binary, _known={}):
    if binary not in _known:
        help_text = subprocess.run([binary, "scrub", "--help"], capture_output=True, text=True).stdout
        _known[binary] = "--threads" in help_text
    return _known[binary]


def figures(gold, pred):
    tp, fp, fn = score(gold, pred)
    _, _, typed_f2 = prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    p, r, f2 = any_pii(gold, pred)
    return p, r, typed_f2, f2


def row(name, fig):
    p, r, tf2, f2 = fig
    return f"| {name} | {p:.3f} | {r:.3f} | {tf2:.3f} | {f2:.3f} |"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000, help="sentences per language")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--insights", action="append")
    ap.add_argument("--split", choices=["test", "train"], default="test")
    ap.add_argument("--no-presidio", action="store_true")
    ap.add_argument("--threads", type=int, default=1,
                    help="with --split train: `insights scrub --threads` of the timed runs (a "
                         "binary from before the flag runs one thread)")
    ap.add_argument("--throughput-only", action="store_true",
                    help="time ours (one thread, every core) and Presidio (one process, one "
                         "per core) on the training templates' sentences; no figures")
    ap.add_argument("--rounds", type=int, default=3,
                    help="with --split train: timed runs per binary (alternating), median taken")
    args = ap.parse_args()
    args.insights = args.insights or ["target/release/insights"]
    if args.throughput_only:
        args.split = "train"
    data = {lang: sentences(lang, args.split, args.count, args.seed) for lang in LANGUAGES}
    if args.throughput_only:
        return throughput_only(args, data)
    header = "| | any-PII precision | any-PII recall | typed F2 | any-PII F2 |\n|---|---:|---:|---:|---:|"
    if args.split == "train":
        print(f"{args.count} sentences per language from the TRAINING templates (seed {args.seed}); "
              "optimistic, for paired comparisons only\n")
        for binary in args.insights:
            print(f"### {binary}\n\n{header}")
            for lang in LANGUAGES:
                texts, gold = zip(*data[lang])
                print(row(lang, figures(gold, scrub(binary, texts, lang)[0])))
            print(f"\nundeclared:\n\n{header}")
            for lang in LANGUAGES:
                texts, gold = zip(*data[lang])
                print(row(lang, figures(gold, scrub(binary, texts)[0])))
            print()
        # Throughput on the same training sentences (all languages, undeclared): the
        # binaries alternate, start-up (one sentence, best of three) subtracted, median of
        # the rounds, so paired comparisons never need the test split.
        all_texts = [t for lang in LANGUAGES for t, _ in data[lang]]
        timings = {b: [] for b in args.insights}
        startup = {b: min(scrub(b, all_texts[:1], threads=args.threads)[1] for _ in range(3))
                   for b in args.insights}
        for _ in range(args.rounds):
            for b in args.insights:
                timings[b].append(throughput(b, all_texts, startup[b], args.threads))
        print("| binary | sentences/s, fresh process | sentences/s, steady state |\n"
              "|---|---:|---:|")
        for b in args.insights:
            fresh, steady = (median([t[i] for t in timings[b]]) for i in (0, 1))
            print(f"| {b} | {fresh:,.0f} | {steady:,.0f} |")
        print(f"\n(undeclared, all languages, {len(all_texts):,} sentences; {args.threads} "
              f"thread(s); median of {args.rounds} rounds)")
        return

    binary = args.insights[0]
    print(f"{args.count} sentences per language from the held-out templates (template_id % 5 == 0), "
          f"values of seed {args.seed}\n")
    lines = {"declared": [], "undeclared": [], "presidio": []}
    all_texts = []
    for lang in LANGUAGES:
        texts, gold = zip(*data[lang])
        all_texts.extend(texts)
        lines["declared"].append(row(lang, figures(gold, scrub(binary, texts, lang)[0])))
        lines["undeclared"].append(row(lang, figures(gold, scrub(binary, texts)[0])))
    print(f"### insights scrub, language declared\n\n{header}\n" + "\n".join(lines["declared"]) + "\n")
    print(f"### insights scrub, language undeclared (detected)\n\n{header}\n"
          + "\n".join(lines["undeclared"]) + "\n")
    if not args.no_presidio:
        os.environ.setdefault("TLDEXTRACT_CACHE",
                              str(pathlib.Path(".tools/tldextract-cache").resolve()))
        logging.getLogger("tldextract").setLevel(logging.CRITICAL)
        analyzer = presidio_analyzer()
        for lang in LANGUAGES:
            texts, gold = zip(*data[lang])
            pred = [[(r.entity_type, r.start, r.end)
                     for r in analyzer.analyze(text=t, language="en")] for t in texts]
            lines["presidio"].append(row(lang, figures(gold, pred)))
        print(f"### Presidio + spaCy en_core_web_sm, same sentences\n\n{header}\n"
              + "\n".join(lines["presidio"]) + "\n")
    throughput_table([binary], all_texts, 3, presidio=not args.no_presidio)


if __name__ == "__main__":
    main()
