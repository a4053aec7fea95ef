//! How sure a window's figures are: confidence intervals for rates, for differences and
//! ratios of rates, and a bootstrap for the equalized odds difference, which has no closed
//! form. Alerts are raised only when an interval excludes the threshold (see
//! [`crate::stream`]), so that a small group's sampling noise does not raise them.
//!
//! The closed forms are those of statsmodels (checked against it to 1e-9 in
//! `tests/golden.rs`):
//! - a rate: Wilson's score interval (`proportion_confint(method="wilson")`);
//! - a difference of two rates: Newcombe's hybrid score interval, built from the two
//!   Wilson intervals (`confint_proportions_2indep(method="newcomb", compare="diff")`);
//! - a ratio of two rates: the log (Katz) interval
//!   (`confint_proportions_2indep(method="log", compare="ratio")`); with a zero count, whose
//!   logarithm is undefined, the same with half a count added to each count and each total
//!   (`method="log-adjusted"`).
//!
//! The equalized odds difference takes [`crate::metrics::Tally::bootstrap`] (stratified by
//! group, seeded from the window, so the same input gives the same interval in every run).
//!
//! [`evidence_level`] turns an interval into a single figure: the highest confidence at
//! which it still excludes the threshold (0.999 means that even the 99.9 % interval lies
//! beyond it).

use serde::Serialize;

/// A two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// The standard normal quantile Φ⁻¹(p) for 0 < p < 1, to about 1e-15 (Acklam's rational
/// approximation, refined by one Halley step on `erfc`).
pub fn norm_ppf(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let x = if p < LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Halley step on Φ(x) − p.
    let e = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// The two-sided critical value of a `confidence` interval: Φ⁻¹(1 − (1 − confidence)/2).
pub fn critical(confidence: f64) -> f64 {
    // Φ⁻¹(1 − α/2) = −Φ⁻¹(α/2), computed on the small side for precision.
    -norm_ppf((1.0 - confidence) / 2.0)
}

/// Wilson's score interval for `x` of `n`; `None` when `n` is 0.
pub fn wilson(x: u64, n: u64, confidence: f64) -> Option<Bounds> {
    if n == 0 {
        return None;
    }
    let (x, n) = (x as f64, n as f64);
    let z = critical(confidence);
    let z2 = z * z;
    let p = x / n;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    // Clipped to [0, 1], as statsmodels does (it only trims rounding at 0 or n of n).
    Some(Bounds {
        low: (center - half).clamp(0.0, 1.0),
        high: (center + half).clamp(0.0, 1.0),
    })
}

/// Newcombe's hybrid score interval for the difference of rates x1/n1 − x2/n2; `None`
/// when a total is 0.
pub fn newcombe_difference(x1: u64, n1: u64, x2: u64, n2: u64, confidence: f64) -> Option<Bounds> {
    let w1 = wilson(x1, n1, confidence)?;
    let w2 = wilson(x2, n2, confidence)?;
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let d = p1 - p2;
    Some(Bounds {
        low: d - ((p1 - w1.low).powi(2) + (w2.high - p2).powi(2)).sqrt(),
        high: d + ((w1.high - p1).powi(2) + (p2 - w2.low).powi(2)).sqrt(),
    })
}

/// The log (Katz) interval for the ratio of rates (x1/n1) / (x2/n2), with half a count
/// added to each count and total when a count is 0; `None` when a total is 0.
pub fn log_ratio(x1: u64, n1: u64, x2: u64, n2: u64, confidence: f64) -> Option<Bounds> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let half = if x1 == 0 || x2 == 0 { 0.5 } else { 0.0 };
    let (x1, n1, x2, n2) = (
        x1 as f64 + half,
        n1 as f64 + half,
        x2 as f64 + half,
        n2 as f64 + half,
    );
    let log_ratio = ((x1 / n1) / (x2 / n2)).ln();
    let se = (1.0 / x1 - 1.0 / n1 + 1.0 / x2 - 1.0 / n2).sqrt();
    let d = critical(confidence) * se;
    Some(Bounds {
        low: (log_ratio - d).exp(),
        high: (log_ratio + d).exp(),
    })
}

/// The highest confidence in [0, 1) at which `excludes(confidence)` still holds, for a
/// test whose intervals widen with the confidence (so that it holds up to a point and no
/// further); 0 when it never holds. To 1e-12.
pub fn evidence_level(excludes: impl Fn(f64) -> bool) -> f64 {
    const TOP: f64 = 1.0 - 1e-12;
    if !excludes(0.0) {
        return 0.0;
    }
    if excludes(TOP) {
        return TOP;
    }
    let (mut lo, mut hi) = (0.0, TOP);
    while hi - lo > 1e-12 {
        let mid = (lo + hi) / 2.0;
        if excludes(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The share of sorted bootstrap replicates at or below `threshold`.
pub fn share_at_most(sorted: &[f64], threshold: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.partition_point(|v| *v <= threshold) as f64 / sorted.len() as f64
}

/// The evidence that a bootstrapped statistic exceeds `threshold`: the highest confidence
/// whose percentile interval lies above it, 1 − 2 × the share of replicates at or below it
/// (0 when that share is a half or more).
pub fn bootstrap_evidence_above(sorted: &[f64], threshold: f64) -> f64 {
    (1.0 - 2.0 * share_at_most(sorted, threshold)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_are_exact_to_double_precision() {
        // Reference values (scipy.stats.norm.ppf).
        for (p, x) in [
            (0.975, 1.959_963_984_540_054),
            (0.995, 2.575_829_303_548_900_4),
            (0.5, 0.0),
            (0.001, -3.090_232_306_167_813_5),
            (1e-10, -6.361_340_902_404_056),
            (0.2, -0.841_621_233_572_914_3),
        ] {
            assert!(
                (norm_ppf(p) - x).abs() < 1e-13,
                "{p}: {} vs {x}",
                norm_ppf(p)
            );
        }
        assert!((critical(0.95) - 1.959_963_984_540_054).abs() < 1e-13);
    }

    #[test]
    fn wilson_by_hand_and_at_the_edges() {
        // 0 of 10 at 95 %: [0, z²/(n + z²)].
        let w = wilson(0, 10, 0.95).unwrap();
        let z2 = critical(0.95).powi(2);
        assert!(w.low.abs() < 1e-15);
        assert!((w.high - z2 / (10.0 + z2)).abs() < 1e-15);
        let full = wilson(10, 10, 0.95).unwrap();
        assert!((full.high - 1.0).abs() < 1e-15 && (full.low - (1.0 - w.high)).abs() < 1e-15);
        assert!(wilson(0, 0, 0.95).is_none());
    }

    #[test]
    fn intervals_widen_with_confidence_and_shrink_with_data() {
        let narrow = newcombe_difference(30, 100, 20, 100, 0.9).unwrap();
        let wide = newcombe_difference(30, 100, 20, 100, 0.99).unwrap();
        assert!(wide.low < narrow.low && wide.high > narrow.high);
        let more = newcombe_difference(300, 1000, 200, 1000, 0.9).unwrap();
        assert!(more.high - more.low < narrow.high - narrow.low);
        assert!(more.low < 0.1 && 0.1 < more.high);
        let r = log_ratio(20, 100, 40, 100, 0.95).unwrap();
        assert!(r.low < 0.5 && 0.5 < r.high);
        // A zero count still gives an interval (half a count added).
        let z = log_ratio(0, 50, 20, 50, 0.95).unwrap();
        assert!(z.low > 0.0 && z.high < 1.0);
    }

    #[test]
    fn the_evidence_level_is_where_the_interval_reaches_the_threshold() {
        // 60 of 100 against 20 of 100, threshold 0.2: the level at which the lower bound
        // of the difference equals 0.2.
        let excludes =
            |c: f64| newcombe_difference(60, 100, 20, 100, c).is_some_and(|i| i.low > 0.2);
        let level = evidence_level(excludes);
        let at = newcombe_difference(60, 100, 20, 100, level).unwrap();
        assert!((at.low - 0.2).abs() < 1e-9, "{level}: {at:?}");
        assert!(level > 0.99);
        assert_eq!(evidence_level(|_| false), 0.0);
    }

    #[test]
    fn bootstrap_evidence_counts_the_replicates_beyond_the_threshold() {
        let sorted: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        // 21 of 100 replicates at or below 0.2: the 58 % interval is the widest above it.
        assert!((bootstrap_evidence_above(&sorted, 0.2) - 0.58).abs() < 1e-12);
        assert_eq!(bootstrap_evidence_above(&sorted, 0.9), 0.0);
        assert_eq!(bootstrap_evidence_above(&sorted, -1.0), 1.0);
    }
}
