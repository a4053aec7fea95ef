//! Learning a tagger: the averaged perceptron's training loop, and the detector's
//! cross-validated choice per entity type between the rules and the tagger.

use std::collections::HashMap;

use super::*;

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Passes over the data.
    pub epochs: usize,
    /// Shuffle seed.
    pub seed: u64,
    /// Weights with a smaller magnitude are dropped from the written model.
    pub prune: f32,
    /// Probability that decoding during training goes on with the true previous tag
    /// rather than the model's guess.
    pub teacher_forcing: f64,
    /// The validation folds [`train_detector`] cross-validates on (see [`fold_of`]):
    /// each is held out in turn, and the per-type choice and the figures sum over them.
    pub folds: Vec<u32>,
    /// The language of the examples (a primary subtag; see [`Model::language`]).
    pub language: &'static str,
    /// Probability that a training sentence not already in lower case is also learned
    /// written all in lower case ([`Example::lower_cased`]; drawn per sentence with the
    /// seed). Validation sentences are never copied: the folds score the same sentences
    /// whatever this is.
    pub lower_case_copies: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 8,
            seed: 7,
            prune: 0.01,
            teacher_forcing: 1.0,
            folds: vec![1, 2, 3, 4],
            language: "en",
            lower_case_copies: 0.0,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Acc {
    w: f32,
    total: f64,
    stamp: u64,
}

/// A prepared example: static features per token and gold tags.
struct Prepared {
    features: Vec<Vec<u64>>,
    views: Vec<TokenView>,
    gold: Vec<u16>,
}

fn gold_tags(types: &[&'static str], tokens: &[Token], spans: &[(&str, usize, usize)]) -> Vec<u16> {
    let mut tags = vec![0u16; tokens.len()];
    let mut sorted: Vec<_> = spans.to_vec();
    sorted.sort_by_key(|s| s.1);
    for (ty, start, end) in sorted {
        let Some(k) = types.iter().position(|t| *t == ty) else {
            continue;
        };
        let mut first = true;
        for (i, t) in tokens.iter().enumerate() {
            if t.start < end && start < t.end && tags[i] == 0 {
                tags[i] = if first {
                    1 + 2 * k as u16
                } else {
                    2 + 2 * k as u16
                };
                first = false;
            }
        }
    }
    tags
}

/// The lower-case copies [`TrainOptions::lower_case_copies`] asks for, drawn with the
/// seed on a stream of their own (the same sentences are copied whatever the shuffle; the
/// shuffle then orders the copies with the rest, so any P > 0 is another training run).
pub(super) fn lower_case_copies(examples: &[Example], options: &TrainOptions) -> Vec<Example> {
    if options.lower_case_copies <= 0.0 {
        return Vec::new();
    }
    let mut rng = options
        .seed
        .wrapping_mul(0xD1B5_4A32_D192_ED03)
        .rotate_left(17)
        | 1;
    examples
        .iter()
        .filter(|_| (xorshift(&mut rng) % 1_000_000) as f64 / 1e6 < options.lower_case_copies)
        .filter_map(Example::lower_cased)
        .collect()
}

/// Trains a tagger on `examples`; `rules` gives the rule findings a sentence's features
/// see (the same function must be used at prediction time). `progress` gets a line per
/// epoch.
pub fn train(
    examples: &[Example],
    rules: &dyn Fn(&str) -> Vec<Finding>,
    options: &TrainOptions,
    progress: &mut dyn FnMut(String),
) -> Model {
    let mut types: Vec<&'static str> = Vec::new();
    for e in examples {
        for (ty, _, _) in &e.spans {
            if !types.contains(ty) {
                types.push(ty);
            }
        }
    }
    types.sort_by_key(|t| ENTITY_TYPES.iter().position(|k| k == t));
    let n_tags = 1 + 2 * types.len();
    let copies = lower_case_copies(examples, options);
    let prepared: Vec<Prepared> = examples
        .iter()
        .chain(&copies)
        .map(|e| {
            let tokens = tokenize(&e.text);
            let v = views(&e.text, &tokens, &rules(&e.text), options.language);
            let mut features = Vec::with_capacity(tokens.len());
            let mut buf = Vec::new();
            for i in 0..tokens.len() {
                static_features(&v, i, &mut buf);
                features.push(buf.clone());
            }
            Prepared {
                features,
                views: v,
                gold: gold_tags(&types, &tokens, &e.spans),
            }
        })
        .collect();

    let mut table: HashMap<u64, Vec<Acc>, BuildFnv> = HashMap::with_hasher(BuildFnv);
    let mut order: Vec<usize> = (0..prepared.len()).collect();
    // Every seed its own non-zero state (`seed | 1` made seeds 2 and 3 the same run).
    let mut rng = options
        .seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(31)
        | 1;
    let mut step: u64 = 0;
    let mut scores = vec![0f32; n_tags];
    let mut feats = Vec::with_capacity(48);
    for epoch in 0..options.epochs {
        // Fisher–Yates with xorshift64: reproducible without a RNG dependency.
        for i in (1..order.len()).rev() {
            order.swap(i, (xorshift(&mut rng) % (i as u64 + 1)) as usize);
        }
        let (mut right, mut total) = (0usize, 0usize);
        for &x in &order {
            let p = &prepared[x];
            let mut predicted: Vec<u16> = Vec::with_capacity(p.gold.len());
            for i in 0..p.gold.len() {
                step += 1;
                feats.clear();
                feats.extend_from_slice(&p.features[i]);
                let prev = if i > 0 { predicted[i - 1] } else { 0 };
                let prev2 = if i > 1 { predicted[i - 2] } else { 0 };
                tag_features(&p.views[i], prev, prev2, &mut feats);
                scores.iter_mut().for_each(|s| *s = 0.0);
                for f in &feats {
                    if let Some(row) = table.get(f) {
                        for (t, a) in row.iter().enumerate() {
                            scores[t] += a.w;
                        }
                    }
                }
                let mut guess = 0u16;
                let mut best = f32::NEG_INFINITY;
                for (t, &s) in scores.iter().enumerate() {
                    if allowed(prev, t as u16) && s > best {
                        best = s;
                        guess = t as u16;
                    }
                }
                let truth = p.gold[i];
                total += 1;
                if guess == truth {
                    right += 1;
                } else {
                    for f in &feats {
                        let row = table
                            .entry(*f)
                            .or_insert_with(|| vec![Acc::default(); n_tags]);
                        for (tag, delta) in [(truth, 1.0f32), (guess, -1.0)] {
                            let a = &mut row[tag as usize];
                            a.total += (step - a.stamp) as f64 * f64::from(a.w);
                            a.stamp = step;
                            a.w += delta;
                        }
                    }
                }
                // Decode on with the truth (teacher forcing) or, with probability
                // `1 - teacher_forcing`, with the guess, as prediction will: the model
                // then also learns to end a span it should not have continued.
                let forced = (xorshift(&mut rng) % 1000) as f64 / 1000.0 < options.teacher_forcing;
                predicted.push(if forced { truth } else { guess });
            }
        }
        progress(format!(
            "epoch {}: token accuracy {:.4} ({} features)",
            epoch + 1,
            right as f64 / total.max(1) as f64,
            table.len()
        ));
    }

    let mut index = HashMap::with_hasher(BuildFnv);
    let mut weights = Vec::new();
    let mut keys: Vec<u64> = table.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let row = &table[&key];
        let at = weights.len() as u32;
        for (tag, a) in row.iter().enumerate() {
            let total = a.total + (step - a.stamp) as f64 * f64::from(a.w);
            let avg = (total / step.max(1) as f64) as f32;
            if avg.abs() >= options.prune {
                weights.push((tag as u16, avg));
            }
        }
        let n = weights.len() as u32 - at;
        if n > 0 {
            index.insert(key, (at, n as u16));
        }
    }
    Model {
        types,
        index,
        weights,
        temperature: 1.0,
        entity_bias: 0.0,
        rule_types: Vec::new(),
        fallback_score: DEFAULT_FALLBACK_SCORE,
        meta: serde_json::Value::Null,
        language: options.language,
    }
}

/// Rule findings this confident (validated identifiers) win over the tagger.
pub const VALIDATED_SCORE: f64 = 0.95;

/// See [`Model::fallback_score`] (training chooses it among [`FALLBACK_CANDIDATES`]): the
/// phone and age recognizers score 0.75, the gazetteers' full names 0.8, context names and
/// dates of birth 0.85.
pub const DEFAULT_FALLBACK_SCORE: f64 = 0.75;

/// The fallback scores training chooses among.
pub const FALLBACK_CANDIDATES: [f64; 5] = [0.4, 0.5, 0.6, 0.7, 0.75];

/// The entity biases training chooses among (see [`Model::entity_bias`]; 0 is always
/// a candidate). In the averaged perceptron's score units.
pub const ENTITY_BIAS_CANDIDATES: [f32; 6] = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0];

/// How far below the best cross-validated F2 a smaller entity bias may score and still be
/// chosen (see [`train_detector`]).
pub const BIAS_F2_TOLERANCE: f64 = 0.002;

/// Template ids from this one on are the project's own templates
/// (`data/customer_service_templates.txt`): always trained on, never validated.
pub const OWN_TEMPLATES: u32 = 1000;

/// Where the English templates of `data/templates/en.txt` start in English training data
/// (`generate_multilingual.py --template-offset 2000`); up to [`MIXED_ENGLISH`].
pub const ENGLISH_OWN_TEMPLATES: u32 = 2000;

/// Where the English sentences mixed into another language's training data start
/// (`generate_multilingual.py --english`): trained on, never validated.
pub const MIXED_ENGLISH: u32 = 5000;

/// Whether a template id is one of `data/templates/en.txt`'s in English training data.
pub fn is_english_own(template_id: u32) -> bool {
    (ENGLISH_OWN_TEMPLATES..MIXED_ENGLISH).contains(&template_id)
}

/// The validation fold of an example, by `template_id % 5`: presidio-evaluator's
/// templates (ids below [`OWN_TEMPLATES`]; another language's own templates have their ids
/// there too) and the English templates of `data/templates/en.txt` (from
/// [`ENGLISH_OWN_TEMPLATES`]) fall in folds 1 to 4; their test fifth, `% 5 == 0`, is never
/// in the training data at all. The older English customer-service templates
/// (`data/customer_service_templates.txt`, from [`OWN_TEMPLATES`]), English sentences mixed
/// into another language's data and sentences without a template are in none: always
/// trained on, never validated.
pub fn fold_of(e: &Example) -> Option<u32> {
    e.template_id
        .filter(|t| *t < OWN_TEMPLATES || is_english_own(*t))
        .filter(|t| t % 5 != 0)
        .map(|t| t % 5)
}

/// Trains the whole detector, cross-validated over template folds ([`fold_of`],
/// [`TrainOptions::folds`]): per fold a tagger trained without that fold's templates is
/// scored on them; summed over the folds, whichever of rules and tagger has the higher F2
/// answers for an entity type, and the fallback score is chosen the same way. The model
/// written is then trained on all examples. The validation figures go into
/// [`Model::meta`]; `validated` sees each validation sentence with the selected
/// detector's findings (for error analysis).
pub fn train_detector(
    examples: &[Example],
    rules: &dyn Fn(&str) -> Vec<Finding>,
    options: &TrainOptions,
    progress: &mut dyn FnMut(String),
    validated: &mut dyn FnMut(&Example, &[Finding]),
) -> Model {
    // Per fold: its validation examples with their rule findings, and a tagger trained
    // without them.
    type Fold<'a> = (Vec<(&'a Example, Vec<Finding>)>, Model);
    let mut folds: Vec<Fold<'_>> = Vec::new();
    let mut folds_used: Vec<u32> = Vec::new();
    for &k in &options.folds {
        let (valid, fit): (Vec<&Example>, Vec<&Example>) =
            examples.iter().partition(|e| fold_of(e) == Some(k));
        if valid.is_empty() {
            continue;
        }
        let fit: Vec<Example> = fit.into_iter().cloned().collect();
        progress(format!(
            "fold {k}: training on {} sentences, validating on {}",
            fit.len(),
            valid.len()
        ));
        let model = train(&fit, rules, options, progress);
        let valid = valid.into_iter().map(|e| (e, rules(&e.text))).collect();
        folds.push((valid, model));
        folds_used.push(k);
    }
    type Find<'a> = &'a dyn Fn(&Model, &str, &[Finding]) -> Vec<Finding>;
    let score = |folds: &[Fold<'_>], find: Find<'_>| {
        let mut s = Scores::default();
        for (valid, model) in folds {
            for (e, found) in valid {
                let predicted: Vec<(&str, usize, usize)> = find(model, &e.text, found)
                    .iter()
                    .map(|f| (f.entity_type, f.start, f.end))
                    .collect();
                s.add(&e.spans, &predicted);
            }
        }
        s
    };
    let by_rules = score(&folds, &|_, _, found| found.to_vec());
    let by_tagger = score(&folds, &|model, text, found| model.tag(text, found));
    let mut rule_types: Vec<&'static str> = ENTITY_TYPES
        .iter()
        .copied()
        .filter(|t| {
            // The higher F2 answers; on a tie (a type the validation templates never hold
            // scores 0 both ways) the one with fewer false positives.
            let (rules, tagger) = (by_rules.prf(Some(t)).2, by_tagger.prf(Some(t)).2);
            rules > tagger || (rules == tagger && by_rules.wrong(t) < by_tagger.wrong(t))
        })
        .collect();
    rule_types.sort_unstable();
    // Each type alone is not the whole story: what answers for one type decides which
    // findings of the others survive overlaps. One sweep over the types seen in
    // validation keeps a flip where the combined F2 gains.
    let combined_with = |folds: &mut [Fold<'_>], rule_types: &[&'static str], fallback: f64| {
        for (_, model) in folds.iter_mut() {
            model.rule_types = rule_types.to_vec();
            model.fallback_score = fallback;
        }
        score(folds, &|model, text, found| {
            model.detect(text, found.to_vec())
        })
    };
    let mut current = combined_with(&mut folds, &rule_types, DEFAULT_FALLBACK_SCORE)
        .prf(None)
        .2;
    for ty in ENTITY_TYPES {
        if !by_rules.counts.contains_key(*ty) && !by_tagger.counts.contains_key(*ty) {
            continue;
        }
        let mut flipped = rule_types.clone();
        if let Some(at) = flipped.iter().position(|t| t == ty) {
            flipped.remove(at);
        } else {
            flipped.push(ty);
            flipped.sort_unstable();
        }
        let f2 = combined_with(&mut folds, &flipped, DEFAULT_FALLBACK_SCORE)
            .prf(None)
            .2;
        if f2 > current {
            progress(format!(
                "selection: {ty} flips (combined F2 {current:.4} -> {f2:.4})"
            ));
            rule_types = flipped;
            current = f2;
        }
    }
    // The fallback score, chosen on validation too, but never above the phone and age
    // recognizers' 0.75: what the rules find and the tagger leaves alone is kept.
    let mut best: Option<(f64, f64, Scores)> = None;
    for fallback in FALLBACK_CANDIDATES {
        let s = combined_with(&mut folds, &rule_types, fallback);
        let f2 = s.prf(None).2;
        if best.as_ref().is_none_or(|b| f2 > b.1) {
            best = Some((fallback, f2, s));
        }
    }
    let (fallback_score, _, combined) = best.expect("at least one candidate");
    // The entity bias last, on the same folds and by the same F2 (which weighs recall
    // four times precision): the smallest bias within [`BIAS_F2_TOLERANCE`] of the best.
    // Each step up finds more spans, false ones too; a gain in the fourth decimal is
    // noise between folds, and took English precision down 2.6 points for +0.0008 F2.
    let mut tried = vec![(0.0, combined.prf(None).2, combined)];
    for bias in ENTITY_BIAS_CANDIDATES {
        for (_, model) in folds.iter_mut() {
            model.entity_bias = bias;
        }
        let s = combined_with(&mut folds, &rule_types, fallback_score);
        let f2 = s.prf(None).2;
        progress(format!("entity bias {bias}: combined F2 {f2:.4}"));
        tried.push((bias, f2, s));
    }
    let best_f2 = tried.iter().map(|t| t.1).fold(f64::MIN, f64::max);
    let (entity_bias, _, combined) = tried
        .into_iter()
        .find(|t| t.1 >= best_f2 - BIAS_F2_TOLERANCE)
        .expect("the best is within the tolerance of itself");
    for (valid, model) in &mut folds {
        model.rule_types.clone_from(&rule_types);
        model.fallback_score = fallback_score;
        model.entity_bias = entity_bias;
        for (e, found) in valid.iter() {
            validated(e, &model.detect(&e.text, found.clone()));
        }
    }
    let figures = Scores::figures;
    let per_type: serde_json::Map<String, serde_json::Value> = combined
        .counts
        .keys()
        .map(|t| {
            let (p, r, f2) = combined.prf(Some(t));
            (
                t.clone(),
                serde_json::json!({
                    "precision": p, "recall": r, "f2": f2,
                    "source": if rule_types.contains(&t.as_str()) { "rules" } else { "tagger" },
                }),
            )
        })
        .collect();
    let (_, _, f2) = combined.prf(None);
    let validation_sentences: usize = folds.iter().map(|(valid, _)| valid.len()).sum();
    progress(format!(
        "validation F2: rules {:.3}, tagger {:.3}, combined {f2:.3}; rules answer for {rule_types:?}; \
         fallback score {fallback_score}",
        by_rules.prf(None).2,
        by_tagger.prf(None).2
    ));
    progress(format!(
        "final: training on all {} sentences",
        examples.len()
    ));
    let mut model = train(examples, rules, options, progress);
    model.rule_types = rule_types;
    model.fallback_score = fallback_score;
    model.entity_bias = entity_bias;
    let templates: std::collections::BTreeSet<u32> =
        examples.iter().filter_map(|e| e.template_id).collect();
    let own = |t: &u32| *t >= OWN_TEMPLATES;
    model.meta = serde_json::json!({
        "sentences": examples.len(),
        "templates": templates.iter().filter(|t| !own(t)).count(),
        "own_templates": templates.iter().filter(|t| own(t)).count(),
        "own_sentences": examples.iter().filter(|e| e.template_id.is_some_and(|t| own(&t))).count(),
        "validation": {
            "folds": folds_used,
            "sentences": validation_sentences,
            "rules": figures(&by_rules),
            "tagger": figures(&by_tagger),
            "combined": figures(&combined),
            "per_type": per_type,
        },
        "entity_bias": entity_bias,
        "epochs": options.epochs,
        "seed": options.seed,
        "features": model.features(),
    });
    model
}

/// Which gold spans were found and which predictions were right: a prediction is right
/// when a gold span of the same type, not yet matched, overlaps it by at least half of
/// their union (IoU ≥ 0.5). Returns (per gold span, per prediction).
pub fn matches(
    gold: &[(&str, usize, usize)],
    predicted: &[(&str, usize, usize)],
) -> (Vec<bool>, Vec<bool>) {
    let mut used = vec![false; gold.len()];
    let right = predicted
        .iter()
        .map(|(pt, ps, pe)| {
            let hit = gold.iter().enumerate().position(|(i, (gt, gs, ge))| {
                if used[i] || gt != pt {
                    return false;
                }
                let inter = (*pe).min(*ge).saturating_sub((*ps).max(*gs));
                let union = (*pe).max(*ge) - (*ps).min(*gs);
                union > 0 && inter * 2 >= union
            });
            if let Some(i) = hit {
                used[i] = true;
            }
            hit.is_some()
        })
        .collect();
    (used, right)
}

/// Span-level counts per entity type: a prediction is right when a gold span of the same
/// type overlaps it by at least half of their union (IoU ≥ 0.5), each gold span once —
/// the rule of `benches/privacy_eval.py`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Scores {
    /// type → (true positives, false positives, false negatives).
    pub counts: std::collections::BTreeMap<String, (usize, usize, usize)>,
}

impl Scores {
    /// Precision, recall and F2 over all types, as the model card's metadata holds them.
    pub fn figures(&self) -> serde_json::Value {
        let (p, r, f2) = self.prf(None);
        serde_json::json!({"precision": p, "recall": r, "f2": f2})
    }

    /// Adds one sentence.
    pub fn add(&mut self, gold: &[(&str, usize, usize)], predicted: &[(&str, usize, usize)]) {
        let (gold_hit, predicted_hit) = matches(gold, predicted);
        for ((pt, _, _), hit) in predicted.iter().zip(predicted_hit) {
            let c = self.counts.entry((*pt).to_owned()).or_default();
            if hit {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
        for ((gt, _, _), hit) in gold.iter().zip(gold_hit) {
            if !hit {
                self.counts.entry((*gt).to_owned()).or_default().2 += 1;
            }
        }
    }

    /// The false positives of one type.
    pub fn wrong(&self, ty: &str) -> usize {
        self.counts.get(ty).map_or(0, |c| c.1)
    }

    /// (precision, recall, F2) of one type, or of all when `None`.
    pub fn prf(&self, ty: Option<&str>) -> (f64, f64, f64) {
        let (tp, fp, fn_) = self
            .counts
            .iter()
            .filter(|(k, _)| ty.is_none_or(|t| t == k.as_str()))
            .fold((0, 0, 0), |a, (_, c)| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
        let p = if tp + fp > 0 {
            tp as f64 / (tp + fp) as f64
        } else {
            0.0
        };
        let r = if tp + fn_ > 0 {
            tp as f64 / (tp + fn_) as f64
        } else {
            0.0
        };
        let f2 = if p + r > 0.0 {
            5.0 * p * r / (4.0 * p + r)
        } else {
            0.0
        };
        (p, r, f2)
    }
}
