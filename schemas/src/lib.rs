//! Avro schemas for every CustomerAI Insights event, and the codecs that move them.
//!
//! # Layout
//! - `schemas/avro/*.avsc` — the current schema of the input record (`Interaction`), the
//!   [`Envelope`] and every event; `schemas/avro/history/NAME/vN.avsc` — released versions,
//!   never edited. A build script embeds both.
//! - [`catalogue`] — the schemas, self-contained (cross-file references inlined), with
//!   versions, fingerprints and embedded-registry ids.
//! - [`events`] — Rust types whose JSON form matches the schemas field for field.
//! - [`codec`] — [`Codec`]: Avro single-object encoding, the Confluent wire format and
//!   JSON, with format detection and writer→reader schema resolution on decode.
//! - [`compat`] — the evolution rules: the current schema equals its latest release and
//!   reads every release.
//! - `json_avro` — the schema-directed JSON↔Avro conversion behind the codec.
//! - `avro_de` — reading a type straight from a decoded Avro value.

mod avro_de;
pub mod catalogue;
pub mod codec;
pub mod compat;
pub mod events;
pub mod fuzzing;
mod json_avro;
mod timestamp;

pub use catalogue::{Catalogue, SchemaVersion};
pub use codec::{AvroRecord, Codec, DecodeError, EncodeError, Format, limit_allocations};
pub use events::*;
pub use timestamp::Timestamp;

/// Whether `name` is a schema in `schemas/avro/` (what topology validation asks).
pub fn schema_exists(name: &str) -> bool {
    Catalogue::get().contains(name)
}

/// The current version number of the schema of an event type, for the envelope's
/// `schema_version`.
pub fn current_version(event_type: &str) -> Option<i32> {
    Catalogue::get()
        .current(event_type)
        .and_then(|v| i32::try_from(v.version).ok())
}
