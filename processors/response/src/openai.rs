//! An OpenAI-compatible chat-completions backend: llama.cpp's server, vLLM, Ollama and
//! hosted APIs speak it. The prompt carries the scrubbed message, its intent and
//! sentiment, and the policy the reply must keep; personal data never reaches it.
//!
//! This module is the protocol: the request body and the reading of the answer. The call
//! itself goes through a [`ChatClient`], the one resource the response processor needs,
//! injected where the processor is assembled (`insights-openai` is the HTTP client).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::draft::{Backend, BackendError, Draft, DraftRequest};
use crate::policy::label_name;
use crate::resilience::{ResilienceConfig, TokenCost};

/// The backend's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    /// The API's base URL, e.g. `http://127.0.0.1:8080/v1`; none disables the backend.
    /// `INSIGHTS_LLM_URL` overrides it.
    pub base_url: Option<String>,
    /// The model name sent with each request.
    pub model: String,
    /// Environment variable holding the bearer token, if the API needs one.
    pub api_key_env: String,
    /// Completion budget per reply.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Ask for `{"reply": "..."}` through a JSON-schema response format.
    pub json_schema: bool,
    /// Rate limits, timeout, retries and breaker.
    pub resilience: ResilienceConfig,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: None,
            model: "default".into(),
            api_key_env: "INSIGHTS_LLM_API_KEY".into(),
            max_tokens: 200,
            temperature: 0.2,
            json_schema: false,
            resilience: ResilienceConfig::default(),
        }
    }
}

/// The transport of a chat-completions call: posts a request body to the API's
/// `/chat/completions` and returns the answer's JSON. An HTTP status of 429 or 5xx, a
/// refused or reset connection and a timeout are [`BackendError::Unavailable`] or
/// [`BackendError::Timeout`] (retried); another error status is
/// [`BackendError::Rejected`]; a body that is not JSON is [`BackendError::Malformed`].
#[async_trait]
pub trait ChatClient: std::fmt::Debug + Send + Sync {
    /// One call.
    async fn complete(&self, body: &Value) -> Result<Value, BackendError>;
}

/// Drafts through an OpenAI-compatible chat-completions API.
#[derive(Debug)]
pub struct OpenAiBackend {
    client: Arc<dyn ChatClient>,
    config: OpenAiConfig,
}

impl OpenAiBackend {
    /// A backend calling through `client`.
    pub fn new(client: Arc<dyn ChatClient>, config: OpenAiConfig) -> Self {
        OpenAiBackend { client, config }
    }

    /// The request body for a draft request.
    pub fn body(&self, request: &DraftRequest) -> Value {
        let mut body = json!({
            "model": self.config.model,
            "messages": messages(request),
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
            "stream": false,
        });
        if self.config.json_schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {
                    "name": "reply",
                    "strict": true,
                    "schema": {
                        "type": "object",
                        "properties": {"reply": {"type": "string"}},
                        "required": ["reply"],
                        "additionalProperties": false
                    }
                }
            });
        }
        body
    }
}

fn language_name(tag: Option<&str>) -> &'static str {
    match crate::retrieval::primary_language(tag).as_deref() {
        Some("de") => "German",
        Some("fr") => "French",
        Some("es") => "Spanish",
        Some("nl") => "Dutch",
        Some("it") => "Italian",
        Some("pt") => "Portuguese",
        _ => "English",
    }
}

/// The chat messages for a request.
pub fn messages(request: &DraftRequest) -> Value {
    let product = request.product.as_deref().unwrap_or("our service");
    let system = format!(
        "You are a customer-support agent for {product}. Write the reply to the customer's \
         message in {language}, in at most 120 words, polite and concrete. Do not promise \
         refunds, compensation, legal or medical outcomes: say that a colleague will check. \
         Never include personal data. Placeholders such as <PERSON> or <EMAIL_ADDRESS> stand \
         for details that were removed: do not fill them in. Reply with the message only.",
        language = language_name(request.language.as_deref()),
    );
    let user = format!(
        "Channel: {}\nIntent: {}\nCustomer sentiment: {} ({:.2})\nMessage: {}",
        request.channel,
        request.intent.intent.as_str(),
        label_name(request.sentiment),
        request.sentiment_confidence,
        request.text,
    );
    json!([
        {"role": "system", "content": system},
        {"role": "user", "content": user},
    ])
}

/// Reads a chat-completions answer: the reply, the model and token counts.
pub fn parse_answer(answer: &Value, json_schema: bool) -> Result<Draft, BackendError> {
    let content = answer
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| BackendError::Malformed("no choices[0].message.content".into()))?;
    let text = if json_schema {
        let inner: Value = serde_json::from_str(content)
            .map_err(|e| BackendError::Malformed(format!("content is not JSON: {e}")))?;
        inner
            .get("reply")
            .and_then(Value::as_str)
            .ok_or_else(|| BackendError::Malformed("no `reply` in the JSON content".into()))?
            .to_owned()
    } else {
        content.to_owned()
    };
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(BackendError::Malformed("empty reply".into()));
    }
    let count = |p: &str| {
        answer
            .pointer(p)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    Ok(Draft {
        text,
        backend: "openai".into(),
        model: answer
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned),
        prompt_tokens: count("/usage/prompt_tokens"),
        completion_tokens: count("/usage/completion_tokens"),
    })
}

#[async_trait]
impl Backend for OpenAiBackend {
    fn name(&self) -> &str {
        "openai"
    }

    async fn draft(&self, request: &DraftRequest) -> Result<Draft, BackendError> {
        let answer = self.client.complete(&self.body(request)).await?;
        parse_answer(&answer, self.config.json_schema)
    }
}

impl TokenCost for OpenAiBackend {
    fn estimated_tokens(&self, request: &DraftRequest) -> u32 {
        // ~4 characters a token, plus the fixed instructions and the completion budget.
        let prompt = u32::try_from(request.text.chars().count() / 4).unwrap_or(u32::MAX);
        prompt
            .saturating_add(120)
            .saturating_add(self.config.max_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> DraftRequest {
        DraftRequest {
            key: "k".into(),
            text: "Meine Rechnung ist falsch, <PERSON> hat angerufen.".into(),
            language: Some("de-DE".into()),
            intent: crate::intent::classify("Meine Rechnung ist falsch"),
            sentiment: insights_schemas::SentimentLabel::Negative,
            sentiment_confidence: 0.87,
            channel: "email".into(),
            product: Some("router".into()),
        }
    }

    /// Answers every call with `answer`, remembering the bodies it was sent.
    #[derive(Debug)]
    struct Canned {
        answer: Value,
        sent: std::sync::Mutex<Vec<Value>>,
    }

    #[async_trait]
    impl ChatClient for Canned {
        async fn complete(&self, body: &Value) -> Result<Value, BackendError> {
            self.sent.lock().expect("not poisoned").push(body.clone());
            Ok(self.answer.clone())
        }
    }

    fn canned(answer: Value) -> Arc<Canned> {
        Arc::new(Canned {
            answer,
            sent: std::sync::Mutex::new(Vec::new()),
        })
    }

    #[tokio::test]
    async fn a_draft_is_the_parsed_answer_to_the_body_sent() {
        let client = canned(json!({"choices": [{"message": {"content": "We will check."}}]}));
        let b = OpenAiBackend::new(client.clone(), OpenAiConfig::default());
        let draft = b.draft(&request()).await.expect("drafted");
        assert_eq!(
            (draft.text.as_str(), draft.backend.as_str()),
            ("We will check.", "openai")
        );
        let sent = client.sent.lock().expect("not poisoned").clone();
        assert_eq!(sent, vec![b.body(&request())]);
    }

    #[test]
    fn the_prompt_carries_context_and_policy() {
        let b = OpenAiBackend::new(canned(json!({})), OpenAiConfig::default());
        let body = b.body(&request());
        let system = body["messages"][0]["content"].as_str().unwrap_or_default();
        assert!(system.contains("German") && system.contains("router"));
        assert!(system.contains("Do not promise refunds"));
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        assert!(user.contains("Intent: billing"));
        assert!(user.contains("negative (0.87)"));
        assert!(body.get("response_format").is_none());
        let schema = OpenAiBackend::new(
            canned(json!({})),
            OpenAiConfig {
                json_schema: true,
                ..Default::default()
            },
        )
        .body(&request());
        assert_eq!(schema["response_format"]["type"], "json_schema");
    }

    #[test]
    fn answers_are_parsed_or_rejected_clearly() {
        let answer = json!({
            "model": "smollm2",
            "choices": [{"message": {"role": "assistant", "content": "  Hello there, we will check.  "}}],
            "usage": {"prompt_tokens": 41, "completion_tokens": 7}
        });
        let d = parse_answer(&answer, false).expect("parsed");
        assert_eq!(d.text, "Hello there, we will check.");
        assert_eq!((d.prompt_tokens, d.completion_tokens), (Some(41), Some(7)));
        assert_eq!(d.model.as_deref(), Some("smollm2"));

        let wrapped = json!({"choices": [{"message": {"content": "{\"reply\": \"Hi!\"}"}}]});
        assert_eq!(parse_answer(&wrapped, true).expect("json").text, "Hi!");
        for bad in [
            json!({}),
            json!({"choices": [{"message": {"content": "   "}}]}),
            json!({"choices": []}),
        ] {
            assert!(matches!(
                parse_answer(&bad, false),
                Err(BackendError::Malformed(_))
            ));
        }
        assert!(matches!(
            parse_answer(
                &json!({"choices": [{"message": {"content": "not json"}}]}),
                true
            ),
            Err(BackendError::Malformed(_))
        ));
    }
}
