//! `insights scrub`: the privacy processor's detection and anonymization over JSON lines,
//! for users' files and for the evaluation against Presidio.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use insights_privacy::{PrivacyConfig, scrub};
use serde_json::{Value, json};

use crate::jsonl::{json_lines, text_field};

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
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    for line in json_lines(&args.file)? {
        let (n, line) = line?;
        let (parsed, text) = match text_field(&line) {
            Ok(found) => found,
            Err(error) => {
                failed += 1;
                eprintln!("insights: line {n}: {error}");
                writeln!(out, "{}", json!({ "error": error }))?;
                continue;
            }
        };
        let conversation = parsed
            .get("conversation_id")
            .and_then(Value::as_str)
            .unwrap_or(&args.conversation);
        let s = scrub(&config, &args.tenant, conversation, &text);
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
