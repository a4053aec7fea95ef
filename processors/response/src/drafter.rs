//! The drafter: backends in fallback order, run on the drafter's own IO threads.
//!
//! A request goes to the first backend; if it fails (error, timeout, open breaker, rate
//! limit) or has nothing (retrieval without a match), the next one drafts. The built-in
//! templates stand behind the last backend, so a draft always comes back and the pipeline
//! never stalls. `fell_back` is true when a backend *failed* before the one that drafted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::draft::{Backend, Draft, DraftRequest};
use crate::template::render;

/// A draft and how it came about.
#[derive(Debug, Clone, PartialEq)]
pub struct Drafted {
    /// The draft.
    pub draft: Draft,
    /// An earlier backend failed.
    pub fell_back: bool,
    /// What each earlier backend answered: (backend, error label).
    pub skipped: Vec<(String, String)>,
    /// Time from the first backend call to the draft.
    pub latency: Duration,
}

/// Backends in fallback order, on their own runtime.
#[derive(Debug)]
pub struct Drafter {
    backends: Vec<Arc<dyn Backend>>,
    concurrency: usize,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drafter {
    /// A drafter trying `backends` in order, drafting up to `concurrency` requests at once.
    pub fn new(backends: Vec<Arc<dyn Backend>>, concurrency: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("insights-drafter")
            .enable_all()
            .build()?;
        Ok(Drafter {
            backends,
            concurrency: concurrency.max(1),
            runtime: Some(runtime),
        })
    }

    /// The backends' names, in order.
    pub fn backend_names(&self) -> Vec<String> {
        self.backends.iter().map(|b| b.name().to_owned()).collect()
    }

    /// Drafts every request, in order, up to `concurrency` at once. Blocks the calling
    /// thread: call it from a blocking thread (the runtime runs processors on those),
    /// never from inside an async task.
    pub fn draft_all(&self, requests: &[DraftRequest]) -> Vec<Drafted> {
        let Some(runtime) = &self.runtime else {
            return requests
                .iter()
                .map(|r| template_only(r, Vec::new(), Instant::now()))
                .collect();
        };
        let backends = &self.backends;
        runtime.block_on(
            futures::stream::iter(requests)
                .map(|r| draft_one(backends, r))
                .buffered(self.concurrency)
                .collect(),
        )
    }
}

impl Drop for Drafter {
    fn drop(&mut self) {
        // Dropping a runtime inside another's async context panics; this one may be
        // dropped by a worker task.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn template_only(
    request: &DraftRequest,
    skipped: Vec<(String, String)>,
    started: Instant,
) -> Drafted {
    Drafted {
        fell_back: !skipped.is_empty(),
        draft: Draft {
            text: render(request.intent.intent, request),
            backend: "template".into(),
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
        },
        skipped,
        latency: started.elapsed(),
    }
}

async fn draft_one(backends: &[Arc<dyn Backend>], request: &DraftRequest) -> Drafted {
    let started = Instant::now();
    let mut skipped = Vec::new();
    let mut failed = false;
    for b in backends {
        match b.draft(request).await {
            Ok(draft) => {
                return Drafted {
                    draft,
                    fell_back: failed,
                    skipped,
                    latency: started.elapsed(),
                };
            }
            Err(e) => {
                failed |= e.is_failure();
                tracing::debug!(backend = b.name(), key = %request.key, error = %e, "backend did not draft");
                skipped.push((b.name().to_owned(), e.label().to_owned()));
            }
        }
    }
    let mut d = template_only(request, skipped, started);
    d.fell_back = failed;
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::{Approved, Memory, RetrievalBackend, RetrievalConfig};
    use crate::template::TemplateBackend;

    fn request(text: &str) -> DraftRequest {
        DraftRequest {
            key: text.into(),
            text: text.into(),
            language: Some("en".into()),
            intent: crate::intent::classify(text),
            sentiment: insights_schemas::SentimentLabel::Neutral,
            sentiment_confidence: 0.9,
            channel: "chat".into(),
            product: Some("router".into()),
        }
    }

    #[test]
    fn retrieval_without_a_match_is_not_a_fallback() {
        let memory = Memory::shared(10);
        let drafter = Drafter::new(
            vec![
                Arc::new(RetrievalBackend::new(
                    memory.clone(),
                    &RetrievalConfig::default(),
                )),
                Arc::new(TemplateBackend),
            ],
            2,
        )
        .expect("runtime");
        let text = "How do I change the wifi password on my router?";
        let d = &drafter.draft_all(&[request(text)])[0];
        assert_eq!(d.draft.backend, "template");
        assert!(!d.fell_back);
        assert_eq!(d.skipped, [("retrieval".to_owned(), "no_match".to_owned())]);

        memory.write().expect("lock").add(Approved {
            inquiry: text.into(),
            reply: "Open the app, go to Settings > Wi-Fi and choose a new password.".into(),
            intent: crate::intent::Intent::Account,
            language: Some("en".into()),
        });
        let out = drafter.draft_all(&[request(text), request("Hello there")]);
        assert_eq!(out[0].draft.backend, "retrieval");
        assert!(out[0].draft.text.starts_with("Open the app"));
        assert_eq!(out[1].draft.backend, "template", "order is kept");
    }

    #[test]
    fn with_no_backend_at_all_templates_still_draft() {
        let drafter = Drafter::new(vec![], 1).expect("runtime");
        let d = &drafter.draft_all(&[request("My bill is wrong")])[0];
        assert_eq!(d.draft.backend, "template");
        assert!(!d.fell_back);
        assert!(d.draft.text.contains("bill"));
    }
}
