//! Work on the lines of a file on several threads, answers written in the lines' order.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Result, anyhow};

/// Batches read ahead of the workers at most, per worker: enough to keep them busy, not a
/// whole file.
const READ_AHEAD: usize = 4;

/// Answers of a batch, and the error that cut it short.
type Answers<R> = (Vec<R>, Option<anyhow::Error>);

/// Calls `work` on every item of the batches that `batches` (made on a reader thread of
/// its own, so that the reader need not be `Send`) yields, on `threads`
/// threads, and hands each answer to `sink` (`Some`), on the calling thread, in the items'
/// order; `sink(None)` says that no answer is ready now (a moment to flush what was
/// written, so that a line typed into stdin is answered while stdin stays open).
/// A batch goes to whichever thread is free; a batch is what the reader had without
/// waiting (see [`crate::jsonl::Lines::batches`]), so a line typed into stdin is worked on
/// at once and a file's lines change threads a batch at a time, not one by one. One
/// thread works on the calling thread, with no reader of its own. The first error (the
/// reader's, `work`'s, `sink`'s, or a panic in `work`) stops the run and is returned; the
/// answers before it have been handed to `sink`.
pub(crate) fn map_in_order<I, R, It>(
    threads: usize,
    batches: impl FnOnce() -> Result<It> + Send,
    work: impl Fn(I) -> Result<R> + Sync,
    mut sink: impl FnMut(Option<R>) -> Result<()>,
) -> Result<()>
where
    I: Send,
    R: Send,
    It: Iterator<Item = Result<Vec<I>>>,
{
    if threads <= 1 {
        for batch in batches()? {
            for item in batch? {
                sink(Some(work(item)?))?;
            }
            sink(None)?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<I>)>(READ_AHEAD * threads);
        // The workers alone hold the receiver: when the last of them stops (after an
        // error), the reader's next send fails and it stops too.
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (done_tx, done_rx) = mpsc::channel::<(usize, Answers<R>)>();
        for _ in 0..threads {
            let (work_rx, done_tx, work) = (Arc::clone(&work_rx), done_tx.clone(), &work);
            scope.spawn(move || {
                loop {
                    let next = work_rx
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    let Ok((seq, batch)) = next else { break };
                    let answers = work_on(batch, work);
                    if done_tx.send((seq, answers)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(work_rx);
        let reader_done = done_tx;
        scope.spawn(move || {
            let batches = match batches() {
                Ok(batches) => batches,
                Err(e) => {
                    let _ = reader_done.send((0, (Vec::new(), Some(e))));
                    return;
                }
            };
            for (seq, batch) in batches.enumerate() {
                let sent = match batch {
                    Ok(batch) => work_tx.send((seq, batch)).is_ok(),
                    Err(e) => {
                        let _ = reader_done.send((seq, (Vec::new(), Some(e))));
                        false
                    }
                };
                if !sent {
                    break;
                }
            }
        });
        // Batches finish in any order; each waits here until those before it are out.
        let mut waiting: BTreeMap<usize, Answers<R>> = BTreeMap::new();
        let mut next = 0usize;
        loop {
            let (seq, answers) = match done_rx.try_recv() {
                Ok(done) => done,
                Err(mpsc::TryRecvError::Empty) => {
                    sink(None)?;
                    match done_rx.recv() {
                        Ok(done) => done,
                        Err(_) => break,
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
            };
            waiting.insert(seq, answers);
            while let Some((answers, error)) = waiting.remove(&next) {
                for answer in answers {
                    sink(Some(answer))?;
                }
                if let Some(e) = error {
                    return Err(e);
                }
                next += 1;
            }
        }
        // Only an error can leave a gap (the reader stops at its first), and it has been
        // returned above; a gap without one would be a lost batch.
        match waiting.into_iter().next() {
            Some((seq, _)) => Err(anyhow!("batch {next} of the input was lost before {seq}")),
            None => Ok(()),
        }
    })
}

/// `work` on each item of `batch` until the first error or panic.
fn work_on<I, R>(batch: Vec<I>, work: impl Fn(I) -> Result<R>) -> Answers<R> {
    let mut answers = Vec::with_capacity(batch.len());
    for item in batch {
        match catch_unwind(AssertUnwindSafe(|| work(item))) {
            Ok(Ok(answer)) => answers.push(answer),
            Ok(Err(e)) => return (answers, Some(e)),
            Err(_) => return (answers, Some(anyhow!("a worker thread panicked"))),
        }
    }
    (answers, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0..n in batches of 1 to 7 items.
    fn batches(n: usize) -> impl Iterator<Item = Result<Vec<usize>>> {
        let mut start = 0;
        std::iter::from_fn(move || {
            let end = (start + 1 + start % 7).min(n);
            let batch: Vec<usize> = (start..end).collect();
            start = end;
            (!batch.is_empty()).then_some(Ok(batch))
        })
    }

    fn run(threads: usize, n: usize, fail_at: Option<usize>) -> (Result<()>, Vec<usize>) {
        let mut out = Vec::new();
        let result = map_in_order(
            threads,
            || Ok(batches(n)),
            |i: usize| {
                // Uneven work, so that batches finish out of order.
                std::thread::sleep(std::time::Duration::from_micros(((i * 7919) % 13) as u64));
                match fail_at {
                    Some(f) if f == i => Err(anyhow!("item {i} failed")),
                    _ => Ok(i * 2),
                }
            },
            |r| {
                out.extend(r);
                Ok(())
            },
        );
        (result, out)
    }

    #[test]
    fn answers_come_out_in_the_items_order_on_any_number_of_threads() {
        let expected: Vec<usize> = (0..500).map(|i| i * 2).collect();
        for threads in [1, 2, 3, 8] {
            let (result, out) = run(threads, 500, None);
            assert!(result.is_ok(), "{threads} threads: {result:?}");
            assert_eq!(out, expected, "{threads} threads");
        }
        let (result, out) = run(4, 0, None);
        assert!(result.is_ok() && out.is_empty());
    }

    #[test]
    fn one_thread_says_when_a_batch_is_done() {
        let mut events = Vec::new();
        let result = map_in_order(
            1,
            || Ok(vec![Ok(vec![1, 2]), Ok(vec![3])].into_iter()),
            |i: usize| Ok(i),
            |r| {
                events.push(r);
                Ok(())
            },
        );
        assert!(result.is_ok());
        assert_eq!(events, [Some(1), Some(2), None, Some(3), None]);
    }

    #[test]
    fn the_first_error_stops_the_run_after_the_answers_before_it() {
        for threads in [1, 3] {
            // 120 is inside a batch (117..124): the answers before it in the batch count.
            let (result, out) = run(threads, 300, Some(120));
            let error = result.expect_err("item 120 fails");
            assert_eq!(error.to_string(), "item 120 failed");
            assert_eq!(out, (0..120).map(|i| i * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_reader_error_and_a_panic_are_errors_not_hangs() {
        for threads in [1, 2] {
            let mut out = Vec::new();
            let result = map_in_order(
                threads,
                || {
                    Ok((0..10).map(|i| match i {
                        5 => Err(anyhow!("bad read")),
                        _ => Ok(vec![i]),
                    }))
                },
                |i: usize| Ok(i),
                |r| {
                    out.extend(r);
                    Ok(())
                },
            );
            assert_eq!(result.expect_err("read fails").to_string(), "bad read");
            assert_eq!(out, vec![0, 1, 2, 3, 4]);

            let result: Result<()> = map_in_order(
                threads,
                || Err::<std::iter::Empty<Result<Vec<usize>>>, _>(anyhow!("no such file")),
                |i: usize| Ok(i),
                |_| Ok(()),
            );
            assert_eq!(result.expect_err("open fails").to_string(), "no such file");
        }
        let result = map_in_order(
            2,
            || Ok(batches(10)),
            |i: usize| {
                assert!(i != 3, "item 3 panics");
                Ok(i)
            },
            |_| Ok(()),
        );
        assert!(
            result
                .expect_err("a panic")
                .to_string()
                .contains("panicked")
        );
    }

    #[test]
    fn a_sink_error_stops_the_workers_and_the_reader() {
        for threads in [1, 2] {
            let mut seen = 0;
            let result = map_in_order(
                threads,
                || Ok(batches(100_000)),
                |i: usize| Ok(i),
                |r| {
                    seen += usize::from(r.is_some());
                    if seen == 10 {
                        Err(anyhow!("broken pipe"))
                    } else {
                        Ok(())
                    }
                },
            );
            assert_eq!(result.expect_err("sink fails").to_string(), "broken pipe");
            assert_eq!(seen, 10);
        }
    }
}
