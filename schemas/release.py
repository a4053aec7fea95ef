"""Releases the current version of schemas: writes schemas/avro/history/NAME/vN.avsc (N one
past the latest release) with every reference to another file's type inlined at its first
use, as the catalogue resolves it (schemas/src/catalogue.rs, `inline_references`).

    python3 schemas/release.py FairnessReported FairnessAlertRaised Envelope

Release a changed schema and every schema that embeds it (the Envelope embeds every event).
`insights schemas check` (and the schemas crate's tests) then hold the current files to
these releases and check that each can read data written with every earlier one.
"""

import json
import sys
from pathlib import Path

AVRO = Path(__file__).resolve().parent / "avro"


def full_name(schema):
    name = schema.get("name")
    if not isinstance(name, str):
        return None
    if "." in name:
        return name
    ns = schema.get("namespace")
    return f"{ns}.{name}" if ns else name


def files():
    out = {}
    for path in sorted(AVRO.glob("*.avsc")):
        schema = json.loads(path.read_text())
        out[full_name(schema)] = schema
    return out


def inline(schema, known, defined):
    if isinstance(schema, str):
        if schema in known and schema not in defined:
            return inline(known[schema], known, defined)
        return schema
    if isinstance(schema, list):
        return [inline(b, known, defined) for b in schema]
    if isinstance(schema, dict):
        out = dict(schema)
        kind = schema.get("type")
        if kind in ("record", "error"):
            if full_name(schema):
                defined.add(full_name(schema))
            if isinstance(schema.get("fields"), list):
                fields = []
                for field in schema["fields"]:
                    field = dict(field)
                    if "type" in field:
                        field["type"] = inline(field["type"], known, defined)
                    fields.append(field)
                out["fields"] = fields
        elif kind in ("enum", "fixed"):
            if full_name(schema):
                defined.add(full_name(schema))
        elif kind == "array":
            if "items" in schema:
                out["items"] = inline(schema["items"], known, defined)
        elif kind == "map":
            if "values" in schema:
                out["values"] = inline(schema["values"], known, defined)
        elif isinstance(kind, (dict, list)):
            out["type"] = inline(kind, known, defined)
        return out
    return schema


def main(names):
    if not names:
        sys.exit(__doc__)
    known = files()
    for name in names:
        path = AVRO / f"{name}.avsc"
        if not path.exists():
            sys.exit(f"release: no schema {path}")
        resolved = inline(json.loads(path.read_text()), known, set())
        history = AVRO / "history" / name
        history.mkdir(parents=True, exist_ok=True)
        versions = [int(p.stem[1:]) for p in history.glob("v*.avsc")]
        target = history / f"v{max(versions, default=0) + 1}.avsc"
        target.write_text(json.dumps(resolved, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        print(f"release: {target.relative_to(AVRO.parent.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])
