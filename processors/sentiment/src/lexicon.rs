//! VADER (Hutto & Gilbert, ICWSM 2014), ported rule for rule from `vaderSentiment` 3.3.2,
//! with its lexicons (MIT; `data/VADER-LICENSE.txt`). The golden test compares every
//! compound score with the Python package's on the gold-standard sentences.
//!
//! The port keeps the reference's quirks on purpose (the "but" rule rescales the *first*
//! sentiment equal to each value, as `list.index` does), so that scores match exactly.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::{Backend, BackendKind, ModelInfo, Prediction, SentimentError};

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOST_UP: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

const BOOST_DOWN: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "just enough",
    "kind of",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sort of",
    "sorta",
    "sortof",
    "sort-of",
];

const SPECIAL_CASES: &[(&str, f64)] = &[
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

/// The label thresholds VADER's authors recommend on the compound score.
pub const COMPOUND_THRESHOLD: f64 = 0.05;

/// VADER's scores for one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polarity {
    /// Normalised sum of valences, -1..1.
    pub compound: f64,
    /// Share of positive valence.
    pub pos: f64,
    /// Share of neutral words.
    pub neu: f64,
    /// Share of negative valence.
    pub neg: f64,
}

/// The lexicons, parsed once per process.
#[derive(Debug)]
pub struct Vader {
    lexicon: HashMap<String, f64>,
    emojis: HashMap<char, String>,
    boosters: HashMap<&'static str, f64>,
    special: HashMap<&'static str, f64>,
}

impl Vader {
    /// The shared analyzer (the lexicons are compiled into the binary).
    pub fn get() -> &'static Vader {
        static VADER: OnceLock<Vader> = OnceLock::new();
        VADER.get_or_init(Vader::new)
    }

    fn new() -> Self {
        let lexicon = include_str!("../data/vader_lexicon.txt")
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let word = fields.next()?;
                let measure = fields.next()?.trim().parse().ok()?;
                Some((word.to_owned(), measure))
            })
            .collect();
        let emojis = include_str!("../data/emoji_utf8_lexicon.txt")
            .lines()
            .filter_map(|line| {
                let (emoji, description) = line.trim().split_once('\t')?;
                let mut chars = emoji.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some((c, description.to_owned())),
                    // `chr in emojis` in the reference only ever matches one character.
                    _ => None,
                }
            })
            .collect();
        let boosters = BOOST_UP
            .iter()
            .map(|w| (*w, B_INCR))
            .chain(BOOST_DOWN.iter().map(|w| (*w, B_DECR)))
            .collect();
        Vader {
            lexicon,
            emojis,
            boosters,
            special: SPECIAL_CASES.iter().copied().collect(),
        }
    }

    /// `polarity_scores`: compound, pos, neu and neg, unrounded.
    pub fn polarity(&self, text: &str) -> Polarity {
        let text = self.replace_emojis(text);
        let words = words_and_emoticons(&text);
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let is_cap_diff = allcap_differential(&words);
        let mut sentiments = Vec::with_capacity(words.len());
        for (i, item) in lower.iter().enumerate() {
            if self.boosters.contains_key(item.as_str())
                || (item == "kind" && lower.get(i + 1).is_some_and(|n| n == "of"))
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.valence(&words, &lower, i, is_cap_diff));
        }
        but_check(&lower, &mut sentiments);
        score_valence(&sentiments, &text)
    }

    fn replace_emojis(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut prev_space = true;
        for c in text.chars() {
            if let Some(description) = self.emojis.get(&c) {
                if !prev_space {
                    out.push(' ');
                }
                out.push_str(description);
                prev_space = false;
            } else {
                out.push(c);
                prev_space = c == ' ';
            }
        }
        out.trim().to_owned()
    }

    fn in_lexicon(&self, word: &str) -> bool {
        self.lexicon.contains_key(word)
    }

    fn valence(&self, words: &[&str], lower: &[String], i: usize, is_cap_diff: bool) -> f64 {
        let item = &lower[i];
        let Some(&base) = self.lexicon.get(item.as_str()) else {
            return 0.0;
        };
        let mut valence = base;
        if item == "no" && i + 1 != lower.len() && self.in_lexicon(&lower[i + 1]) {
            valence = 0.0;
        }
        if (i > 0 && lower[i - 1] == "no")
            || (i > 1 && lower[i - 2] == "no")
            || (i > 2 && lower[i - 3] == "no" && (lower[i - 1] == "or" || lower[i - 1] == "nor"))
        {
            valence = base * N_SCALAR;
        }
        if is_upper(words[i]) && is_cap_diff {
            valence += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        for start_i in 0..3 {
            if i > start_i && !self.in_lexicon(&lower[i - (start_i + 1)]) {
                let mut s = self.scalar_inc_dec(words[i - (start_i + 1)], valence, is_cap_diff);
                if start_i == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start_i == 2 && s != 0.0 {
                    s *= 0.9;
                }
                valence += s;
                valence = negation_check(valence, lower, start_i, i);
                if start_i == 2 {
                    valence = self.special_idioms_check(valence, lower, i);
                }
            }
        }
        self.least_check(valence, lower, i)
    }

    fn scalar_inc_dec(&self, word: &str, valence: f64, is_cap_diff: bool) -> f64 {
        let Some(&boost) = self.boosters.get(word.to_lowercase().as_str()) else {
            return 0.0;
        };
        let mut scalar = if valence < 0.0 { -boost } else { boost };
        if is_upper(word) && is_cap_diff {
            scalar += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        scalar
    }

    fn least_check(&self, valence: f64, lower: &[String], i: usize) -> f64 {
        if i > 1 && !self.in_lexicon(&lower[i - 1]) && lower[i - 1] == "least" {
            if lower[i - 2] != "at" && lower[i - 2] != "very" {
                return valence * N_SCALAR;
            }
        } else if i > 0 && !self.in_lexicon(&lower[i - 1]) && lower[i - 1] == "least" {
            return valence * N_SCALAR;
        }
        valence
    }

    /// Only reached with i >= 3 (start_i == 2 and i > start_i).
    fn special_idioms_check(&self, mut valence: f64, lower: &[String], i: usize) -> f64 {
        let onezero = format!("{} {}", lower[i - 1], lower[i]);
        let twoonezero = format!("{} {} {}", lower[i - 2], lower[i - 1], lower[i]);
        let twoone = format!("{} {}", lower[i - 2], lower[i - 1]);
        let threetwoone = format!("{} {} {}", lower[i - 3], lower[i - 2], lower[i - 1]);
        let threetwo = format!("{} {}", lower[i - 3], lower[i - 2]);
        for seq in [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo] {
            if let Some(&v) = self.special.get(seq.as_str()) {
                valence = v;
                break;
            }
        }
        if lower.len() - 1 > i {
            let zeroone = format!("{} {}", lower[i], lower[i + 1]);
            if let Some(&v) = self.special.get(zeroone.as_str()) {
                valence = v;
            }
        }
        if lower.len() - 1 > i + 1 {
            let zeroonetwo = format!("{} {} {}", lower[i], lower[i + 1], lower[i + 2]);
            if let Some(&v) = self.special.get(zeroonetwo.as_str()) {
                valence = v;
            }
        }
        for ngram in [&threetwoone, &threetwo, &twoone] {
            if let Some(&v) = self.boosters.get(ngram.as_str()) {
                valence += v;
            }
        }
        valence
    }
}

/// Python's `str.isupper`: at least one cased character and no lower-case one.
fn is_upper(word: &str) -> bool {
    let mut cased = false;
    for c in word.chars() {
        if c.is_lowercase() {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// Words split on whitespace, leading/trailing ASCII punctuation stripped unless that leaves
/// two characters or fewer (an emoticon such as `:)`).
fn words_and_emoticons(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .map(|token| {
            let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
            if stripped.chars().count() <= 2 {
                token
            } else {
                stripped
            }
        })
        .collect()
}

/// True when some but not all words are in capitals.
fn allcap_differential(words: &[&str]) -> bool {
    let caps = words.iter().filter(|w| is_upper(w)).count();
    let differential = words.len() - caps;
    differential > 0 && differential < words.len()
}

fn negated(word: &str) -> bool {
    NEGATE.contains(&word) || word.contains("n't")
}

fn negation_check(valence: f64, lower: &[String], start_i: usize, i: usize) -> f64 {
    let w = |back: usize| lower[i - back].as_str();
    match start_i {
        0 if negated(w(1)) => valence * N_SCALAR,
        1 if w(2) == "never" && (w(1) == "so" || w(1) == "this") => valence * 1.25,
        1 if w(2) == "without" && w(1) == "doubt" => valence,
        1 if negated(w(2)) => valence * N_SCALAR,
        2 if (w(3) == "never" && (w(2) == "so" || w(2) == "this"))
            || (w(1) == "so" || w(1) == "this") =>
        {
            valence * 1.25
        }
        2 if w(3) == "without" && (w(2) == "doubt" || w(1) == "doubt") => valence,
        2 if negated(w(3)) => valence * N_SCALAR,
        _ => valence,
    }
}

/// Sentiments before "but" count half, after it one and a half times. Replicates the
/// reference's `sentiments.index(sentiment)`, which finds the first equal value.
fn but_check(lower: &[String], sentiments: &mut [f64]) {
    let Some(bi) = lower.iter().position(|w| w == "but") else {
        return;
    };
    for k in 0..sentiments.len() {
        let sentiment = sentiments[k];
        let si = sentiments.iter().position(|s| *s == sentiment).unwrap_or(k);
        if si < bi {
            sentiments[si] = sentiment * 0.5;
        } else if si > bi {
            sentiments[si] = sentiment * 1.5;
        }
    }
}

fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.matches('!').count().min(4) as f64 * 0.292;
    let qm = match text.matches('?').count() {
        n @ 2..=3 => n as f64 * 0.18,
        n if n > 3 => 0.96,
        _ => 0.0,
    };
    ep + qm
}

fn score_valence(sentiments: &[f64], text: &str) -> Polarity {
    if sentiments.is_empty() {
        return Polarity {
            compound: 0.0,
            pos: 0.0,
            neu: 0.0,
            neg: 0.0,
        };
    }
    let emphasis = punctuation_emphasis(text);
    let mut sum: f64 = sentiments.iter().sum();
    if sum > 0.0 {
        sum += emphasis;
    } else if sum < 0.0 {
        sum -= emphasis;
    }
    let compound = (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0);
    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0, 0.0, 0.0);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1.0;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += emphasis;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= emphasis;
    }
    let total = pos_sum + neg_sum.abs() + neu_count;
    Polarity {
        compound,
        pos: (pos_sum / total).abs(),
        neu: (neu_count / total).abs(),
        neg: (neg_sum / total).abs(),
    }
}

/// The lexicon backend: VADER's compound score, turned into three probabilities by a
/// softmax whose decision boundaries are VADER's own ±0.05 thresholds:
/// logits (β(−c − 0.05), 0, β(c − 0.05)). β is a temperature fitted on the validation
/// split by `insights train sentiment` (stored in the model's `model.json`).
#[derive(Debug, Clone)]
pub struct LexiconBackend {
    beta: f64,
    info: ModelInfo,
}

/// β when no trained value is at hand.
pub const DEFAULT_BETA: f64 = 8.0;

impl LexiconBackend {
    /// A lexicon backend with the softmax sharpness `beta`.
    pub fn new(beta: f64) -> Self {
        LexiconBackend {
            beta,
            info: ModelInfo {
                name: "vader-lexicon".into(),
                version: format!("3.3.2+beta{beta:.3}"),
                backend: BackendKind::Lexicon,
            },
        }
    }

    /// The three probabilities for a compound score.
    pub fn probabilities(&self, compound: f64) -> Prediction {
        crate::softmax_prediction([
            self.beta * (-compound - COMPOUND_THRESHOLD),
            0.0,
            self.beta * (compound - COMPOUND_THRESHOLD),
        ])
    }
}

impl Default for LexiconBackend {
    fn default() -> Self {
        LexiconBackend::new(DEFAULT_BETA)
    }
}

impl Backend for LexiconBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn predict(&mut self, texts: &[&str]) -> Result<Vec<Prediction>, SentimentError> {
        let vader = Vader::get();
        Ok(texts
            .iter()
            .map(|t| self.probabilities(vader.polarity(t).compound))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compound(text: &str) -> f64 {
        (Vader::get().polarity(text).compound * 1e4).round() / 1e4
    }

    /// Values printed by vaderSentiment 3.3.2's own `__main__` examples.
    #[test]
    fn matches_the_reference_examples() {
        for (text, expected) in [
            ("VADER is smart, handsome, and funny.", 0.8316),
            ("VADER is smart, handsome, and funny!", 0.8439),
            ("VADER is very smart, handsome, and funny.", 0.8545),
            ("VADER is VERY SMART, handsome, and FUNNY.", 0.9227),
            ("VADER is VERY SMART, handsome, and FUNNY!!!", 0.9342),
            (
                "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
                0.9469,
            ),
            ("VADER is not smart, handsome, nor funny.", -0.7424),
            ("The book was good.", 0.4404),
            ("At least it isn't a horrible book.", 0.431),
            ("The book was only kind of good.", 0.3832),
            (
                "The plot was good, but the characters are uncompelling and the dialog is not great.",
                -0.7042,
            ),
            ("Today SUX!", -0.5461),
            ("Today only kinda sux! But I'll get by, lol", 0.5249),
            ("Make sure you :) or :D today!", 0.8633),
            ("Not bad at all", 0.431),
        ] {
            assert_eq!(compound(text), expected, "{text}");
        }
    }

    #[test]
    fn emojis_are_read_as_their_descriptions() {
        assert_eq!(
            compound("Catch utf-8 emoji such as 💘 and 💋 and 😁"),
            0.875
        );
        assert_eq!(compound(""), 0.0);
    }

    #[test]
    fn probabilities_follow_the_thresholds() {
        let lexicon = LexiconBackend::default();
        for (c, label) in [
            (-0.5, "negative"),
            (-0.04, "neutral"),
            (0.0, "neutral"),
            (0.06, "positive"),
        ] {
            let p = lexicon.probabilities(c);
            assert_eq!(p.label().as_str(), label, "{c}");
            assert!((p.probs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
}
