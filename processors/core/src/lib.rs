//! What a processor is: a pure function from one decoded input to output events.
//!
//! This crate holds the [`Processor`] trait, the [`Context`] the runtime gives it, its
//! [`Output`]s and [`ProcessError`] classes, and [`envelope_for`], which turns an output
//! into the envelope the runtime stores and publishes. It has no Kafka client and no
//! database driver: processor crates depend on this crate and not on the runtime, so the
//! compiler keeps them free of IO. A processor that needs a resource (the privacy vault's
//! key store, an LLM backend) declares a small trait for it in its own crate and is given
//! an implementation when the binary assembles it.

use insights_schemas::{AvroRecord, Envelope, Event, Interaction, Timestamp, current_version};

/// Where a message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

impl Source {
    /// `topic/partition/offset`, an id for inputs that carry none.
    pub fn coordinates(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// Everything a processor may use besides its input: ids and time come in here, so a
/// processor never reads a clock or generates randomness, and re-processing an input gives
/// the same result.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The input's id (the envelope's event id, or the interaction's id).
    pub input_id: &'a str,
    /// The input's correlation id.
    pub correlation_id: &'a str,
    /// The input's own time (when the customer sent it, when the input event occurred):
    /// the same on every redelivery, unlike `now`.
    pub input_time: Timestamp,
    /// When the runtime took the message (the outputs' `occurred_at`).
    pub now: Timestamp,
    /// Where the message came from.
    pub source: &'a Source,
}

impl Context<'_> {
    /// The event id the runtime will give `processor`'s `index`-th output for this input:
    /// lets a processor refer to one of its outputs from another (a review request names
    /// its draft).
    pub fn output_event_id(&self, processor: &str, index: u32) -> uuid::Uuid {
        Envelope::derived_id(processor, self.input_id, self.input_time, index)
    }
}

/// One event a processor wants published and stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The output topic (one of the processor's outputs in topology.toml).
    pub topic: String,
    /// The store stream, e.g. `conversation-42`.
    pub stream_id: String,
    /// The Kafka key: the conversation id, so a conversation stays on one partition.
    pub key: String,
    /// The event.
    pub event: Event,
}

/// Why a processor could not handle an input; the runtime acts on the class. Not
/// `non_exhaustive`: a new class must be handled by every driver, and the compiler says
/// where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// The input itself is unusable: dead-letter it and go on.
    #[error("rejected input: {0}")]
    Poison(String),
    /// Handling this input failed in a way that may pass (a rate limit on this request):
    /// retry it with backoff, then dead-letter it.
    #[error("transient failure: {0}")]
    Retryable(String),
    /// A dependency is down (a database, a key store, a model server): nothing about the
    /// input is wrong, so it is never dead-lettered. The runtime stops the batch at this
    /// input and, after a backoff that shutdown interrupts, goes on from it — for as long
    /// as the outage lasts.
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
    /// The processor cannot go on (misconfiguration, a broken invariant): stop cleanly.
    #[error("fatal: {0}")]
    Fatal(String),
}

/// A processor: pure logic that the runtime feeds and whose outputs it stores and
/// publishes. Implementations hold configuration and models, never clients or clocks.
pub trait Processor: Send + 'static {
    /// What the processor consumes.
    type Input: Input;

    /// The processor's name (its section in topology.toml, the events' `producer`).
    fn name(&self) -> &str;

    /// The version stamped on its events (`producer_version`): bump it when outputs for
    /// the same input change (a new model, new rules).
    fn version(&self) -> &str;

    /// Sees every decoded input of a batch before [`Processor::process`] is called for
    /// each: a processor that gains from batching (a model scoring many texts in one call)
    /// does that work here and keeps the results for `process` to pick up. It must not
    /// change what `process` returns, only how fast; failures belong in `process`. The
    /// default does nothing.
    fn prepare(&mut self, inputs: &[&Self::Input]) {
        let _ = inputs;
    }

    /// Builds what the processor would otherwise build on first use (compiled patterns,
    /// parsed models), so that the first batches do not pay for it. Every driver that
    /// keeps a processor running calls it once before the first input (the runtime's
    /// worker does, before it joins its consumer group); it must not change what
    /// [`Processor::process`] returns. The default does nothing.
    fn warm_up(&mut self) {}

    /// The stored event types this processor's state is rebuilt from before it consumes
    /// (see [`Processor::restore`]); none by default.
    fn restores_from(&self) -> &'static [&'static str] {
        &[]
    }

    /// Folds stored events of the [`Processor::restores_from`] types into the processor's
    /// state, in log order a page at a time. Every driver that keeps a processor running
    /// calls it before the first input (the runtime's worker does); it has no outputs, and
    /// an event that also arrives on a topic afterwards must not count twice. The default
    /// does nothing.
    fn restore(&mut self, events: &[Envelope]) {
        let _ = events;
    }

    /// Handles one input.
    fn process(
        &mut self,
        input: &Self::Input,
        ctx: &Context<'_>,
    ) -> Result<Vec<Output>, ProcessError>;

    /// The event id of an output that belongs to no single input: a window report closes
    /// on whichever input moves the watermark, which can differ between deliveries, so its
    /// id must come from the output itself (the window) to stay deterministic. The
    /// default, `None`, keeps the runtime's id from (processor, input id, index).
    fn output_event_id(&self, output: &Output) -> Option<uuid::Uuid> {
        let _ = output;
        None
    }
}

/// A record a processor can consume: decodable, and with an identity.
pub trait Input: AvroRecord + Send + Sync + 'static {
    /// The input's id: stable across redeliveries of the same message.
    fn input_id(&self, source: &Source) -> String;
    /// The correlation id its outputs carry.
    fn correlation_id(&self, source: &Source) -> String;
    /// The input's own time, which orders its outputs' ids.
    fn input_time(&self) -> Timestamp;
}

impl Input for Envelope {
    fn input_id(&self, _: &Source) -> String {
        self.event_id.to_string()
    }

    fn correlation_id(&self, _: &Source) -> String {
        self.correlation_id.clone()
    }

    /// The time of the interaction the event is about (when the customer sent it), for
    /// the events that carry one; else when the event occurred. Not `occurred_at` for
    /// those: a processor's outputs occur when it runs, so ids derived from that time
    /// would differ between two runs over the same input.
    fn input_time(&self) -> Timestamp {
        self.event.context().map_or(self.occurred_at, |c| c.sent_at)
    }
}

impl Input for Interaction {
    /// The producer's interaction id, or the message's coordinates, which are stable
    /// across redeliveries.
    fn input_id(&self, source: &Source) -> String {
        match &self.interaction_id {
            Some(id) if !id.is_empty() => format!("interaction:{id}"),
            _ => format!("kafka:{}", source.coordinates()),
        }
    }

    fn correlation_id(&self, source: &Source) -> String {
        self.input_id(source)
    }

    fn input_time(&self) -> Timestamp {
        self.sent_at
    }
}

/// Drives a processor outside the runtime the way a worker does — `prepare` on the whole
/// batch, then `process` on each input with its context (ids from the input, offsets by
/// index on `topic` partition 0, `now` as the processing time) — for tests, benches and
/// offline tools. Returns each input's outcome, in order.
pub fn drive<P: Processor>(
    processor: &mut P,
    topic: &str,
    inputs: &[P::Input],
    now: Timestamp,
) -> Vec<Result<Vec<Output>, ProcessError>> {
    let inputs: Vec<(i64, &P::Input)> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| (i64::try_from(i).unwrap_or(i64::MAX), input))
        .collect();
    let mut out = Vec::with_capacity(inputs.len());
    drive_each(processor, topic, &inputs, now, |_, _, result| {
        out.push(result)
    });
    out
}

/// [`drive`] over inputs at given offsets (e.g. their store positions), handing each
/// input's context and outcome to `each` — what an offline tool needs to build the output
/// envelopes (see `records::envelope_for`).
pub fn drive_each<P: Processor>(
    processor: &mut P,
    topic: &str,
    inputs: &[(i64, &P::Input)],
    now: Timestamp,
    mut each: impl FnMut(&P::Input, &Context<'_>, Result<Vec<Output>, ProcessError>),
) {
    let refs: Vec<&P::Input> = inputs.iter().map(|(_, input)| *input).collect();
    processor.prepare(&refs);
    for (offset, input) in inputs {
        let source = Source {
            topic: topic.to_owned(),
            partition: 0,
            offset: *offset,
        };
        let id = input.input_id(&source);
        let correlation = input.correlation_id(&source);
        let ctx = Context {
            input_id: &id,
            correlation_id: &correlation,
            input_time: input.input_time(),
            now,
            source: &source,
        };
        let result = processor.process(input, &ctx);
        each(input, &ctx, result);
    }
}

/// The envelope of a processor's `index`-th output for an input: a deterministic id, the
/// payload schema's current version, causation and correlation from the input.
pub fn envelope_for(
    processor: &str,
    version: &str,
    ctx: &Context<'_>,
    index: u32,
    output: &Output,
) -> Envelope {
    Envelope {
        event_id: ctx.output_event_id(processor, index),
        schema_version: current_version(output.event.event_type()).unwrap_or(1),
        stream_id: output.stream_id.clone(),
        causation_id: Some(ctx.input_id.to_owned()),
        correlation_id: ctx.correlation_id.to_owned(),
        occurred_at: ctx.now,
        producer: processor.to_owned(),
        producer_version: version.to_owned(),
        event: output.event.clone(),
    }
}

#[cfg(test)]
mod tests {
    use insights_schemas::DeadLettered;

    use super::*;

    #[test]
    fn output_envelopes_have_deterministic_ids_and_the_current_schema_version() {
        let source = Source {
            topic: "interactions.raw".into(),
            partition: 2,
            offset: 41,
        };
        let ctx = Context {
            input_id: "interaction:i-1",
            correlation_id: "interaction:i-1",
            input_time: Timestamp(0),
            now: Timestamp(1_790_000_000_000_000),
            source: &source,
        };
        let output = Output {
            topic: "interactions.deadletter".into(),
            stream_id: "conversation-c".into(),
            key: "c".into(),
            event: Event::DeadLettered(DeadLettered {
                processor: "p".into(),
                error_class: "poison".into(),
                error: "bad".into(),
                topic: "t".into(),
                partition: 0,
                offset: 1,
                payload_sha256: "00".into(),
                payload_size: 3,
            }),
        };
        let e = envelope_for("privacy", "1", &ctx, 0, &output);
        assert_eq!(
            e.event_id,
            envelope_for("privacy", "1", &ctx, 0, &output).event_id
        );
        assert_ne!(
            e.event_id,
            envelope_for("privacy", "1", &ctx, 1, &output).event_id
        );
        assert_ne!(
            e.event_id,
            envelope_for("sentiment", "1", &ctx, 0, &output).event_id
        );
        assert_eq!(e.schema_version, 1);
        assert_eq!(e.causation_id.as_deref(), Some("interaction:i-1"));
        assert_eq!(e.occurred_at, ctx.now);
    }
}
