#!/usr/bin/env python3
"""`insights scrub` on hand-written customer-service messages (benches/data/privacy_handwritten.txt):
a check beside the generated templates, on text no template or Faker list produced.

    benches/privacy_handwritten.py --insights target/release/insights [--split dev|test|all] [--show]

The file's lines alternate dev / test. `--show` prints, for the dev half only, each gold span
the scrubber missed (IoU < 0.5 with every found span) and each span it found that is none,
with what remained in clear. Figures per language (declared, then undeclared): any-PII span
precision and recall, and the share of gold personal-data characters left in clear (the
privacy promise itself: a span found with other bounds still hides most of its value).
Hand-written and small (about 16 messages a language), so one message moves a figure by
several points; read it beside the templates' figures, not instead of them.
"""
import argparse
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from privacy_eval import any_pii  # noqa: E402
from privacy_multilingual import LANGUAGES, scrub  # noqa: E402

DATA = pathlib.Path(__file__).parent / "data/privacy_handwritten.txt"
MARK = re.compile(r"\[\[([A-Z_]+):(.+?)\]\]")


def parse(line):
    """(text, [(type, start, end)]) from a line with [[TYPE:value]] marks."""
    text, spans, at = "", [], 0
    for m in MARK.finditer(line):
        text += line[at:m.start()]
        spans.append((m.group(1), len(text), len(text) + len(m.group(2))))
        text += m.group(2)
        at = m.end()
    return text + line[at:], spans


def messages():
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        language, marked = line.split("\t", 1)
        text, spans = parse(marked.replace("\\n", "\n"))
        split = "dev" if sum(1 for r in rows if r[0] == language) % 2 == 0 else "test"
        rows.append((language, split, text, spans))
    return rows


def leaked(gold, pred, text):
    """(gold PII characters left outside every found span, all gold PII characters); letters
    and digits only."""
    covered = set()
    for _, s, e in pred:
        covered.update(range(s, e))
    chars = [i for _, s, e in gold for i in range(s, e) if text[i].isalnum()]
    return sum(1 for i in chars if i not in covered), len(chars)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--insights", default="target/release/insights")
    ap.add_argument("--split", choices=["dev", "test", "all"], default="dev")
    ap.add_argument("--show", action="store_true", help="print the dev half's misses and false spans")
    args = ap.parse_args()
    rows = [r for r in messages() if args.split == "all" or r[1] == args.split]
    print(f"{len(rows)} hand-written messages ({args.split})\n")
    for mode in ("declared", "undeclared"):
        print(f"### language {mode}\n\n| | messages | gold spans | any-PII precision | any-PII recall "
              "| PII characters in clear |\n|---|---:|---:|---:|---:|---:|")
        totals = [[], [], [], 0, 0]
        for lang in LANGUAGES:
            mine = [r for r in rows if r[0] == lang]
            if not mine:
                continue
            texts = [r[2] for r in mine]
            gold = [r[3] for r in mine]
            pred = scrub(args.insights, texts, lang if mode == "declared" else None)[0]
            p, r, _ = any_pii(gold, pred)
            clear = [leaked(g, q, t) for g, q, t in zip(gold, pred, texts)]
            left, total = sum(c[0] for c in clear), sum(c[1] for c in clear)
            print(f"| {lang} | {len(mine)} | {sum(map(len, gold))} | {p:.3f} | {r:.3f} | "
                  f"{left / max(total, 1):.3f} |")
            totals[0] += gold
            totals[1] += pred
            totals[2] += texts
            totals[3] += left
            totals[4] += total
            if args.show and mode == "declared":
                for (_, split, text, g), q in zip(mine, pred):
                    if split != "dev":
                        continue
                    for t, s, e in g:
                        if not any(min(e, qe) - max(s, qs) > 0.5 * (max(e, qe) - min(s, qs))
                                   for _, qs, qe in q):
                            found = [(qt, text[qs:qe]) for qt, qs, qe in q if qs < e and qe > s]
                            print(f"    MISS {lang} {t} {text[s:e]!r} found={found}")
                    for qt, qs, qe in q:
                        if not any(min(e, qe) - max(s, qs) > 0.5 * (max(e, qe) - min(s, qs))
                                   for _, s, e in g):
                            print(f"    FALSE {lang} {qt} {text[qs:qe]!r}")
        p, r, _ = any_pii(totals[0], totals[1])
        print(f"| all | {len(rows)} | {sum(map(len, totals[0]))} | {p:.3f} | {r:.3f} | "
              f"{totals[3] / max(totals[4], 1):.3f} |\n")


if __name__ == "__main__":
    main()
