//! Traces across processes: each message a processor handles gets a span whose parent is
//! the span that published the message (the W3C `traceparent` in its Kafka headers), so
//! one trace follows an interaction from its producer through every processor.
//!
//! Under a message's span: `process` (the processor's work, on the blocking pool), `store
//! append` (the batch's transaction, one span per message of the batch: they share its
//! timing) and `publish` (a producer span per output; its context goes into the output's
//! headers, so the next processor's span is its child).
//!
//! With traces off, the spans are disabled (no subscriber layer wants them), and nothing
//! here reads or writes a header.

use insights_telemetry::TARGET;
use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span of one consumed message in processor `processor`, a child of the context in
/// its headers (a new trace if they carry none).
pub fn message_span(
    processor: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    headers: Option<&impl Headers>,
) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "message",
        otel.name = %format_args!("{processor} process"),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = topic,
        messaging.destination.partition.id = partition,
        messaging.kafka.offset = offset,
        processor = processor,
        event_id = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
        error_class = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if !span.is_disabled()
        && let Some(headers) = headers
    {
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(headers))
        });
        // Fails only when no trace layer is installed (`INSIGHTS_LOG=info` with traces
        // off): the span is then a log span, and has no parent to take.
        let _ = span.set_parent(parent);
    }
    span
}

/// The producer span of one output, under its message's span, and the output's headers
/// carrying its context.
pub fn publish_span(parent: &Span, topic: &str) -> (Span, Option<OwnedHeaders>) {
    let span = tracing::info_span!(
        target: TARGET,
        parent: parent,
        "publish",
        otel.name = %format_args!("{topic} publish"),
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.destination.name = topic,
    );
    let headers = inject(&span);
    (span, headers)
}

/// Headers carrying `span`'s context; `None` when it carries none (traces off).
pub fn inject(span: &Span) -> Option<OwnedHeaders> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let mut injector = HeaderInjector(OwnedHeaders::new());
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut injector));
    (injector.0.count() > 0).then_some(injector.0)
}

struct HeaderExtractor<'a, H>(&'a H);

impl<H: Headers> Extractor for HeaderExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}

struct HeaderInjector(OwnedHeaders);

impl Injector for HeaderInjector {
    fn set(&mut self, key: &str, value: String) {
        let headers = std::mem::replace(&mut self.0, OwnedHeaders::new());
        self.0 = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

    /// Runs `f` with a trace layer exporting to memory; its result and the spans ended.
    fn traced<T>(f: impl FnOnce() -> T) -> (T, Vec<SpanData>) {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let out = tracing::subscriber::with_default(subscriber, f);
        provider.force_flush().expect("flushes");
        (out, exporter.get_finished_spans().expect("spans"))
    }

    fn produced() -> OwnedHeaders {
        OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(format!("00-{TRACE}-{PRODUCER_SPAN}-01").as_bytes()),
        })
    }

    fn header(headers: &OwnedHeaders, key: &str) -> Option<String> {
        headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// One test, its cases in sequence: `tracing` caches each callsite's interest across
    /// the subscribers alive at once, so cases with and without a trace layer must not run
    /// side by side (no other test of this crate installs a subscriber).
    #[test]
    fn trace_context_travels_in_headers_only_with_traces_on() {
        a_message_span_continues_its_producers_trace_and_passes_it_on();
        a_message_without_a_trace_context_starts_a_trace();
        with_traces_off_no_header_is_read_or_written();
    }

    fn a_message_span_continues_its_producers_trace_and_passes_it_on() {
        let incoming = produced();
        let (headers, spans) = traced(|| {
            let message = message_span("privacy", "interactions.raw", 0, 7, Some(&incoming));
            let (publish, headers) = publish_span(&message, "interactions.scrubbed");
            drop(publish);
            drop(message);
            headers
        });
        let find = |name: &str| {
            spans
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no span {name}: {spans:?}"))
        };
        let message = find("privacy process");
        let publish = find("interactions.scrubbed publish");
        assert_eq!(message.span_context.trace_id().to_string(), TRACE);
        assert_eq!(message.parent_span_id.to_string(), PRODUCER_SPAN);
        assert_eq!(publish.parent_span_id, message.span_context.span_id());
        let headers = headers.expect("the output carries the trace context");
        assert_eq!(
            header(&headers, "traceparent"),
            Some(format!("00-{TRACE}-{}-01", publish.span_context.span_id()))
        );
    }

    fn a_message_without_a_trace_context_starts_a_trace() {
        let (_, spans) = traced(|| {
            drop(message_span(
                "privacy",
                "interactions.raw",
                0,
                7,
                None::<&OwnedHeaders>,
            ))
        });
        assert_eq!(spans.len(), 1);
        assert!(spans[0].span_context.is_valid());
        assert_ne!(spans[0].span_context.trace_id().to_string(), TRACE);
    }

    fn with_traces_off_no_header_is_read_or_written() {
        use tracing_subscriber::Layer;
        // As `insights` logs with traces off: warnings and errors only.
        let logs = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(tracing::level_filters::LevelFilter::WARN),
        );
        let incoming = produced();
        tracing::subscriber::with_default(logs, || {
            let message = message_span("privacy", "interactions.raw", 0, 7, Some(&incoming));
            assert!(message.is_disabled());
            let (_, headers) = publish_span(&message, "interactions.scrubbed");
            assert!(headers.is_none());
        });
    }
}
