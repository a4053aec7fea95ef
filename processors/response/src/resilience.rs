//! What stands around a remote backend: rate limits (requests and tokens per minute, with
//! a bounded wait for a permit), adaptive concurrency (how many calls are in flight, found
//! from the backend's answers and round trips; see `adaptive`), a timeout per call, retries with exponential backoff and
//! jitter on retryable errors only, a circuit breaker that fails fast while the backend is
//! down and probes it again after a while, and metrics for each.
//!
//! A failure here is never a draft: the drafter moves on to the next backend, and the
//! review policy sees that it fell back.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backoff::backoff::Backoff;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::Deserialize;

use crate::adaptive::{Adaptive, ConcurrencyConfig, Signal};
use crate::draft::{Backend, BackendError, Draft, DraftRequest};

/// The knobs of [`Guarded`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResilienceConfig {
    /// Timeout of one call, in milliseconds.
    pub timeout_ms: u64,
    /// Retries after the first attempt, on retryable errors only.
    pub max_retries: u32,
    /// First backoff, in milliseconds (doubles, with ±50% jitter).
    pub initial_backoff_ms: u64,
    /// Longest backoff, in milliseconds.
    pub max_backoff_ms: u64,
    /// Requests per minute; 0 = unlimited.
    pub requests_per_minute: u32,
    /// Tokens (prompt estimate + completion budget) per minute; 0 = unlimited.
    pub tokens_per_minute: u32,
    /// Longest wait for a rate-limit permit before giving up on this backend, in ms.
    pub max_queue_ms: u64,
    /// Consecutive failed calls that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe call, in milliseconds.
    pub breaker_open_ms: u64,
    /// Calls in flight at once: adaptive between 1 and a maximum, or fixed.
    pub concurrency: ConcurrencyConfig,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            timeout_ms: 20_000,
            max_retries: 2,
            initial_backoff_ms: 200,
            max_backoff_ms: 2_000,
            requests_per_minute: 600,
            tokens_per_minute: 0,
            max_queue_ms: 5_000,
            breaker_failures: 5,
            breaker_open_ms: 30_000,
            concurrency: ConcurrencyConfig::default(),
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` consecutive ones have failed.
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Calls fail fast until `until`.
    Open {
        /// When one probe may go through.
        until: Instant,
    },
    /// One probe is in flight; other calls fail fast until it reports.
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 open, 2 half-open (the metric's value).
    pub fn code(self) -> i64 {
        match self {
            BreakerState::Closed { .. } => 0,
            BreakerState::Open { .. } => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// A circuit breaker: opens after `failures_to_open` consecutive failures, lets one probe
/// through after `open_for`, closes on the probe's success and reopens on its failure.
/// Time is passed in, so its transitions are tested without waiting.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<BreakerState>,
    failures_to_open: u32,
    open_for: Duration,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(failures_to_open: u32, open_for: Duration) -> Self {
        Breaker {
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
            failures_to_open: failures_to_open.max(1),
            open_for,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May a call go through at `now`?
    pub fn admit(&self, now: Instant) -> Result<(), BackendError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                *state = BreakerState::HalfOpen;
                Ok(())
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => Err(BackendError::BreakerOpen),
        }
    }

    /// Reports an admitted call's outcome at `now`.
    pub fn record(&self, now: Instant, success: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = match (*state, success) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) if failures + 1 < self.failures_to_open => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            (_, false) => BreakerState::Open {
                until: now + self.open_for,
            },
        };
    }
}

/// Metrics of every backend, by backend name.
#[derive(Debug, Clone)]
pub struct BackendMetrics {
    /// Calls by outcome (`ok`, or an error label).
    pub calls: IntCounterVec,
    /// Retries.
    pub retries: IntCounterVec,
    /// Seconds per call, retries and waits included.
    pub seconds: HistogramVec,
    /// Breaker state: 0 closed, 1 open, 2 half-open.
    pub breaker: IntGaugeVec,
    /// Tokens used, by kind (`prompt`, `completion`).
    pub tokens: IntCounterVec,
    /// The adaptive concurrency limit: calls allowed in flight at once.
    pub concurrency: IntGaugeVec,
}

impl BackendMetrics {
    /// The families, registered in `registry` where given (a family that is already
    /// registered there is used unregistered, e.g. a second processor in one test).
    pub fn new(registry: Option<&Registry>) -> Self {
        fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
            IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| panic!("metric {name}: {e}"))
        }
        let m = BackendMetrics {
            calls: counter(
                "insights_response_backend_calls_total",
                "Drafting calls per backend by outcome",
                &["backend", "outcome"],
            ),
            retries: counter(
                "insights_response_backend_retries_total",
                "Retried drafting calls per backend",
                &["backend"],
            ),
            seconds: HistogramVec::new(
                HistogramOpts::new(
                    "insights_response_backend_seconds",
                    "Time per drafting call, retries and rate-limit waits included",
                )
                .buckets(vec![
                    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
                &["backend"],
            )
            .unwrap_or_else(|e| panic!("metric: {e}")),
            breaker: IntGaugeVec::new(
                Opts::new(
                    "insights_response_breaker_state",
                    "Circuit breaker per backend: 0 closed, 1 open, 2 half-open",
                ),
                &["backend"],
            )
            .unwrap_or_else(|e| panic!("metric: {e}")),
            tokens: counter(
                "insights_response_tokens_total",
                "Tokens used per backend and kind",
                &["backend", "kind"],
            ),
            concurrency: IntGaugeVec::new(
                Opts::new(
                    "insights_response_backend_concurrency_limit",
                    "Calls a backend may have in flight at once (adaptive concurrency)",
                ),
                &["backend"],
            )
            .unwrap_or_else(|e| panic!("metric: {e}")),
        };
        if let Some(r) = registry {
            for c in [
                Box::new(m.calls.clone()) as Box<dyn prometheus::core::Collector>,
                Box::new(m.retries.clone()),
                Box::new(m.seconds.clone()),
                Box::new(m.breaker.clone()),
                Box::new(m.tokens.clone()),
                Box::new(m.concurrency.clone()),
            ] {
                let _ = r.register(c);
            }
        }
        m
    }
}

fn limiter(per_minute: u32) -> Option<DefaultDirectRateLimiter> {
    let n = NonZeroU32::new(per_minute)?;
    // A burst of a second's worth, at least one: smooth, not a minute's worth at once.
    let burst = NonZeroU32::new(per_minute.div_ceil(60)).unwrap_or(NonZeroU32::MIN);
    Some(RateLimiter::direct(Quota::per_minute(n).allow_burst(burst)))
}

/// A backend with rate limits, timeout, retries, breaker and metrics around it.
#[derive(Debug)]
pub struct Guarded<B> {
    inner: B,
    config: ResilienceConfig,
    requests: Option<DefaultDirectRateLimiter>,
    tokens: Option<DefaultDirectRateLimiter>,
    breaker: Breaker,
    concurrency: Adaptive,
    metrics: BackendMetrics,
}

/// A backend that can say how many tokens a call will use, for the token budget.
pub trait TokenCost {
    /// Tokens one call for `request` is expected to use (prompt and completion budget).
    fn estimated_tokens(&self, request: &DraftRequest) -> u32;
}

impl<B: Backend + TokenCost> Guarded<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, config: ResilienceConfig, metrics: BackendMetrics) -> Self {
        let breaker = Breaker::new(
            config.breaker_failures,
            Duration::from_millis(config.breaker_open_ms),
        );
        let concurrency = Adaptive::new(config.concurrency.clone());
        // Retries at zero from the start (exported before the first one).
        metrics.retries.with_label_values(&[inner.name()]);
        metrics
            .concurrency
            .with_label_values(&[inner.name()])
            .set(i64::try_from(concurrency.limit()).unwrap_or(i64::MAX));
        Guarded {
            requests: limiter(config.requests_per_minute),
            tokens: limiter(config.tokens_per_minute),
            inner,
            config,
            breaker,
            concurrency,
            metrics,
        }
    }

    /// The breaker (for tests and health).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The adaptive concurrency limit.
    pub fn concurrency(&self) -> &Adaptive {
        &self.concurrency
    }

    async fn permit(&self, request: &DraftRequest) -> Result<(), BackendError> {
        let max = Duration::from_millis(self.config.max_queue_ms);
        let limited = BackendError::RateLimited(self.config.max_queue_ms);
        if let Some(r) = &self.requests {
            tokio::time::timeout(max, r.until_ready())
                .await
                .map_err(|_| limited.clone())?;
        }
        if let Some(t) = &self.tokens {
            let n = NonZeroU32::new(self.inner.estimated_tokens(request).max(1))
                .unwrap_or(NonZeroU32::MIN);
            match tokio::time::timeout(max, t.until_n_ready(n)).await {
                Ok(Ok(())) => {}
                // More tokens than the whole per-minute budget: never permitted.
                Ok(Err(_)) => {
                    return Err(BackendError::Rejected(format!(
                        "a call of ~{n} tokens exceeds tokens_per_minute"
                    )));
                }
                Err(_) => return Err(limited),
            }
        }
        Ok(())
    }

    async fn attempt(&self, request: &DraftRequest) -> Result<Draft, BackendError> {
        let timeout = Duration::from_millis(self.config.timeout_ms);
        match tokio::time::timeout(timeout, self.inner.draft(request)).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::Timeout(self.config.timeout_ms)),
        }
    }

    /// One call: a rate-limit permit, a concurrency permit (held through the retries, so
    /// an overloaded backend gets fewer calls, not more), then the breaker and the
    /// attempts. Waiting for a slot is bounded by `max_queue_ms` like the rate limit: a
    /// backend slower than the traffic sends the rest to the next backend at once, instead
    /// of every draft queueing behind it (found by benches/chaos.sh: batches of 100 took
    /// minutes behind a small local model).
    async fn call(&self, request: &DraftRequest) -> Result<Draft, BackendError> {
        self.permit(request).await?;
        let max = Duration::from_millis(self.config.max_queue_ms);
        // A free slot is taken even with no wait at all (the timeout polls it first).
        let permit = tokio::time::timeout(max, self.concurrency.acquire())
            .await
            .map_err(|_| BackendError::RateLimited(self.config.max_queue_ms))?;
        let result = self.admitted(request).await;
        let signal = match &result {
            Err(BackendError::Timeout(_) | BackendError::Unavailable(_)) => Signal::Overloaded,
            Err(BackendError::BreakerOpen) => Signal::Skipped,
            _ => Signal::Answered,
        };
        self.concurrency.done(permit, signal);
        self.metrics
            .concurrency
            .with_label_values(&[self.inner.name()])
            .set(i64::try_from(self.concurrency.limit()).unwrap_or(i64::MAX));
        result
    }

    /// The breaker's admission, then the attempts with their retries.
    async fn admitted(&self, request: &DraftRequest) -> Result<Draft, BackendError> {
        self.breaker.admit(Instant::now())?;
        let mut backoff = backoff::ExponentialBackoff {
            initial_interval: Duration::from_millis(self.config.initial_backoff_ms),
            max_interval: Duration::from_millis(self.config.max_backoff_ms),
            randomization_factor: 0.5,
            multiplier: 2.0,
            max_elapsed_time: None,
            ..Default::default()
        };
        let mut retries = 0;
        let result = loop {
            match self.attempt(request).await {
                Err(e) if e.is_retryable() && retries < self.config.max_retries => {
                    retries += 1;
                    self.metrics
                        .retries
                        .with_label_values(&[self.inner.name()])
                        .inc();
                    let wait = backoff
                        .next_backoff()
                        .unwrap_or(Duration::from_millis(self.config.max_backoff_ms));
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        };
        self.breaker.record(
            Instant::now(),
            result.as_ref().map_or_else(|e| !e.is_failure(), |_| true),
        );
        result
    }
}

#[async_trait]
impl<B: Backend + TokenCost> Backend for Guarded<B> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn draft(&self, request: &DraftRequest) -> Result<Draft, BackendError> {
        let started = Instant::now();
        let result = self.call(request).await;
        let name = self.inner.name();
        let outcome = match &result {
            Ok(d) => {
                for (kind, n) in [
                    ("prompt", d.prompt_tokens),
                    ("completion", d.completion_tokens),
                ] {
                    if let Some(n) = n {
                        self.metrics
                            .tokens
                            .with_label_values(&[name, kind])
                            .inc_by(u64::from(n));
                    }
                }
                "ok"
            }
            Err(e) => e.label(),
        };
        self.metrics.calls.with_label_values(&[name, outcome]).inc();
        self.metrics
            .seconds
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .breaker
            .with_label_values(&[name])
            .set(self.breaker.state().code());
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn breaker_opens_probes_and_closes() {
        let b = Breaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..2 {
            b.admit(t0).expect("closed");
            b.record(t0, false);
        }
        assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
        // A success resets the count.
        b.record(t0, true);
        for _ in 0..3 {
            b.admit(t0).expect("closed");
            b.record(t0, false);
        }
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert_eq!(
            b.admit(t0 + Duration::from_secs(9)),
            Err(BackendError::BreakerOpen)
        );
        // After open_for, exactly one probe goes through.
        let t1 = t0 + Duration::from_secs(10);
        b.admit(t1).expect("probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(t1), Err(BackendError::BreakerOpen));
        // The probe fails: open again, for another open_for.
        b.record(t1, false);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t1 + Duration::from_secs(10)
            }
        );
        let t2 = t1 + Duration::from_secs(10);
        b.admit(t2).expect("second probe");
        b.record(t2, true);
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        assert_eq!(b.state().code(), 0);
    }

    /// A backend that fails a set number of times, then drafts: real async code, no
    /// network; counts calls.
    #[derive(Debug)]
    struct Flaky {
        fail_first: u32,
        error: BackendError,
        calls: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl Backend for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        async fn draft(&self, _: &DraftRequest) -> Result<Draft, BackendError> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < self.fail_first {
                Err(self.error.clone())
            } else {
                Ok(Draft {
                    text: "ok".into(),
                    backend: "flaky".into(),
                    model: None,
                    prompt_tokens: Some(3),
                    completion_tokens: Some(2),
                })
            }
        }
    }

    impl TokenCost for Flaky {
        fn estimated_tokens(&self, _: &DraftRequest) -> u32 {
            5
        }
    }

    fn request() -> DraftRequest {
        DraftRequest {
            key: "k".into(),
            text: "hello".into(),
            language: Some("en".into()),
            intent: crate::intent::classify("hello"),
            sentiment: insights_schemas::SentimentLabel::Neutral,
            sentiment_confidence: 0.9,
            channel: "chat".into(),
            product: None,
        }
    }

    fn fast() -> ResilienceConfig {
        ResilienceConfig {
            initial_backoff_ms: 1,
            max_backoff_ms: 2,
            requests_per_minute: 0,
            ..Default::default()
        }
    }

    fn flaky(fail_first: u32, error: BackendError) -> Guarded<Flaky> {
        Guarded::new(
            Flaky {
                fail_first,
                error,
                calls: Default::default(),
            },
            fast(),
            BackendMetrics::new(None),
        )
    }

    #[tokio::test]
    async fn retries_only_retryable_errors() {
        let g = flaky(2, BackendError::Unavailable("503".into()));
        assert!(g.draft(&request()).await.is_ok());
        assert_eq!(g.inner.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(g.metrics.retries.with_label_values(&["flaky"]).get(), 2);
        assert_eq!(
            g.metrics
                .tokens
                .with_label_values(&["flaky", "prompt"])
                .get(),
            3
        );

        let g = flaky(5, BackendError::Rejected("400".into()));
        assert_eq!(
            g.draft(&request()).await,
            Err(BackendError::Rejected("400".into()))
        );
        assert_eq!(g.inner.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            g.metrics
                .calls
                .with_label_values(&["flaky", "rejected"])
                .get(),
            1
        );
    }

    #[tokio::test]
    async fn the_breaker_fails_fast_once_open() {
        let g = flaky(u32::MAX, BackendError::Unavailable("down".into()));
        for _ in 0..5 {
            assert!(matches!(
                g.draft(&request()).await,
                Err(BackendError::Unavailable(_))
            ));
        }
        let calls = g.inner.calls.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(calls, 5 * 3, "each failed call had its retries");
        assert_eq!(g.draft(&request()).await, Err(BackendError::BreakerOpen));
        assert_eq!(
            g.inner.calls.load(std::sync::atomic::Ordering::SeqCst),
            calls
        );
        assert_eq!(g.metrics.breaker.with_label_values(&["flaky"]).get(), 1);
    }

    #[tokio::test]
    async fn no_match_is_not_a_failure() {
        let g = flaky(u32::MAX, BackendError::NoMatch);
        for _ in 0..10 {
            assert_eq!(g.draft(&request()).await, Err(BackendError::NoMatch));
        }
        assert_eq!(g.breaker().state(), BreakerState::Closed { failures: 0 });
    }

    /// A backend that takes its time: every call sleeps (on the paused clock).
    #[derive(Debug)]
    struct Slow(Duration);

    #[async_trait]
    impl Backend for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        async fn draft(&self, _: &DraftRequest) -> Result<Draft, BackendError> {
            tokio::time::sleep(self.0).await;
            Ok(Draft {
                text: "late".into(),
                backend: "slow".into(),
                model: None,
                prompt_tokens: None,
                completion_tokens: None,
            })
        }
    }

    impl TokenCost for Slow {
        fn estimated_tokens(&self, _: &DraftRequest) -> u32 {
            1
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_slot_is_bounded_like_the_rate_limit() {
        let g = Arc::new(Guarded::new(
            Slow(Duration::from_secs(10)),
            ResilienceConfig {
                max_queue_ms: 500,
                timeout_ms: 60_000,
                concurrency: crate::adaptive::ConcurrencyConfig {
                    adaptive: false,
                    max: 1,
                    ..Default::default()
                },
                ..fast()
            },
            BackendMetrics::new(None),
        ));
        let first = tokio::spawn({
            let g = Arc::clone(&g);
            async move { g.draft(&request()).await }
        });
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        // The one slot is taken: the second call gives up after max_queue_ms, not 10 s.
        assert_eq!(
            g.draft(&request()).await,
            Err(BackendError::RateLimited(500))
        );
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!(first.await.expect("task").expect("drafts").text, "late");
        // With the slot free again, a call with no wait at all still gets it.
        let eager = Guarded::new(
            Slow(Duration::from_millis(1)),
            ResilienceConfig {
                max_queue_ms: 0,
                ..fast()
            },
            BackendMetrics::new(None),
        );
        assert!(eager.draft(&request()).await.is_ok());
    }

    #[tokio::test]
    async fn the_rate_limit_spaces_calls_and_bounds_the_wait() {
        let g = Guarded::new(
            Flaky {
                fail_first: 0,
                error: BackendError::NoMatch,
                calls: Default::default(),
            },
            ResilienceConfig {
                requests_per_minute: 60,
                max_queue_ms: 1_500,
                ..fast()
            },
            BackendMetrics::new(None),
        );
        let start = Instant::now();
        for _ in 0..3 {
            g.draft(&request()).await.expect("permitted");
        }
        // One per second after a burst of one: a lower bound, which load cannot break.
        assert!(
            start.elapsed() >= Duration::from_millis(1_900),
            "{:?}",
            start.elapsed()
        );

        let impatient = Guarded::new(
            Flaky {
                fail_first: 0,
                error: BackendError::NoMatch,
                calls: Default::default(),
            },
            ResilienceConfig {
                requests_per_minute: 60,
                max_queue_ms: 50,
                ..fast()
            },
            BackendMetrics::new(None),
        );
        impatient.draft(&request()).await.expect("the burst");
        assert_eq!(
            impatient.draft(&request()).await,
            Err(BackendError::RateLimited(50))
        );
        assert_eq!(
            impatient
                .inner
                .calls
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }
}
