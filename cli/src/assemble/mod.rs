//! Processors, views and the API as the binary assembles them from topology.toml, flags,
//! the environment and the store: what `run`, `replay` and `topology check` share. These
//! modules import the leaves (`settings`, `secrets`, `auth`) and each other, never a
//! command.

pub(crate) mod api;
pub(crate) mod privacy;
pub(crate) mod response;
pub(crate) mod sentiment;
pub(crate) mod views;
