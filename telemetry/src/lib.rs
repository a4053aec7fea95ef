//! Logs and traces of every `insights` process.
//!
//! - **Logs**: text or JSON lines on stderr (`--log-format`), filtered by `INSIGHTS_LOG`
//!   (`RUST_LOG` syntax); by default warnings and errors, and sqlx's only when they are
//!   errors (it warns about every statement slower than a second).
//! - **Traces**: OpenTelemetry spans, exported over OTLP/HTTP with protobuf bodies when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and
//!   off otherwise, at no cost. The standard variables apply: `OTEL_SERVICE_NAME`,
//!   `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`,
//!   `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS|TIMEOUT|COMPRESSION`, `OTEL_SDK_DISABLED`,
//!   `OTEL_TRACES_EXPORTER=none`. The W3C trace context (`traceparent`, `tracestate`) is the
//!   propagator; the runtime carries it in Kafka headers.
//!
//! Spans meant for traces use the target [`TARGET`]: the trace layer takes those (and
//! warnings and errors, as span events), the log layer only what `INSIGHTS_LOG` asks for,
//! so turning traces on changes no log line.
//!
//! # Layout
//! - [`Telemetry::init`] installs both; [`Telemetry::shutdown`] flushes the spans still
//!   queued (call it before the process exits).
//! - [`TraceSettings`] reads and checks the OpenTelemetry variables (pure, tested).

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The target of spans meant for traces (one per message per processor, and their
/// children). Logs leave them out unless `INSIGHTS_LOG` names them.
pub const TARGET: &str = "insights::trace";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the fields of the spans a line is in.
    Json,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// An OpenTelemetry variable asks for something this build does not do.
    #[error("{variable}={value}: {reason}")]
    Unsupported {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What is supported instead.
        reason: &'static str,
    },
    /// The OTLP exporter could not be built (a malformed endpoint, say).
    #[error("the OTLP trace exporter: {0}")]
    Exporter(String),
    /// A subscriber was installed already (a second call in one process).
    #[error("logging was set up already: {0}")]
    AlreadyInstalled(String),
}

/// Whether and how to export traces, from the OpenTelemetry environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceSettings {
    /// No endpoint, `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
    Off,
    /// OTLP/HTTP protobuf to the endpoint the exporter resolves from the variables.
    Otlp,
}

impl TraceSettings {
    /// Reads the settings through `var` (the process environment in [`Telemetry::init`]).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, TelemetryError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(Self::Off);
        }
        if let Some(exporter) = set("OTEL_TRACES_EXPORTER") {
            match exporter.trim() {
                "none" => return Ok(Self::Off),
                "otlp" => {}
                _ => {
                    return Err(TelemetryError::Unsupported {
                        variable: "OTEL_TRACES_EXPORTER",
                        value: exporter,
                        reason: "only `otlp` and `none` are supported",
                    });
                }
            }
        }
        if set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            && set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            return Ok(Self::Off);
        }
        for variable in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(value) = set(variable) {
                if value.trim() != "http/protobuf" {
                    return Err(TelemetryError::Unsupported {
                        variable,
                        value,
                        reason: "only `http/protobuf` is built in (a collector's port 4318)",
                    });
                }
                // The signal-specific one wins.
                break;
            }
        }
        Ok(Self::Otlp)
    }
}

/// The installed logging and tracing; keep it until the process ends.
#[derive(Debug)]
#[must_use = "dropping it loses the spans still queued; call shutdown()"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs logging, and trace export if the environment asks for it. `service` is the
    /// default `service.name` (`OTEL_SERVICE_NAME` wins). Call it before an async runtime
    /// starts: the exporter's HTTP client must not be created inside one.
    pub fn init(format: LogFormat, service: &str) -> Result<Self, TelemetryError> {
        let settings = TraceSettings::from_vars(|name| std::env::var(name).ok())?;
        let filter = tracing_subscriber::EnvFilter::try_from_env("INSIGHTS_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error"));
        let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
        let logs = match format {
            LogFormat::Text => logs.with_filter(filter).boxed(),
            LogFormat::Json => logs.json().with_filter(filter).boxed(),
        };
        let provider = match settings {
            TraceSettings::Off => None,
            TraceSettings::Otlp => Some(provider(service)?),
        };
        let traces = provider.as_ref().map(|p| {
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("insights"))
                .with_filter(
                    Targets::new()
                        .with_target(TARGET, LevelFilter::INFO)
                        // The exporter's own complaints go to the log only.
                        .with_target("opentelemetry", LevelFilter::OFF)
                        .with_target("opentelemetry_sdk", LevelFilter::OFF)
                        .with_target("opentelemetry_otlp", LevelFilter::OFF)
                        .with_default(LevelFilter::WARN),
                )
        });
        tracing_subscriber::registry()
            .with(logs)
            .with(traces)
            .try_init()
            .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
        if provider.is_some() {
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        }
        Ok(Self { provider })
    }

    /// Whether spans are exported.
    pub fn traces_on(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still queued (bounded by the exporter's timeout) and stops.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(10))
        {
            eprintln!("insights: traces not all exported at exit: {e}");
        }
    }
}

/// The tracer provider: batches of spans to the OTLP endpoint; the sampler and the batch
/// sizes from the standard variables (the SDK reads them).
fn provider(service: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_owned());
    }
    let resource = resource
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()),
            KeyValue::new("process.pid", i64::from(std::process::id())),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<TraceSettings, TelemetryError> {
        TraceSettings::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn traces_are_off_without_an_endpoint() {
        assert_eq!(settings(&[]).unwrap(), TraceSettings::Off);
        assert_eq!(
            settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).unwrap(),
            TraceSettings::Off
        );
    }

    #[test]
    fn an_endpoint_turns_them_on_unless_disabled() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert_eq!(settings(&[endpoint]).unwrap(), TraceSettings::Otlp);
        assert_eq!(
            settings(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")]).unwrap(),
            TraceSettings::Otlp
        );
        assert_eq!(
            settings(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")]).unwrap(),
            TraceSettings::Off
        );
        assert_eq!(
            settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]).unwrap(),
            TraceSettings::Off
        );
        assert_eq!(
            settings(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).unwrap(),
            TraceSettings::Otlp
        );
    }

    #[test]
    fn protocols_and_exporters_not_built_in_are_refused_by_name() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
        let e = settings(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: "),
            "{e}"
        );
        // The signal-specific variable wins over the general one.
        assert_eq!(
            settings(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ])
            .unwrap(),
            TraceSettings::Otlp
        );
        let e = settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")]).unwrap_err();
        assert!(e.to_string().contains("OTEL_TRACES_EXPORTER=zipkin"), "{e}");
    }
}
