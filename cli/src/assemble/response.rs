//! The response processor's configuration as the binary assembles it: topology.toml's
//! `[processors.response.config]` < `INSIGHTS_LLM_URL` / `INSIGHTS_LLM_MODEL` < flags.

use anyhow::Result;
use clap::Args;
use insights_response::ResponseConfig;
use insights_topology::{ConfigError, ProcessorConfig, Topology};

/// LLM flags for the response processor.
#[derive(Debug, Default, Args)]
pub struct LlmArgs {
    /// Base URL of an OpenAI-compatible API (e.g. http://127.0.0.1:8080/v1) for drafting.
    #[arg(long, env = "INSIGHTS_LLM_URL")]
    llm_url: Option<String>,
    /// The model name sent to that API.
    #[arg(long, env = "INSIGHTS_LLM_MODEL")]
    llm_model: Option<String>,
}

/// The configuration: topology.toml, then the flags and environment.
pub fn config(topology: &Topology, llm: &LlmArgs) -> Result<ResponseConfig> {
    let mut config = ResponseConfig::from_topology(topology)?;
    if llm.llm_url.is_none() && llm.llm_model.is_none() {
        return Ok(config);
    }
    if let Some(url) = &llm.llm_url {
        config.openai.base_url = Some(url.clone());
    }
    if let Some(model) = &llm.llm_model {
        config.openai.model = model.clone();
    }
    config
        .validate()
        .map_err(|p| ConfigError::new(ResponseConfig::NAME, p))?;
    Ok(config)
}
