//! `[processors.fairness.config]`: which attributes and intersections are reported, the
//! windows, the watermark topics, thresholds and privileged groups; read from topology.toml
//! and checked ([`insights_topology::ProcessorConfig`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::alerts::AlertThresholds;
use crate::stream::{NAME, Outcome};
use crate::window::WindowSpec;

/// The configuration: `[processors.fairness.config]` in topology.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FairnessConfig {
    /// Sensitive attributes (keys of the interactions' declared demographics), each
    /// reported on its own.
    pub attributes: Vec<String>,
    /// Intersections reported as well, e.g. `[["gender", "age_band"]]`.
    pub intersections: Vec<Vec<String>>,
    /// Window length: `30m`, `1h`, `1d`, …
    pub window: String,
    /// Distance between window starts (sliding windows); the window length if unset.
    pub slide: Option<String>,
    /// How long after a window's end its outcomes are still counted.
    pub allowed_lateness: String,
    /// The same for the reviewer-labelled outcome (reviews take hours or days).
    pub label_allowed_lateness: String,
    /// Groups with fewer outcomes are listed but not compared.
    pub min_group_size: u64,
    /// AIF360's privileged value per attribute, e.g. `{ gender = "male" }`.
    pub privileged: BTreeMap<String, String>,
    /// A draft slower than this is a `slow_draft` outcome.
    pub slow_draft_ms: u64,
    /// A partition of a watermark topic silent this long (processing time) no longer
    /// holds the watermark back.
    pub idle_partition: String,
    /// The topics whose partitions drive the watermark: those every interaction passes
    /// through.
    pub watermark_topics: Vec<String>,
    /// Alert rules and the confidence they need (see [`crate::alerts`]).
    pub alerts: AlertThresholds,
    /// Rules for particular outcomes (`negative_sentiment`, `escalated`, …), in place of
    /// `alerts` for those.
    pub outcome_alerts: BTreeMap<String, AlertThresholds>,
    /// Where reports go (from topology.toml).
    #[serde(skip)]
    pub reports_topic: String,
    /// The partition count of each watermark topic (from topology.toml); a topic not
    /// listed counts only the partitions seen.
    #[serde(skip)]
    pub watermark_partitions: BTreeMap<String, u32>,
}

impl Default for FairnessConfig {
    fn default() -> Self {
        FairnessConfig {
            attributes: vec![
                "gender".into(),
                "age_band".into(),
                "region".into(),
                "plan".into(),
            ],
            intersections: vec![vec!["gender".into(), "age_band".into()]],
            window: "1d".into(),
            slide: None,
            allowed_lateness: "1h".into(),
            label_allowed_lateness: "7d".into(),
            min_group_size: 30,
            privileged: BTreeMap::new(),
            slow_draft_ms: 2_000,
            idle_partition: "10m".into(),
            alerts: AlertThresholds::default(),
            outcome_alerts: BTreeMap::new(),
            reports_topic: "fairness.reports".into(),
            watermark_topics: vec!["interactions.scored".into(), "responses.drafted".into()],
            watermark_partitions: BTreeMap::new(),
        }
    }
}

/// Parses a topology.toml duration (`90s`, `30m`, `12h`, `7d`, …) into microseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let d = insights_topology::parse_duration(s)?;
    i64::try_from(d.as_micros()).map_err(|_| format!("{s:?} is too large"))
}

impl insights_topology::ProcessorConfig for FairnessConfig {
    const NAME: &'static str = NAME;

    /// The table, the declared output (reports), and the watermark topics checked against
    /// the processor's inputs (one never consumed would hold the watermark forever), with
    /// their partition counts.
    fn from_topology(
        topology: &insights_topology::Topology,
    ) -> Result<Self, insights_topology::ConfigError> {
        let mut config: Self = topology.processor_config(Self::NAME)?;
        let spec = topology.processors.get(Self::NAME);
        if let Some(t) = spec.and_then(|p| p.outputs.first()) {
            config.reports_topic = t.clone();
        }
        let inputs = spec.map(|p| p.inputs.clone()).unwrap_or_default();
        let mut problems = config.validate().err().unwrap_or_default();
        for t in &config.watermark_topics {
            if !inputs.contains(t) {
                problems.push(format!(
                    "watermark_topics: `{t}` is not an input of fairness"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(insights_topology::ConfigError::new(Self::NAME, problems));
        }
        config.watermark_partitions = config
            .watermark_topics
            .iter()
            .map(|t| (t.clone(), topology.topic(t).map_or(0, |s| s.partitions)))
            .collect();
        Ok(config)
    }
}

impl FairnessConfig {
    /// The window and the labelled outcome's window.
    pub(crate) fn specs(&self) -> Result<(WindowSpec, WindowSpec), String> {
        let size = parse_duration(&self.window)?;
        let slide = self
            .slide
            .as_deref()
            .map(parse_duration)
            .transpose()?
            .unwrap_or(size);
        let late = parse_duration(&self.allowed_lateness)?;
        let label_late = parse_duration(&self.label_allowed_lateness)?;
        parse_duration(&self.idle_partition)?;
        let spec = WindowSpec::sliding(size, slide, late).map_err(|e| e.to_string())?;
        let labelled = WindowSpec::sliding(size, slide, label_late).map_err(|e| e.to_string())?;
        Ok((spec, labelled))
    }

    /// Checks the configuration, naming every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Err(e) = self.specs() {
            problems.push(format!("window: {e}"));
        }
        if self.attributes.is_empty() && self.intersections.is_empty() {
            problems.push("no attributes to report on".into());
        }
        if self.watermark_topics.is_empty() {
            problems.push("watermark_topics names no topic".into());
        }
        for set in &self.intersections {
            if set.len() < 2 {
                problems.push(format!(
                    "intersection {set:?} needs at least two attributes"
                ));
            }
        }
        problems.extend(self.alerts.validate("alerts"));
        for (outcome, thresholds) in &self.outcome_alerts {
            if !Outcome::ALL.iter().any(|o| o.as_str() == outcome) {
                problems.push(format!(
                    "outcome_alerts names `{outcome}`, which is not an outcome ({})",
                    Outcome::ALL.map(Outcome::as_str).join(", ")
                ));
            }
            problems.extend(thresholds.validate(&format!("outcome_alerts.{outcome}")));
        }
        for attribute in self.privileged.keys() {
            if !self.attributes.contains(attribute)
                && !self.intersections.iter().flatten().any(|a| a == attribute)
            {
                problems.push(format!(
                    "privileged names `{attribute}`, which is not a reported attribute"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
