//! The HTTP client behind the response processor's `openai` backend: one
//! `POST {base_url}/chat/completions` per call, with a bearer token where the API needs
//! one. The response crate owns the protocol (the prompt, the reading of the answer) and
//! the resilience around it (rate limits, timeouts, retries, circuit breaker); this crate
//! is only the transport, injected where the processor is assembled, so that the
//! processor itself does no IO.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use insights_response::BackendError;
use insights_response::openai::{ChatClient, OpenAiConfig};
use serde_json::Value;

/// The client for `config`'s API, where it names one (`base_url`); `api_key` is the bearer
/// token, read by the caller from the variable `config.api_key_env` names.
pub fn chat_for(
    config: &OpenAiConfig,
    api_key: Option<String>,
) -> Result<Option<Arc<dyn ChatClient>>, String> {
    match &config.base_url {
        Some(url) => Ok(Some(Arc::new(HttpChat::new(url, api_key)?))),
        None => Ok(None),
    }
}

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Calls an OpenAI-compatible chat-completions API over HTTP.
#[derive(Debug)]
pub struct HttpChat {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
}

impl HttpChat {
    /// A client for the API at `base_url` (e.g. `http://127.0.0.1:8080/v1`), sending
    /// `api_key` as a bearer token where given. Loopback addresses bypass any proxy
    /// configured for the outside world.
    pub fn new(base_url: &str, api_key: Option<String>) -> Result<Self, String> {
        let base = base_url.trim_end_matches('/');
        reqwest::Url::parse(base).map_err(|e| format!("LLM URL {base_url:?}: {e}"))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("customerai-insights/", env!("CARGO_PKG_VERSION")));
        if is_loopback(base) {
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(HttpChat {
            client,
            url: format!("{base}/chat/completions"),
            api_key,
        })
    }

    /// Where the calls go.
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn is_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]" || h == "::1")
}

fn snippet(body: &str) -> String {
    body.chars().take(200).collect()
}

#[async_trait]
impl ChatClient for HttpChat {
    async fn complete(&self, body: &Value) -> Result<Value, BackendError> {
        let mut call = self.client.post(&self.url).json(body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let response = call.send().await.map_err(|e| {
            if e.is_timeout() {
                BackendError::Timeout(CONNECT_TIMEOUT.as_millis() as u64)
            } else {
                BackendError::Unavailable(e.to_string())
            }
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| BackendError::Unavailable(format!("reading the answer: {e}")))?;
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(BackendError::Unavailable(format!(
                "{status}: {}",
                snippet(&text)
            )));
        }
        if !status.is_success() {
            return Err(BackendError::Rejected(format!(
                "{status}: {}",
                snippet(&text)
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| BackendError::Malformed(format!("answer is not JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_loopback_bypasses_proxies() {
        let chat = HttpChat::new("http://127.0.0.1:1/v1/", None).expect("valid");
        assert_eq!(chat.url(), "http://127.0.0.1:1/v1/chat/completions");
        assert!(HttpChat::new("not a url", None).is_err());
        assert!(is_loopback("http://localhost:8080/v1"));
        assert!(!is_loopback("https://api.example.invalid/v1"));
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable_not_rejected() {
        // Port 1 on loopback: nothing listens there.
        let chat = HttpChat::new("http://127.0.0.1:1/v1", None).expect("valid");
        let err = chat
            .complete(&serde_json::json!({}))
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, BackendError::Unavailable(_)), "{err:?}");
    }
}
