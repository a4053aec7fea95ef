//! The confidence intervals against statsmodels 0.15 (and scipy's normal quantile) to 1e-9:
//! Wilson, Newcombe's difference and the log ratio, on hand-picked edge cases (zero counts,
//! all selected, one outcome, large groups) and random ones at several confidences. The
//! Python side is `tests/intervals.py`, run with `.tools/fairness-venv`.

use std::path::{Path, PathBuf};
use std::process::Command;

use insights_fairness::evidence::{critical, log_ratio, newcombe_difference, wilson};
use serde_json::{Value, json};
use testkit::OutputWithin as _;

/// The reference venv; the test fails, never skips, without it (scripts/setup.sh installs it).
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/fairness-venv/bin/python");
    assert!(
        venv.exists(),
        "statsmodels is not installed at {}: run scripts/setup.sh",
        venv.display()
    );
    venv
}

fn close(ours: f64, theirs: &Value, what: &str) {
    let theirs = theirs
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no reference value"));
    assert!(
        (ours - theirs).abs() <= 1e-9,
        "{what}: ours {ours}, statsmodels {theirs}"
    );
}

#[test]
fn intervals_equal_statsmodels() {
    let mut cases: Vec<(u64, u64, u64, u64, f64)> = vec![
        (0, 10, 5, 10, 0.95),
        (10, 10, 0, 10, 0.95),
        (1, 1, 1, 2, 0.9),
        (30, 100, 20, 100, 0.95),
        (300, 1000, 450, 1000, 0.99),
        (5, 40, 35, 40, 0.999),
        (1234, 5000, 1190, 4800, 0.9833333333333333),
        (0, 3, 0, 7, 0.95),
    ];
    // Random cases: xorshift, seeded.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    for _ in 0..200 {
        let n1 = 1 + next(2_000);
        let n2 = 1 + next(2_000);
        let x1 = next(n1 + 1);
        let x2 = next(n2 + 1);
        let confidence = [0.8, 0.9, 0.95, 0.99, 0.995, 0.9999][next(6) as usize];
        cases.push((x1, n1, x2, n2, confidence));
    }
    let input = json!(cases
        .iter()
        .map(|&(x1, n1, x2, n2, c)| json!({"x1": x1, "n1": n1, "x2": x2, "n2": n2, "confidence": c}))
        .collect::<Vec<_>>());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cases.json");
    std::fs::write(&path, input.to_string()).expect("writes the cases");
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/intervals.py"))
        .arg(&path)
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs the reference");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("reference JSON");
    assert_eq!(theirs.len(), cases.len());
    for (&(x1, n1, x2, n2, c), t) in cases.iter().zip(&theirs) {
        let case = format!("{x1}/{n1} vs {x2}/{n2} at {c}");
        close(
            critical(c),
            &t["critical"],
            &format!("critical value, {case}"),
        );
        let w = wilson(x1, n1, c).expect("an interval");
        close(w.low, &t["wilson"][0], &format!("Wilson low, {case}"));
        close(w.high, &t["wilson"][1], &format!("Wilson high, {case}"));
        let d = newcombe_difference(x1, n1, x2, n2, c).expect("an interval");
        close(d.low, &t["newcombe"][0], &format!("Newcombe low, {case}"));
        close(d.high, &t["newcombe"][1], &format!("Newcombe high, {case}"));
        let r = log_ratio(x1, n1, x2, n2, c).expect("an interval");
        // Ratios can be large: compare relative to their size.
        for (ours, theirs, what) in [
            (r.low, &t["log_ratio"][0], "low"),
            (r.high, &t["log_ratio"][1], "high"),
        ] {
            let theirs = theirs.as_f64().expect("a number");
            assert!(
                (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0),
                "log ratio {what}, {case}: ours {ours}, statsmodels {theirs}"
            );
        }
    }
}
