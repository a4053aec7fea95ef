//! `[processors.privacy.config]` of topology.toml: operators per entity type, the mask's
//! length, least scores; read and checked here, joined with the pseudonym key by
//! [`PrivacySettings::with_key`].

use std::collections::BTreeMap;

use insights_topology::{ConfigError, ProcessorConfig, Topology};
use serde::Deserialize;

use crate::{Operator, PrivacyConfig};

/// The table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    /// Entity type → `redact`, `mask`, `pseudonymize` or `encrypt`.
    #[serde(default)]
    operators: BTreeMap<String, String>,
    /// Characters a mask keeps.
    mask_keep_last: Option<usize>,
    /// Entity type → least score.
    #[serde(default)]
    thresholds: BTreeMap<String, f64>,
}

/// The privacy processor's settings from topology.toml, checked: everything of a
/// [`PrivacyConfig`] but the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct PrivacySettings {
    /// Operators that replace the defaults, per entity type.
    pub operators: BTreeMap<&'static str, Operator>,
    /// Least scores per entity type.
    pub thresholds: BTreeMap<&'static str, f64>,
    /// The output topic, if the topology names one.
    pub output_topic: Option<String>,
}

impl PrivacySettings {
    /// The processor's configuration: [`PrivacyConfig::new`]'s defaults with these
    /// settings over them, pseudonyms keyed by `key`.
    pub fn with_key(&self, key: [u8; 32]) -> PrivacyConfig {
        let mut config = PrivacyConfig::new(key);
        config.operators.extend(self.operators.clone());
        config.thresholds.extend(self.thresholds.clone());
        if let Some(t) = &self.output_topic {
            config.output_topic = t.clone();
        }
        config
    }

    /// Whether anything is sealed with the encrypt operator (and so needs the vault).
    pub fn encrypts(&self) -> bool {
        self.with_key([0; 32]).encrypts()
    }
}

impl ProcessorConfig for PrivacySettings {
    const NAME: &'static str = "privacy";

    fn from_topology(topology: &Topology) -> Result<Self, ConfigError> {
        let table: Table = topology.processor_config(Self::NAME)?;
        let mut problems = Vec::new();
        let mut entity = |name: &str, what: &str| {
            let known = crate::tagger::entity_type(name);
            if known.is_none() {
                problems.push(format!("{what}: unknown entity type {name:?}"));
            }
            known
        };
        let keep_last = table.mask_keep_last.unwrap_or(4);
        let mut operators = BTreeMap::new();
        let mut bad_operators = Vec::new();
        for (ty, op) in &table.operators {
            let Some(ty) = entity(ty, "operators") else {
                continue;
            };
            match Operator::parse(op, keep_last) {
                Some(op) => {
                    operators.insert(ty, op);
                }
                None => bad_operators.push(format!(
                    "operators: {op:?} for {ty} is not redact, mask, pseudonymize or encrypt"
                )),
            }
        }
        let mut thresholds = BTreeMap::new();
        let mut bad_scores = Vec::new();
        for (ty, score) in &table.thresholds {
            let Some(ty) = entity(ty, "thresholds") else {
                continue;
            };
            if (0.0..=1.0).contains(score) {
                thresholds.insert(ty, *score);
            } else {
                bad_scores.push(format!("thresholds: {ty} = {score} is not between 0 and 1"));
            }
        }
        problems.extend(bad_operators);
        problems.extend(bad_scores);
        if !problems.is_empty() {
            return Err(ConfigError::new(Self::NAME, problems));
        }
        Ok(Self {
            operators,
            thresholds,
            output_topic: topology
                .processors
                .get(Self::NAME)
                .and_then(|p| p.outputs.first().cloned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(config: &str) -> Topology {
        Topology::parse(&format!(
            r#"
[topics."interactions.raw"]
value_schema = "Interaction"
[topics."interactions.scrubbed"]
value_schema = "Envelope"
[processors.privacy]
inputs = ["interactions.raw"]
outputs = ["interactions.scrubbed"]
[processors.privacy.config]
{config}
"#
        ))
        .expect("parses")
    }

    #[test]
    fn settings_apply_over_the_defaults() {
        let t = topology(
            "mask_keep_last = 2\n[processors.privacy.config.operators]\nPERSON = \"encrypt\"\nUS_SSN = \"mask\"\n[processors.privacy.config.thresholds]\nLOCATION = 0.7",
        );
        let settings = PrivacySettings::from_topology(&t).expect("valid");
        assert!(settings.encrypts());
        let config = settings.with_key([7; 32]);
        assert_eq!(config.operators["PERSON"], Operator::Encrypt);
        assert_eq!(config.operators["US_SSN"], Operator::Mask { keep_last: 2 });
        // A default the table does not touch stays.
        assert_eq!(config.operators["EMAIL_ADDRESS"], Operator::Pseudonymize);
        assert_eq!(config.thresholds["LOCATION"], 0.7);
        assert_eq!(config.output_topic, "interactions.scrubbed");
    }

    #[test]
    fn every_problem_is_reported_with_the_table_named() {
        let t = topology(
            "[processors.privacy.config.operators]\nPERSN = \"mask\"\nEMAIL_ADDRESS = \"shred\"\n[processors.privacy.config.thresholds]\nPERSON = 1.5",
        );
        let err = PrivacySettings::from_topology(&t).expect_err("three problems");
        assert_eq!(err.problems.len(), 3, "{err}");
        let text = err.to_string();
        assert!(text.starts_with("[processors.privacy.config]: "), "{text}");
        for part in ["PERSN", "shred", "1.5"] {
            assert!(text.contains(part), "{text} names {part}");
        }
        let unknown = topology("colour = \"blue\"");
        let err = PrivacySettings::from_topology(&unknown).expect_err("unknown key");
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
