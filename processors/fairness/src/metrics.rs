//! Group fairness metrics, defined as Fairlearn and AIF360 define them, over counts that
//! update in O(1) per outcome (so windows can keep them per group and merge them).
//!
//! Groups are the combinations of sensitive-attribute values that occur (Fairlearn's
//! `MetricFrame` with several sensitive features). Rates follow Fairlearn: selection rate =
//! predicted positives / rows; true/false positive rates from the confusion matrix, 0 when
//! a group has no actual positives (negatives) — scikit-learn's normalised confusion
//! matrix, which Fairlearn uses. Differences and ratios follow `MetricFrame.difference` /
//! `ratio` (`between_groups` and `to_overall`); a ratio of 0/0 is NaN (`null` in JSON).

use std::collections::BTreeMap;

use serde::Serialize;

/// Counts of one group (or of everyone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Outcomes.
    pub n: u64,
    /// Predicted positive.
    pub selected: u64,
    /// Outcomes with a ground-truth label.
    pub labelled: u64,
    /// Predicted positive, actually positive.
    pub tp: u64,
    /// Predicted positive, actually negative.
    pub fp: u64,
    /// Predicted negative, actually positive.
    pub fn_: u64,
    /// Predicted negative, actually negative.
    pub tn: u64,
}

impl Counts {
    /// Adds one outcome.
    pub fn add(&mut self, predicted: bool, actual: Option<bool>) {
        self.n += 1;
        self.selected += u64::from(predicted);
        if let Some(actual) = actual {
            self.labelled += 1;
            match (predicted, actual) {
                (true, true) => self.tp += 1,
                (true, false) => self.fp += 1,
                (false, true) => self.fn_ += 1,
                (false, false) => self.tn += 1,
            }
        }
    }

    /// Adds another group's counts (windows merging panes).
    pub fn merge(&mut self, other: &Counts) {
        self.n += other.n;
        self.selected += other.selected;
        self.labelled += other.labelled;
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
    }

    /// Predicted positives / outcomes (NaN with none).
    pub fn selection_rate(&self) -> f64 {
        ratio_or_nan(self.selected, self.n)
    }

    /// TP / (TP + FN); 0 without actual positives (scikit-learn's normalised matrix).
    pub fn true_positive_rate(&self) -> f64 {
        ratio_or_zero(self.tp, self.tp + self.fn_)
    }

    /// FP / (FP + TN); 0 without actual negatives.
    pub fn false_positive_rate(&self) -> f64 {
        ratio_or_zero(self.fp, self.fp + self.tn)
    }
}

fn ratio_or_nan(a: u64, b: u64) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

fn ratio_or_zero(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// How Fairlearn's `difference`/`ratio` compare groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Largest group value against the smallest.
    BetweenGroups,
    /// Each group against the overall value.
    ToOverall,
}

/// `MetricFrame.difference(method)`: max − min, or the largest |group − overall|.
pub fn difference(groups: &[f64], overall: f64, method: Method) -> f64 {
    match method {
        Method::BetweenGroups => nan_max(groups.iter().copied()) - nan_min(groups.iter().copied()),
        Method::ToOverall => nan_max(groups.iter().map(|g| (g - overall).abs())),
    }
}

/// `MetricFrame.ratio(method)`: min / max, or the smallest of min(g/o, o/g).
pub fn ratio(groups: &[f64], overall: f64, method: Method) -> f64 {
    match method {
        Method::BetweenGroups => nan_min(groups.iter().copied()) / nan_max(groups.iter().copied()),
        Method::ToOverall => nan_min(groups.iter().map(|g| {
            let r = g / overall;
            if r > 1.0 { 1.0 / r } else { r }
        })),
    }
}

/// pandas' `max` skips NaN; all NaN (or none) gives NaN.
fn nan_max(values: impl Iterator<Item = f64>) -> f64 {
    values
        .filter(|v| !v.is_nan())
        .fold(f64::NAN, |m, v| if m.is_nan() || v > m { v } else { m })
}

fn nan_min(values: impl Iterator<Item = f64>) -> f64 {
    values
        .filter(|v| !v.is_nan())
        .fold(f64::NAN, |m, v| if m.is_nan() || v < m { v } else { m })
}

/// One group's figures in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStats {
    /// Attribute → value.
    pub group: BTreeMap<String, String>,
    /// Its counts (sample sizes).
    pub counts: Counts,
    /// Selection rate.
    pub selection_rate: f64,
    /// True positive rate (with labels).
    pub true_positive_rate: Option<f64>,
    /// False positive rate (with labels).
    pub false_positive_rate: Option<f64>,
    /// Selection rate below 0.8 × the highest group's (the four-fifths rule).
    pub four_fifths_violation: bool,
}

impl GroupStats {
    /// Its name in reports and alerts: `attribute=value` pairs joined by commas.
    pub fn name(&self) -> String {
        self.group
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Privileged vs unprivileged, as AIF360 takes them: one attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileged {
    /// The attribute.
    pub attribute: String,
    /// Its privileged value; every other value is unprivileged.
    pub value: String,
}

/// Every metric for one set of outcomes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The sensitive attributes, in the order groups are keyed.
    pub attributes: Vec<String>,
    /// Groups smaller than this were left out of the comparisons (listed, not hidden).
    pub min_group_size: u64,
    /// Everyone.
    pub overall: GroupStats,
    /// Groups that count, ordered by key.
    pub groups: Vec<GroupStats>,
    /// Groups too small to count.
    pub excluded_groups: Vec<GroupStats>,
    /// Fairlearn `demographic_parity_difference` (between groups).
    pub demographic_parity_difference: f64,
    /// The same, `method="to_overall"`.
    pub demographic_parity_difference_to_overall: f64,
    /// Fairlearn `demographic_parity_ratio` (between groups).
    pub demographic_parity_ratio: f64,
    /// The same, `method="to_overall"`.
    pub demographic_parity_ratio_to_overall: f64,
    /// With labels: Fairlearn `equalized_odds_difference` (`agg="worst_case"`).
    pub equalized_odds_difference: Option<f64>,
    /// `agg="mean"`.
    pub equalized_odds_difference_mean: Option<f64>,
    /// Fairlearn `equalized_odds_ratio` (`agg="worst_case"`).
    pub equalized_odds_ratio: Option<f64>,
    /// `agg="mean"`.
    pub equalized_odds_ratio_mean: Option<f64>,
    /// Fairlearn `equal_opportunity_difference` (TPR between groups).
    pub equal_opportunity_difference: Option<f64>,
    /// Fairlearn `equal_opportunity_ratio`.
    pub equal_opportunity_ratio: Option<f64>,
    /// AIF360 `disparate_impact`: SR(unprivileged) / SR(privileged).
    pub disparate_impact: Option<f64>,
    /// AIF360 `statistical_parity_difference`: SR(unprivileged) − SR(privileged).
    pub statistical_parity_difference: Option<f64>,
    /// With a privileged value: the (privileged, unprivileged) counts the two AIF360
    /// metrics compare.
    #[serde(skip)]
    pub privileged_counts: Option<(Counts, Counts)>,
}

/// Outcomes grouped by their sensitive values, ready to report.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Group key (values in attribute order) → counts.
    pub groups: BTreeMap<Vec<String>, Counts>,
}

impl Tally {
    /// Adds one outcome of the group `key`.
    pub fn add(&mut self, key: Vec<String>, predicted: bool, actual: Option<bool>) {
        self.groups.entry(key).or_default().add(predicted, actual);
    }

    /// The report. `labelled`: whether ground truth was given (the error-rate metrics).
    pub fn report(
        &self,
        attributes: &[String],
        labelled: bool,
        min_group_size: u64,
        privileged: Option<&Privileged>,
    ) -> Report {
        let stats = |key: &[String], counts: &Counts| GroupStats {
            group: attributes
                .iter()
                .cloned()
                .zip(key.iter().cloned())
                .collect(),
            counts: *counts,
            selection_rate: counts.selection_rate(),
            true_positive_rate: labelled.then(|| counts.true_positive_rate()),
            false_positive_rate: labelled.then(|| counts.false_positive_rate()),
            four_fifths_violation: false,
        };
        let mut overall_counts = Counts::default();
        for c in self.groups.values() {
            overall_counts.merge(c);
        }
        let overall = stats(&[], &overall_counts);
        let (mut groups, excluded): (Vec<GroupStats>, Vec<GroupStats>) = self
            .groups
            .iter()
            .map(|(k, c)| stats(k, c))
            .partition(|g| g.counts.n >= min_group_size);
        let sr: Vec<f64> = groups.iter().map(|g| g.selection_rate).collect();
        let best = nan_max(sr.iter().copied());
        for g in &mut groups {
            g.four_fifths_violation = g.selection_rate < 0.8 * best;
        }
        let rates = |f: fn(&GroupStats) -> f64| -> Vec<f64> { groups.iter().map(f).collect() };
        let dp = |m| difference(&sr, overall.selection_rate, m);
        let dpr = |m| ratio(&sr, overall.selection_rate, m);
        let (mut eod, mut eodm, mut eor, mut eorm, mut eqd, mut eqr) =
            (None, None, None, None, None, None);
        if labelled {
            let tpr = rates(|g| g.true_positive_rate.unwrap_or(f64::NAN));
            let fpr = rates(|g| g.false_positive_rate.unwrap_or(f64::NAN));
            let o_tpr = overall_counts.true_positive_rate();
            let o_fpr = overall_counts.false_positive_rate();
            let (dt, df) = (
                difference(&tpr, o_tpr, Method::BetweenGroups),
                difference(&fpr, o_fpr, Method::BetweenGroups),
            );
            let (rt, rf) = (
                ratio(&tpr, o_tpr, Method::BetweenGroups),
                ratio(&fpr, o_fpr, Method::BetweenGroups),
            );
            eod = Some(nan_max([dt, df].into_iter()));
            eodm = Some((dt + df) / 2.0);
            eor = Some(nan_min([rt, rf].into_iter()));
            eorm = Some((rt + rf) / 2.0);
            eqd = Some(dt);
            eqr = Some(rt);
        }
        let privileged_counts = privileged.and_then(|p| {
            let idx = attributes.iter().position(|a| *a == p.attribute)?;
            let (mut privileged_counts, mut others) = (Counts::default(), Counts::default());
            for (k, c) in &self.groups {
                if k[idx] == p.value {
                    privileged_counts.merge(c);
                } else {
                    others.merge(c);
                }
            }
            Some((privileged_counts, others))
        });
        let (di, spd) = match privileged_counts {
            Some((privileged, unprivileged)) => {
                let (privileged_rate, unprivileged_rate) =
                    (privileged.selection_rate(), unprivileged.selection_rate());
                (
                    Some(unprivileged_rate / privileged_rate),
                    Some(unprivileged_rate - privileged_rate),
                )
            }
            None => (None, None),
        };
        Report {
            attributes: attributes.to_vec(),
            min_group_size,
            demographic_parity_difference: dp(Method::BetweenGroups),
            demographic_parity_difference_to_overall: dp(Method::ToOverall),
            demographic_parity_ratio: dpr(Method::BetweenGroups),
            demographic_parity_ratio_to_overall: dpr(Method::ToOverall),
            equalized_odds_difference: eod,
            equalized_odds_difference_mean: eodm,
            equalized_odds_ratio: eor,
            equalized_odds_ratio_mean: eorm,
            equal_opportunity_difference: eqd,
            equal_opportunity_ratio: eqr,
            disparate_impact: di,
            statistical_parity_difference: spd,
            privileged_counts,
            overall,
            groups,
            excluded_groups: excluded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str) -> Vec<String> {
        vec![v.to_owned()]
    }

    #[test]
    fn demographic_parity_by_hand() {
        // a: 3 of 4 selected; b: 1 of 4.
        let mut t = Tally::default();
        for (g, p) in [
            ("a", 1),
            ("a", 1),
            ("a", 1),
            ("a", 0),
            ("b", 1),
            ("b", 0),
            ("b", 0),
            ("b", 0),
        ] {
            t.add(key(g), p == 1, None);
        }
        let r = t.report(&["g".into()], false, 0, None);
        assert_eq!(r.demographic_parity_difference, 0.5);
        assert_eq!(r.demographic_parity_ratio, 1.0 / 3.0);
        assert_eq!(r.demographic_parity_difference_to_overall, 0.25);
        assert_eq!(r.demographic_parity_ratio_to_overall, 0.5);
        assert!(r.groups[1].four_fifths_violation && !r.groups[0].four_fifths_violation);
        assert!(r.equalized_odds_difference.is_none());
    }

    #[test]
    fn small_groups_are_listed_but_not_compared() {
        let mut t = Tally::default();
        for _ in 0..10 {
            t.add(key("big"), true, None);
        }
        t.add(key("tiny"), false, None);
        let r = t.report(&["g".into()], false, 5, None);
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.excluded_groups.len(), 1);
        assert_eq!(r.demographic_parity_difference, 0.0);
        assert_eq!(r.overall.counts.n, 11);
    }
}

/// A percentile confidence interval from a stratified bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Coverage, e.g. 0.95.
    pub level: f64,
    /// Resamples drawn.
    pub resamples: u32,
}

/// The `q` quantile of sorted values by the nearest rank (NaN when there are none): the
/// bootstrap's percentile intervals.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let i = (q.clamp(0.0, 1.0) * last as f64).round() as usize;
    sorted[i.min(last)]
}

/// xorshift64*: deterministic, no dependency (the bootstrap and tests).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

impl Counts {
    /// Draws `n` outcomes with replacement from this group's own outcomes.
    fn resample(&self, rng: &mut Rng) -> Counts {
        // The group's outcomes as cells: labelled (tp, fp, fn, tn), then unlabelled
        // selected / not selected.
        let unlabelled_selected = self.selected - self.tp - self.fp;
        let unlabelled_other = self.n - self.labelled - unlabelled_selected;
        let cells = [
            self.tp,
            self.fp,
            self.fn_,
            self.tn,
            unlabelled_selected,
            unlabelled_other,
        ];
        let mut out = Counts::default();
        for _ in 0..self.n {
            let mut pick = rng.below(self.n);
            let cell = cells
                .iter()
                .position(|&c| {
                    if pick < c {
                        true
                    } else {
                        pick -= c;
                        false
                    }
                })
                .unwrap_or(5);
            match cell {
                0 => out.add(true, Some(true)),
                1 => out.add(true, Some(false)),
                2 => out.add(false, Some(true)),
                3 => out.add(false, Some(false)),
                4 => out.add(true, None),
                _ => out.add(false, None),
            }
        }
        out
    }
}

impl Tally {
    /// A percentile interval for `metric` by a bootstrap stratified by group (each
    /// group's size fixed, its outcomes resampled), seeded so it is reproducible.
    /// Resamples where the metric is NaN are skipped.
    pub fn bootstrap(
        &self,
        resamples: u32,
        level: f64,
        seed: u64,
        metric: impl Fn(&Tally) -> f64,
    ) -> Interval {
        let values = self.bootstrap_values(resamples, seed, metric);
        let tail = (1.0 - level) / 2.0;
        Interval {
            low: percentile(&values, tail),
            high: percentile(&values, 1.0 - tail),
            level,
            resamples,
        }
    }

    /// The bootstrap's replicates of `metric` (see [`Tally::bootstrap`]), sorted, NaN
    /// left out.
    pub fn bootstrap_values(
        &self,
        resamples: u32,
        seed: u64,
        metric: impl Fn(&Tally) -> f64,
    ) -> Vec<f64> {
        let mut rng = Rng(seed | 1);
        let mut values: Vec<f64> = (0..resamples)
            .map(|_| {
                let resampled = Tally {
                    groups: self
                        .groups
                        .iter()
                        .map(|(k, c)| (k.clone(), c.resample(&mut rng)))
                        .collect(),
                };
                metric(&resampled)
            })
            .filter(|v| !v.is_nan())
            .collect();
        values.sort_by(f64::total_cmp);
        values
    }
}

#[cfg(test)]
mod bootstrap_tests {
    use super::*;

    fn tally(n: usize) -> Tally {
        let mut t = Tally::default();
        for i in 0..n {
            t.add(vec!["a".into()], i % 10 < 6, Some(i % 2 == 0));
            t.add(vec!["b".into()], i % 10 < 3, Some(i % 3 == 0));
        }
        t
    }

    fn dpd(t: &Tally) -> f64 {
        t.report(&["g".into()], true, 0, None)
            .demographic_parity_difference
    }

    #[test]
    fn intervals_cover_the_estimate_shrink_with_data_and_repeat_by_seed() {
        let small = tally(50);
        let large = tally(2_000);
        let i_small = small.bootstrap(300, 0.95, 7, dpd);
        let i_large = large.bootstrap(300, 0.95, 7, dpd);
        for (i, t) in [(i_small, &small), (i_large, &large)] {
            let point = dpd(t);
            assert!(i.low <= point && point <= i.high, "{i:?} vs {point}");
        }
        assert!(i_large.high - i_large.low < i_small.high - i_small.low);
        assert_eq!(small.bootstrap(300, 0.95, 7, dpd), i_small);
        // Resampling keeps group sizes and draws only outcomes the group has.
        let c = small.groups[&vec!["a".to_owned()]];
        let r = c.resample(&mut Rng(3));
        assert_eq!((r.n, r.labelled), (c.n, c.labelled));
    }
}
