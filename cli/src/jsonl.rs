//! JSON lines in: what `insights scrub` and `insights sentiment` read.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// Lines read from a file or stdin, numbered from 1, blank ones skipped.
pub(crate) fn json_lines(file: &Path) -> Result<impl Iterator<Item = Result<(usize, String)>>> {
    let input: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?,
        ))
    };
    Ok(input
        .lines()
        .enumerate()
        .map(|(n, line)| {
            line.with_context(|| format!("reading line {}", n + 1))
                .map(|l| (n + 1, l))
        })
        .filter(|l| !matches!(l, Ok((_, text)) if text.trim().is_empty())))
}

/// The "text" of a JSON-lines line, or the error to report.
pub(crate) fn text_field(line: &str) -> Result<(Value, String), &'static str> {
    const BAD: &str = "not a JSON object with a \"text\" string";
    let value: Value = serde_json::from_str(line).map_err(|_| BAD)?;
    let text = value.get("text").and_then(Value::as_str).ok_or(BAD)?;
    let text = text.to_owned();
    Ok((value, text))
}
