//! Event-time windows over fairness outcomes: tumbling (`slide == size`) and sliding
//! (`size` a multiple of `slide`), with allowed lateness.
//!
//! Outcomes go into panes of `slide` length (O(1) per outcome: a map lookup and a counter
//! increment); a window is the merge of `size / slide` consecutive panes. The watermark is
//! the largest event time seen; a window `[start, start + size)` closes once the watermark
//! passes `start + size + allowed_lateness`, and each window closes exactly once. An
//! outcome older than every window still open is late: it is counted in `late` and
//! dropped, never double-counted. State is only panes, so it can be rebuilt by replaying
//! the log from the start of the oldest open window.

use std::collections::BTreeMap;

use crate::metrics::Tally;

/// The window shape, in microseconds of event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Window length.
    pub size: i64,
    /// Distance between window starts; equal to `size` for tumbling windows.
    pub slide: i64,
    /// How long after a window's end outcomes for it are still accepted.
    pub allowed_lateness: i64,
}

/// Why a window shape is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("window size {size} µs must be a positive multiple of the slide {slide} µs, lateness >= 0")]
pub struct BadSpec {
    size: i64,
    slide: i64,
}

impl WindowSpec {
    /// Tumbling windows of `size`.
    pub fn tumbling(size: i64, allowed_lateness: i64) -> Result<Self, BadSpec> {
        Self::sliding(size, size, allowed_lateness)
    }

    /// Sliding windows of `size` every `slide`.
    pub fn sliding(size: i64, slide: i64, allowed_lateness: i64) -> Result<Self, BadSpec> {
        if slide <= 0 || size <= 0 || size % slide != 0 || allowed_lateness < 0 {
            return Err(BadSpec { size, slide });
        }
        Ok(WindowSpec {
            size,
            slide,
            allowed_lateness,
        })
    }
}

/// A window that closed, with its outcomes.
#[derive(Debug, Clone)]
pub struct ClosedWindow {
    /// Inclusive start, µs.
    pub start: i64,
    /// Exclusive end, µs.
    pub end: i64,
    /// Its outcomes by group.
    pub tally: Tally,
}

/// Open panes and the watermark.
#[derive(Debug, Clone)]
pub struct Windows {
    spec: WindowSpec,
    panes: BTreeMap<i64, Tally>,
    watermark: Option<i64>,
    /// Start of the next window to close.
    next_start: Option<i64>,
    /// Outcomes dropped as too late.
    pub late: u64,
}

impl Windows {
    /// No outcomes yet.
    pub fn new(spec: WindowSpec) -> Self {
        Windows {
            spec,
            panes: BTreeMap::new(),
            watermark: None,
            next_start: None,
            late: 0,
        }
    }

    fn pane_of(&self, t: i64) -> i64 {
        t.div_euclid(self.spec.slide) * self.spec.slide
    }

    /// Adds one outcome at event time `t` and moves the watermark to `t`; returns the
    /// windows that closed. A late outcome (its every window already closed) is dropped.
    pub fn add(
        &mut self,
        t: i64,
        key: Vec<String>,
        predicted: bool,
        actual: Option<bool>,
    ) -> Vec<ClosedWindow> {
        self.insert(t, key, predicted, actual);
        self.advance(t)
    }

    /// Adds one outcome at event time `t` without moving the watermark (for callers that
    /// keep their own, e.g. the minimum over input partitions). Returns false if it was
    /// late and dropped.
    pub fn insert(
        &mut self,
        t: i64,
        key: Vec<String>,
        predicted: bool,
        actual: Option<bool>,
    ) -> bool {
        let pane = self.pane_of(t);
        let (size, lateness) = (self.spec.size, self.spec.allowed_lateness);
        if self.watermark.is_some_and(|w| pane + size + lateness <= w) {
            // Every window containing it has closed.
            self.late += 1;
            return false;
        }
        // The earliest window containing the pane that is still open.
        let mut first = pane - (size - self.spec.slide);
        if let Some(w) = self.watermark {
            let open_after = w - size - lateness; // windows starting after this are open
            if first <= open_after {
                first = self.pane_of(open_after) + self.spec.slide;
            }
        }
        let next = self.next_start.map_or(first, |n| n.min(first));
        self.next_start = Some(next);
        self.panes
            .entry(pane)
            .or_default()
            .add(key, predicted, actual);
        true
    }

    /// Moves the watermark to `t` (if later) and closes what it passes.
    pub fn advance(&mut self, t: i64) -> Vec<ClosedWindow> {
        let watermark = self.watermark.map_or(t, |w| w.max(t));
        self.watermark = Some(watermark);
        let mut closed = Vec::new();
        while let Some(start) = self.next_start {
            let end = start + self.spec.size;
            if watermark < end + self.spec.allowed_lateness {
                break;
            }
            let mut tally = Tally::default();
            for (_, pane) in self.panes.range(start..end) {
                for (key, counts) in &pane.groups {
                    tally.groups.entry(key.clone()).or_default().merge(counts);
                }
            }
            if !tally.groups.is_empty() {
                closed.push(ClosedWindow { start, end, tally });
            }
            let next = start + self.spec.slide;
            self.next_start = Some(next);
            // Panes before the next window are needed by no open window.
            self.panes = self.panes.split_off(&next);
            if self.panes.is_empty() {
                // Skip the empty stretch up to the watermark's first window.
                let first = self.pane_of(watermark) - (self.spec.size - self.spec.slide);
                if first > next {
                    self.next_start = Some(first);
                }
                break;
            }
        }
        closed
    }

    /// Closes every open window (end of input).
    pub fn flush(&mut self) -> Vec<ClosedWindow> {
        let Some(last) = self.panes.keys().next_back().copied() else {
            return Vec::new();
        };
        self.advance(last + self.spec.size + self.spec.allowed_lateness)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(v: &str) -> Vec<String> {
        vec![v.to_owned()]
    }

    fn total(w: &ClosedWindow) -> u64 {
        w.tally.groups.values().map(|c| c.n).sum()
    }

    #[test]
    fn tumbling_windows_count_each_outcome_once() {
        let mut w = Windows::new(WindowSpec::tumbling(10, 0).unwrap());
        let mut closed = Vec::new();
        for t in 0..35 {
            closed.extend(w.add(t, g(if t % 2 == 0 { "a" } else { "b" }), t % 3 == 0, None));
        }
        closed.extend(w.flush());
        let spans: Vec<(i64, i64, u64)> =
            closed.iter().map(|c| (c.start, c.end, total(c))).collect();
        assert_eq!(
            spans,
            [(0, 10, 10), (10, 20, 10), (20, 30, 10), (30, 40, 5)]
        );
    }

    #[test]
    fn sliding_windows_overlap() {
        let mut w = Windows::new(WindowSpec::sliding(20, 10, 0).unwrap());
        let mut closed = Vec::new();
        for t in 0..40 {
            closed.extend(w.add(t, g("a"), true, None));
        }
        closed.extend(w.flush());
        let spans: Vec<(i64, i64, u64)> =
            closed.iter().map(|c| (c.start, c.end, total(c))).collect();
        assert_eq!(
            spans,
            [
                (-10, 10, 10),
                (0, 20, 20),
                (10, 30, 20),
                (20, 40, 20),
                (30, 50, 10)
            ]
        );
    }

    #[test]
    fn late_outcomes_within_lateness_count_and_later_ones_are_dropped() {
        let mut w = Windows::new(WindowSpec::tumbling(10, 5).unwrap());
        assert!(w.add(1, g("a"), true, None).is_empty());
        assert!(w.add(12, g("a"), true, None).is_empty());
        // Within the lateness of [0, 10): still counted there.
        assert!(w.add(9, g("a"), true, None).is_empty());
        let closed = w.add(15, g("a"), true, None);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].start, total(&closed[0])), (0, 2));
        // [0, 10) is closed: too late now.
        assert!(w.add(3, g("a"), true, None).is_empty());
        assert_eq!(w.late, 1);
        let rest = w.flush();
        assert_eq!(rest.iter().map(total).sum::<u64>(), 2);
    }

    #[test]
    fn an_earlier_outcome_opens_its_window_while_lateness_allows() {
        let mut w = Windows::new(WindowSpec::tumbling(10, 10).unwrap());
        assert!(w.add(15, g("a"), true, None).is_empty());
        // [0, 10) is open until the watermark reaches 20.
        assert!(w.add(5, g("b"), false, None).is_empty());
        let closed = w.add(20, g("a"), true, None);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].start, total(&closed[0])), (0, 1));
        assert!(closed[0].tally.groups.contains_key(&g("b")));
        assert_eq!(w.late, 0);
        let rest = w.flush();
        assert_eq!(rest.iter().map(total).sum::<u64>(), 2);
    }

    #[test]
    fn a_gap_in_event_time_skips_empty_windows() {
        let mut w = Windows::new(WindowSpec::tumbling(10, 0).unwrap());
        w.add(1, g("a"), true, None);
        let closed = w.add(1_000, g("a"), true, None);
        assert_eq!(closed.len(), 1);
        let rest = w.flush();
        assert_eq!((rest[0].start, rest[0].end), (1_000, 1_010));
    }

    /// Out-of-order outcomes within the lateness: none lost, none counted twice; with
    /// sliding windows each lands in exactly size / slide windows.
    #[test]
    fn jittered_streams_lose_and_duplicate_nothing() {
        let mut rng = crate::metrics::Rng(0x9E37_79B9_7F4A_7C15);
        let mut rand = move |n: i64| rng.below(n as u64) as i64;
        for (size, slide) in [(100, 100), (100, 25), (60, 20)] {
            let mut w = Windows::new(WindowSpec::sliding(size, slide, 50).unwrap());
            let mut closed = Vec::new();
            let n = 5_000;
            for i in 0..n {
                // Event time goes up by 0..4 and jitters back by up to 40 (< lateness).
                let t = i * 2 - rand(40);
                closed.extend(w.add(t, g(["a", "b", "c"][rand(3) as usize]), rand(2) == 0, None));
            }
            closed.extend(w.flush());
            assert_eq!(w.late, 0, "{size}/{slide}");
            let counted: u64 = closed.iter().map(total).sum();
            assert_eq!(
                counted,
                (n as u64) * (size / slide) as u64,
                "{size}/{slide}"
            );
            let starts: Vec<i64> = closed.iter().map(|c| c.start).collect();
            let mut unique = starts.clone();
            unique.dedup();
            assert_eq!(starts, unique, "each window closes once, in order");
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(WindowSpec::sliding(15, 10, 0).is_err());
        assert!(WindowSpec::tumbling(0, 0).is_err());
        assert!(WindowSpec::tumbling(10, -1).is_err());
    }
}
