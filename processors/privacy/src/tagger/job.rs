//! `insights train privacy` as a job: labelled JSON lines in; the cross-validated detector,
//! its any-PII figures, its model card and (optionally) the validation errors out.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::validation_errors;
use super::{
    CardOptions, Example, Model, Scores, TrainOptions, is_english_own, model_card, train_detector,
};
use crate::TAGGED_LANGUAGES;

impl Example {
    /// A sentence from one JSON line `{"template_id", "text", "spans": [{"type", "start",
    /// "end"}]}` with offsets in chars (the generators' format).
    pub fn from_json(line: &str) -> Result<Example, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let text = v["text"].as_str().ok_or("no \"text\"")?.to_owned();
        let spans = v["spans"]
            .as_array()
            .ok_or("no \"spans\"")?
            .iter()
            .map(|s| {
                let offset = |k: &str| {
                    s[k].as_u64()
                        .map(|x| x as usize)
                        .ok_or(format!("a span without \"{k}\""))
                };
                let ty = s["type"].as_str().ok_or("a span without \"type\"")?;
                Ok((ty.to_owned(), offset("start")?, offset("end")?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let template = v["template_id"].as_u64().map(|t| t as u32);
        Example::from_chars(text, &spans, template)
    }
}

/// What a training job wrote.
#[derive(Debug)]
pub struct Trained {
    /// The model, with its validation figures in [`Model::meta`].
    pub model: Model,
    /// Where it was written (`tagger.bin`; its card `README.md` is beside it).
    pub path: PathBuf,
    /// Spans found whatever their type (a span found with the wrong type still hides the
    /// value), over the validation folds: precision, recall, F2.
    pub any_pii: (f64, f64, f64),
    /// Validation sentences with errors written to the errors file, if one was asked for.
    pub errors: Option<usize>,
}

/// Trains the detector for `card.language` on `examples` as `card` says, writes it with
/// its model card into `card.out`, and the validation sentences it gets wrong into
/// `errors` (JSON lines, see [`validation_errors`]).
pub fn train_job(
    examples: &[Example],
    card: &CardOptions,
    errors: Option<&Path>,
    progress: &mut dyn FnMut(String),
) -> std::io::Result<Trained> {
    let language = TAGGED_LANGUAGES
        .into_iter()
        .find(|l| *l == card.language)
        .unwrap_or("en");
    let options = TrainOptions {
        epochs: card.epochs,
        seed: card.seed,
        folds: card.folds.clone(),
        teacher_forcing: card.teacher_forcing,
        lower_case_copies: card.lower_case_copies,
        language,
        ..TrainOptions::default()
    };
    // English taggers learned on the rules without a language hint (as shipped).
    let hint = (language != "en").then_some(language);
    let rules = |text: &str| crate::recognizers::rules_in(text, hint);
    let mut error_lines = Vec::new();
    let mut any_pii = Scores::default();
    // The English card also reports our own English templates alone (presidio-evaluator's
    // are the larger share of its folds).
    let (mut own_typed, mut own_any, mut own_sentences) = (Scores::default(), Scores::default(), 0);
    let mut model = train_detector(
        examples,
        &rules,
        &options,
        progress,
        &mut |example, found| {
            let untyped = |spans: &mut dyn Iterator<Item = (usize, usize)>| {
                spans.map(|(s, e)| ("PII", s, e)).collect::<Vec<_>>()
            };
            let gold = untyped(&mut example.spans.iter().map(|(_, s, e)| (*s, *e)));
            let predicted = untyped(&mut found.iter().map(|f| (f.start, f.end)));
            any_pii.add(&gold, &predicted);
            if example.template_id.is_some_and(is_english_own) {
                let typed: Vec<_> = found
                    .iter()
                    .map(|f| (f.entity_type, f.start, f.end))
                    .collect();
                own_typed.add(&example.spans, &typed);
                own_any.add(&gold, &predicted);
                own_sentences += 1;
            }
            if errors.is_some()
                && let Some(line) = validation_errors(example, found)
            {
                error_lines.push(line);
            }
        },
    );
    if let Some(path) = errors {
        let mut text = error_lines.join("\n");
        text.push('\n');
        std::fs::write(path, text)?;
    }
    model.meta["language"] = json!(language);
    let (p, r, f2) = any_pii.prf(None);
    model.meta["validation"]["any_pii"] = any_pii.figures();
    if own_sentences > 0 {
        model.meta["validation"]["own_templates"] = json!({
            "sentences": own_sentences,
            "typed": own_typed.figures(),
            "any_pii": own_any.figures(),
        });
    }
    std::fs::create_dir_all(&card.out)?;
    let path = card.out.join("tagger.bin");
    let mut file = BufWriter::new(std::fs::File::create(&path)?);
    model.write(&mut file)?;
    file.flush()?;
    std::fs::write(card.out.join("README.md"), model_card(&model, card))?;
    Ok(Trained {
        model,
        path,
        any_pii: (p, r, f2),
        errors: errors.map(|_| error_lines.len()),
    })
}
