//! `insights dlq redrive`: dead-lettered messages back through the pipeline once their
//! cause is fixed, each re-drive recorded in the store (the runtime's `redrive` does the
//! work; this parses flags and prints one JSON line per selected message).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use insights_runtime::redrive::{self, DeadLetter, Disposition, Request, Selection};
use insights_schemas::Timestamp;

/// `insights dlq …`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Send dead-lettered messages back to the topic they came from (or --to-topic), at a
    /// bounded rate, recording each in the store; --dry-run lists what would go.
    Redrive(RedriveArgs),
}

/// `insights dlq redrive`.
#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Only messages this processor dead-lettered.
    #[arg(long)]
    processor: Option<String>,
    /// Only messages of this error class.
    #[arg(long, value_parser = ["poison", "retries-exhausted"])]
    error_class: Option<String>,
    /// Only messages consumed from this topic.
    #[arg(long, value_name = "TOPIC")]
    original_topic: Option<String>,
    /// Only messages dead-lettered at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    since: Option<Timestamp>,
    /// Only messages dead-lettered before this time (RFC 3339).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    until: Option<Timestamp>,
    /// Send them to this topic (one of topology.toml's) instead of where they came from.
    #[arg(long, value_name = "TOPIC")]
    to_topic: Option<String>,
    /// At most this many messages.
    #[arg(long)]
    limit: Option<usize>,
    /// At most this many messages a second.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    rate: u32,
    /// Who re-drives them (recorded on each re-drive event).
    #[arg(long, env = "USER", default_value = "operator")]
    by: String,
    /// Why, e.g. the fix that lets them through now (recorded on each re-drive event).
    #[arg(long, required_unless_present = "dry_run")]
    reason: Option<String>,
    /// List what would be re-driven; send and record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also re-drive messages an earlier re-drive sent back already.
    #[arg(long)]
    again: bool,
    /// The dead-letter topic (default: topology.toml's).
    #[arg(long, value_name = "TOPIC")]
    dead_letter_topic: Option<String>,
    /// Give up when the dead-letter topic yields nothing for this many seconds before its end.
    #[arg(long, default_value_t = 30)]
    read_timeout_s: u64,
    #[command(flatten)]
    kafka: crate::settings::KafkaArgs,
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

/// Runs `insights dlq …`.
pub async fn run(global: &crate::settings::Global, command: DlqCommand) -> Result<ExitCode> {
    let DlqCommand::Redrive(args) = command;
    let topology = crate::settings::load_topology(global)?;
    let kafka = args.kafka.required(&topology)?;
    if let Some(to) = &args.to_topic
        && !topology.topics.contains_key(to)
    {
        bail!(
            "--to-topic {to:?} is not a topic of {}",
            global.topology.display()
        );
    }
    if let Some(p) = &args.processor
        && !topology.processors.contains_key(p)
    {
        bail!(
            "--processor {p:?} is not a processor of {}",
            global.topology.display()
        );
    }
    let reason = args.reason.clone().unwrap_or_default();
    if !args.dry_run && reason.trim().is_empty() {
        bail!("--reason must say why the messages can go through now");
    }
    let request = Request {
        dead_letter_topic: args
            .dead_letter_topic
            .clone()
            .unwrap_or_else(|| topology.defaults.dead_letter_topic.clone()),
        selection: Selection {
            processor: args.processor.clone(),
            error_class: args.error_class.clone(),
            original_topic: args.original_topic.clone(),
            since: args.since,
            until: args.until,
        },
        to_topic: args.to_topic.clone(),
        limit: args.limit,
        rate: args.rate,
        by: args.by.clone(),
        reason,
        dry_run: args.dry_run,
        again: args.again,
        read_timeout: Duration::from_secs(args.read_timeout_s.max(1)),
    };
    let store = crate::settings::open_store(global).await?;
    let mut out = std::io::stdout().lock();
    let mut write_error = None;
    let report = redrive::redrive(&kafka, &*store, &request, |d, disposition| {
        if write_error.is_none()
            && let Err(e) = serde_json::to_writer(&mut out, &line(&request, d, disposition))
                .map_err(anyhow::Error::from)
                .and_then(|()| std::io::Write::write_all(&mut out, b"\n").map_err(Into::into))
        {
            write_error = Some(e);
        }
    })
    .await?;
    if let Some(e) = write_error {
        return Err(e);
    }
    let verb = if args.dry_run {
        "would re-drive"
    } else {
        "re-drove"
    };
    let hint = if report.already_redriven > 0 {
        " (--again sends those too)"
    } else {
        ""
    };
    eprintln!(
        "insights: {verb} {} of {} selected dead letters ({} read; {} re-driven by an earlier \
         run and skipped{hint}; {} with no topic to go to); run {}",
        report.redriven,
        report.selected,
        report.read,
        report.already_redriven,
        report.no_target,
        report.run_id
    );
    Ok(ExitCode::SUCCESS)
}

/// One selected dead letter and what became of it, as a JSON object.
fn line(request: &Request, d: &DeadLetter, disposition: &Disposition) -> serde_json::Value {
    let (action, to) = match disposition {
        Disposition::WouldRedrive { topic } => ("would-redrive", Some(topic.clone())),
        Disposition::Redriven {
            topic,
            partition,
            offset,
        } => ("redriven", Some(format!("{topic}/{partition}/{offset}"))),
        Disposition::AlreadyRedriven => ("already-redriven", None),
        Disposition::NoTarget => ("no-target", None),
    };
    serde_json::json!({
        "dead_letter": format!("{}/{}/{}", request.dead_letter_topic, d.partition, d.offset),
        "dead_lettered_at": d.timestamp.to_string(),
        "processor": d.processor,
        "error_class": d.error_class,
        "error": d.error,
        "original": d.original.as_ref().map(|(t, p, o)| format!("{t}/{p}/{o}")),
        "bytes": d.payload.len(),
        "action": action,
        "to": to,
    })
}
