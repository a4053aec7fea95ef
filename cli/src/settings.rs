//! Settings every command shares: the global flags, topology.toml, the event store's URL,
//! Kafka connection flags, and the privacy taggers chosen on the command line. A leaf:
//! it imports no other module of the binary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use insights_event_store::EventStore;
use insights_runtime::KafkaSettings;
use insights_topology::{Topology, validate};

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The topology file.
    #[arg(
        long,
        global = true,
        env = "INSIGHTS_TOPOLOGY",
        default_value = "topology.toml"
    )]
    pub(crate) topology: PathBuf,
    /// Event store URL (sqlite://PATH or postgres://...); overrides [store] url.
    #[arg(long, global = true, env = "INSIGHTS_STORE_URL")]
    pub(crate) store: Option<String>,
    /// A privacy tagger written by `insights train privacy` (its tagger.bin), used in place
    /// of the one built in: `PATH` for English, `LANG=PATH` for another language (de, fr,
    /// es, nl). Repeatable; comma-separated in the variable.
    #[arg(
        long,
        global = true,
        env = "INSIGHTS_PRIVACY_MODEL",
        value_delimiter = ','
    )]
    pub(crate) privacy_model: Vec<String>,
    /// Log lines on stderr as text or as JSON objects (one per line).
    #[arg(
        long,
        global = true,
        env = "INSIGHTS_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    pub(crate) log_format: String,
    /// topology.toml as read for this process: parsed once, shared by every command and
    /// setting that needs it.
    #[arg(skip)]
    loaded: std::sync::OnceLock<Result<Topology, String>>,
}

impl Global {
    /// topology.toml, parsed (not validated) once per process.
    pub(crate) fn topology_file(&self) -> Result<&Topology> {
        self.loaded
            .get_or_init(|| {
                Topology::load(&self.topology).map_err(|e| format!("{:#}", anyhow::Error::from(e)))
            })
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Loads the privacy taggers named by `--privacy-model` in place of the built-in ones.
    pub(crate) fn install_privacy_models(&self) -> Result<()> {
        for choice in &self.privacy_model {
            let (language, path) = match choice.split_once('=') {
                Some((language, path)) => (language, path),
                None => ("en", choice.as_str()),
            };
            let bytes =
                std::fs::read(path).with_context(|| format!("reading the privacy model {path}"))?;
            let model = insights_privacy::tagger::Model::from_bytes(&bytes)
                .map_err(|e| anyhow::anyhow!("the privacy model {path}: {e}"))?;
            insights_privacy::use_model_for(language, model).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}

/// topology.toml, parsed and validated as a graph.
pub(crate) fn load_topology(global: &Global) -> Result<Topology> {
    let topology = global.topology_file()?;
    validate(topology, insights_schemas::schema_exists)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace('\n', ";")))?;
    Ok(topology.clone())
}

/// The event store's URL and pool size: `--store`/`INSIGHTS_STORE_URL`, else the topology's.
pub(crate) fn store_url(global: &Global) -> Result<(String, u32)> {
    let (url, max) = match &global.store {
        Some(url) => (url.clone(), 8),
        None => {
            let topology = global.topology_file()?;
            (topology.store.url.clone(), topology.store.max_connections)
        }
    };
    if url.is_empty() {
        bail!("no event store configured: set [store] url, INSIGHTS_STORE_URL or --store");
    }
    Ok((url, max))
}

/// The event store, opened (and migrated).
pub(crate) async fn open_store(global: &Global) -> Result<Arc<dyn EventStore>> {
    let (url, max) = store_url(global)?;
    insights_event_store::open(&url, max)
        .await
        .with_context(|| format!("opening the event store at {url}"))
}

/// Kafka connection flags, layered over topology.toml's `[kafka]`.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// bootstrap.servers; none (here, in INSIGHTS_BROKERS or in topology.toml) starts the
    /// embedded broker.
    #[arg(long, env = "INSIGHTS_BROKERS")]
    brokers: Option<String>,
    /// A librdkafka property, KEY=VALUE; repeatable.
    #[arg(short = 'X', long = "kafka-property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

impl KafkaArgs {
    /// The brokers and properties: topology.toml < env < flags. `None` brokers: embedded.
    pub(crate) fn settings(&self, topology: &Topology) -> Option<KafkaSettings> {
        let brokers = self
            .brokers
            .clone()
            .or_else(|| topology.kafka.brokers.clone())?;
        let mut properties = topology.kafka.properties.clone();
        properties.extend(self.properties.iter().cloned());
        Some(KafkaSettings {
            brokers,
            properties,
        })
    }

    pub(crate) fn required(&self, topology: &Topology) -> Result<KafkaSettings> {
        self.settings(topology).context(
            "no Kafka brokers configured: pass --brokers, set INSIGHTS_BROKERS or [kafka] brokers",
        )
    }
}
