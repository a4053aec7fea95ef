//! Which reports raise alerts: a metric's threshold crossed **with evidence**, that is, by
//! a confidence interval and not only by the point value.
//!
//! A window's groups hold tens to thousands of outcomes; with a few dozen, sampling noise
//! alone moves a group's rate by ten points and more, and point-value rules (the
//! four-fifths rule, a parity gap of 0.2) fire on data with no bias at all. So each rule
//! compares groups through an interval at the configured `confidence` and alerts only when
//! the whole interval lies beyond the threshold:
//!
//! | rule | compares | interval | alert when |
//! |---|---|---|---|
//! | `demographic_parity_difference` | every pair of groups' selection rates | Newcombe, difference | lower bound > threshold |
//! | `four_fifths` | every pair, lower rate over higher | log (Katz), ratio | upper bound < 0.8 |
//! | `disparate_impact` | unprivileged over privileged (AIF360) | log (Katz), ratio | upper < threshold or lower > 1/threshold |
//! | `equalized_odds_difference` | the worst-case TPR/FPR spread | bootstrap percentile (stratified, seeded by the window) | lower bound > threshold |
//!
//! The pairwise rules test k(k−1)/2 pairs of k groups: each pair's interval is taken at
//! 1 − (1 − confidence)/pairs (Bonferroni), so that the chance of any false alert in a
//! report stays within 1 − confidence when no pair truly differs by the threshold. An alert
//! carries its interval, the confidence, and its **evidence**: the highest (family-wise)
//! confidence at which the interval still excludes the threshold.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::evidence::{
    Bounds, bootstrap_evidence_above, evidence_level, log_ratio, newcombe_difference,
};
use crate::metrics::{GroupStats, Privileged, Report, Tally, percentile};

/// When a report raises alerts (`[processors.fairness.config.alerts]`, and per outcome
/// `[processors.fairness.config.outcome_alerts.OUTCOME]`). A metric that is undefined
/// raises none.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertThresholds {
    /// Alert when two groups' selection rates differ by more than this.
    pub demographic_parity_difference: Option<f64>,
    /// Alert when AIF360's disparate impact is below this (or above its inverse).
    pub disparate_impact: Option<f64>,
    /// Alert when the equalized odds difference (worst case) exceeds this.
    pub equalized_odds_difference: Option<f64>,
    /// Alert on groups whose rate is below four fifths of another's.
    pub four_fifths: bool,
    /// How sure an alert must be: the interval at this confidence must exclude the
    /// threshold (family-wise over a rule's pairs of groups).
    pub confidence: f64,
    /// Bootstrap resamples for the equalized odds difference's interval.
    pub resamples: u32,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            demographic_parity_difference: Some(0.2),
            disparate_impact: Some(0.8),
            equalized_odds_difference: Some(0.2),
            four_fifths: true,
            confidence: 0.95,
            resamples: 1_000,
        }
    }
}

impl AlertThresholds {
    /// Every problem, each prefixed with `at` (where the table is).
    pub fn validate(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut range = |name: &str, v: Option<f64>, lo: f64, hi: f64, hi_inclusive: bool| {
            if let Some(v) = v
                && !(v > lo && (v < hi || (hi_inclusive && v == hi)))
            {
                let close = if hi_inclusive { ']' } else { ')' };
                problems.push(format!("{at}.{name} = {v}: must be in ({lo}, {hi}{close}"));
            }
        };
        range(
            "demographic_parity_difference",
            self.demographic_parity_difference,
            0.0,
            1.0,
            false,
        );
        range("disparate_impact", self.disparate_impact, 0.0, 1.0, true);
        range(
            "equalized_odds_difference",
            self.equalized_odds_difference,
            0.0,
            1.0,
            false,
        );
        range("confidence", Some(self.confidence), 0.5, 1.0, false);
        if self.equalized_odds_difference.is_some() && self.resamples < 100 {
            problems.push(format!(
                "{at}.resamples = {}: at least 100 for a bootstrap interval",
                self.resamples
            ));
        }
        problems
    }
}

/// One alert: what crossed which threshold, and how sure that is.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The rule (`demographic_parity_difference`, `four_fifths`, …).
    pub metric: &'static str,
    /// The point value of what crossed: the pair's difference or ratio, the metric.
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// The groups concerned.
    pub groups: Vec<String>,
    /// The interval that excludes the threshold, at `confidence` (family-wise).
    pub interval: Bounds,
    /// The configured confidence.
    pub confidence: f64,
    /// The highest confidence at which the interval still excludes the threshold.
    pub evidence: f64,
    /// How the interval was computed (`newcombe`, `log-ratio`, `bootstrap`).
    pub method: &'static str,
}

/// A window's intervals and alerts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    /// Intervals of the report's metrics at the configured confidence (the pairwise
    /// metrics' family-wise), by metric name.
    pub intervals: BTreeMap<String, Bounds>,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// The per-pair confidence that keeps `confidence` over `pairs` comparisons.
fn per_pair(confidence: f64, pairs: usize) -> f64 {
    1.0 - (1.0 - confidence) / pairs.max(1) as f64
}

/// Intervals and alerts of report `r` over `tally` (the window's counts, for the
/// bootstrap), seeded by `seed` (the window's).
pub fn assess(
    t: &AlertThresholds,
    r: &Report,
    tally: &Tally,
    privileged: Option<&Privileged>,
    seed: u64,
) -> Assessment {
    let mut out = Assessment::default();
    let c = t.confidence;
    // Groups with outcomes, ordered by rate (highest first), and their pairs.
    let mut groups: Vec<&GroupStats> = r
        .groups
        .iter()
        .filter(|g| g.counts.n > 0 && !g.selection_rate.is_nan())
        .collect();
    groups.sort_by(|a, b| b.selection_rate.total_cmp(&a.selection_rate));
    let pairs: Vec<(&GroupStats, &GroupStats)> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, hi)| groups[i + 1..].iter().map(move |lo| (*hi, *lo)))
        .collect();
    let diff = |hi: &GroupStats, lo: &GroupStats, conf: f64| {
        newcombe_difference(
            hi.counts.selected,
            hi.counts.n,
            lo.counts.selected,
            lo.counts.n,
            conf,
        )
    };
    let ratio = |lo: &GroupStats, hi: &GroupStats, conf: f64| {
        log_ratio(
            lo.counts.selected,
            lo.counts.n,
            hi.counts.selected,
            hi.counts.n,
            conf,
        )
    };
    let pair_c = |conf: f64| per_pair(conf, pairs.len());
    if let (Some(hi), Some(lo)) = (groups.first(), groups.last())
        && groups.len() >= 2
    {
        if let Some(b) = diff(hi, lo, pair_c(c)) {
            out.intervals
                .insert("demographic_parity_difference".into(), b);
        }
        if let Some(b) = ratio(lo, hi, pair_c(c)) {
            out.intervals.insert("demographic_parity_ratio".into(), b);
        }
    }
    let aif = r.privileged_counts.filter(|(p, u)| p.n > 0 && u.n > 0);
    if let Some((p, u)) = aif {
        if let Some(b) = log_ratio(u.selected, u.n, p.selected, p.n, c) {
            out.intervals.insert("disparate_impact".into(), b);
        }
        if let Some(b) = newcombe_difference(u.selected, u.n, p.selected, p.n, c) {
            out.intervals
                .insert("statistical_parity_difference".into(), b);
        }
    }
    let eod_replicates = match (r.equalized_odds_difference, t.resamples) {
        (Some(eod), n) if !eod.is_nan() && n > 0 && groups.len() >= 2 => {
            let (attributes, min) = (r.attributes.clone(), r.min_group_size);
            let values = tally.bootstrap_values(n, seed, |resampled| {
                resampled
                    .report(&attributes, true, min, None)
                    .equalized_odds_difference
                    .unwrap_or(f64::NAN)
            });
            let tail = (1.0 - c) / 2.0;
            if !values.is_empty() {
                out.intervals.insert(
                    "equalized_odds_difference".into(),
                    Bounds {
                        low: percentile(&values, tail),
                        high: percentile(&values, 1.0 - tail),
                    },
                );
            }
            values
        }
        _ => Vec::new(),
    };
    if groups.len() < 2 {
        return out;
    }

    // The pair with the strongest evidence for a rule, if it crosses at `c`.
    let strongest = |excludes: &dyn Fn(&GroupStats, &GroupStats, f64) -> bool| {
        pairs
            .iter()
            .filter(|(a, b)| excludes(a, b, c))
            .map(|&(a, b)| (evidence_level(|conf| excludes(a, b, conf)), a, b))
            .max_by(|x, y| x.0.total_cmp(&y.0))
    };
    if let Some(limit) = t.demographic_parity_difference {
        let excludes = |hi: &GroupStats, lo: &GroupStats, conf: f64| {
            diff(hi, lo, pair_c(conf)).is_some_and(|b| b.low > limit)
        };
        if let Some((evidence, hi, lo)) = strongest(&excludes)
            && let Some(interval) = diff(hi, lo, pair_c(c))
        {
            out.alerts.push(Alert {
                metric: "demographic_parity_difference",
                value: hi.selection_rate - lo.selection_rate,
                threshold: limit,
                groups: vec![hi.name(), lo.name()],
                interval,
                confidence: c,
                evidence,
                method: "newcombe",
            });
        }
    }
    if let (Some(limit), Some((p, u)), Some(privileged)) = (t.disparate_impact, aif, privileged) {
        let excludes = |conf: f64| {
            log_ratio(u.selected, u.n, p.selected, p.n, conf)
                .is_some_and(|b| b.high < limit || b.low > 1.0 / limit)
        };
        if excludes(c)
            && let (Some(interval), Some(value)) = (
                log_ratio(u.selected, u.n, p.selected, p.n, c),
                r.disparate_impact,
            )
        {
            out.alerts.push(Alert {
                metric: "disparate_impact",
                value,
                threshold: limit,
                groups: vec![format!("{}={}", privileged.attribute, privileged.value)],
                interval,
                confidence: c,
                evidence: evidence_level(excludes),
                method: "log-ratio",
            });
        }
    }
    if let (Some(limit), Some(eod), Some(&interval)) = (
        t.equalized_odds_difference,
        r.equalized_odds_difference,
        out.intervals.get("equalized_odds_difference"),
    ) && interval.low > limit
    {
        out.alerts.push(Alert {
            metric: "equalized_odds_difference",
            value: eod,
            threshold: limit,
            groups: widest_error_rate_gap(&groups),
            interval,
            confidence: c,
            evidence: bootstrap_evidence_above(&eod_replicates, limit),
            method: "bootstrap",
        });
    }
    if t.four_fifths {
        const RULE: f64 = 0.8;
        let excludes = |hi: &GroupStats, lo: &GroupStats, conf: f64| {
            ratio(lo, hi, pair_c(conf)).is_some_and(|b| b.high < RULE)
        };
        // The lower group of every pair that crosses, once each, in rate order.
        let mut flagged: Vec<String> = Vec::new();
        for (hi, lo) in &pairs {
            let name = lo.name();
            if !flagged.contains(&name) && excludes(hi, lo, c) {
                flagged.push(name);
            }
        }
        flagged.sort_by_key(|name| groups.iter().position(|g| g.name() == *name));
        if let Some((evidence, hi, lo)) = strongest(&excludes)
            && let Some(interval) = ratio(lo, hi, pair_c(c))
        {
            out.alerts.push(Alert {
                metric: "four_fifths",
                value: lo.selection_rate / hi.selection_rate,
                threshold: RULE,
                groups: flagged,
                interval,
                confidence: c,
                evidence,
                method: "log-ratio",
            });
        }
    }
    out
}

/// The two groups whose true (or false) positive rates are furthest apart, whichever
/// spread is the larger: those the equalized odds difference is about.
fn widest_error_rate_gap(groups: &[&GroupStats]) -> Vec<String> {
    let extremes = |rate: fn(&GroupStats) -> Option<f64>| {
        let rated: Vec<(f64, &GroupStats)> = groups
            .iter()
            .filter_map(|g| rate(g).filter(|r| !r.is_nan()).map(|r| (r, *g)))
            .collect();
        let hi = rated.iter().max_by(|a, b| a.0.total_cmp(&b.0))?;
        let lo = rated.iter().min_by(|a, b| a.0.total_cmp(&b.0))?;
        Some((hi.0 - lo.0, hi.1, lo.1))
    };
    [
        extremes(|g| g.true_positive_rate),
        extremes(|g| g.false_positive_rate),
    ]
    .into_iter()
    .flatten()
    .max_by(|a, b| a.0.total_cmp(&b.0))
    .map(|(_, hi, lo)| vec![hi.name(), lo.name()])
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tally of one attribute: (group, selected, n), no labels.
    fn tally(groups: &[(&str, u64, u64)]) -> Tally {
        let mut t = Tally::default();
        for &(g, selected, n) in groups {
            for i in 0..n {
                t.add(vec![g.to_owned()], i < selected, None);
            }
        }
        t
    }

    fn run(groups: &[(&str, u64, u64)], rules: &AlertThresholds) -> Assessment {
        let t = tally(groups);
        let attributes = vec!["gender".to_owned()];
        let r = t.report(&attributes, false, 30, None);
        assess(rules, &r, &t, None, 7)
    }

    fn metrics(a: &Assessment) -> Vec<&'static str> {
        a.alerts.iter().map(|a| a.metric).collect()
    }

    #[test]
    fn a_gap_that_small_groups_cannot_tell_from_noise_raises_nothing() {
        // 40 % against 25 % of 100 each: the point rules saw a four-fifths violation
        // (0.625) and a gap of 0.15; the intervals cannot exclude 0.8 or 0.2.
        let a = run(
            &[("a", 40, 100), ("b", 25, 100)],
            &AlertThresholds::default(),
        );
        assert!(a.alerts.is_empty(), "{:?}", a.alerts);
        let dpd = a.intervals["demographic_parity_difference"];
        assert!(dpd.low < 0.15 && 0.15 < dpd.high, "{dpd:?}");
    }

    #[test]
    fn a_clear_disparity_raises_alerts_with_their_evidence() {
        let rules = AlertThresholds::default();
        let a = run(
            &[("a", 600, 1000), ("b", 200, 1000), ("c", 390, 1000)],
            &rules,
        );
        assert_eq!(
            metrics(&a),
            ["demographic_parity_difference", "four_fifths"]
        );
        let dpd = &a.alerts[0];
        assert_eq!(dpd.groups, ["gender=a", "gender=b"]);
        assert!((dpd.value - 0.4).abs() < 1e-12);
        assert!(
            dpd.interval.low > 0.2 && dpd.evidence > rules.confidence,
            "{dpd:?}"
        );
        assert_eq!(dpd.method, "newcombe");
        let ff = &a.alerts[1];
        // b (a third of a's rate, half of c's) and c (0.65 of a's) are surely below four
        // fifths; a is the highest.
        assert_eq!(ff.groups, ["gender=c", "gender=b"], "{ff:?}");
        assert!(ff.interval.high < 0.8);
    }

    #[test]
    fn more_confidence_needs_more_evidence() {
        let groups = [("a", 350, 1000), ("b", 100, 1000)];
        let at = |confidence| {
            let rules = AlertThresholds {
                confidence,
                ..AlertThresholds::default()
            };
            run(&groups, &rules)
        };
        let loose = at(0.9);
        let dpd = loose
            .alerts
            .iter()
            .find(|a| a.metric == "demographic_parity_difference")
            .expect("alerted at 90 %");
        // The evidence is where the interval reaches the threshold (one pair: no
        // correction)…
        let edge = newcombe_difference(350, 1000, 100, 1000, dpd.evidence).expect("an interval");
        assert!((edge.low - 0.2).abs() < 1e-9, "{edge:?}");
        // …and a confidence above it raises nothing.
        let strict = at(dpd.evidence + (1.0 - dpd.evidence) / 2.0);
        assert!(!metrics(&strict).contains(&"demographic_parity_difference"));
    }

    #[test]
    fn disparate_impact_compares_the_unprivileged_with_the_privileged() {
        let t = tally(&[("male", 500, 1000), ("female", 300, 1000), ("x", 20, 40)]);
        let attributes = vec!["gender".to_owned()];
        let privileged = Privileged {
            attribute: "gender".into(),
            value: "male".into(),
        };
        let r = t.report(&attributes, false, 30, Some(&privileged));
        let a = assess(&AlertThresholds::default(), &r, &t, Some(&privileged), 1);
        let di = a
            .alerts
            .iter()
            .find(|a| a.metric == "disparate_impact")
            .expect("disparate impact");
        assert_eq!(di.value, r.disparate_impact.expect("defined"));
        assert!(di.interval.high < 0.8 && di.interval.low < di.value);
        assert_eq!(di.groups, ["gender=male"]);
        assert!(a.intervals.contains_key("statistical_parity_difference"));
    }

    #[test]
    fn equalized_odds_uses_a_seeded_bootstrap() {
        let mut t = Tally::default();
        let mut add = |g: &str, predicted: bool, actual: bool, n: u64| {
            for _ in 0..n {
                t.add(vec![g.to_owned()], predicted, Some(actual));
            }
        };
        // a: TPR 0.9, FPR 0.1; b: TPR 0.4, FPR 0.1.
        add("a", true, true, 90);
        add("a", false, true, 10);
        add("a", true, false, 10);
        add("a", false, false, 90);
        add("b", true, true, 40);
        add("b", false, true, 60);
        add("b", true, false, 10);
        add("b", false, false, 90);
        let attributes = vec!["gender".to_owned()];
        let r = t.report(&attributes, true, 30, None);
        let rules = AlertThresholds::default();
        let a = assess(&rules, &r, &t, None, 42);
        assert_eq!(
            a,
            assess(&rules, &r, &t, None, 42),
            "the same seed, the same figures"
        );
        let eod = a
            .alerts
            .iter()
            .find(|a| a.metric == "equalized_odds_difference")
            .expect("equalized odds");
        assert!((eod.value - 0.5).abs() < 1e-12);
        assert!(
            eod.interval.low > 0.2 && eod.interval.high >= 0.5,
            "{eod:?}"
        );
        assert_eq!(eod.method, "bootstrap");
        assert_eq!(eod.groups, ["gender=a", "gender=b"]);
        assert!(eod.evidence > 0.95);
    }

    #[test]
    fn thresholds_are_validated_by_name() {
        let bad = AlertThresholds {
            confidence: 1.0,
            disparate_impact: Some(1.5),
            resamples: 10,
            ..AlertThresholds::default()
        };
        let problems = bad.validate("alerts");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("alerts.disparate_impact = 1.5"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("alerts.confidence = 1"),
            "{problems:?}"
        );
        assert!(AlertThresholds::default().validate("alerts").is_empty());
    }
}
