//! `insights topology check`, `insights schemas list|check`, `insights store head|verify`:
//! looking at the configuration, the schema catalogue and the store.

use std::process::ExitCode;

use anyhow::{Result, bail};
use insights_topology::{ProcessorConfig, Topology};

use crate::output;
use crate::settings::{self, Global};

/// `insights topology check`: the graph, and every processor's `config` table.
pub fn topology_check(global: &Global) -> Result<ExitCode> {
    let topology = settings::load_topology(global)?;
    let problems = processor_config_problems(&topology);
    if !problems.is_empty() {
        bail!("{}: {}", global.topology.display(), problems.join("; "));
    }
    println!(
        "{}: {} topics, {} processors, valid",
        global.topology.display(),
        topology.topics.len(),
        topology.processors.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `insights schemas list`.
pub fn schemas_list() -> ExitCode {
    for v in insights_schemas::Catalogue::get().all_current() {
        println!(
            "{:<22} v{:<3} fingerprint {:016x}  id {}",
            v.name, v.version, v.fingerprint, v.local_id
        );
    }
    ExitCode::SUCCESS
}

/// `insights schemas check`.
pub fn schemas_check() -> ExitCode {
    let errors = insights_schemas::compat::check(insights_schemas::Catalogue::get());
    if errors.is_empty() {
        println!("every schema equals its latest release and reads all earlier releases");
        return ExitCode::SUCCESS;
    }
    for e in &errors {
        eprintln!("insights: {e}");
    }
    ExitCode::FAILURE
}

/// `insights store head`.
pub async fn store_head(global: &Global) -> Result<ExitCode> {
    let head = settings::open_store(global).await?.head().await?;
    println!("position {} hash {}", head.position, hex::encode(head.hash));
    Ok(ExitCode::SUCCESS)
}

/// `insights store verify`.
pub async fn store_verify(global: &Global) -> Result<ExitCode> {
    let store = settings::open_store(global).await?;
    Ok(output::summarize(&store.verify().await?))
}

/// Every declared processor's configuration checked through its
/// [`ProcessorConfig`] (without flags, environment or secrets), one problem per entry.
fn processor_config_problems(topology: &Topology) -> Vec<String> {
    fn check<C: ProcessorConfig>(topology: &Topology) -> Option<String> {
        if !topology.processors.contains_key(C::NAME) {
            return None;
        }
        C::from_topology(topology).err().map(|e| e.to_string())
    }
    [
        check::<insights_privacy::PrivacySettings>(topology),
        check::<insights_sentiment::SentimentConfig>(topology),
        check::<insights_response::ResponseConfig>(topology),
        check::<insights_fairness::FairnessConfig>(topology),
    ]
    .into_iter()
    .flatten()
    .collect()
}
