//! Retrieval of approved replies: a reply a reviewer approved for an earlier message of the
//! same intent and language is reused for a new message that reads like it.
//!
//! Similarity is lexical: TF-IDF cosine between the new message and the earlier ones,
//! with document frequencies over the memory itself (so words every message shares, like
//! the product name, count little). The memory holds the most recent `capacity` approved
//! replies; the processor feeds it from `ResponseApproved` events (only reviewers'
//! approvals: automatic ones would teach it its own output), and the launcher seeds it
//! from the store on start.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde::Deserialize;

use crate::draft::{Backend, BackendError, Draft, DraftRequest};
use crate::intent::Intent;

/// Retrieval's knobs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalConfig {
    /// Approved replies kept.
    pub capacity: usize,
    /// Least cosine similarity for a reply to be reused.
    pub min_similarity: f64,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            capacity: 10_000,
            min_similarity: 0.6,
        }
    }
}

/// One approved reply and the message it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Approved {
    /// The customer's scrubbed message.
    pub inquiry: String,
    /// The approved reply.
    pub reply: String,
    /// The message's intent.
    pub intent: Intent,
    /// The customer's language (primary subtag, lower case), if declared.
    pub language: Option<String>,
}

#[derive(Debug)]
struct Entry {
    approved: Approved,
    terms: HashMap<String, u32>,
}

/// The approved replies, shared by the processor (which adds) and the backend (which reads).
#[derive(Debug, Default)]
pub struct Memory {
    capacity: usize,
    entries: VecDeque<Entry>,
    document_frequency: HashMap<String, u32>,
}

/// A handle on a shared memory.
pub type SharedMemory = Arc<RwLock<Memory>>;

fn tokens(text: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for t in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 2)
    {
        *out.entry(t.to_owned()).or_default() += 1;
    }
    out
}

/// The primary language subtag, lower case.
pub fn primary_language(tag: Option<&str>) -> Option<String> {
    tag.and_then(|t| t.split(['-', '_']).next())
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
}

impl Memory {
    /// An empty memory keeping at most `capacity` replies.
    pub fn new(capacity: usize) -> Self {
        Memory {
            capacity: capacity.max(1),
            ..Default::default()
        }
    }

    /// A shared empty memory.
    pub fn shared(capacity: usize) -> SharedMemory {
        Arc::new(RwLock::new(Memory::new(capacity)))
    }

    /// Replies held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an approved reply, forgetting the oldest beyond capacity. An identical pair is
    /// not added twice (a redelivered event).
    pub fn add(&mut self, approved: Approved) {
        if approved.inquiry.trim().is_empty() || approved.reply.trim().is_empty() {
            return;
        }
        if self.entries.iter().any(|e| e.approved == approved) {
            return;
        }
        let terms = tokens(&approved.inquiry);
        for t in terms.keys() {
            *self.document_frequency.entry(t.clone()).or_default() += 1;
        }
        self.entries.push_back(Entry { approved, terms });
        while self.entries.len() > self.capacity {
            if let Some(old) = self.entries.pop_front() {
                for t in old.terms.keys() {
                    if let Some(n) = self.document_frequency.get_mut(t) {
                        *n -= 1;
                        if *n == 0 {
                            self.document_frequency.remove(t);
                        }
                    }
                }
            }
        }
    }

    fn idf(&self, term: &str) -> f64 {
        let n = self.entries.len() as f64;
        let df = f64::from(self.document_frequency.get(term).copied().unwrap_or(0));
        ((n + 1.0) / (df + 1.0)).ln() + 1.0
    }

    fn weights<'t>(&self, terms: &'t HashMap<String, u32>) -> (HashMap<&'t str, f64>, f64) {
        let w: HashMap<&str, f64> = terms
            .iter()
            .map(|(t, n)| (t.as_str(), f64::from(*n) * self.idf(t)))
            .collect();
        let norm = w.values().map(|v| v * v).sum::<f64>().sqrt();
        (w, norm)
    }

    /// The most similar approved reply for a message of this intent and language, with
    /// its similarity, if any reaches `min_similarity`.
    pub fn best(
        &self,
        text: &str,
        intent: Intent,
        language: Option<&str>,
        min_similarity: f64,
    ) -> Option<(&Approved, f64)> {
        let language = primary_language(language);
        let query = tokens(text);
        let (q, q_norm) = self.weights(&query);
        if q_norm == 0.0 {
            return None;
        }
        self.entries
            .iter()
            .filter(|e| e.approved.intent == intent && e.approved.language == language)
            .filter_map(|e| {
                let (d, d_norm) = self.weights(&e.terms);
                if d_norm == 0.0 {
                    return None;
                }
                let dot: f64 = q.iter().filter_map(|(t, w)| d.get(t).map(|v| v * w)).sum();
                Some((&e.approved, dot / (q_norm * d_norm)))
            })
            .filter(|(_, s)| *s >= min_similarity)
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// Drafts by reusing approved replies.
#[derive(Debug, Clone)]
pub struct RetrievalBackend {
    memory: SharedMemory,
    min_similarity: f64,
}

impl RetrievalBackend {
    /// A backend reading `memory`.
    pub fn new(memory: SharedMemory, config: &RetrievalConfig) -> Self {
        RetrievalBackend {
            memory,
            min_similarity: config.min_similarity,
        }
    }
}

#[async_trait]
impl Backend for RetrievalBackend {
    fn name(&self) -> &str {
        "retrieval"
    }

    async fn draft(&self, request: &DraftRequest) -> Result<Draft, BackendError> {
        let memory = self
            .memory
            .read()
            .map_err(|_| BackendError::Malformed("retrieval memory poisoned".into()))?;
        let (approved, _) = memory
            .best(
                &request.text,
                request.intent.intent,
                request.language.as_deref(),
                self.min_similarity,
            )
            .ok_or(BackendError::NoMatch)?;
        Ok(Draft {
            text: approved.reply.clone(),
            backend: "retrieval".into(),
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved(inquiry: &str, reply: &str, intent: Intent) -> Approved {
        Approved {
            inquiry: inquiry.into(),
            reply: reply.into(),
            intent,
            language: Some("en".into()),
        }
    }

    #[test]
    fn the_closest_reply_of_the_same_intent_and_language_wins() {
        let mut m = Memory::new(10);
        m.add(approved(
            "My router keeps dropping the connection every evening",
            "Reply A",
            Intent::Technical,
        ));
        m.add(approved(
            "The tv-box shows a black screen after the update",
            "Reply B",
            Intent::Technical,
        ));
        m.add(approved(
            "The bill for this month is wrong",
            "Reply C",
            Intent::Billing,
        ));
        let (best, score) = m
            .best(
                "my router keeps dropping the connection at night",
                Intent::Technical,
                Some("en-GB"),
                0.3,
            )
            .expect("a match");
        assert_eq!(best.reply, "Reply A");
        assert!(score > 0.5 && score <= 1.0 + 1e-12, "{score}");
        // Same words, other intent or language: nothing.
        assert!(
            m.best(
                "The bill for this month is wrong",
                Intent::Technical,
                Some("en"),
                0.3
            )
            .is_none()
        );
        assert!(
            m.best(
                "The bill for this month is wrong",
                Intent::Billing,
                Some("de"),
                0.3
            )
            .is_none()
        );
        let (exact, s) = m
            .best(
                "The bill for this month is wrong",
                Intent::Billing,
                Some("en"),
                0.99,
            )
            .expect("identical text");
        assert_eq!(exact.reply, "Reply C");
        assert!((s - 1.0).abs() < 1e-9);
    }

    #[test]
    fn capacity_forgets_the_oldest_and_its_frequencies() {
        let mut m = Memory::new(2);
        m.add(approved("alpha beta", "1", Intent::General));
        m.add(approved("gamma delta", "2", Intent::General));
        m.add(approved("gamma delta", "2", Intent::General)); // duplicate: ignored
        m.add(approved("epsilon zeta", "3", Intent::General));
        assert_eq!(m.len(), 2);
        assert!(
            m.best("alpha beta", Intent::General, Some("en"), 0.1)
                .is_none()
        );
        assert!(!m.document_frequency.contains_key("alpha"));
        assert_eq!(m.document_frequency.get("gamma"), Some(&1));
    }

    #[test]
    fn empty_texts_are_not_learned() {
        let mut m = Memory::new(2);
        m.add(approved("   ", "reply", Intent::General));
        m.add(approved("question", "", Intent::General));
        assert!(m.is_empty());
        assert!(m.best("", Intent::General, None, 0.0).is_none());
    }
}
