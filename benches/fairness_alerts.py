"""Fairness alerts on unbiased and on biased data, over many seeds (benches/RESULTS.md,
"Fairness alerts").

For each seed it generates interactions with samples/generate.py — once as they are (the
declared demographics carry no bias) and once with `--bias gender=female:POINTS` (that
group's share of negative messages POINTS points higher) — runs the embedded pipeline on
each (`insights run --until-idle`, lexicon sentiment, SQLite), and reads the store:

- windows: the `FairnessReported` events (one per day, outcome and attribute set);
- alerts now: the `FairnessAlertRaised` events (raised when an interval excludes the
  threshold);
- alerts under the point rules the pipeline used before (recomputed from the same reports:
  demographic parity difference > 0.2, a group below four fifths of the highest rate,
  equalized odds difference > 0.2);
- detection: the first daily window whose gender / negative_sentiment report raised an
  alert, on the biased data.

    python3 benches/fairness_alerts.py [--seeds 8] [--count 20000] [--days 4] [--points 15]
                                       [--bin PATH]
"""

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def point_alerts(report):
    """The alerts of the point rules (before intervals) for one report."""
    rates = [g["selection_rate"] for g in report["groups"] if g.get("selection_rate") is not None]
    if len(rates) < 2:
        return []
    out = []
    if max(rates) - min(rates) > 0.2:
        out.append("demographic_parity_difference")
    if any(r < 0.8 * max(rates) for r in rates):
        out.append("four_fifths")
    eod = report["metrics"].get("equalized_odds_difference")
    if eod is not None and eod > 0.2:
        out.append("equalized_odds_difference")
    return out


def run(binary, input_path, work):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    for var in ["INSIGHTS_STORE_URL", "INSIGHTS_BROKERS", "INSIGHTS_TOPOLOGY", "OTEL_EXPORTER_OTLP_ENDPOINT"]:
        env.pop(var, None)
    (work / "topology.toml").write_text((ROOT / "topology.toml").read_text())
    subprocess.run(
        [binary, "run", "--until-idle", "--input", str(input_path), "--sentiment-backend", "lexicon", "--listen", "off"],
        cwd=work, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=900,
    )
    db = sqlite3.connect(work / "data" / "insights.db")
    rows = db.execute(
        "SELECT event_type, payload FROM events WHERE event_type IN ('FairnessReported', 'FairnessAlertRaised') ORDER BY position"
    ).fetchall()
    reports = [json.loads(p) for t, p in rows if t == "FairnessReported"]
    alerts = [json.loads(p) for t, p in rows if t == "FairnessAlertRaised"]
    return reports, alerts


def assess(reports, alerts):
    windows = len(reports)
    by_report = {}
    for a in alerts:
        key = (tuple(a["attributes"]), a["outcome"], a["window_start"])
        by_report.setdefault(key, []).append(a)
    old = sum(len(point_alerts(r)) for r in reports)
    windows_alerted = len(by_report)
    windows_alerted_old = sum(1 for r in reports if point_alerts(r))
    return {
        "windows": windows,
        "alerts": len(alerts),
        "alerts_point_rules": old,
        "windows_alerted": windows_alerted,
        "windows_alerted_point_rules": windows_alerted_old,
    }


def detection_day(reports, alerts):
    """The 1-based day of the first gender / negative_sentiment window with an alert."""
    days = sorted({r["window_start"] for r in reports})
    alerted = sorted(
        a["window_start"] for a in alerts if a["attributes"] == ["gender"] and a["outcome"] == "negative_sentiment"
    )
    return days.index(alerted[0]) + 1 if alerted else None


def gender_gap(reports):
    """The observed gap (points) between female and the other groups' negative rates, day 1."""
    first = min(r["window_start"] for r in reports)
    for r in reports:
        if r["attributes"] == ["gender"] and r["outcome"] == "negative_sentiment" and r["window_start"] == first:
            rates = {g["group"]: g for g in r["groups"]}
            female = rates.get("gender=female")
            others = [g for k, g in rates.items() if k != "gender=female"]
            if female and others:
                rest = sum(g["positives"] for g in others) / sum(g["count"] for g in others)
                return 100 * (female["positives"] / female["count"] - rest)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--points", type=float, default=15)
    ap.add_argument("--bin", help="the insights binary (default: a release build)")
    args = ap.parse_args()
    binary = args.bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "insights"], cwd=ROOT, check=True)
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        binary = str(target / "release" / "insights")
    totals = {"unbiased": [], "biased": []}
    detections, gaps = [], []
    for seed in range(1, args.seeds + 1):
        for kind in ["unbiased", "biased"]:
            with tempfile.TemporaryDirectory(prefix="fairness-alerts-") as tmp:
                work = Path(tmp)
                cmd = [sys.executable, str(ROOT / "samples/generate.py"), "--count", str(args.count),
                       "--days", str(args.days), "--seed", str(seed)]
                if kind == "biased":
                    cmd += ["--bias", f"gender=female:{args.points:g}"]
                (work / "input.jsonl").write_text(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                reports, alerts = run(binary, work / "input.jsonl", work)
                figures = assess(reports, alerts)
                totals[kind].append(figures)
                line = {"seed": seed, "data": kind, **figures}
                if kind == "biased":
                    line["detected_on_day"] = detection_day(reports, alerts)
                    line["observed_gap_points_day1"] = round(gender_gap(reports) or float("nan"), 1)
                    detections.append(line["detected_on_day"])
                    gaps.append(line["observed_gap_points_day1"])
                print(json.dumps(line), flush=True)
    u = totals["unbiased"]
    windows = sum(f["windows"] for f in u)
    summary = {
        "seeds": args.seeds,
        "interactions_per_run": args.count,
        "days": args.days,
        "unbiased_windows": windows,
        "unbiased_alerts": sum(f["alerts"] for f in u),
        "unbiased_alerts_point_rules": sum(f["alerts_point_rules"] for f in u),
        "false_alert_rate_per_window": sum(f["windows_alerted"] for f in u) / windows if windows else None,
        "false_alert_rate_per_window_point_rules": sum(f["windows_alerted_point_rules"] for f in u) / windows if windows else None,
        "biased_detected_within_2_days": sum(1 for d in detections if d is not None and d <= 2),
        "biased_runs": len(detections),
        "detection_days": detections,
        "observed_gap_points_day1_median": statistics.median(g for g in gaps if g == g) if gaps else None,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
