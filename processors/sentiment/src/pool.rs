//! The inference pool: dedicated threads, one model each (libtorch modules are not
//! `Sync`), fed by a bounded channel. Each thread batches dynamically: it takes the first
//! waiting text, then whatever else arrives within `max_wait`, up to `max_batch`, sorts the
//! batch by length and scores it in one call. A content-hash LRU cache sits in front, so a
//! text seen before (templates, "thanks!", redeliveries) is never scored twice.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::lexicon::LexiconBackend;
use crate::multilingual::{MultilingualBackend, Route};
use crate::transformer::{ModelCard, TransformerBackend};
use crate::{Backend, BackendKind, ModelInfo, Prediction, SentimentError};

/// How the pool runs.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Inference threads, each with its own model (about 90 MB each).
    pub workers: usize,
    /// The most texts one model call scores.
    pub max_batch: usize,
    /// How long a thread waits for more texts after the first of a batch.
    pub max_wait: Duration,
    /// Texts waiting at most (senders block beyond it: back-pressure).
    pub queue: usize,
    /// Cached predictions (0 disables the cache).
    pub cache_entries: usize,
    /// libtorch's intra-op threads for the whole process (`None`: libtorch's default, one
    /// per core). The default is 1, with one worker per core (up to 4).
    pub torch_threads: Option<i32>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        // One single-threaded model per core beats one model using every core: MiniLM's
        // matrices are too small for intra-op threads to pay (measured on 2 cores: 179
        // vs 134 sentences/s at batch 32, 131 vs 73 at batch 1; benches/RESULTS.md).
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        PoolConfig {
            workers: cores.min(4),
            max_batch: 32,
            max_wait: Duration::from_millis(5),
            queue: 1024,
            cache_entries: 10_000,
            torch_threads: Some(1),
        }
    }
}

/// Which model to open, and where.
#[derive(Debug, Clone)]
pub struct ModelChoice {
    /// The backend wanted.
    pub backend: BackendKind,
    /// The trained model (`model.json`, `head.safetensors`).
    pub model_dir: PathBuf,
    /// The encoder's files.
    pub encoder_dir: PathBuf,
    /// The encoder's arithmetic.
    pub precision: crate::transformer::Precision,
    /// The model for messages not in English, beside the transformer (`None`: the
    /// transformer reads every language).
    pub multilingual: Option<MultilingualChoice>,
}

/// Where the multilingual model and its encoder are.
#[derive(Debug, Clone)]
pub struct MultilingualChoice {
    /// The trained model (`model.json`, `head.safetensors`).
    pub model_dir: PathBuf,
    /// The encoder's files (`weights.npz`, `sp.model`).
    pub encoder_dir: PathBuf,
}

impl Default for MultilingualChoice {
    fn default() -> Self {
        MultilingualChoice {
            model_dir: crate::multilingual::DEFAULT_MODEL_DIR.into(),
            encoder_dir: crate::multilingual::DEFAULT_ENCODER_DIR.into(),
        }
    }
}

impl Default for ModelChoice {
    fn default() -> Self {
        ModelChoice {
            backend: BackendKind::Transformer,
            model_dir: crate::transformer::DEFAULT_MODEL_DIR.into(),
            encoder_dir: crate::transformer::DEFAULT_ENCODER_DIR.into(),
            precision: crate::transformer::Precision::Auto,
            multilingual: Some(MultilingualChoice::default()),
        }
    }
}

/// One scored text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The probabilities.
    pub prediction: Prediction,
    /// From submission to answer (zero-ish for cache hits).
    pub latency: Duration,
    /// Answered from the cache.
    pub cached: bool,
    /// Scored by the multilingual model ([`Scorer::info_of`]).
    pub multilingual: bool,
}

type Reply = Sender<(usize, Result<Prediction, String>, Duration)>;

struct Job {
    index: usize,
    text: String,
    submitted: Instant,
    reply: Reply,
}

/// A pool of inference threads with a cache in front: what the processor and
/// `insights sentiment` score with. `Sync`: share it behind an `Arc`.
pub struct Scorer {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    info: ModelInfo,
    fallback: Option<String>,
    cache: Option<Mutex<LruCache<[u8; 16], Prediction>>>,
    /// The pool for messages not in English, when there is one.
    multilingual: Option<Box<Scorer>>,
    /// Why the multilingual model was wanted but did not load.
    multilingual_error: Option<String>,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("info", &self.info)
            .field("fallback", &self.fallback)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

type Factory = dyn Fn() -> Result<Box<dyn Backend>, SentimentError> + Send + Sync;

impl Scorer {
    /// Starts `config.workers` threads, each building its model with `factory`; fails if
    /// any cannot.
    pub fn start(
        factory: std::sync::Arc<Factory>,
        config: &PoolConfig,
    ) -> Result<Scorer, SentimentError> {
        if let Some(n) = config.torch_threads {
            tch::set_num_threads(n);
        }
        let (jobs, queue) = bounded::<Job>(config.queue.max(1));
        let (ready_tx, ready_rx) = bounded(config.workers.max(1));
        let mut workers = Vec::new();
        for n in 0..config.workers.max(1) {
            let factory = factory.clone();
            let queue = queue.clone();
            let ready = ready_tx.clone();
            let (max_batch, max_wait) = (config.max_batch.max(1), config.max_wait);
            let handle = std::thread::Builder::new()
                .name(format!("sentiment-{n}"))
                .spawn(move || match factory() {
                    Ok(backend) => {
                        let _ = ready.send(Ok(backend.info().clone()));
                        drop(ready);
                        serve(backend, &queue, max_batch, max_wait);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                })
                .map_err(|e| SentimentError::Load(format!("cannot start a thread: {e}")))?;
            workers.push(handle);
        }
        drop(ready_tx);
        let mut info = None;
        for _ in 0..workers.len() {
            match ready_rx.recv() {
                Ok(Ok(i)) => info = Some(i),
                Ok(Err(e)) => {
                    drop(jobs);
                    for w in workers {
                        let _ = w.join();
                    }
                    return Err(e);
                }
                Err(_) => return Err(SentimentError::PoolStopped),
            }
        }
        let cache = NonZeroUsize::new(config.cache_entries).map(|n| Mutex::new(LruCache::new(n)));
        Ok(Scorer {
            jobs: Some(jobs),
            workers,
            info: info.ok_or(SentimentError::PoolStopped)?,
            fallback: None,
            cache,
            multilingual: None,
            multilingual_error: None,
        })
    }

    /// The configured model, or — when it cannot load — the lexicon, marked as a fallback
    /// (see [`Scorer::fallback_reason`]). The lexicon's β comes from the model card when
    /// it is readable.
    pub fn open(choice: &ModelChoice, config: &PoolConfig) -> Scorer {
        let beta = ModelCard::read(&choice.model_dir)
            .map(|c| c.lexicon_beta)
            .unwrap_or(crate::lexicon::DEFAULT_BETA);
        let lexicon = |reason: Option<String>| {
            let mut scorer = Scorer::start(
                std::sync::Arc::new(move || {
                    Ok(Box::new(LexiconBackend::new(beta)) as Box<dyn Backend>)
                }),
                config,
            )
            .expect("the lexicon backend always loads");
            scorer.fallback = reason;
            scorer
        };
        let multilingual = |choice: &MultilingualChoice, config: &PoolConfig| {
            let load =
                MultilingualBackend::factory(choice.model_dir.clone(), choice.encoder_dir.clone());
            Scorer::start(
                std::sync::Arc::new(move || load().map(|b| Box::new(b) as Box<dyn Backend>)),
                config,
            )
        };
        match choice.backend {
            BackendKind::Lexicon => lexicon(None),
            BackendKind::Multilingual => {
                let wanted = choice.multilingual.clone().unwrap_or_default();
                match multilingual(&wanted, config) {
                    Ok(scorer) => scorer,
                    Err(e) => lexicon(Some(e.to_string())),
                }
            }
            BackendKind::Transformer => {
                let (model, encoder) = (choice.model_dir.clone(), choice.encoder_dir.clone());
                let precision = choice.precision;
                let factory = std::sync::Arc::new(move || {
                    TransformerBackend::load_at(&model, &encoder, precision)
                        .map(|b| Box::new(b) as Box<dyn Backend>)
                });
                let mut scorer = match Scorer::start(factory, config) {
                    Ok(scorer) => scorer,
                    Err(e) => return lexicon(Some(e.to_string())),
                };
                if let Some(wanted) = &choice.multilingual {
                    // A pool of its own, with its own cache: a text and its language
                    // always take the same route, so each pool caches what it scores.
                    match multilingual(wanted, config) {
                        Ok(m) => scorer.multilingual = Some(Box::new(m)),
                        Err(e) => scorer.multilingual_error = Some(e.to_string()),
                    }
                }
                scorer
            }
        }
    }

    /// The model that scored `scored`.
    pub fn info_of(&self, scored: &Scored) -> &ModelInfo {
        match &self.multilingual {
            Some(m) if scored.multilingual => &m.info,
            _ => &self.info,
        }
    }

    /// The multilingual model beside this scorer's own, when it loaded.
    pub fn multilingual_info(&self) -> Option<&ModelInfo> {
        self.multilingual.as_ref().map(|m| &m.info)
    }

    /// Why the multilingual model was wanted beside the transformer but is not there
    /// (every message then goes to the transformer).
    pub fn multilingual_error(&self) -> Option<&str> {
        self.multilingual_error.as_deref()
    }

    /// Scores texts in their declared languages (BCP 47; `None`: detected): those
    /// [`crate::multilingual::route`] sends to the multilingual model go to it when it is
    /// loaded, the rest to this scorer's model.
    pub fn score_in(&self, texts: &[(&str, Option<&str>)]) -> Result<Vec<Scored>, SentimentError> {
        let Some(other) = &self.multilingual else {
            let plain: Vec<&str> = texts.iter().map(|t| t.0).collect();
            return self.score(&plain);
        };
        let (mut here, mut there) = (Vec::new(), Vec::new());
        for (i, (text, language)) in texts.iter().enumerate() {
            match crate::multilingual::route(text, *language) {
                Route::English => here.push(i),
                Route::Multilingual(_) => there.push(i),
            }
        }
        let pick = |idx: &[usize]| -> Vec<&str> { idx.iter().map(|&i| texts[i].0).collect() };
        let mut out: Vec<Option<Scored>> = vec![None; texts.len()];
        for (i, s) in here.iter().zip(self.score(&pick(&here))?) {
            out[*i] = Some(s);
        }
        for (i, s) in there.iter().zip(other.score(&pick(&there))?) {
            out[*i] = Some(Scored {
                multilingual: true,
                ..s
            });
        }
        Ok(out
            .into_iter()
            .map(|s| s.expect("every text was routed"))
            .collect())
    }

    /// The model that scores.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Why the configured model is not the one scoring, if it is not.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Scores `texts` (blocking) with this scorer's own model, whatever their language:
    /// cache hits at once, the rest through the pool.
    pub fn score(&self, texts: &[&str]) -> Result<Vec<Scored>, SentimentError> {
        let start = Instant::now();
        let keys: Vec<[u8; 16]> = texts.iter().map(|t| cache_key(t)).collect();
        let mut out: Vec<Option<Scored>> = vec![None; texts.len()];
        if let Some(cache) = &self.cache {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            for (slot, key) in out.iter_mut().zip(&keys) {
                if let Some(p) = cache.get(key) {
                    *slot = Some(Scored {
                        prediction: *p,
                        latency: start.elapsed(),
                        cached: true,
                        multilingual: false,
                    });
                }
            }
        }
        // Each distinct missing text once, longest first so that neighbours in the queue
        // (and so in a batch) have similar lengths.
        let mut misses: Vec<usize> = Vec::new();
        let mut first_of: std::collections::HashMap<[u8; 16], usize> = Default::default();
        for (i, slot) in out.iter().enumerate() {
            if slot.is_none() && !first_of.contains_key(&keys[i]) {
                first_of.insert(keys[i], i);
                misses.push(i);
            }
        }
        if !misses.is_empty() {
            misses.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
            let jobs = self.jobs.as_ref().ok_or(SentimentError::PoolStopped)?;
            let (reply, answers) = crossbeam_channel::unbounded();
            for &i in &misses {
                jobs.send(Job {
                    index: i,
                    text: texts[i].to_owned(),
                    submitted: Instant::now(),
                    reply: reply.clone(),
                })
                .map_err(|_| SentimentError::PoolStopped)?;
            }
            drop(reply);
            let mut scored = Vec::with_capacity(misses.len());
            for _ in 0..misses.len() {
                let (i, result, latency) =
                    answers.recv().map_err(|_| SentimentError::PoolStopped)?;
                let prediction = result.map_err(SentimentError::Inference)?;
                scored.push((i, prediction, latency));
            }
            let mut cache = self
                .cache
                .as_ref()
                .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()));
            for (i, prediction, latency) in scored {
                if let Some(cache) = cache.as_mut() {
                    cache.put(keys[i], prediction);
                }
                out[i] = Some(Scored {
                    prediction,
                    latency,
                    cached: false,
                    multilingual: false,
                });
            }
        }
        // Repeats within the call share their first occurrence's answer.
        let resolved: Vec<Option<Scored>> = out.clone();
        Ok(out
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.or_else(|| resolved[first_of[&keys[i]]].map(|r| Scored { cached: true, ..r }))
                    .expect("every text was scored")
            })
            .collect())
    }
}

impl Drop for Scorer {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn cache_key(text: &str) -> [u8; 16] {
    let digest = Sha256::digest(text.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// An inference thread: dynamic batches until the channel closes.
fn serve(
    mut backend: Box<dyn Backend>,
    queue: &Receiver<Job>,
    max_batch: usize,
    max_wait: Duration,
) {
    while let Ok(first) = queue.recv() {
        let deadline = Instant::now() + max_wait;
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.recv_deadline(deadline) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        batch.sort_by_key(|j| j.text.len());
        let texts: Vec<&str> = batch.iter().map(|j| j.text.as_str()).collect();
        let result = backend.predict(&texts);
        match result {
            Ok(predictions) if predictions.len() == batch.len() => {
                for (job, p) in batch.iter().zip(predictions) {
                    let _ = job.reply.send((job.index, Ok(p), job.submitted.elapsed()));
                }
            }
            Ok(predictions) => {
                let error = format!(
                    "{} predictions for {} texts",
                    predictions.len(),
                    batch.len()
                );
                for job in &batch {
                    let _ =
                        job.reply
                            .send((job.index, Err(error.clone()), job.submitted.elapsed()));
                }
            }
            Err(e) => {
                for job in &batch {
                    let _ =
                        job.reply
                            .send((job.index, Err(e.to_string()), job.submitted.elapsed()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts calls and batch sizes; scores by text length so answers are checkable.
    struct Counting {
        calls: Arc<AtomicUsize>,
        largest: Arc<AtomicUsize>,
        info: ModelInfo,
    }

    impl Backend for Counting {
        fn info(&self) -> &ModelInfo {
            &self.info
        }

        fn predict(&mut self, texts: &[&str]) -> Result<Vec<Prediction>, SentimentError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(texts.len(), Ordering::SeqCst);
            Ok(texts
                .iter()
                .map(|t| {
                    let p = (t.len() % 10) as f64 / 10.0;
                    Prediction {
                        probs: [p, 1.0 - p, 0.0],
                    }
                })
                .collect())
        }
    }

    fn counting(config: &PoolConfig) -> (Scorer, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let largest = Arc::new(AtomicUsize::new(0));
        let (c, l) = (calls.clone(), largest.clone());
        let scorer = Scorer::start(
            Arc::new(move || {
                Ok(Box::new(Counting {
                    calls: c.clone(),
                    largest: l.clone(),
                    info: ModelInfo {
                        name: "counting".into(),
                        version: "1".into(),
                        backend: BackendKind::Lexicon,
                    },
                }) as Box<dyn Backend>)
            }),
            config,
        )
        .unwrap();
        (scorer, calls, largest)
    }

    #[test]
    fn batches_answers_in_order_and_caches() {
        // One worker: batch sizes and call counts are then exact (the default is one
        // worker per core, which splits batches between them).
        let config = PoolConfig {
            workers: 1,
            max_batch: 8,
            max_wait: Duration::from_millis(50),
            ..PoolConfig::default()
        };
        let (scorer, calls, largest) = counting(&config);
        let texts: Vec<String> = (0..20).map(|i| "x".repeat(i)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let scored = scorer.score(&refs).unwrap();
        for (t, s) in refs.iter().zip(&scored) {
            assert_eq!(s.prediction.probs[0], (t.len() % 10) as f64 / 10.0);
            assert!(!s.cached);
        }
        assert_eq!(largest.load(Ordering::SeqCst), 8, "dynamic batches fill up");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Again: all from the cache, no model call.
        let again = scorer.score(&refs).unwrap();
        assert!(again.iter().all(|s| s.cached));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn repeats_within_a_call_are_scored_once() {
        let (scorer, calls, largest) = counting(&PoolConfig {
            workers: 1,
            max_wait: Duration::from_millis(50),
            cache_entries: 0,
            ..PoolConfig::default()
        });
        let scored = scorer.score(&["same", "same", "other", "same"]).unwrap();
        assert_eq!(scored.len(), 4);
        assert_eq!(scored[0].prediction, scored[3].prediction);
        assert!(scored[3].cached && !scored[0].cached);
        assert_eq!(largest.load(Ordering::SeqCst), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_model_that_cannot_load_falls_back_to_the_lexicon() {
        let choice = ModelChoice {
            backend: BackendKind::Transformer,
            model_dir: "/nonexistent/model".into(),
            encoder_dir: "/nonexistent/encoder".into(),
            ..ModelChoice::default()
        };
        let scorer = Scorer::open(&choice, &PoolConfig::default());
        assert_eq!(scorer.info().backend, BackendKind::Lexicon);
        assert!(scorer.fallback_reason().unwrap().contains("model.json"));
        let scored = scorer.score(&["I love this, thank you!"]).unwrap();
        assert_eq!(scored[0].prediction.label().as_str(), "positive");
    }
}
