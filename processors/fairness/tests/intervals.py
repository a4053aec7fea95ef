"""The reference intervals, for tests/intervals.rs: statsmodels on the cases given.

    intervals.py cases.json

Reads a JSON list of {"x1", "n1", "x2", "n2", "confidence"}; prints one JSON object per case
with Wilson's interval of x1/n1 (`proportion_confint`), Newcombe's interval of x1/n1 − x2/n2
and the log interval of (x1/n1)/(x2/n2) (`confint_proportions_2indep`; `log-adjusted` when a
count is 0), and the normal quantile scipy gives for the confidence.
"""
import json
import sys

from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint


def main():
    out = []
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    for case in cases:
        x1, n1, x2, n2, c = case["x1"], case["n1"], case["x2"], case["n2"], case["confidence"]
        alpha = 1 - c
        wilson = proportion_confint(x1, n1, alpha=alpha, method="wilson")
        diff = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff", alpha=alpha)
        method = "log" if x1 > 0 and x2 > 0 else "log-adjusted"
        ratio = confint_proportions_2indep(x1, n1, x2, n2, method=method, compare="ratio", alpha=alpha)
        out.append({
            "critical": float(stats.norm.isf(alpha / 2)),
            "wilson": [float(v) for v in wilson],
            "newcombe": [float(v) for v in diff],
            "log_ratio": [float(v) for v in ratio],
        })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
