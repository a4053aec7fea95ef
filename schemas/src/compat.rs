//! Schema evolution rules, checked over the catalogue.
//!
//! Released versions live in `schemas/avro/history/NAME/vN.avsc` and are never edited. The
//! current schema must equal its latest release (so a change to a schema file forces a new
//! release file), and it must be able to read data written with every release
//! (backward-transitive compatibility, as Confluent's `BACKWARD_TRANSITIVE`): new fields
//! need defaults, no field changes type incompatibly, no enum loses a symbol readers need.

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;

use crate::catalogue::Catalogue;

/// One violation of the evolution rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvolutionError {
    /// A schema has no released version in `history/`.
    #[error("{name} has no release: add schemas/avro/history/{name}/v1.avsc")]
    Unreleased {
        /// The schema.
        name: String,
    },
    /// The current schema differs from its latest release.
    #[error("{name} differs from its latest release v{version}: add history/{name}/v{next}.avsc (and keep it compatible)", next = version + 1)]
    ChangedWithoutRelease {
        /// The schema.
        name: String,
        /// The latest released version.
        version: u32,
    },
    /// The current schema cannot read data written with a release.
    #[error("{name}: the current schema cannot read data written with v{version}: {reason}")]
    Incompatible {
        /// The schema.
        name: String,
        /// The release it cannot read.
        version: u32,
        /// Why, from the compatibility checker.
        reason: String,
    },
}

/// Whether data written with `writer` can be read with `reader`; the reason if not.
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    SchemaCompatibility::can_read(writer, reader).map_err(|e| e.to_string())
}

/// Checks every schema in the catalogue against its releases.
pub fn check(catalogue: &Catalogue) -> Vec<EvolutionError> {
    let mut errors = Vec::new();
    for current in catalogue.all_current() {
        let releases = catalogue.released(&current.name);
        let Some(latest) = releases.last() else {
            errors.push(EvolutionError::Unreleased {
                name: current.name.clone(),
            });
            continue;
        };
        if latest.schema.canonical_form() != current.schema.canonical_form() {
            errors.push(EvolutionError::ChangedWithoutRelease {
                name: current.name.clone(),
                version: latest.version,
            });
        }
        for old in releases {
            if let Err(reason) = can_read(&old.schema, &current.schema) {
                errors.push(EvolutionError::Incompatible {
                    name: current.name.clone(),
                    version: old.version,
                    reason,
                });
            }
        }
    }
    errors
}
