#!/usr/bin/env python3
"""Labelled training sentences for the privacy tagger, from Microsoft's presidio-evaluator.

    .tools/eval-venv/bin/python processors/privacy/data/generate_training.py \
        [--count 40000] [--seed 1] [--out .tools/data/privacy/train.jsonl]

Sentences come from `PresidioSentenceFaker` (en_US, 5% lower-cased, seeded: the output is
reproducible). Only presidio-evaluator templates OUTSIDE the evaluation's test split are
written (`template_id % 5 != 0`); `benches/privacy_eval.py` reports on the other fifth, with a
different seed, so neither the templates nor the drawn values of the test sentences are
seen in training. Each line: {"template_id", "text", "spans": [{"type", "start", "end"}]},
offsets in chars (Unicode scalar values); the faker's GPE is written as LOCATION, the name
Presidio's analyzer reports.

With `--own N` (default 5000), N more sentences come from our own customer-service templates
(`customer_service_templates.txt` beside this file: support chat and e-mail phrasing, app
menu names and products written capitalised but no PII), filled by the same faker; their
`template_id`s are 1000 + line number, outside both the evaluation's and the validation's
splits (`insights train privacy` validates on presidio-evaluator templates only).
"""
import argparse
import json
import os
import pathlib
import random

GOLD_ALIASES = {"GPE": "LOCATION"}
OWN_TEMPLATE_BASE = 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=".tools/data/privacy/train.jsonl")
    ap.add_argument("--own", type=int, default=5000)
    args = ap.parse_args()
    os.environ.setdefault("TLDEXTRACT_CACHE", str(pathlib.Path(".tools/tldextract-cache").resolve()))
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    random.seed(args.seed)  # the faker picks templates with the global generator
    faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=args.seed)
    samples = faker.generate_new_fake_sentences(args.count)
    own = []
    if args.own:
        templates = (pathlib.Path(__file__).parent / "customer_service_templates.txt").read_text()
        own_faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=args.seed,
                                          sentence_templates=templates.strip().splitlines())
        own = own_faker.generate_new_fake_sentences(args.own)
        for s in own:
            s.template_id += OWN_TEMPLATE_BASE
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = 0
    with out.open("w") as f:
        for s in samples + own:
            if s.template_id < OWN_TEMPLATE_BASE and s.template_id % 5 == 0:
                continue
            spans = sorted(
                ({"type": GOLD_ALIASES.get(sp.entity_type, sp.entity_type),
                  "start": sp.start_position, "end": sp.end_position} for sp in s.spans),
                key=lambda sp: sp["start"])
            f.write(json.dumps({"template_id": s.template_id, "text": s.full_text, "spans": spans},
                               ensure_ascii=False) + "\n")
            kept += 1
    print(f"{kept} of {len(samples) + len(own)} sentences (templates outside the test split; "
          f"{len(own)} from our own templates) -> {out}")


if __name__ == "__main__":
    main()
