//! The pipeline stage: `SentimentScored` in; `ResponseDrafted` and then either
//! `ResponseApproved` (the policy let it through) or `ReviewRequested` out. Reviewers'
//! approvals (`ResponseApproved` on `review.decisions`) teach the retrieval memory.

use std::collections::HashMap;
use std::sync::Arc;

use insights_processor::{Context, Output, ProcessError, Processor};
use insights_schemas::{
    Envelope, Event, GuardrailResult, ResponseApproved, ResponseDrafted, ReviewRequested,
    SentimentScored, Timestamp, review_stream,
};
use lru::LruCache;
use serde::Deserialize;

use crate::draft::{Backend, DraftRequest};
use crate::drafter::{Drafted, Drafter};
use crate::guardrails::{GuardrailConfig, PROMISE_KINDS, check};
use crate::intent::{Intent, classify};
use crate::openai::{ChatClient, OpenAiBackend, OpenAiConfig};
use crate::policy::{Decision, Facts, PolicyConfig, decide, label_name};
use crate::resilience::{BackendMetrics, Guarded};
use crate::retrieval::{
    Approved, RetrievalBackend, RetrievalConfig, SharedMemory, primary_language,
};
use crate::template::TemplateBackend;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The processor's configuration: `[processors.response.config]` in topology.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// Backends in fallback order: `openai`, `retrieval`, `template`.
    pub backends: Vec<String>,
    /// Drafts in flight at once (a batch's requests go out together); each remote
    /// backend's adaptive limit (`openai.resilience.concurrency`) works within it.
    pub concurrency: usize,
    /// The OpenAI-compatible backend.
    pub openai: OpenAiConfig,
    /// Retrieval of approved replies.
    pub retrieval: RetrievalConfig,
    /// The review policy.
    pub policy: PolicyConfig,
    /// The guardrails.
    pub guardrails: GuardrailConfig,
    /// Where drafts and automatic approvals go (from topology.toml).
    #[serde(skip)]
    pub drafts_topic: String,
    /// Where review requests go (from topology.toml).
    #[serde(skip)]
    pub review_topic: String,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            backends: vec!["openai".into(), "retrieval".into(), "template".into()],
            concurrency: 16,
            openai: OpenAiConfig::default(),
            retrieval: RetrievalConfig::default(),
            policy: PolicyConfig::default(),
            guardrails: GuardrailConfig::default(),
            drafts_topic: "responses.drafted".into(),
            review_topic: "review.required".into(),
        }
    }
}

/// Why the processor could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The configuration is invalid; one line per problem.
    #[error("response configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The drafter's threads could not start.
    #[error("starting the drafter: {0}")]
    Io(#[from] std::io::Error),
}

impl insights_topology::ProcessorConfig for ResponseConfig {
    const NAME: &'static str = "response";

    /// The table, the declared outputs (drafts and automatic approvals first, then review
    /// requests), checked. Flags that override the LLM backend apply afterwards (check
    /// again with [`ResponseConfig::validate`]).
    fn from_topology(
        topology: &insights_topology::Topology,
    ) -> Result<Self, insights_topology::ConfigError> {
        let mut config: Self = topology.processor_config(Self::NAME)?;
        if let Some(p) = topology.processors.get(Self::NAME) {
            if let Some(t) = p.outputs.first() {
                config.drafts_topic = t.clone();
            }
            if let Some(t) = p.outputs.get(1) {
                config.review_topic = t.clone();
            }
        }
        config
            .validate()
            .map_err(|p| insights_topology::ConfigError::new(Self::NAME, p))?;
        Ok(config)
    }
}

impl ResponseConfig {
    /// Checks everything that can be checked before running, naming every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = self.policy.validate().err().unwrap_or_default();
        for b in &self.backends {
            if !["openai", "retrieval", "template"].contains(&b.as_str()) {
                problems.push(format!(
                    "backends: unknown backend `{b}` (known: openai, retrieval, template)"
                ));
            }
        }
        for kind in &self.guardrails.allow_promises {
            if !PROMISE_KINDS.contains(&kind.as_str()) {
                problems.push(format!(
                    "guardrails.allow_promises: unknown kind `{kind}` (known: {})",
                    PROMISE_KINDS.join(", ")
                ));
            }
        }
        if self.guardrails.min_chars > self.guardrails.max_chars {
            problems.push("guardrails.min_chars is above max_chars".into());
        }
        problems.extend(
            self.openai
                .resilience
                .concurrency
                .problems()
                .into_iter()
                .map(|p| format!("openai.resilience.{p}")),
        );
        if self.concurrency == 0 {
            problems.push("concurrency must be at least 1".into());
        }
        if let Some(url) = &self.openai.base_url
            && url::Url::parse(url).is_err()
        {
            problems.push(format!("openai.base_url {url:?} is not a URL"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Drafts replies and applies the review policy.
#[derive(Debug)]
pub struct ResponseProcessor {
    drafter: Drafter,
    memory: SharedMemory,
    policy: PolicyConfig,
    guardrails: GuardrailConfig,
    drafts_topic: String,
    review_topic: String,
    notes: Vec<String>,
    prepared: HashMap<String, Drafted>,
    /// Guardrail results by (draft, customer language): a pure function of both, and the
    /// templates give the same few drafts again and again (90 distinct among 10,000 sample
    /// drafts), while language detection alone cost 7% of the embedded pipeline's CPU.
    checked: LruCache<(String, Option<String>), Vec<GuardrailResult>>,
}

/// Guardrail results kept (drafts and their languages).
const CHECKED_ENTRIES: usize = 4_096;

impl ResponseProcessor {
    /// Builds the backends. Metrics go to `registry` where given; `seed` fills the
    /// retrieval memory (reviewers' approvals; the runtime restores them from the store
    /// through [`Processor::restore`]); the `openai` backend calls its API through `chat`
    /// (none: it is skipped, with a note).
    pub fn build(
        config: &ResponseConfig,
        registry: Option<&prometheus::Registry>,
        seed: Vec<Approved>,
        chat: Option<Arc<dyn ChatClient>>,
    ) -> Result<Self, ResponseError> {
        config.validate().map_err(ResponseError::Config)?;
        let metrics = BackendMetrics::new(registry);
        let memory = crate::retrieval::Memory::shared(config.retrieval.capacity);
        {
            let mut m = memory.write().unwrap_or_else(|p| p.into_inner());
            for a in seed {
                m.add(a);
            }
        }
        let mut notes = Vec::new();
        let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
        for name in &config.backends {
            match name.as_str() {
                "openai" => match &chat {
                    None => notes.push(
                        "openai backend skipped: no base_url (set INSIGHTS_LLM_URL)".to_owned(),
                    ),
                    Some(chat) => backends.push(Arc::new(Guarded::new(
                        OpenAiBackend::new(Arc::clone(chat), config.openai.clone()),
                        config.openai.resilience.clone(),
                        metrics.clone(),
                    ))),
                },
                "retrieval" => backends.push(Arc::new(RetrievalBackend::new(
                    memory.clone(),
                    &config.retrieval,
                ))),
                _ => backends.push(Arc::new(TemplateBackend)),
            }
        }
        let drafter = Drafter::new(backends, config.concurrency)?;
        Ok(ResponseProcessor {
            drafter,
            memory,
            policy: config.policy.clone(),
            guardrails: config.guardrails.clone(),
            drafts_topic: config.drafts_topic.clone(),
            review_topic: config.review_topic.clone(),
            notes,
            prepared: HashMap::new(),
            checked: LruCache::new(
                std::num::NonZeroUsize::new(CHECKED_ENTRIES).unwrap_or(std::num::NonZeroUsize::MIN),
            ),
        })
    }

    /// What the build had to say (a backend skipped, and why).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The backends in fallback order.
    pub fn backends(&self) -> Vec<String> {
        self.drafter.backend_names()
    }

    /// The retrieval memory.
    pub fn memory(&self) -> &SharedMemory {
        &self.memory
    }

    fn request(input: &Envelope, s: &SentimentScored) -> DraftRequest {
        DraftRequest {
            key: input.event_id.to_string(),
            text: s.text.clone(),
            language: s.context.language.clone(),
            intent: classify(&s.text),
            sentiment: s.label,
            sentiment_confidence: s.confidence,
            channel: s.context.channel.clone(),
            product: s.context.product.clone(),
        }
    }

    fn respond(&mut self, input: &Envelope, s: &SentimentScored, ctx: &Context<'_>) -> Vec<Output> {
        let request = Self::request(input, s);
        let drafted = match self.prepared.remove(&request.key) {
            Some(d) => d,
            None => self
                .drafter
                .draft_all(std::slice::from_ref(&request))
                .remove(0),
        };
        let checked = (drafted.draft.text.clone(), s.context.language.clone());
        let guardrails = match self.checked.get(&checked) {
            Some(results) => results.clone(),
            None => {
                let results = check(
                    &self.guardrails,
                    &drafted.draft.text,
                    s.context.language.as_deref(),
                );
                self.checked.put(checked, results.clone());
                results
            }
        };
        let decision = decide(
            &self.policy,
            &Facts {
                sentiment: s.label,
                sentiment_confidence: s.confidence,
                sentiment_fallback: s.fallback,
                intent: request.intent,
                guardrails: &guardrails,
                backend: &drafted.draft.backend,
                fell_back: drafted.fell_back,
            },
        );
        let context = s.context.clone();
        let conversation = format!("conversation-{}", context.conversation_id);
        let key = context.conversation_id.clone();
        let draft_id = ctx.output_event_id(self.name(), 0);
        let intent = request.intent.intent.as_str().to_owned();
        let drafted_event = ResponseDrafted {
            context: context.clone(),
            draft_text: drafted.draft.text.clone(),
            backend: drafted.draft.backend.clone(),
            model: drafted.draft.model.clone(),
            intent: intent.clone(),
            sentiment_label: label_name(s.label).to_owned(),
            sentiment_confidence: s.confidence,
            guardrails,
            fell_back: drafted.fell_back,
            latency_micros: i64::try_from(drafted.latency.as_micros()).unwrap_or(i64::MAX),
            prompt_tokens: drafted
                .draft
                .prompt_tokens
                .and_then(|n| i32::try_from(n).ok()),
            completion_tokens: drafted
                .draft
                .completion_tokens
                .and_then(|n| i32::try_from(n).ok()),
        };
        let mut out = vec![Output {
            topic: self.drafts_topic.clone(),
            stream_id: conversation.clone(),
            key: key.clone(),
            event: Event::ResponseDrafted(drafted_event),
        }];
        match decision {
            Decision::AutoApprove { reasons } => out.push(Output {
                topic: self.drafts_topic.clone(),
                stream_id: conversation,
                key,
                event: Event::ResponseApproved(ResponseApproved {
                    context,
                    draft_event_id: draft_id,
                    final_text: drafted.draft.text,
                    approved_by: "policy".into(),
                    automatic: true,
                    reasons,
                    inquiry_text: s.text.clone(),
                    intent,
                }),
            }),
            Decision::Review { reasons, priority } => {
                let review_id = ctx.output_event_id(self.name(), 1);
                let minutes = i64::from(self.policy.sla(priority));
                let opinions_required = self
                    .policy
                    .second_opinion
                    .opinions_required(review_id, priority, &intent);
                out.push(Output {
                    topic: self.review_topic.clone(),
                    stream_id: review_stream(&review_id),
                    key,
                    event: Event::ReviewRequested(ReviewRequested {
                        context,
                        draft_event_id: draft_id,
                        reasons,
                        priority: priority.as_str().into(),
                        sla_deadline: Timestamp(ctx.now.micros() + minutes * 60_000_000),
                        draft_text: drafted.draft.text,
                        inquiry_text: s.text.clone(),
                        intent,
                        sentiment_label: label_name(s.label).to_owned(),
                        backend: drafted.draft.backend,
                        opinions_required,
                    }),
                });
            }
        }
        out
    }
}

impl ResponseProcessor {
    /// A reviewer's approval (not the policy's automatic ones) joins the retrieval memory.
    fn remember(&self, a: &ResponseApproved) {
        if a.automatic {
            return;
        }
        self.memory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .add(Approved {
                inquiry: a.inquiry_text.clone(),
                reply: a.final_text.clone(),
                intent: Intent::parse(&a.intent).unwrap_or(Intent::General),
                language: primary_language(a.context.language.as_deref()),
            });
    }
}

impl Processor for ResponseProcessor {
    type Input = Envelope;

    fn name(&self) -> &str {
        "response"
    }

    fn version(&self) -> &str {
        VERSION
    }

    /// The intent classifier's keyword automaton, and the privacy recognizers that the
    /// guardrails' personal-data check reads drafts with.
    fn warm_up(&mut self) {
        crate::intent::classify("my order arrived broken, I want a refund");
        insights_privacy::warm_up();
    }

    /// Reviewers' approvals: the retrieval memory remembers the latest of them again after
    /// a restart.
    fn restores_from(&self) -> &'static [&'static str] {
        &["ResponseApproved"]
    }

    fn restore(&mut self, events: &[Envelope]) {
        for e in events {
            if let Event::ResponseApproved(a) = &e.event {
                self.remember(a);
            }
        }
    }

    fn prepare(&mut self, inputs: &[&Envelope]) {
        self.prepared.clear();
        let requests: Vec<DraftRequest> = inputs
            .iter()
            .filter_map(|i| match &i.event {
                Event::SentimentScored(s) => Some(Self::request(i, s)),
                _ => None,
            })
            .collect();
        if requests.is_empty() {
            return;
        }
        for (r, d) in requests.iter().zip(self.drafter.draft_all(&requests)) {
            self.prepared.insert(r.key.clone(), d);
        }
    }

    fn process(
        &mut self,
        input: &Envelope,
        ctx: &Context<'_>,
    ) -> Result<Vec<Output>, ProcessError> {
        match &input.event {
            Event::SentimentScored(s) => Ok(self.respond(input, s, ctx)),
            Event::ResponseApproved(a) => {
                self.remember(a);
                Ok(Vec::new())
            }
            // Reviewers' other events share the decisions topic; nothing to draft.
            Event::ReviewDecided(_)
            | Event::ReviewClaimed(_)
            | Event::ReviewReleased(_)
            | Event::ReviewEscalated(_) => Ok(Vec::new()),
            other => Err(ProcessError::Poison(format!(
                "response consumes SentimentScored and reviewers' decisions, not {}",
                other.event_type()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use insights_processor::Source;
    use insights_schemas::{InteractionContext, SentimentLabel};

    use super::*;

    fn scored(id: u128, text: &str, label: SentimentLabel, confidence: f64) -> Envelope {
        Envelope {
            event_id: uuid::Uuid::from_u128(id),
            schema_version: 1,
            stream_id: "conversation-c1".into(),
            causation_id: None,
            correlation_id: format!("corr-{id}"),
            occurred_at: Timestamp(1_790_000_000_000_000),
            producer: "sentiment".into(),
            producer_version: "test".into(),
            event: Event::SentimentScored(SentimentScored {
                context: InteractionContext {
                    interaction_id: format!("i-{id}"),
                    conversation_id: "c1".into(),
                    tenant_id: "acme".into(),
                    customer_pseudonym: "cust-x".into(),
                    channel: "chat".into(),
                    product: Some("router".into()),
                    language: Some("en".into()),
                    demographics: BTreeMap::from([("gender".into(), "female".into())]),
                    sent_at: Timestamp(1_789_999_000_000_000),
                },
                text: text.into(),
                label,
                scores: BTreeMap::new(),
                confidence,
                model_name: "m".into(),
                model_version: "1".into(),
                backend: "transformer".into(),
                fallback: false,
                latency_micros: 10,
            }),
        }
    }

    fn run(p: &mut ResponseProcessor, input: &Envelope) -> Vec<Output> {
        let source = Source {
            topic: "interactions.scored".into(),
            partition: 0,
            offset: 0,
        };
        let id = input.event_id.to_string();
        let ctx = Context {
            input_id: &id,
            correlation_id: &input.correlation_id,
            input_time: input.occurred_at,
            now: Timestamp(1_790_000_001_000_000),
            source: &source,
        };
        p.prepare(&[input]);
        p.process(input, &ctx).expect("processed")
    }

    fn offline() -> ResponseProcessor {
        ResponseProcessor::build(&ResponseConfig::default(), None, Vec::new(), None)
            .expect("builds")
    }

    #[test]
    fn a_calm_question_is_drafted_and_approved_automatically() {
        let mut p = offline();
        assert_eq!(p.backends(), ["retrieval", "template"]);
        assert!(p.notes()[0].contains("INSIGHTS_LLM_URL"));
        let input = scored(
            1,
            "How do I change the wifi password on my router?",
            SentimentLabel::Neutral,
            0.92,
        );
        let out = run(&mut p, &input);
        assert_eq!(out.len(), 2);
        let Event::ResponseDrafted(d) = &out[0].event else {
            panic!("{out:?}")
        };
        assert_eq!(
            (d.backend.as_str(), d.intent.as_str(), d.fell_back),
            ("template", "account", false)
        );
        assert!(d.guardrails.iter().all(|g| g.passed));
        assert_eq!(out[0].topic, "responses.drafted");
        let Event::ResponseApproved(a) = &out[1].event else {
            panic!("{out:?}")
        };
        assert!(a.automatic);
        assert_eq!(a.approved_by, "policy");
        assert_eq!(a.final_text, d.draft_text);
        assert_eq!(
            a.inquiry_text,
            "How do I change the wifi password on my router?"
        );
        // The approval names the draft by the id the runtime gives it.
        let id = input.event_id.to_string();
        assert_eq!(
            a.draft_event_id,
            Envelope::derived_id("response", &id, input.occurred_at, 0)
        );
    }

    #[test]
    fn a_furious_legal_threat_goes_to_review_with_reasons_and_a_deadline() {
        let mut p = offline();
        let input = scored(
            2,
            "Your router is garbage and your support is worse. I'm talking to my lawyer.",
            SentimentLabel::Negative,
            0.97,
        );
        let out = run(&mut p, &input);
        assert_eq!(out.len(), 2);
        let Event::ReviewRequested(r) = &out[1].event else {
            panic!("{out:?}")
        };
        assert_eq!(r.reasons, ["negative_sentiment", "intent:legal"]);
        assert_eq!(r.priority, "urgent");
        assert_eq!(
            r.sla_deadline,
            Timestamp(1_790_000_001_000_000 + 15 * 60_000_000)
        );
        assert_eq!(r.intent, "legal");
        assert!(!r.draft_text.is_empty() && r.inquiry_text.contains("lawyer"));
        assert_eq!(out[1].topic, "review.required");
        let id = input.event_id.to_string();
        let review_id = Envelope::derived_id("response", &id, input.occurred_at, 1);
        assert_eq!(out[1].stream_id, format!("review-{review_id}"));
        assert_eq!(out[1].key, "c1", "partitioned by conversation");
    }

    #[test]
    fn reviewers_approvals_teach_retrieval_and_automatic_ones_do_not() {
        let mut p = offline();
        let text = "My router keeps dropping the connection every evening, can you help?";
        let approval = |automatic: bool, reply: &str| Envelope {
            event: Event::ResponseApproved(ResponseApproved {
                context: match &scored(0, "", SentimentLabel::Neutral, 1.0).event {
                    Event::SentimentScored(s) => s.context.clone(),
                    _ => unreachable!(),
                },
                draft_event_id: uuid::Uuid::from_u128(9),
                final_text: reply.into(),
                approved_by: if automatic {
                    "policy".into()
                } else {
                    "alice".into()
                },
                automatic,
                reasons: vec![],
                inquiry_text: text.into(),
                intent: "technical".into(),
            }),
            ..scored(3, "", SentimentLabel::Neutral, 1.0)
        };
        assert!(
            run(
                &mut p,
                &approval(true, "auto reply text, not to be learned")
            )
            .is_empty()
        );
        assert!(p.memory().read().expect("lock").is_empty());
        let reviewed =
            "We have scheduled a line check for tonight and will call you with the result.";
        assert!(run(&mut p, &approval(false, reviewed)).is_empty());
        let out = run(&mut p, &scored(4, text, SentimentLabel::Neutral, 0.9));
        let Event::ResponseDrafted(d) = &out[0].event else {
            panic!("{out:?}")
        };
        assert_eq!(d.backend, "retrieval");
        assert_eq!(d.draft_text, reviewed);
    }

    #[test]
    fn other_events_are_poison_and_bad_config_is_refused() {
        let mut p = offline();
        let mut input = scored(5, "x", SentimentLabel::Neutral, 1.0);
        input.event = Event::ReviewClaimed(insights_schemas::ReviewClaimed {
            review_id: uuid::Uuid::from_u128(1),
            reviewer: "bob".into(),
        });
        assert!(run(&mut p, &input).is_empty());
        input.event = Event::SubjectErased(insights_schemas::SubjectErased {
            subject: "s".into(),
            requested_by: "r".into(),
            key_destroyed_at: Timestamp(0),
        });
        let source = Source {
            topic: "t".into(),
            partition: 0,
            offset: 0,
        };
        let ctx = Context {
            input_id: "x",
            correlation_id: "x",
            input_time: Timestamp(0),
            now: Timestamp(0),
            source: &source,
        };
        assert!(matches!(
            p.process(&input, &ctx),
            Err(ProcessError::Poison(_))
        ));

        let bad: ResponseConfig = toml::from_str(
            "backends = ['openai', 'carrier-pigeon']\n[policy]\nnever_auto_send = ['weather']\n",
        )
        .expect("parses");
        let err = ResponseProcessor::build(&bad, None, Vec::new(), None).expect_err("invalid");
        let msg = err.to_string();
        assert!(
            msg.contains("carrier-pigeon") && msg.contains("weather"),
            "{msg}"
        );
        assert!(
            toml::from_str::<ResponseConfig>("colour = 'blue'").is_err(),
            "unknown keys are refused"
        );
    }
}
