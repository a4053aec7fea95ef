//! Fairness: whether demographic groups are treated differently by the pipeline.
//!
//! [`metrics`] holds the definitions (Fairlearn's and AIF360's, verified against both
//! libraries by `tests/golden.rs`) over counts that update in O(1) per outcome; [`table`]
//! computes them over a CSV, which is what `insights fairness` runs; [`window`] groups
//! outcomes into tumbling or sliding event-time windows with allowed lateness; [`stream`]
//! is the pipeline stage: outcome events in, `FairnessReported` per closed window and
//! `FairnessAlertRaised` out; [`evidence`] gives the confidence intervals (Wilson,
//! Newcombe, log ratio) and [`alerts`] raises an alert only when an interval excludes its
//! threshold.

pub mod alerts;
mod config;
pub mod evidence;
pub mod metrics;
pub mod stream;
pub mod table;
pub mod window;

pub use config::FairnessConfig;
pub use metrics::{Counts, GroupStats, Interval, Privileged, Report, Tally};
pub use stream::FairnessProcessor;
pub use table::{TableError, TableSpec, read_csv, report_csv};
pub use window::{ClosedWindow, WindowSpec, Windows};
