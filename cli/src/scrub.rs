//! `insights scrub`: the privacy processor's detection and anonymization over JSON lines,
//! for users' files and for the evaluation against Presidio.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use insights_privacy::{PrivacyConfig, scrub};
use serde_json::{Value, json};

/// `insights scrub`.
#[derive(Debug, Args)]
pub struct ScrubArgs {
    /// JSON lines with a "text" field; `-` reads stdin.
    #[arg(long, default_value = "-")]
    file: PathBuf,
    /// Tenant that scopes pseudonyms.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Conversation that scopes pseudonyms (a line's "conversation_id" wins).
    #[arg(long, default_value = "scrub")]
    conversation: String,
    /// The pseudonym key file, read when INSIGHTS_PRIVACY_KEY is unset; without either, a
    /// random key for this run only.
    #[arg(long, default_value = "data/privacy.key")]
    privacy_key_file: PathBuf,
}

pub fn run(args: ScrubArgs) -> Result<ExitCode> {
    let key = match crate::pipeline::privacy_key(&args.privacy_key_file, false) {
        Ok(k) => k,
        Err(_) => {
            eprintln!(
                "insights: no pseudonym key configured; pseudonyms are valid for this run only"
            );
            let mut k = [0u8; 32];
            getrandom::fill(&mut k).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
            k
        }
    };
    let config = PrivacyConfig::new(key);
    let input: Box<dyn BufRead> = if args.file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("reading {}", args.file.display()))?,
        ))
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Option<Value> = serde_json::from_str(&line).ok();
        let Some(text) = parsed
            .as_ref()
            .and_then(|v| v.get("text"))
            .and_then(Value::as_str)
        else {
            failed += 1;
            eprintln!(
                "insights: line {}: not a JSON object with a \"text\" string",
                n + 1
            );
            writeln!(
                out,
                "{}",
                json!({"error": "not a JSON object with a \"text\" string"})
            )?;
            continue;
        };
        let conversation = parsed
            .as_ref()
            .and_then(|v| v.get("conversation_id"))
            .and_then(Value::as_str)
            .unwrap_or(&args.conversation);
        let s = scrub(&config, &args.tenant, conversation, text);
        let spans: Vec<Value> = s
            .original
            .iter()
            .map(|sp| {
                json!({"type": sp.entity_type, "start": sp.start, "end": sp.end, "score": sp.score,
                       "recognizer": sp.recognizer})
            })
            .collect();
        writeln!(out, "{}", json!({"text": s.text, "spans": spans}))?;
    }
    out.flush()?;
    if failed > 0 {
        eprintln!("insights: {failed} lines could not be scrubbed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
