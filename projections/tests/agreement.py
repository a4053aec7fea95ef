"""Reference for the agreement view (tests/views.rs): Cohen's kappa with scikit-learn.

Reads (from the file named first on the command line) {"pairs": [[reviewer_a, reviewer_b, day, decision_a, decision_b], ...],
"readings": [[reviewer, day, reading, model], ...]} on stdin and writes the same groups
the view answers: overall, by reviewer, by day (and, for readings, by reviewer and day),
each {"n", "agreement", "kappa"} with kappa null where scikit-learn's is NaN.
"""
import json
import math
import sys
import warnings
from collections import defaultdict

from sklearn.metrics import cohen_kappa_score

warnings.simplefilter("ignore")


def summary(rows):
    a = [r[0] for r in rows]
    b = [r[1] for r in rows]
    k = float(cohen_kappa_score(a, b)) if rows else float("nan")
    return {
        "n": len(rows),
        "agreement": sum(x == y for x, y in rows) / len(rows) if rows else None,
        "kappa": None if math.isnan(k) else k,
    }


def grouped(keyed):
    groups = defaultdict(list)
    for key, x, y in keyed:
        groups[key].append((x, y))
    return {json.dumps(k): summary(v) for k, v in sorted(groups.items())}


with open(sys.argv[1]) as f:
    data = json.load(f)
pairs, readings = data["pairs"], data["readings"]
out = {
    "reviewers": {
        "all": summary([(p[3], p[4]) for p in pairs]),
        "by_reviewer": grouped(
            [(p[0], p[3], p[4]) for p in pairs] + [(p[1], p[3], p[4]) for p in pairs]
        ),
        "by_day": grouped([(p[2], p[3], p[4]) for p in pairs]),
    },
    "model": {
        "all": summary([(r[2], r[3]) for r in readings]),
        "by_reviewer": grouped([(r[0], r[2], r[3]) for r in readings]),
        "by_day": grouped([(r[1], r[2], r[3]) for r in readings]),
        "by_reviewer_day": grouped([((r[0], r[1]), r[2], r[3]) for r in readings]),
    },
}
json.dump(out, sys.stdout)
