//! Adaptive request concurrency: how many calls to a remote backend may be in flight at
//! once, found from the backend's own answers (additive increase, multiplicative
//! decrease, as Vector's adaptive request concurrency and TCP congestion control do).
//!
//! The limit starts at `initial` and moves once per *window* (as many completed calls as
//! the limit allowed when the window began):
//! - **down** to `decrease_ratio` of itself (at least by one, never below 1) when a call
//!   in the window timed out or found the backend unavailable (connection refused, 5xx,
//!   429), or when the window's mean round trip rose above the unloaded round trip by more
//!   than `rtt_tolerance` (the backend is queueing our calls);
//! - **up** by one when the window ran at the limit (every permit taken at some point)
//!   with neither;
//! - otherwise it stays.
//!
//! The unloaded round trip is the lowest window mean seen, and is measured afresh
//! whenever a window runs at a limit of 1 (nothing of ours queues then), so a backend that
//! became slower for good (another model) is re-learnt instead of pinning the limit at 1.
//! Round trips are timed on tokio's clock, so tests run it on a paused clock,
//! deterministically.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The knobs of [`Adaptive`] (`[processors.response.config.openai.resilience.concurrency]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConcurrencyConfig {
    /// Adapt the limit (`false`: always `max` in flight at most).
    pub adaptive: bool,
    /// The limit to start from.
    pub initial: usize,
    /// The highest limit.
    pub max: usize,
    /// What the limit is multiplied by on a sign of overload.
    pub decrease_ratio: f64,
    /// How far a window's mean round trip may rise above the unloaded round trip (as a
    /// fraction of it) before it counts as overload.
    pub rtt_tolerance: f64,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        ConcurrencyConfig {
            adaptive: true,
            initial: 1,
            max: 16,
            decrease_ratio: 0.9,
            rtt_tolerance: 0.3,
        }
    }
}

impl ConcurrencyConfig {
    /// What is wrong with these settings, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max == 0 {
            out.push("concurrency.max must be at least 1".to_owned());
        }
        if self.initial == 0 || self.initial > self.max {
            out.push("concurrency.initial must be within 1..=max".to_owned());
        }
        if !(self.decrease_ratio > 0.0 && self.decrease_ratio < 1.0) {
            out.push("concurrency.decrease_ratio must be within (0, 1)".to_owned());
        }
        if self.rtt_tolerance.is_nan() || self.rtt_tolerance < 0.0 {
            out.push("concurrency.rtt_tolerance must not be negative".to_owned());
        }
        out
    }
}

/// How one call went, for the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// It answered (whatever it answered: a refusal is not overload).
    Answered,
    /// It timed out, or the backend was unavailable or said "too many requests".
    Overloaded,
    /// It never reached the backend (an open circuit breaker): says nothing.
    Skipped,
}

/// The limit and the permits.
#[derive(Debug)]
pub struct Adaptive {
    config: ConcurrencyConfig,
    permits: Arc<Semaphore>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The limit now.
    limit: usize,
    /// Permits to take out of circulation as they come back (after a decrease).
    debt: usize,
    in_flight: usize,
    /// Calls the current window waits for, and how many have completed.
    window_size: usize,
    completed: usize,
    /// Whether the window reached the limit, saw overload; its successful round trips.
    reached: bool,
    overloaded: bool,
    rtt_sum: f64,
    rtt_n: usize,
    /// The unloaded round trip, seconds.
    rtt_base: Option<f64>,
}

/// A call's permit: give it back through [`Adaptive::done`].
#[derive(Debug)]
pub struct Permit {
    permit: OwnedSemaphorePermit,
    started: Instant,
}

impl Adaptive {
    /// A limit with these settings (not adaptive: fixed at `max`).
    pub fn new(config: ConcurrencyConfig) -> Self {
        let max = config.max.max(1);
        let limit = if config.adaptive {
            config.initial.clamp(1, max)
        } else {
            max
        };
        Adaptive {
            permits: Arc::new(Semaphore::new(limit)),
            state: Mutex::new(State {
                limit,
                debt: 0,
                in_flight: 0,
                window_size: limit,
                completed: 0,
                reached: false,
                overloaded: false,
                rtt_sum: 0.0,
                rtt_n: 0,
                rtt_base: None,
            }),
            config,
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a permit to call.
    pub async fn acquire(&self) -> Permit {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut s = self.lock();
        s.in_flight += 1;
        if s.in_flight >= s.limit {
            s.reached = true;
        }
        Permit {
            permit,
            started: Instant::now(),
        }
    }

    /// Gives the permit back, with how the call went.
    pub fn done(&self, permit: Permit, signal: Signal) {
        let rtt = permit.started.elapsed();
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.debt > 0 {
            s.debt -= 1;
            permit.permit.forget();
        } else {
            drop(permit.permit);
        }
        if !self.config.adaptive || signal == Signal::Skipped {
            return;
        }
        s.completed += 1;
        if signal == Signal::Overloaded {
            s.overloaded = true;
        } else {
            s.rtt_sum += rtt.as_secs_f64();
            s.rtt_n += 1;
        }
        if s.completed >= s.window_size {
            self.end_window(&mut s);
        }
    }

    fn end_window(&self, s: &mut State) {
        let c = &self.config;
        let window_rtt = (s.rtt_n > 0).then(|| s.rtt_sum / s.rtt_n as f64);
        if let Some(now) = window_rtt {
            s.rtt_base = Some(match s.rtt_base {
                // At a limit of 1 none of our calls queue behind another: unloaded.
                Some(base) if s.limit > 1 => base.min(now),
                _ => now,
            });
        }
        let slower = match (window_rtt, s.rtt_base) {
            (Some(now), Some(base)) => now > base * (1.0 + c.rtt_tolerance),
            _ => false,
        };
        let old = s.limit;
        if s.overloaded || slower {
            let lower = ((old as f64) * c.decrease_ratio).floor() as usize;
            s.limit = lower.min(old.saturating_sub(1)).max(1);
        } else if s.reached {
            s.limit = (old + 1).min(c.max.max(1));
        }
        if s.limit > old {
            // Repay a pending decrease before handing out new permits.
            let mut more = s.limit - old;
            let repaid = more.min(s.debt);
            s.debt -= repaid;
            more -= repaid;
            self.permits.add_permits(more);
        } else if s.limit < old {
            let mut fewer = old - s.limit;
            // Idle permits go at once; those in use as they come back.
            while fewer > 0 {
                match Arc::clone(&self.permits).try_acquire_owned() {
                    Ok(p) => {
                        p.forget();
                        fewer -= 1;
                    }
                    Err(_) => break,
                }
            }
            s.debt += fewer;
        }
        s.window_size = s.limit;
        s.completed = 0;
        s.reached = s.in_flight >= s.limit;
        s.overloaded = false;
        s.rtt_sum = 0.0;
        s.rtt_n = 0;
    }

    /// The unloaded round trip, once measured.
    pub fn rtt_base(&self) -> Option<Duration> {
        self.lock().rtt_base.map(Duration::from_secs_f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend with `slots` servers: a call takes 100 ms once a server is free; the
    /// others queue (their round trip grows). Driven on a paused clock.
    async fn queueing_backend(adaptive: Arc<Adaptive>, calls: usize, slots: usize) -> Vec<usize> {
        let servers = Arc::new(Semaphore::new(slots));
        let mut limits = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..calls {
            let limit = Arc::clone(&adaptive);
            let servers = Arc::clone(&servers);
            // Fill the queue only as fast as permits allow, like the drafter's stream.
            let permit = adaptive.acquire().await;
            tasks.spawn(async move {
                let server = servers.acquire_owned().await.expect("open");
                tokio::time::sleep(Duration::from_millis(100)).await;
                drop(server);
                limit.done(permit, Signal::Answered);
            });
            limits.push(adaptive.limit());
        }
        while tasks.join_next().await.is_some() {}
        limits
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_settles_near_the_backends_capacity() {
        let adaptive = Arc::new(Adaptive::new(ConcurrencyConfig::default()));
        let limits = queueing_backend(Arc::clone(&adaptive), 2_000, 4).await;
        let tail = &limits[limits.len() - 500..];
        assert!(
            tail.iter().all(|&l| (3..=6).contains(&l)),
            "the limit wanders off the backend's 4 servers: {tail:?}"
        );
        assert!(limits.iter().any(|&l| l >= 4), "it grew to the capacity");
    }

    #[tokio::test(start_paused = true)]
    async fn it_grows_to_the_maximum_when_the_backend_keeps_up() {
        let adaptive = Arc::new(Adaptive::new(ConcurrencyConfig {
            max: 8,
            ..ConcurrencyConfig::default()
        }));
        // As many servers as calls: round trips stay at 100 ms.
        let limits = queueing_backend(Arc::clone(&adaptive), 500, 500).await;
        assert_eq!(limits.last(), Some(&8), "{limits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn overload_lowers_the_limit_never_below_one_and_permits_follow_it() {
        let adaptive = Adaptive::new(ConcurrencyConfig {
            initial: 10,
            ..ConcurrencyConfig::default()
        });
        assert_eq!(adaptive.limit(), 10);
        // A window of 10 calls, one of them a 503: down to 9 (0.9 × 10).
        let permits: Vec<Permit> =
            futures::future::join_all((0..10).map(|_| adaptive.acquire())).await;
        for (i, p) in permits.into_iter().enumerate() {
            let signal = if i == 3 {
                Signal::Overloaded
            } else {
                Signal::Answered
            };
            adaptive.done(p, signal);
        }
        assert_eq!(adaptive.limit(), 9);
        assert_eq!(adaptive.permits.available_permits(), 9);
        // Overload window after window: down to 1, never 0.
        for _ in 0..40 {
            let n = adaptive.limit();
            let permits: Vec<Permit> =
                futures::future::join_all((0..n).map(|_| adaptive.acquire())).await;
            for p in permits {
                adaptive.done(p, Signal::Overloaded);
            }
        }
        assert_eq!(adaptive.limit(), 1);
        assert_eq!(adaptive.permits.available_permits(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_decrease_while_calls_are_out_takes_their_permits_back_as_they_return() {
        let adaptive = Adaptive::new(ConcurrencyConfig {
            initial: 20,
            max: 20,
            ..ConcurrencyConfig::default()
        });
        let mut first = Vec::new();
        for _ in 0..20 {
            first.push(adaptive.acquire().await);
        }
        let last = first.pop().expect("20 out");
        for p in first {
            adaptive.done(p, Signal::Overloaded);
        }
        let mut second = Vec::new();
        for _ in 0..19 {
            second.push(adaptive.acquire().await);
        }
        // The window ends with 19 calls out: 20 -> 18, the one idle permit goes at once
        // and one is owed.
        adaptive.done(last, Signal::Overloaded);
        assert_eq!(adaptive.limit(), 18);
        assert_eq!(adaptive.permits.available_permits(), 0);
        // The next to come back pays the debt; the others circulate again.
        adaptive.done(second.pop().expect("out"), Signal::Answered);
        assert_eq!(adaptive.permits.available_permits(), 0);
        for _ in 0..16 {
            adaptive.done(second.pop().expect("out"), Signal::Answered);
        }
        assert_eq!(adaptive.permits.available_permits(), 16);
        assert_eq!(adaptive.limit(), 18);
    }

    #[test]
    fn fixed_concurrency_never_moves_and_bad_settings_are_named() {
        let fixed = Adaptive::new(ConcurrencyConfig {
            adaptive: false,
            max: 5,
            ..ConcurrencyConfig::default()
        });
        assert_eq!(fixed.limit(), 5);
        let bad = ConcurrencyConfig {
            initial: 0,
            max: 0,
            decrease_ratio: 1.5,
            rtt_tolerance: -1.0,
            ..ConcurrencyConfig::default()
        };
        assert_eq!(bad.problems().len(), 4, "{:?}", bad.problems());
        assert!(ConcurrencyConfig::default().problems().is_empty());
    }
}
