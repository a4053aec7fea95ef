//! The response processor's configuration as the binary assembles it: topology.toml's
//! `[processors.response.config]` < `INSIGHTS_LLM_URL` / `INSIGHTS_LLM_MODEL` < flags; and
//! its retrieval memory, seeded from the reviewers' approvals in the store.

use anyhow::{Context, Result};
use clap::Args;
use insights_event_store::{EventFilter, EventStore};
use insights_response::ResponseConfig;
use insights_response::intent::Intent;
use insights_response::retrieval::{Approved, primary_language};
use insights_runtime::records::from_recorded;
use insights_schemas::Event;
use insights_topology::Topology;

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
    let spec = topology.processors.get("response");
    let table = spec.map(|p| p.config.clone()).unwrap_or_default();
    let mut config: ResponseConfig = toml::Value::Table(table)
        .try_into()
        .context("[processors.response.config] in topology.toml")?;
    if let Some(p) = spec {
        // Outputs: drafts (and automatic approvals) first, then review requests.
        if let Some(t) = p.outputs.first() {
            config.drafts_topic = t.clone();
        }
        if let Some(t) = p.outputs.get(1) {
            config.review_topic = t.clone();
        }
    }
    if let Some(url) = &llm.llm_url {
        config.openai.base_url = Some(url.clone());
    }
    if let Some(model) = &llm.llm_model {
        config.openai.model = model.clone();
    }
    config
        .validate()
        .map_err(|p| anyhow::anyhow!("[processors.response.config]: {}", p.join("; ")))?;
    Ok(config)
}

/// The most recent `capacity` replies reviewers approved, oldest first.
pub async fn approved_replies(store: &dyn EventStore, capacity: usize) -> Result<Vec<Approved>> {
    let filter = EventFilter::Types(vec!["ResponseApproved".into()]);
    let mut out = std::collections::VecDeque::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 5_000, &filter).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for r in &page {
            let Ok(e) = from_recorded(r) else { continue };
            if let Event::ResponseApproved(a) = e.event
                && !a.automatic
            {
                out.push_back(Approved {
                    inquiry: a.inquiry_text,
                    reply: a.final_text,
                    intent: Intent::parse(&a.intent).unwrap_or(Intent::General),
                    language: primary_language(a.context.language.as_deref()),
                });
                if out.len() > capacity {
                    out.pop_front();
                }
            }
        }
    }
    Ok(out.into())
}
