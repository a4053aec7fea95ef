"""The reference implementations, for tests/golden.rs: Fairlearn and AIF360 on a CSV.

    reference.py CSV SENSITIVE(comma-separated) OUTCOME [LABEL|-] [PRIV_ATTR=VALUE|-]

Prints one JSON object with the metrics named as insights_fairness::Report names them
(NaN as null).
"""
import json
import math
import sys

import pandas as pd
from fairlearn.metrics import (MetricFrame, demographic_parity_difference,
                               demographic_parity_ratio, equal_opportunity_difference,
                               equal_opportunity_ratio, equalized_odds_difference,
                               equalized_odds_ratio, selection_rate)


def clean(x):
    x = float(x)
    return None if math.isnan(x) else x


def main():
    path, sensitive, outcome = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    label = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    priv = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    y_pred = df[outcome].astype(float).astype(int)
    y_true = df[label].astype(float).astype(int) if label else y_pred
    sf = df[sensitive]
    out = {
        "demographic_parity_difference":
            demographic_parity_difference(y_true, y_pred, sensitive_features=sf),
        "demographic_parity_difference_to_overall":
            demographic_parity_difference(y_true, y_pred, sensitive_features=sf, method="to_overall"),
        "demographic_parity_ratio":
            demographic_parity_ratio(y_true, y_pred, sensitive_features=sf),
        "demographic_parity_ratio_to_overall":
            demographic_parity_ratio(y_true, y_pred, sensitive_features=sf, method="to_overall"),
    }
    mf = MetricFrame(metrics=selection_rate, y_true=y_true, y_pred=y_pred, sensitive_features=sf)
    out["selection_rates"] = {
        "|".join(k if isinstance(k, tuple) else (k,)): v for k, v in mf.by_group.items()}
    if label:
        out.update({
            "equalized_odds_difference": equalized_odds_difference(y_true, y_pred, sensitive_features=sf),
            "equalized_odds_difference_mean":
                equalized_odds_difference(y_true, y_pred, sensitive_features=sf, agg="mean"),
            "equalized_odds_ratio": equalized_odds_ratio(y_true, y_pred, sensitive_features=sf),
            "equalized_odds_ratio_mean":
                equalized_odds_ratio(y_true, y_pred, sensitive_features=sf, agg="mean"),
            "equal_opportunity_difference":
                equal_opportunity_difference(y_true, y_pred, sensitive_features=sf),
            "equal_opportunity_ratio": equal_opportunity_ratio(y_true, y_pred, sensitive_features=sf),
        })
    if priv:
        from aif360.sklearn.metrics import disparate_impact_ratio, statistical_parity_difference
        attr, value = priv.split("=", 1)
        index = pd.Index((df[attr] == value).astype(int), name=attr)
        yt = pd.Series(y_true.values, index=index)
        yp = pd.Series(y_pred.values, index=index)
        out["disparate_impact"] = disparate_impact_ratio(yt, yp, prot_attr=attr, priv_group=1, pos_label=1)
        out["statistical_parity_difference"] = statistical_parity_difference(
            yt, yp, prot_attr=attr, priv_group=1, pos_label=1)
    out = {k: ({g: clean(v) for g, v in x.items()} if isinstance(x, dict) else clean(x))
           for k, x in out.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
