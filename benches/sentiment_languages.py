"""Sentiment in German, French, Spanish and Dutch: the project's multilingual messages
(`processors/sentiment/data/support-multilingual.tsv`, 60 a language, 20 a class, labelled by
their author, never trained on) scored by `insights sentiment` four ways:
  - routed: the language declared, so the multilingual model scores them (the default);
  - detected: no language given, routed by detection (what an undeclared producer gets);
  - English model: `--sentiment-english-only`, the fine-tuned English model for every
    language (what the product did before the multilingual model);
  - lexicon: the VADER port (English word list).
Accuracy and macro-F1 per language, over all messages and per half (dev: may be looked
at for choices; test: reported only). Runs only `insights sentiment`:
  python3 benches/sentiment_languages.py --insights target/release/insights
"""

import argparse
import hashlib
import json
import subprocess
import sys

LABELS = ["negative", "neutral", "positive"]


def load(path):
    rows = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        id_, language, label, text = line.rstrip("\n").split("\t", 3)
        dev = hashlib.sha256(f"support-multilingual/{id_}".encode()).digest()[0] % 2 == 0
        rows.append({"id": id_, "language": language, "label": label, "text": text, "dev": dev})
    return rows


def score(binary, rows, extra, declare):
    lines = "".join(
        json.dumps({"text": r["text"], **({"language": r["language"]} if declare else {})}) + "\n"
        for r in rows)
    out = subprocess.run([binary, "sentiment", *extra], input=lines.encode(),
                         capture_output=True, check=True)
    return [json.loads(l) for l in out.stdout.decode().splitlines()]


def metrics(pairs):
    n = len(pairs)
    acc = sum(p == g for p, g in pairs) / n
    f1 = 0.0
    for c in LABELS:
        tp = sum(p == c and g == c for p, g in pairs)
        fp = sum(p == c and g != c for p, g in pairs)
        fn = sum(p != c and g == c for p, g in pairs)
        f1 += 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {"n": n, "accuracy": round(acc, 3), "macro_f1": round(f1 / 3, 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--insights", required=True)
    ap.add_argument("--data", default="processors/sentiment/data/support-multilingual.tsv")
    args = ap.parse_args()
    rows = load(args.data)
    runs = {
        "routed (language declared)": ([], True),
        "detected (no language)": ([], False),
        "English model for all": (["--sentiment-english-only"], True),
        "lexicon (VADER port)": (["--sentiment-backend", "lexicon"], True),
    }
    result = {}
    for name, (extra, declare) in runs.items():
        got = score(args.insights, rows, extra, declare)
        per = {}
        for language in ["de", "fr", "es", "nl", None]:
            for half in ["all", "dev", "test"]:
                pairs = [(g["label"], r["label"]) for g, r in zip(got, rows)
                         if language in (None, r["language"])
                         and (half == "all" or r["dev"] == (half == "dev"))]
                per[f"{language or 'all'}/{half}"] = metrics(pairs)
        backends = {}
        for g in got:
            backends[g["backend"]] = backends.get(g["backend"], 0) + 1
        result[name] = {"backends": backends, **per}
    json.dump(result, sys.stdout, indent=1)
    print()
    print(f"{'run':32} " + " ".join(f"{l:>11}" for l in ["de", "fr", "es", "nl", "all", "all dev", "all test"]),
          file=sys.stderr)
    for name, per in result.items():
        cells = [per[f"{l}/all"] for l in ["de", "fr", "es", "nl", "all"]] + [per["all/dev"], per["all/test"]]
        print(f"{name:32} " + " ".join(f"{c['accuracy']:.3f}/{c['macro_f1']:.3f}" for c in cells),
              file=sys.stderr)


if __name__ == "__main__":
    main()
