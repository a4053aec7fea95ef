//! Response: drafts a reply to each scored interaction and decides whether it may go out
//! on its own or a person must review it first.
//!
//! Drafting backends, in the configured fallback order: an OpenAI-compatible chat API
//! (llama.cpp server, vLLM, Ollama, hosted), retrieval of replies reviewers approved for
//! similar messages, and templates per intent and language, which always answer. Remote
//! backends sit behind rate limits, timeouts, retries and a circuit breaker; a failure is
//! never an approval. Every draft passes the guardrails (no PII, policy phrases, length,
//! language) and the review policy, whose decision lists the rules that fired.
//!
//! # Layout
//! - `intent` — keyword intent classifier and "asked for a person" (en, de, fr, es, nl).
//! - `guardrails` — the checks on every draft.
//! - `policy` — the deterministic review policy: auto-approve or review, with reasons,
//!   priority and SLA.
//! - `draft` — the [`Backend`] trait, requests, drafts and backend errors.
//! - `openai`, `retrieval`, `template` — the backends. `openai` is the chat-completions
//!   protocol; the call goes through its [`openai::ChatClient`], injected at assembly
//!   (`insights-openai` is the HTTP client), so this crate does no IO of its own.
//! - `resilience` — rate limits (governor), retries (backoff), timeouts, circuit breaker
//!   and metrics around a remote backend.
//! - `drafter` — backends in fallback order on their own IO threads.
//! - `processor` — [`ResponseProcessor`], the pipeline stage, and its configuration.

pub mod adaptive;
pub mod draft;
pub mod drafter;
pub mod guardrails;
pub mod intent;
pub mod openai;
pub mod policy;
pub mod processor;
pub mod resilience;
pub mod retrieval;
pub mod template;

pub use draft::{Backend, BackendError, Draft, DraftRequest};
pub use processor::{ResponseConfig, ResponseError, ResponseProcessor};
