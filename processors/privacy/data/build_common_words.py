#!/usr/bin/env python3
"""Common words of German, French, Spanish and Dutch for the privacy taggers of those
languages (their "common word" gazetteer class; English has common_words.txt, from SCOWL).

    .tools/eval-venv/bin/python processors/privacy/data/build_common_words.py [--top 20000]

Per language: the `--top` most frequent words of pyspellchecker's word-frequency dictionary
(pyspellchecker 0.9.1, MIT, LICENSE-pyspellchecker.txt; its lists count words in
OpenSubtitles), Faker's lorem word
list (Faker is MIT; LICENSE-Faker.txt) and the month and weekday names of Faker's date
provider; lower-cased, letters only, at least two of them. Like SCOWL's lower-case entries,
the list holds no first names or places: a word whose capitalised form is in
first_names.txt or places.txt is left out ("maria", "berlin"); surnames that are words stay
("koch", "fischer"), as "baker" does in English. Except the language's core: the `--core`
most frequent words stay whatever else they are ("la", "el", "uno", "een", "dan", "heel",
"mis", "man", "luz"), for Faker's name lists of many countries hold hundreds of them ("Uno",
"Dan", "Mis") and the taggers, told only "first name", read "solo pedí uno" and "kan de
monteur dan langskomen" as naming someone. Such a word is then both a name and a common word
to the tagger, which decides by context; the checks that drop a "name" of common words only
still require a word that is no name or place (`gazetteer::common_words_only`).

Writes common_words_de.txt, common_words_fr.txt, common_words_es.txt, common_words_nl.txt
beside this file, one a line, sorted.
"""
import argparse
import gzip
import importlib
import importlib.resources
import json
import pathlib
import re

LOCALES = {"de": "de_DE", "fr": "fr_FR", "es": "es_ES", "nl": "nl_NL"}
WORD = re.compile(r"[^\W\d_]{2,}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=20000)
    ap.add_argument("--core", type=int, default=1000,
                    help="the most frequent words kept even where a name or place")
    args = ap.parse_args()
    here = pathlib.Path(__file__).parent
    names = set()
    for gazetteer in ("first_names.txt", "places.txt"):
        names.update(here.joinpath(gazetteer).read_text(encoding="utf-8").split("\n"))
    resources = importlib.resources.files("spellchecker") / "resources"
    for language, locale in LOCALES.items():
        with gzip.open(resources / f"{language}.json.gz", "rt", encoding="utf-8") as f:
            counts = json.load(f)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        words = {w.lower() for w, _ in ranked[:args.top] if WORD.fullmatch(w)}
        core = {w.lower() for w, _ in ranked[:args.core] if WORD.fullmatch(w)}
        for phrase in importlib.import_module(f"faker.providers.lorem.{locale}").Provider.word_list:
            words.update(w.lower() for w in WORD.findall(phrase))
        dates = importlib.import_module(f"faker.providers.date_time.{locale}").Provider
        for table in ("MONTH_NAMES", "DAY_NAMES"):
            words.update(v.lower() for v in getattr(dates, table, {}).values())
        rows = sorted(w for w in words if w in core or w[:1].upper() + w[1:] not in names)
        (here / f"common_words_{language}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
        print(f"common_words_{language}: {len(rows)}")


if __name__ == "__main__":
    main()
