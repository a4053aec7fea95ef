//! `topology.toml`: the one source of truth for topics, processors and their wiring.
//!
//! # Layout
//! - [`Topology`] and its parts are the file's shape, parsed with unknown fields rejected
//!   ([`Topology::parse`], [`Topology::load`]).
//! - [`validate`] is a pure function that checks the file as a graph: every topic a
//!   processor names is declared, every output is consumed (or declared a sink), every input
//!   is fed (or declared a source), the processor graph has no cycle, every topic's value
//!   schema exists and no two processors share a consumer group. The CLI and the tests call
//!   the same function; it reports every problem, one [`ValidationError`] each.
//! - [`ProcessorSettings`] is a processor's spec with the defaults filled in, which is what
//!   the runtime uses.
//!
//! Runtime knobs (broker addresses, the store URL, librdkafka properties) may be given here
//! and are overridden by environment variables and flags in the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// The whole `topology.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Values used where a topic or a processor does not set its own.
    #[serde(default)]
    pub defaults: Defaults,
    /// Kafka connection. With no `brokers`, the binary starts its embedded broker.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// Where the event store lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicSpec>,
    /// Processors by name; the name selects the implementation in the runtime.
    #[serde(default)]
    pub processors: BTreeMap<String, ProcessorSpec>,
    /// Settings of the projection views, by view (`[projections.anomalies]`); each view's
    /// own type checks its table.
    #[serde(default)]
    pub projections: BTreeMap<String, toml::Table>,
}

/// Defaults for topics and processors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Partitions of a topic.
    pub partitions: u32,
    /// Replication factor of a topic.
    pub replication_factor: u16,
    /// How long a topic keeps messages.
    pub retention: Retention,
    /// Messages a processor takes per batch.
    pub batch_size: usize,
    /// How long a processor waits to fill a batch, in milliseconds.
    pub linger_ms: u64,
    /// Batches a processor works on at once.
    pub concurrency: usize,
    /// Largest message a processor accepts; larger ones are dead-lettered.
    pub max_message_bytes: usize,
    /// Where undecodable or rejected messages go.
    pub dead_letter_topic: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            partitions: 6,
            replication_factor: 1,
            retention: Retention::Millis(7 * 24 * 3_600_000),
            batch_size: 100,
            linger_ms: 50,
            concurrency: 1,
            max_message_bytes: 1 << 20,
            dead_letter_topic: "interactions.deadletter".to_owned(),
        }
    }
}

/// Kafka connection settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`; `None` means the embedded broker.
    pub brokers: Option<String>,
    /// librdkafka properties passed through as they are.
    pub properties: BTreeMap<String, String>,
}

/// Event store settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Connections in the pool.
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/insights.db".to_owned(),
            max_connections: 8,
        }
    }
}

/// What a topic is for, which decides the graph rules that apply to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopicRole {
    /// Produced and consumed by processors.
    #[default]
    Internal,
    /// Written from outside the pipeline (producers, the HTTP API).
    Source,
    /// Read from outside the pipeline (dashboards, downstream systems).
    Sink,
    /// Where processors put messages they cannot take.
    DeadLetter,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Partitions; defaults to `defaults.partitions`.
    pub partitions: Option<u32>,
    /// Replication factor; defaults to `defaults.replication_factor`.
    pub replication_factor: Option<u16>,
    /// Retention; defaults to `defaults.retention`.
    pub retention: Option<Retention>,
    /// The record field used as the message key. Every processor keys its messages by the
    /// conversation, so a key is kept per conversation in order; validation refuses any
    /// other value rather than ignore it.
    #[serde(default = "default_key")]
    pub key: String,
    /// Name of the Avro schema (in `schemas/`) of the message values. A dead-letter topic
    /// has none: it keeps each rejected message's original bytes, with the reason in headers.
    pub value_schema: Option<String>,
    /// How the topic is used.
    #[serde(default)]
    pub role: TopicRole,
}

fn default_key() -> String {
    "conversation_id".to_owned()
}

/// One processor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSpec {
    /// Topics consumed.
    pub inputs: Vec<String>,
    /// Topics produced to.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Consumer group; defaults to `insights-<name>`.
    pub group: Option<String>,
    /// Messages per batch; defaults to `defaults.batch_size`.
    pub batch_size: Option<usize>,
    /// Batch linger in milliseconds; defaults to `defaults.linger_ms`.
    pub linger_ms: Option<u64>,
    /// Batches in flight; defaults to `defaults.concurrency`.
    pub concurrency: Option<usize>,
    /// The processor's own settings (`[processors.NAME.config]`), parsed and checked by
    /// the processor's configuration type, which refuses unknown keys.
    #[serde(default)]
    pub config: toml::Table,
}

/// A processor's settings with the defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorSettings {
    /// The processor's name.
    pub name: String,
    /// Topics consumed.
    pub inputs: Vec<String>,
    /// Topics produced to.
    pub outputs: Vec<String>,
    /// Consumer group.
    pub group: String,
    /// Messages per batch.
    pub batch_size: usize,
    /// Batch linger in milliseconds.
    pub linger_ms: u64,
    /// Batches in flight.
    pub concurrency: usize,
    /// Largest accepted message.
    pub max_message_bytes: usize,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
}

/// A topic's settings with the defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    /// The topic's name.
    pub name: String,
    /// Partitions.
    pub partitions: u32,
    /// Replication factor.
    pub replication_factor: u16,
    /// Retention.
    pub retention: Retention,
    /// Key field.
    pub key: String,
    /// Value schema name (none for a dead-letter topic).
    pub value_schema: Option<String>,
    /// Role.
    pub role: TopicRole,
}

/// Topic retention: a duration or forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Kept this many milliseconds.
    Millis(u64),
    /// Kept forever (`retention.ms = -1`).
    Forever,
}

impl Retention {
    /// The value of Kafka's `retention.ms`.
    pub fn kafka_retention_ms(self) -> i64 {
        match self {
            Retention::Millis(ms) => i64::try_from(ms).unwrap_or(i64::MAX),
            Retention::Forever => -1,
        }
    }
}

impl FromStr for Retention {
    type Err = String;

    /// `"forever"`, or a duration ([`parse_duration`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "forever" {
            return Ok(Retention::Forever);
        }
        let d = parse_duration(s).map_err(|e| format!("retention {e} or \"forever\""))?;
        u64::try_from(d.as_millis())
            .map(Retention::Millis)
            .map_err(|_| format!("retention {s:?} is too large"))
    }
}

/// A duration as topology.toml writes them: a whole number and a unit — `ms`, `s`, `m`,
/// `h`, `d` or `w` (`500ms`, `90s`, `30m`, `12h`, `7d`, `2w`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit (e.g. 7d)"))?;
    let millis: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use ms, s, m, h, d, w)"
            ));
        }
    };
    n.checked_mul(millis)
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too large"))
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid topology (syntax, types, unknown fields).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
}

/// Which side of a processor a topic is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Consumed by the processor.
    Input,
    /// Produced by the processor.
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// One problem found by [`validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A processor names a topic that is not declared.
    #[error(
        "processor `{processor}` names {direction} topic `{topic}`, which is not declared under [topics]"
    )]
    UnknownTopic {
        /// The processor.
        processor: String,
        /// The undeclared topic.
        topic: String,
        /// Input or output.
        direction: Direction,
    },
    /// A processor writes to a topic nothing reads.
    #[error(
        "processor `{processor}` writes to `{topic}`, which no processor consumes; consume it or give it role = \"sink\""
    )]
    OrphanOutput {
        /// The processor.
        processor: String,
        /// The topic.
        topic: String,
    },
    /// A processor reads a topic nothing writes.
    #[error(
        "processor `{processor}` reads `{topic}`, which no processor produces; produce it or give it role = \"source\""
    )]
    UnfedInput {
        /// The processor.
        processor: String,
        /// The topic.
        topic: String,
    },
    /// The processors form a cycle through their topics.
    #[error("processors form a cycle: {}", .path.join(" -> "))]
    Cycle {
        /// The processors on the cycle, the first repeated at the end.
        path: Vec<String>,
    },
    /// A topic names a message key the pipeline does not key by.
    #[error(
        "topic `{topic}` has key = \"{key}\", but every processor keys its messages by the conversation: only key = \"conversation_id\" is supported"
    )]
    UnsupportedKey {
        /// The topic.
        topic: String,
        /// The key it names.
        key: String,
    },
    /// A topic's value schema is not in `schemas/`.
    #[error("topic `{topic}` has value_schema `{schema}`, which is not a schema in schemas/")]
    MissingSchema {
        /// The topic.
        topic: String,
        /// The schema name.
        schema: String,
    },
    /// A topic other than a dead-letter topic declares no value schema.
    #[error("topic `{topic}` needs a value_schema (only a dead-letter topic may go without)")]
    NoValueSchema {
        /// The topic.
        topic: String,
    },
    /// Two processors share a consumer group.
    #[error("processors `{first}` and `{second}` share consumer group `{group}`")]
    DuplicateGroup {
        /// The group.
        group: String,
        /// One processor.
        first: String,
        /// The other.
        second: String,
    },
    /// A processor consumes nothing.
    #[error("processor `{processor}` has no inputs")]
    NoInputs {
        /// The processor.
        processor: String,
    },
    /// A count that must be positive is zero.
    #[error("{field} must be at least 1")]
    Zero {
        /// Where, e.g. `topics."a".partitions`.
        field: String,
    },
    /// The dead-letter topic is not declared with role = "dead-letter".
    #[error(
        "dead_letter_topic `{topic}` must be declared under [topics] with role = \"dead-letter\""
    )]
    DeadLetterTopic {
        /// The topic.
        topic: String,
    },
}

/// Every problem [`validate`] found, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "topology has {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl Topology {
    /// Parses a topology from TOML text; unknown fields are errors.
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        Self::parse_named(text, "topology.toml")
    }

    fn parse_named(text: &str, path: &str) -> Result<Self, LoadError> {
        toml::from_str(text).map_err(|e| LoadError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }

    /// Reads and parses a topology file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse_named(&text, &shown)
    }

    /// A processor's settings with defaults applied, or `None` if it is not declared.
    pub fn processor(&self, name: &str) -> Option<ProcessorSettings> {
        let spec = self.processors.get(name)?;
        let d = &self.defaults;
        Some(ProcessorSettings {
            name: name.to_owned(),
            inputs: spec.inputs.clone(),
            outputs: spec.outputs.clone(),
            group: group_of(name, spec),
            batch_size: spec.batch_size.unwrap_or(d.batch_size),
            linger_ms: spec.linger_ms.unwrap_or(d.linger_ms),
            concurrency: spec.concurrency.unwrap_or(d.concurrency),
            max_message_bytes: d.max_message_bytes,
            dead_letter_topic: d.dead_letter_topic.clone(),
        })
    }

    /// Processor `name`'s `config` table as `T` (an empty table where the processor or its
    /// table is absent, so `T`'s defaults apply). A configuration type refuses unknown keys
    /// (`deny_unknown_fields`); the error names the table.
    pub fn processor_config<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<T, ConfigError> {
        let table = self
            .processors
            .get(name)
            .map(|p| p.config.clone())
            .unwrap_or_default();
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::new(name, vec![e.message().to_owned()]))
    }

    /// A topic's settings with defaults applied, or `None` if it is not declared.
    pub fn topic(&self, name: &str) -> Option<TopicSettings> {
        let spec = self.topics.get(name)?;
        let d = &self.defaults;
        Some(TopicSettings {
            name: name.to_owned(),
            partitions: spec.partitions.unwrap_or(d.partitions),
            replication_factor: spec.replication_factor.unwrap_or(d.replication_factor),
            retention: spec.retention.unwrap_or(d.retention),
            key: spec.key.clone(),
            value_schema: spec.value_schema.clone(),
            role: spec.role,
        })
    }

    /// Every topic's settings, in name order.
    pub fn topic_settings(&self) -> Vec<TopicSettings> {
        self.topics.keys().filter_map(|t| self.topic(t)).collect()
    }
}

fn group_of(name: &str, spec: &ProcessorSpec) -> String {
    spec.group
        .clone()
        .unwrap_or_else(|| format!("insights-{name}"))
}

/// Checks a topology as a graph. `schema_exists` answers whether a value schema name is
/// one of the schemas in `schemas/`. Returns every problem found, or `Ok(())`.
pub fn validate(
    topology: &Topology,
    schema_exists: impl Fn(&str) -> bool,
) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    let topics = &topology.topics;
    let defaults = &topology.defaults;

    for (field, value) in [
        ("defaults.partitions", defaults.partitions as usize),
        (
            "defaults.replication_factor",
            defaults.replication_factor as usize,
        ),
        ("defaults.batch_size", defaults.batch_size),
        ("defaults.concurrency", defaults.concurrency),
        ("defaults.max_message_bytes", defaults.max_message_bytes),
    ] {
        if value == 0 {
            errors.push(ValidationError::Zero {
                field: field.to_owned(),
            });
        }
    }
    match topics.get(&defaults.dead_letter_topic) {
        Some(t) if t.role == TopicRole::DeadLetter => {}
        _ => errors.push(ValidationError::DeadLetterTopic {
            topic: defaults.dead_letter_topic.clone(),
        }),
    }

    for (name, topic) in topics {
        if topic.partitions == Some(0) {
            errors.push(ValidationError::Zero {
                field: format!("topics.\"{name}\".partitions"),
            });
        }
        if topic.replication_factor == Some(0) {
            errors.push(ValidationError::Zero {
                field: format!("topics.\"{name}\".replication_factor"),
            });
        }
        if topic.key != default_key() {
            errors.push(ValidationError::UnsupportedKey {
                topic: name.clone(),
                key: topic.key.clone(),
            });
        }
        match (&topic.value_schema, topic.role) {
            (Some(schema), _) if !schema_exists(schema) => {
                errors.push(ValidationError::MissingSchema {
                    topic: name.clone(),
                    schema: schema.clone(),
                })
            }
            (None, role) if role != TopicRole::DeadLetter => {
                errors.push(ValidationError::NoValueSchema {
                    topic: name.clone(),
                })
            }
            _ => {}
        }
    }

    let mut producers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut consumers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut groups: BTreeMap<String, &str> = BTreeMap::new();
    for (name, p) in &topology.processors {
        if p.inputs.is_empty() {
            errors.push(ValidationError::NoInputs {
                processor: name.clone(),
            });
        }
        for (field, value) in [("batch_size", p.batch_size), ("concurrency", p.concurrency)] {
            if value == Some(0) {
                errors.push(ValidationError::Zero {
                    field: format!("processors.{name}.{field}"),
                });
            }
        }
        for (direction, list, index) in [
            (Direction::Input, &p.inputs, &mut consumers),
            (Direction::Output, &p.outputs, &mut producers),
        ] {
            for topic in list {
                if topics.contains_key(topic) {
                    index.entry(topic.as_str()).or_default().push(name.as_str());
                } else {
                    errors.push(ValidationError::UnknownTopic {
                        processor: name.clone(),
                        topic: topic.clone(),
                        direction,
                    });
                }
            }
        }
        let group = group_of(name, p);
        if let Some(first) = groups.get(&group) {
            errors.push(ValidationError::DuplicateGroup {
                group,
                first: (*first).to_owned(),
                second: name.clone(),
            });
        } else {
            groups.insert(group, name.as_str());
        }
    }

    for (name, p) in &topology.processors {
        for topic in &p.outputs {
            let Some(spec) = topics.get(topic) else {
                continue;
            };
            let consumed = consumers.contains_key(topic.as_str());
            if !consumed && matches!(spec.role, TopicRole::Internal | TopicRole::Source) {
                errors.push(ValidationError::OrphanOutput {
                    processor: name.clone(),
                    topic: topic.clone(),
                });
            }
        }
        for topic in &p.inputs {
            let Some(spec) = topics.get(topic) else {
                continue;
            };
            let produced = producers.contains_key(topic.as_str());
            if !produced && matches!(spec.role, TopicRole::Internal | TopicRole::Sink) {
                errors.push(ValidationError::UnfedInput {
                    processor: name.clone(),
                    topic: topic.clone(),
                });
            }
        }
    }

    if let Some(path) = find_cycle(topology, &consumers) {
        errors.push(ValidationError::Cycle { path });
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

/// Depth-first search over processors (edge A -> B when B consumes a topic A produces);
/// returns the first cycle found, in name order, with its first processor repeated last.
fn find_cycle(topology: &Topology, consumers: &BTreeMap<&str, Vec<&str>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        OnStack,
        Done,
    }
    let successors = |p: &str| -> BTreeSet<&str> {
        topology.processors[p]
            .outputs
            .iter()
            .flat_map(|t| consumers.get(t.as_str()).into_iter().flatten().copied())
            .collect()
    };
    let mut marks: BTreeMap<&str, Mark> = topology
        .processors
        .keys()
        .map(|k| (k.as_str(), Mark::Unvisited))
        .collect();
    for start in topology.processors.keys() {
        if marks[start.as_str()] != Mark::Unvisited {
            continue;
        }
        // Iterative DFS: the stack holds (processor, its remaining successors).
        let mut stack: Vec<(&str, Vec<&str>)> =
            vec![(start, successors(start).into_iter().rev().collect())];
        marks.insert(start, Mark::OnStack);
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            match next.pop() {
                Some(succ) => match marks[succ] {
                    Mark::Unvisited => {
                        marks.insert(succ, Mark::OnStack);
                        stack.push((succ, successors(succ).into_iter().rev().collect()));
                    }
                    Mark::OnStack => {
                        let from = stack.iter().position(|(n, _)| *n == succ).unwrap_or(0);
                        let mut path: Vec<String> =
                            stack[from..].iter().map(|(n, _)| (*n).to_owned()).collect();
                        path.push(succ.to_owned());
                        return Some(path);
                    }
                    Mark::Done => {}
                },
                None => {
                    marks.insert(node, Mark::Done);
                    stack.pop();
                }
            }
        }
    }
    None
}

/// A processor's configuration as topology.toml declares it: its `config` table (parsed
/// with [`Topology::processor_config`]), its declared topics, checked. Each processor crate
/// implements it for its configuration type; `insights run` builds with it and
/// `insights topology check` reports every processor's problems through it.
pub trait ProcessorConfig: Sized {
    /// The processor's name in topology.toml.
    const NAME: &'static str;

    /// Builds the configuration from `topology` (defaults where the processor or its table
    /// is absent), or every problem found.
    fn from_topology(topology: &Topology) -> Result<Self, ConfigError>;
}

/// What is wrong with a processor's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[processors.{processor}.config]: {}", problems.join("; "))]
pub struct ConfigError {
    /// The processor.
    pub processor: String,
    /// Each problem, one sentence each.
    pub problems: Vec<String>,
}

impl ConfigError {
    /// `problems` of `processor`'s configuration.
    pub fn new(processor: &str, problems: Vec<String>) -> Self {
        Self {
            processor: processor.to_owned(),
            problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMAS: &[&str] = &["Interaction", "Envelope"];

    fn known(s: &str) -> bool {
        SCHEMAS.contains(&s)
    }

    const BASE: &str = r#"
        [topics."in"]
        value_schema = "Interaction"
        role = "source"
        [topics."mid"]
        value_schema = "Envelope"
        [topics."out"]
        value_schema = "Envelope"
        role = "sink"
        [topics."interactions.deadletter"]
        role = "dead-letter"

        [processors.a]
        inputs = ["in"]
        outputs = ["mid"]
        [processors.b]
        inputs = ["mid"]
        outputs = ["out"]
    "#;

    fn errors_of(text: &str) -> Vec<ValidationError> {
        let t = Topology::parse(text).expect("parses");
        match validate(&t, known) {
            Ok(()) => vec![],
            Err(e) => e.0,
        }
    }

    #[test]
    fn shipped_topology_is_valid() {
        let text = include_str!("../../topology.toml");
        let t = Topology::parse(text).expect("topology.toml parses");
        // The shipped file names schemas that the schemas crate tests for existence;
        // here only the graph rules are checked.
        validate(&t, |_| true).expect("topology.toml is a valid graph");
        assert!(t.processor("privacy").is_some());
    }

    #[test]
    fn a_valid_chain_passes_and_defaults_fill_in() {
        assert_eq!(errors_of(BASE), vec![]);
        let t = Topology::parse(BASE).expect("parses");
        let a = t.processor("a").expect("declared");
        assert_eq!(a.group, "insights-a");
        assert_eq!(a.batch_size, 100);
        assert_eq!(t.topic("mid").expect("declared").partitions, 6);
        assert_eq!(
            t.topic("mid")
                .expect("declared")
                .retention
                .kafka_retention_ms(),
            604_800_000
        );
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let err = Topology::parse(&format!(
            "{BASE}\n[processors.c]\ninputs = [\"mid\"]\nbatchsize = 3\n"
        ))
        .expect_err("unknown field");
        let msg = err.to_string();
        assert!(msg.contains("batchsize"), "{msg}");
    }

    #[test]
    fn unknown_topic() {
        let errs = errors_of(&BASE.replace(r#"outputs = ["out"]"#, r#"outputs = ["nowhere"]"#));
        assert_eq!(
            errs,
            vec![ValidationError::UnknownTopic {
                processor: "b".into(),
                topic: "nowhere".into(),
                direction: Direction::Output
            }]
        );
    }

    #[test]
    fn orphan_output() {
        let errs = errors_of(&BASE.replace("role = \"sink\"", ""));
        assert_eq!(
            errs,
            vec![ValidationError::OrphanOutput {
                processor: "b".into(),
                topic: "out".into()
            }]
        );
    }

    #[test]
    fn unfed_input() {
        let errs = errors_of(&BASE.replace("role = \"source\"", ""));
        assert_eq!(
            errs,
            vec![ValidationError::UnfedInput {
                processor: "a".into(),
                topic: "in".into()
            }]
        );
    }

    #[test]
    fn cycle_names_its_path() {
        let text = format!("{BASE}\n[processors.c]\ninputs = [\"out\"]\noutputs = [\"mid\"]\n");
        let errs = errors_of(&text);
        assert_eq!(
            errs,
            vec![ValidationError::Cycle {
                path: vec!["b".into(), "c".into(), "b".into()]
            }]
        );
        assert_eq!(errs[0].to_string(), "processors form a cycle: b -> c -> b");
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let text = format!("{BASE}\n[processors.c]\ninputs = [\"mid\"]\noutputs = [\"mid\"]\n");
        assert!(errors_of(&text).contains(&ValidationError::Cycle {
            path: vec!["c".into(), "c".into()]
        }));
    }

    #[test]
    fn missing_schema() {
        let errs = errors_of(&BASE.replace(
            r#"value_schema = "Interaction""#,
            r#"value_schema = "Nope""#,
        ));
        assert_eq!(
            errs,
            vec![ValidationError::MissingSchema {
                topic: "in".into(),
                schema: "Nope".into()
            }]
        );
    }

    #[test]
    fn a_key_other_than_the_conversation_is_refused_not_ignored() {
        let text = BASE.replace(
            "value_schema = \"Interaction\"\n",
            "value_schema = \"Interaction\"\n        key = \"customer_id\"\n",
        );
        assert_eq!(
            errors_of(&text),
            vec![ValidationError::UnsupportedKey {
                topic: "in".into(),
                key: "customer_id".into()
            }]
        );
        let explicit = BASE.replace(
            "value_schema = \"Interaction\"\n",
            "value_schema = \"Interaction\"\n        key = \"conversation_id\"\n",
        );
        assert_eq!(errors_of(&explicit), vec![]);
    }

    #[test]
    fn a_processor_config_table_reads_into_its_type_and_names_itself_when_wrong() {
        #[derive(Debug, Default, serde::Deserialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        struct Settings {
            level: u32,
        }
        let text = format!("{BASE}\n[processors.a.config]\nlevel = 3\n");
        let t = Topology::parse(&text).expect("parses");
        assert_eq!(
            t.processor_config::<Settings>("a").expect("reads"),
            Settings { level: 3 }
        );
        // No table (or no processor): the type's defaults.
        assert_eq!(
            t.processor_config::<Settings>("b").expect("reads"),
            Settings::default()
        );
        let bad = Topology::parse(&format!("{BASE}\n[processors.a.config]\nlevle = 3\n"))
            .expect("parses");
        let err = bad
            .processor_config::<Settings>("a")
            .expect_err("unknown key");
        assert_eq!(err.processor, "a");
        let text = err.to_string();
        assert!(
            text.starts_with("[processors.a.config]: ") && text.contains("levle"),
            "{text}"
        );
    }

    #[test]
    fn a_topic_without_value_schema() {
        let errs = errors_of(&BASE.replace("value_schema = \"Interaction\"\n", ""));
        assert_eq!(
            errs,
            vec![ValidationError::NoValueSchema { topic: "in".into() }]
        );
    }

    #[test]
    fn duplicate_group() {
        let text = BASE.replace(
            "inputs = [\"mid\"]",
            "inputs = [\"mid\"]\ngroup = \"insights-a\"",
        );
        assert_eq!(
            errors_of(&text),
            vec![ValidationError::DuplicateGroup {
                group: "insights-a".into(),
                first: "a".into(),
                second: "b".into()
            }]
        );
    }

    #[test]
    fn zero_counts_and_missing_dead_letter_topic_are_reported_together() {
        let text = BASE
            .replace("role = \"dead-letter\"", "")
            .replace("inputs = [\"mid\"]", "inputs = [\"mid\"]\nbatch_size = 0");
        let errs = errors_of(&text);
        assert!(errs.contains(&ValidationError::Zero {
            field: "processors.b.batch_size".into()
        }));
        assert!(errs.contains(&ValidationError::DeadLetterTopic {
            topic: "interactions.deadletter".into()
        }));
        let shown = ValidationErrors(errs).to_string();
        assert!(shown.starts_with("topology has 3 problems"), "{shown}");
    }

    #[test]
    fn retention_parses_units_and_rejects_garbage() {
        assert_eq!("90s".parse(), Ok(Retention::Millis(90_000)));
        assert_eq!("2w".parse(), Ok(Retention::Millis(14 * 86_400_000)));
        assert_eq!("forever".parse(), Ok(Retention::Forever));
        assert_eq!(Retention::Forever.kafka_retention_ms(), -1);
        assert!("7 days".parse::<Retention>().is_err());
        assert!("d".parse::<Retention>().is_err());
    }
}
