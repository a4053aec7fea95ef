//! The pipeline as `insights run` runs it.
//!
//! The binary parses flags and the environment; [`Plan`] is what they and topology.toml
//! resolve to, once, before anything starts (the low-level settings → high-level plan
//! split of ripgrep's `LowArgs`/`HiArgs`): the validated topology, the store, the cluster
//! (or the embedded broker), which part of the pipeline this process is, every processor's
//! configuration it runs, and how the HTTP API checks tokens. [`run`] then assembles the
//! processors, the projection views and the API from the plan and hands them to the
//! runtime; nothing below it reads a flag, a variable or the topology file again.
//!
//! This is the composition root: the one crate that depends on every processor, the
//! runtime, the store, the vault's key store, the views and the API. The processors stay
//! pure; the resources some of them need (the vault's keys) are injected here.

mod api;
pub mod input;
mod plan;
pub mod privacy;
mod run;
pub mod views;

pub use plan::{ApiPlan, Http, Plan, Processors, ResponsePlan, Role, StoreSettings};
pub use run::run;
