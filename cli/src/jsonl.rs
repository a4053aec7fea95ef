//! JSON lines in: what `insights scrub` and `insights sentiment` read.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// Lines read from a file or stdin, numbered from 1, blank ones skipped.
pub(crate) fn json_lines(file: &Path) -> Result<Lines> {
    let input: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?)
    };
    Ok(Lines {
        input: BufReader::with_capacity(1 << 16, input),
        read: 0,
    })
}

/// The lines of [`json_lines`].
pub(crate) struct Lines {
    input: BufReader<Box<dyn Read>>,
    /// Lines read so far, blank ones included.
    read: usize,
}

impl Lines {
    /// The next lines, as many as are read without waiting for more input (a whole line
    /// already in the reader's buffer) up to `most`, at least one; `None` at the end. A
    /// file comes in full batches, a line typed into stdin alone and at once.
    pub(crate) fn batches(mut self, most: usize) -> impl Iterator<Item = Result<Batch>> {
        std::iter::from_fn(move || {
            let mut batch = Vec::new();
            loop {
                match self.next() {
                    None => break,
                    Some(Err(e)) => return Some(Err(e)),
                    Some(Ok(line)) => batch.push(line),
                }
                if batch.len() >= most || !self.input.buffer().contains(&b'\n') {
                    break;
                }
            }
            (!batch.is_empty()).then_some(Ok(batch))
        })
    }
}

/// Numbered lines read together ([`Lines::batches`]).
pub(crate) type Batch = Vec<(usize, String)>;

impl Iterator for Lines {
    type Item = Result<(usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut line = String::new();
            self.read += 1;
            match self.input.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {
                    if line.ends_with('\n') {
                        line.pop();
                        if line.ends_with('\r') {
                            line.pop();
                        }
                    }
                    if !line.trim().is_empty() {
                        return Some(Ok((self.read, line)));
                    }
                }
                Err(e) => {
                    return Some(Err(
                        anyhow::Error::new(e).context(format!("reading line {}", self.read))
                    ));
                }
            }
        }
    }
}

/// The "text" of a JSON-lines line, or the error to report.
pub(crate) fn text_field(line: &str) -> Result<(Value, String), &'static str> {
    const BAD: &str = "not a JSON object with a \"text\" string";
    let value: Value = serde_json::from_str(line).map_err(|_| BAD)?;
    let text = value.get("text").and_then(Value::as_str).ok_or(BAD)?;
    let text = text.to_owned();
    Ok((value, text))
}
