//! An OpenAI-compatible chat-completions backend: llama.cpp's server, vLLM, Ollama and
//! hosted APIs speak it. The prompt carries the scrubbed message, its intent and
//! sentiment, and the policy the reply must keep; personal data never reaches it.

use std::time::Duration;

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

/// Drafts through an OpenAI-compatible chat-completions API.
#[derive(Debug)]
pub struct OpenAiBackend {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    config: OpenAiConfig,
}

fn is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]" || h == "::1")
}

impl OpenAiBackend {
    /// A backend for `base_url` with the bearer token `api_key`, if any.
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        config: OpenAiConfig,
    ) -> Result<Self, String> {
        let base = base_url.trim_end_matches('/');
        reqwest::Url::parse(base).map_err(|e| format!("LLM URL {base_url:?}: {e}"))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("customerai-insights/", env!("CARGO_PKG_VERSION")));
        if is_loopback(base) {
            // A proxy configured for the outside world must not see loopback calls.
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(OpenAiBackend {
            client,
            url: format!("{base}/chat/completions"),
            api_key,
            config,
        })
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

fn snippet(body: &str) -> String {
    body.chars().take(200).collect()
}

#[async_trait]
impl Backend for OpenAiBackend {
    fn name(&self) -> &str {
        "openai"
    }

    async fn draft(&self, request: &DraftRequest) -> Result<Draft, BackendError> {
        let mut call = self.client.post(&self.url).json(&self.body(request));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let response = call.send().await.map_err(|e| {
            if e.is_timeout() {
                BackendError::Timeout(self.config.resilience.timeout_ms)
            } else {
                BackendError::Unavailable(e.to_string())
            }
        })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| BackendError::Unavailable(format!("reading the answer: {e}")))?;
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(BackendError::Unavailable(format!(
                "{status}: {}",
                snippet(&body)
            )));
        }
        if !status.is_success() {
            return Err(BackendError::Rejected(format!(
                "{status}: {}",
                snippet(&body)
            )));
        }
        let answer: Value = serde_json::from_str(&body)
            .map_err(|e| BackendError::Malformed(format!("answer is not JSON: {e}")))?;
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

    #[test]
    fn the_prompt_carries_context_and_policy() {
        let b = OpenAiBackend::new("http://127.0.0.1:1/v1/", None, OpenAiConfig::default())
            .expect("valid");
        assert_eq!(b.url, "http://127.0.0.1:1/v1/chat/completions");
        let body = b.body(&request());
        let system = body["messages"][0]["content"].as_str().unwrap_or_default();
        assert!(system.contains("German") && system.contains("router"));
        assert!(system.contains("Do not promise refunds"));
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        assert!(user.contains("Intent: billing"));
        assert!(user.contains("negative (0.87)"));
        assert!(body.get("response_format").is_none());
        let schema = OpenAiBackend::new(
            "http://127.0.0.1:1/v1",
            None,
            OpenAiConfig {
                json_schema: true,
                ..Default::default()
            },
        )
        .expect("valid")
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

    #[test]
    fn bad_urls_are_refused_at_build() {
        assert!(OpenAiBackend::new("not a url", None, OpenAiConfig::default()).is_err());
        assert!(is_loopback("http://localhost:8080/v1"));
        assert!(!is_loopback("https://api.example.invalid/v1"));
    }
}
