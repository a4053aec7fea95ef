//! What a drafting backend gets and gives, and how it fails.

use async_trait::async_trait;
use insights_schemas::SentimentLabel;

use crate::intent::Classified;

/// Everything a backend may use to draft a reply; all of it is free of personal data
/// (the text is the privacy processor's output).
#[derive(Debug, Clone)]
pub struct DraftRequest {
    /// The input's id, for logs.
    pub key: String,
    /// The customer's scrubbed message.
    pub text: String,
    /// The customer's declared language (BCP 47).
    pub language: Option<String>,
    /// The message's intent.
    pub intent: Classified,
    /// The message's sentiment.
    pub sentiment: SentimentLabel,
    /// Its confidence.
    pub sentiment_confidence: f64,
    /// chat, email, …
    pub channel: String,
    /// The product the message is about.
    pub product: Option<String>,
}

/// A drafted reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The reply.
    pub text: String,
    /// The backend's name (`openai`, `retrieval`, `template`).
    pub backend: String,
    /// The model, where one drafted.
    pub model: Option<String>,
    /// Prompt tokens, where the backend counts them.
    pub prompt_tokens: Option<u32>,
    /// Completion tokens, where the backend counts them.
    pub completion_tokens: Option<u32>,
}

/// Why a backend did not draft.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Connection refused, reset, a 5xx or a 429: worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The call took longer than its timeout.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The rate limit would have made the call wait longer than allowed.
    #[error("rate limited: no permit within {0} ms")]
    RateLimited(u64),
    /// The circuit breaker is open.
    #[error("circuit breaker open")]
    BreakerOpen,
    /// The backend refused the request (4xx other than 429): retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The backend answered something unusable.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The backend has nothing for this request (retrieval found no similar reply); not
    /// a failure, the next backend simply drafts.
    #[error("no match")]
    NoMatch,
}

impl BackendError {
    /// Whether the same call may succeed if retried.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BackendError::Unavailable(_) | BackendError::Timeout(_)
        )
    }

    /// Whether it counts as the backend failing (for the breaker and for `fell_back`).
    pub fn is_failure(&self) -> bool {
        !matches!(self, BackendError::NoMatch)
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            BackendError::Unavailable(_) => "unavailable",
            BackendError::Timeout(_) => "timeout",
            BackendError::RateLimited(_) => "rate_limited",
            BackendError::BreakerOpen => "breaker_open",
            BackendError::Rejected(_) => "rejected",
            BackendError::Malformed(_) => "malformed",
            BackendError::NoMatch => "no_match",
        }
    }
}

/// A drafting backend.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Its name in events and metrics.
    fn name(&self) -> &str;

    /// Drafts one reply.
    async fn draft(&self, request: &DraftRequest) -> Result<Draft, BackendError>;
}
