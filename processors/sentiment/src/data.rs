//! The VADER gold-standard sets (Hutto & Gilbert 2014; in the `vaderSentiment` 3.3.2 source
//! distribution, MIT): tweets, movie-review snippets, Amazon review snippets and New York
//! Times editorial snippets, each sentence with the mean of ten human ratings on −4..+4.
//!
//! Three classes: mean rating below −0.5 is negative, above +0.5 positive, otherwise
//! neutral (within half a scale point of zero the raters did not agree on a direction).
//! The split is a hash of (set, id): 80 % train, 10 % validation (early stopping and
//! calibration), 10 % test (never trained or tuned on).

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{SentimentError, SentimentLabel};

/// The four sets: name and file.
pub const SETS: [(&str, &str); 4] = [
    ("tweets", "tweets_GroundTruth.txt"),
    ("movies", "movieReviewSnippets_GroundTruth.txt"),
    ("amazon", "amazonReviewSnippets_GroundTruth.txt"),
    ("nyt", "nytEditorialSnippets_GroundTruth.txt"),
];

/// |mean rating| at or below this is neutral.
pub const NEUTRAL_BAND: f64 = 0.5;

/// Which part of the data an example belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Fits the head.
    Train,
    /// Early stopping, temperature and β.
    Validation,
    /// Reported only.
    Test,
}

/// One rated sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// tweets, movies, amazon or nyt.
    pub set: &'static str,
    /// The id in its file.
    pub id: String,
    /// The sentence.
    pub text: String,
    /// Mean human rating, −4..+4.
    pub rating: f64,
    /// The class the rating maps to.
    pub label: SentimentLabel,
    /// Its split.
    pub split: Split,
}

/// The class of a mean rating.
pub fn label_for_rating(rating: f64) -> SentimentLabel {
    if rating < -NEUTRAL_BAND {
        SentimentLabel::Negative
    } else if rating > NEUTRAL_BAND {
        SentimentLabel::Positive
    } else {
        SentimentLabel::Neutral
    }
}

/// The split of an example, from a hash of its set and id (stable across runs and
/// machines, independent of file order).
pub fn split_of(set: &str, id: &str) -> Split {
    let digest = Sha256::digest(format!("{set}/{id}").as_bytes());
    match u16::from_be_bytes([digest[0], digest[1]]) % 10 {
        0 => Split::Test,
        1 => Split::Validation,
        _ => Split::Train,
    }
}

/// Reads the four sets from `dir` (`scripts/setup.sh` installs them to `.tools/data/vader`).
pub fn load_gold(dir: &Path) -> Result<Vec<Example>, SentimentError> {
    let mut out = Vec::new();
    for (set, file) in SETS {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| {
            SentimentError::Load(format!(
                "{}: {e} (scripts/setup.sh installs the VADER sets)",
                path.display()
            ))
        })?;
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let mut fields = line.splitn(3, '\t');
            let (Some(id), Some(rating), Some(sentence)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(SentimentError::Load(format!(
                    "{}:{}: expected id, rating and text separated by tabs",
                    path.display(),
                    n + 1
                )));
            };
            let rating: f64 = rating.trim().parse().map_err(|e| {
                SentimentError::Load(format!("{}:{}: rating: {e}", path.display(), n + 1))
            })?;
            out.push(Example {
                set,
                id: id.to_owned(),
                text: sentence.trim().to_owned(),
                rating,
                label: label_for_rating(rating),
                split: split_of(set, id),
            });
        }
    }
    Ok(out)
}

/// The project's own customer-service messages (`processors/sentiment/data/support.tsv`):
/// lines `id<TAB>label<TAB>text`, `#` comments. Set `support`, split like the others by a
/// hash of (set, id); the rating is nominal (±2, 0) since the label is given.
pub fn load_support(path: &Path) -> Result<Vec<Example>, SentimentError> {
    let mut out = Vec::new();
    for row in labelled_rows(path, &["id", "label", "text"])? {
        let (id, label, sentence) = (&row.fields[0], row.label, &row.fields[2]);
        let rating = match label {
            SentimentLabel::Negative => -2.0,
            SentimentLabel::Neutral => 0.0,
            SentimentLabel::Positive => 2.0,
        };
        out.push(Example {
            set: SUPPORT,
            id: id.to_owned(),
            text: sentence.trim().to_owned(),
            rating,
            label,
            split: split_of(SUPPORT, id),
        });
    }
    Ok(out)
}

/// A data line of a labelled tab-separated file: its fields and its label.
struct LabelledRow {
    fields: Vec<String>,
    label: SentimentLabel,
}

/// The data lines of a tab-separated file of labelled messages (blank lines and `#`
/// comments skipped), split into `columns` (the last takes the rest of the line), the one
/// named `label` read as a label.
fn labelled_rows(path: &Path, columns: &[&str]) -> Result<Vec<LabelledRow>, SentimentError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SentimentError::Load(format!("{}: {e}", path.display())))?;
    let at = columns.iter().position(|c| *c == "label").unwrap_or(0);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad =
            |what: String| SentimentError::Load(format!("{}:{}: {what}", path.display(), n + 1));
        let fields: Vec<&str> = line.splitn(columns.len(), '\t').collect();
        if fields.len() < columns.len() {
            return Err(bad(format!(
                "expected {} separated by tabs",
                columns.join(", ")
            )));
        }
        let label = crate::LABELS
            .into_iter()
            .find(|l| crate::label_name(*l) == fields[at])
            .ok_or_else(|| {
                bad(format!(
                    "label {:?} is not negative, neutral or positive",
                    fields[at]
                ))
            })?;
        out.push(LabelledRow {
            fields: fields.into_iter().map(str::to_owned).collect(),
            label,
        });
    }
    Ok(out)
}

/// The set name of [`load_support`]'s examples.
pub const SUPPORT: &str = "support";

/// Where the support messages live, relative to the project root.
pub const DEFAULT_SUPPORT_FILE: &str = "processors/sentiment/data/support.tsv";

/// Where the project's multilingual customer-service messages live, relative to the project
/// root: the evaluation of languages other than English, never trained on.
pub const DEFAULT_MULTILINGUAL_FILE: &str = "processors/sentiment/data/support-multilingual.tsv";

/// One of the multilingual messages.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageExample {
    /// Its id in the file.
    pub id: String,
    /// Its language (ISO 639-1).
    pub language: String,
    /// The author's label.
    pub label: SentimentLabel,
    /// The message.
    pub text: String,
    /// In the dev half (for choices) rather than the test half (reported only): the first
    /// byte of sha256("support-multilingual/" + id) is even.
    pub dev: bool,
}

/// Reads the multilingual messages: lines `id<TAB>language<TAB>label<TAB>text`, `#`
/// comments.
pub fn load_multilingual(path: &Path) -> Result<Vec<LanguageExample>, SentimentError> {
    let mut out = Vec::new();
    for row in labelled_rows(path, &["id", "language", "label", "text"])? {
        let (id, language, label, sentence) =
            (&row.fields[0], &row.fields[1], row.label, &row.fields[3]);
        let digest = Sha256::digest(format!("support-multilingual/{id}").as_bytes());
        out.push(LanguageExample {
            id: id.to_owned(),
            language: language.to_owned(),
            label,
            text: sentence.trim().to_owned(),
            dev: digest[0] % 2 == 0,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_support_messages_load_with_their_labels() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/support.tsv");
        let examples = load_support(&path).expect("the shipped file loads");
        assert!(examples.len() > 200, "{}", examples.len());
        for label in crate::LABELS {
            assert!(examples.iter().any(|e| e.label == label), "{label:?}");
        }
        let dir = std::env::temp_dir().join(format!("support-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bad = dir.join("bad.tsv");
        std::fs::write(&bad, "# c\nx-1\tangry\tNo.\n").expect("writes");
        let err = load_support(&bad)
            .expect_err("an unknown label is refused")
            .to_string();
        assert!(err.contains("bad.tsv:2") && err.contains("angry"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_multilingual_messages_load_in_four_languages_and_two_halves() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/support-multilingual.tsv");
        let examples = load_multilingual(&path).expect("the shipped file loads");
        for language in ["de", "fr", "es", "nl"] {
            let of: Vec<_> = examples.iter().filter(|e| e.language == language).collect();
            assert_eq!(of.len(), 60, "{language}");
            for label in crate::LABELS {
                assert_eq!(
                    of.iter().filter(|e| e.label == label).count(),
                    20,
                    "{language} {label:?}"
                );
            }
        }
        let dev = examples.iter().filter(|e| e.dev).count();
        assert!(
            (90..=150).contains(&dev),
            "{dev} of {} in the dev half",
            examples.len()
        );
    }

    #[test]
    fn ratings_map_to_three_classes() {
        assert_eq!(label_for_rating(-0.51), SentimentLabel::Negative);
        assert_eq!(label_for_rating(-0.5), SentimentLabel::Neutral);
        assert_eq!(label_for_rating(0.5), SentimentLabel::Neutral);
        assert_eq!(label_for_rating(0.51), SentimentLabel::Positive);
    }

    #[test]
    fn splits_are_stable_and_roughly_80_10_10() {
        assert_eq!(split_of("tweets", "1"), split_of("tweets", "1"));
        let splits: Vec<Split> = (0..10_000)
            .map(|i| split_of("movies", &i.to_string()))
            .collect();
        let share = |s| splits.iter().filter(|x| **x == s).count() as f64 / 10_000.0;
        assert!((share(Split::Test) - 0.1).abs() < 0.015);
        assert!((share(Split::Validation) - 0.1).abs() < 0.015);
    }
}
