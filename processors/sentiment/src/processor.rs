//! The pipeline stage: `InteractionScrubbed` in, `SentimentScored` out.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use insights_processor::{Context, Output, ProcessError, Processor};
use insights_schemas::{Envelope, Event, SentimentScored};

use crate::SentimentError;
use crate::pool::{ModelChoice, PoolConfig, Scored, Scorer};

/// The processor's crate version; the model's name and version are appended to form the
/// events' `producer_version`.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the processor is set up.
#[derive(Debug, Clone)]
pub struct SentimentConfig {
    /// Which model.
    pub model: ModelChoice,
    /// The inference pool.
    pub pool: PoolConfig,
    /// Where `SentimentScored` goes.
    pub output_topic: String,
}

impl Default for SentimentConfig {
    fn default() -> Self {
        SentimentConfig {
            model: ModelChoice::default(),
            pool: PoolConfig::default(),
            output_topic: "interactions.scored".into(),
        }
    }
}

impl insights_topology::ProcessorConfig for SentimentConfig {
    const NAME: &'static str = "sentiment";

    /// The declared output, and model batches no larger than a Kafka batch: a Kafka batch
    /// is spread over the pool's threads in model batches of at most the pool's size (32),
    /// since a Kafka batch of 500 in one model call would leave the other threads idle.
    /// The model is chosen by flags (`model`); the processor has no `config` table yet,
    /// and refuses one.
    fn from_topology(
        topology: &insights_topology::Topology,
    ) -> Result<Self, insights_topology::ConfigError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct NoSettings {}
        let NoSettings {} = topology.processor_config(Self::NAME)?;
        let mut config = Self::default();
        if let Some(p) = topology.processor(Self::NAME) {
            if let Some(t) = p.outputs.first() {
                config.output_topic = t.clone();
            }
            config.pool.max_batch = p.batch_size.clamp(1, config.pool.max_batch);
        }
        Ok(config)
    }
}

/// Scores each scrubbed interaction. Whole batches go to the model at once
/// ([`Processor::prepare`]); the events are then built one by one.
#[derive(Debug)]
pub struct SentimentProcessor {
    scorer: Arc<Scorer>,
    output_topic: String,
    version: String,
    /// What `prepare` scored, by text and declared language.
    prepared: HashMap<(String, Option<String>), Scored>,
}

impl SentimentProcessor {
    /// A processor scoring with `scorer` (which may be shared by several processors).
    pub fn new(scorer: Arc<Scorer>, output_topic: impl Into<String>) -> Self {
        let info = scorer.info();
        let mut version = format!("{VERSION}+{}-{}", info.name, info.version);
        if let Some(m) = scorer.multilingual_info() {
            version.push_str(&format!("+{}-{}", m.name, m.version));
        }
        SentimentProcessor {
            scorer,
            output_topic: output_topic.into(),
            version,
            prepared: HashMap::new(),
        }
    }

    /// Opens the configured model (the lexicon stands in if it cannot load).
    pub fn open(config: &SentimentConfig) -> Self {
        let scorer = Scorer::open(&config.model, &config.pool);
        if let Some(reason) = scorer.fallback_reason() {
            eprintln!("insights: sentiment falls back to the lexicon: {reason}");
        }
        if let Some(reason) = scorer.multilingual_error() {
            eprintln!(
                "insights: no multilingual sentiment model, the English model reads every \
                 language: {reason}"
            );
        }
        SentimentProcessor::new(Arc::new(scorer), config.output_topic.clone())
    }
}

/// The scrubbed text as the model reads it: pseudonym tokens (`<PERSON_1a2b3c4d>`,
/// `<EMAIL_ADDRESS_v0123456789abcdef>`) become their type (`<PERSON>`), as a redaction
/// would. Their hex comes from the deployment's pseudonym key, so without this the same
/// message scored differently under two keys; the model learns nothing from it either.
fn model_input(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(open) = text[from..].find('<').map(|i| from + i) {
        from = open + 1;
        let Some(close) = text[open..].find('>').map(|i| open + i) else {
            break;
        };
        let inner = &text[open + 1..close];
        let Some((kind, suffix)) = inner.rsplit_once('_') else {
            continue;
        };
        let hex = suffix.strip_prefix('v').unwrap_or(suffix);
        let is_token = matches!(hex.len(), 8 | 16)
            && (hex.len() == 16) == (hex.len() != suffix.len())
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && kind.starts_with(|c: char| c.is_ascii_uppercase())
            && kind
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if is_token {
            out.push_str(&text[copied..open + 1]);
            out.push_str(kind);
            copied = close;
            from = close;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The text and its declared language.
fn scrubbed_text(input: &Envelope) -> Option<(&str, Option<&str>)> {
    match &input.event {
        Event::InteractionScrubbed(s) => Some((&s.text, s.context.language.as_deref())),
        _ => None,
    }
}

fn retryable(e: SentimentError) -> ProcessError {
    match e {
        SentimentError::PoolStopped => ProcessError::Fatal(e.to_string()),
        other => ProcessError::Retryable(other.to_string()),
    }
}

impl Processor for SentimentProcessor {
    type Input = Envelope;

    fn name(&self) -> &str {
        "sentiment"
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn prepare(&mut self, inputs: &[&Envelope]) {
        self.prepared.clear();
        let texts: Vec<(&str, Option<&str>)> =
            inputs.iter().filter_map(|i| scrubbed_text(i)).collect();
        let read: Vec<Cow<'_, str>> = texts.iter().map(|t| model_input(t.0)).collect();
        let read: Vec<(&str, Option<&str>)> = read
            .iter()
            .zip(&texts)
            .map(|(r, t)| (r.as_ref(), t.1))
            .collect();
        // A failure here is met again, and reported, by `process`.
        if let Ok(scored) = self.scorer.score_in(&read) {
            for ((text, language), s) in texts.into_iter().zip(scored) {
                self.prepared
                    .insert((text.to_owned(), language.map(str::to_owned)), s);
            }
        }
    }

    fn process(
        &mut self,
        input: &Envelope,
        _ctx: &Context<'_>,
    ) -> Result<Vec<Output>, ProcessError> {
        let Event::InteractionScrubbed(scrubbed) = &input.event else {
            return Err(ProcessError::Poison(format!(
                "sentiment consumes InteractionScrubbed, not {}",
                input.event.event_type()
            )));
        };
        let language = scrubbed.context.language.clone();
        let scored = match self
            .prepared
            .get(&(scrubbed.text.clone(), language.clone()))
        {
            Some(s) => *s,
            None => self
                .scorer
                .score_in(&[(model_input(&scrubbed.text).as_ref(), language.as_deref())])
                .map_err(retryable)?[0],
        };
        let label = scored.prediction.label();
        let info = self.scorer.info_of(&scored);
        let context = scrubbed.context.clone();
        Ok(vec![Output {
            topic: self.output_topic.clone(),
            stream_id: format!("conversation-{}", context.conversation_id),
            key: context.conversation_id.clone(),
            event: Event::SentimentScored(SentimentScored {
                text: scrubbed.text.clone(),
                label: label.0,
                scores: scored.prediction.scores(),
                confidence: scored.prediction.confidence(),
                model_name: info.name.clone(),
                model_version: info.version.clone(),
                backend: info.backend.as_str().to_owned(),
                fallback: !scored.multilingual && self.scorer.fallback_reason().is_some(),
                latency_micros: i64::try_from(scored.latency.as_micros()).unwrap_or(i64::MAX),
                context,
            }),
        }])
    }
}

#[cfg(test)]
mod tests {
    use insights_processor::Source;
    use insights_schemas::{InteractionContext, InteractionScrubbed, Timestamp};
    use uuid::Uuid;

    use super::*;
    use crate::{BackendKind, label_name};

    #[test]
    fn the_model_reads_pseudonym_tokens_as_their_type() {
        assert_eq!(
            model_input("I am <PERSON_v24c657505474b5db>, mail <EMAIL_ADDRESS_1a2b3c4d>."),
            "I am <PERSON>, mail <EMAIL_ADDRESS>."
        );
        assert_eq!(model_input("<US_SSN_v0123456789abcdef>"), "<US_SSN>");
        // Left alone: redactions, markup, other suffixes, a lone bracket.
        for text in [
            "no tokens here",
            "<PERSON> and <b>bold</b>",
            "<PERSON_v12> <PERSON_ABCDEF12> <PERSON_0123456789abcdef> <person_1a2b3c4d>",
            "a < b_1a2b3c4d",
            "<PERSON_1a2b3c4d",
        ] {
            assert!(matches!(model_input(text), Cow::Borrowed(_)), "{text}");
        }
        assert_eq!(
            model_input("<<PERSON_1a2b3c4d>> x <A_v0123456789abcdef>"),
            "<<PERSON>> x <A>"
        );
    }

    fn envelope(event: Event) -> Envelope {
        Envelope {
            event_id: Uuid::nil(),
            schema_version: 1,
            stream_id: "conversation-c1".into(),
            causation_id: None,
            correlation_id: "corr".into(),
            occurred_at: Timestamp(0),
            producer: "privacy".into(),
            producer_version: "test".into(),
            event,
        }
    }

    fn scrubbed(text: &str) -> Envelope {
        scrubbed_in(text, Some("en"))
    }

    fn scrubbed_in(text: &str, language: Option<&str>) -> Envelope {
        envelope(Event::InteractionScrubbed(InteractionScrubbed {
            context: InteractionContext {
                interaction_id: "i1".into(),
                conversation_id: "c1".into(),
                tenant_id: "t".into(),
                customer_pseudonym: "cust_x".into(),
                channel: "chat".into(),
                product: None,
                language: language.map(str::to_owned),
                demographics: Default::default(),
                sent_at: Timestamp(0),
            },
            text: text.into(),
            pii: vec![],
            pii_counts: Default::default(),
            sealed: Vec::new(),
        }))
    }

    fn lexicon_processor() -> SentimentProcessor {
        SentimentProcessor::open(&SentimentConfig {
            model: ModelChoice {
                backend: BackendKind::Lexicon,
                ..ModelChoice::default()
            },
            ..SentimentConfig::default()
        })
    }

    fn ctx(source: &Source) -> Context<'_> {
        Context {
            input_id: "in",
            correlation_id: "corr",
            input_time: Timestamp(0),
            now: Timestamp(1),
            source,
        }
    }

    #[test]
    fn scores_scrubbed_interactions() {
        let mut p = lexicon_processor();
        let source = Source {
            topic: "interactions.scrubbed".into(),
            partition: 0,
            offset: 0,
        };
        let inputs = [
            scrubbed("This is terrible, I want my money back!"),
            scrubbed("Thanks, that was really helpful :)"),
        ];
        p.prepare(&inputs.iter().collect::<Vec<_>>());
        let mut labels = Vec::new();
        for input in &inputs {
            let out = p.process(input, &ctx(&source)).unwrap();
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].topic, "interactions.scored");
            assert_eq!(out[0].key, "c1");
            let Event::SentimentScored(s) = &out[0].event else {
                panic!("not SentimentScored")
            };
            assert_eq!(s.backend, "lexicon");
            assert!(!s.fallback, "the lexicon was asked for");
            assert!((s.scores.values().sum::<f64>() - 1.0).abs() < 1e-9);
            assert_eq!(s.confidence, s.scores[label_name(s.label)]);
            labels.push(label_name(s.label));
        }
        assert_eq!(labels, ["negative", "positive"]);
        assert!(p.version().contains("vader-lexicon"));
    }

    /// The shipped models: English messages to the fine-tuned English model, others
    /// (declared, or detected when undeclared) to the multilingual one; each event names
    /// the model and backend that scored it.
    /// The shipped models' configuration, from the crate's directory.
    fn shipped_config() -> SentimentConfig {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        SentimentConfig {
            model: ModelChoice {
                model_dir: root.join(crate::transformer::DEFAULT_MODEL_DIR),
                encoder_dir: root.join(crate::transformer::DEFAULT_ENCODER_DIR),
                multilingual: Some(crate::pool::MultilingualChoice {
                    model_dir: root.join(crate::multilingual::DEFAULT_MODEL_DIR),
                    encoder_dir: root.join(crate::multilingual::DEFAULT_ENCODER_DIR),
                }),
                ..ModelChoice::default()
            },
            ..SentimentConfig::default()
        }
    }

    #[test]
    fn messages_go_to_the_model_of_their_language_and_say_which() {
        let mut p = SentimentProcessor::open(&shipped_config());
        assert!(
            p.scorer.fallback_reason().is_none(),
            "{:?}",
            p.scorer.fallback_reason()
        );
        assert!(
            p.scorer.multilingual_error().is_none(),
            "{:?}",
            p.scorer.multilingual_error()
        );
        assert!(
            p.version().contains("sentiment-minilm")
                && p.version().contains("sentiment-use-multilingual")
        );
        let source = Source {
            topic: "interactions.scrubbed".into(),
            partition: 0,
            offset: 0,
        };
        let cases = [
            (
                scrubbed_in("Thanks, the technician was great!", Some("en-US")),
                "transformer",
                "positive",
            ),
            (
                scrubbed_in("Vielen Dank, der Techniker war großartig!", Some("de")),
                "multilingual",
                "positive",
            ),
            (
                scrubbed_in(
                    "C'est inadmissible, personne ne répond depuis des semaines.",
                    Some("fr-FR"),
                ),
                "multilingual",
                "negative",
            ),
            (
                scrubbed_in(
                    "Mein Router startet seit gestern ständig neu und niemand hilft mir.",
                    None,
                ),
                "multilingual",
                "negative",
            ),
            (
                scrubbed_in("My router restarts all the time and nobody helps me.", None),
                "transformer",
                "negative",
            ),
            // A language neither model covers: the English model.
            (
                scrubbed_in("Aitäh, kõik töötab jälle!", Some("et")),
                "transformer",
                "",
            ),
        ];
        let inputs: Vec<&Envelope> = cases.iter().map(|c| &c.0).collect();
        p.prepare(&inputs);
        for (input, backend, label) in &cases {
            let out = p.process(input, &ctx(&source)).expect("scores");
            let Event::SentimentScored(s) = &out[0].event else {
                panic!("not SentimentScored")
            };
            assert_eq!(s.backend, *backend, "{}", s.text);
            let model = if *backend == "multilingual" {
                "sentiment-use-multilingual"
            } else {
                "sentiment-minilm"
            };
            assert_eq!(s.model_name, model, "{}", s.text);
            assert!(!s.fallback);
            if !label.is_empty() {
                assert_eq!(label_name(s.label), *label, "{}", s.text);
            }
        }
        // Without `prepare` (one message at a time), the same route and scores.
        let mut alone = SentimentProcessor::open(&shipped_config());
        for (input, _, _) in &cases {
            let (a, b) = (
                alone.process(input, &ctx(&source)).expect("scores"),
                p.process(input, &ctx(&source)).expect("scores"),
            );
            let (Event::SentimentScored(a), Event::SentimentScored(b)) = (&a[0].event, &b[0].event)
            else {
                panic!("not SentimentScored")
            };
            assert_eq!(
                (a.label, &a.backend, &a.model_name),
                (b.label, &b.backend, &b.model_name)
            );
            for (x, y) in a.scores.values().zip(b.scores.values()) {
                assert!((x - y).abs() <= crate::BATCH_TOLERANCE, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn other_events_are_rejected() {
        let mut p = lexicon_processor();
        let source = Source {
            topic: "interactions.scrubbed".into(),
            partition: 0,
            offset: 1,
        };
        let Event::InteractionScrubbed(s) = scrubbed("x").event else {
            unreachable!()
        };
        let wrong = envelope(Event::SentimentScored(SentimentScored {
            context: s.context,
            text: "x".into(),
            label: crate::SentimentLabel::Neutral,
            scores: Default::default(),
            confidence: 1.0,
            model_name: "m".into(),
            model_version: "1".into(),
            backend: "lexicon".into(),
            fallback: false,
            latency_micros: 0,
        }));
        let err = p.process(&wrong, &ctx(&source)).unwrap_err();
        assert!(matches!(err, ProcessError::Poison(m) if m.contains("SentimentScored")));
    }
}
