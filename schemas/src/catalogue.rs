//! The schema catalogue: every schema in `schemas/avro/`, its released versions, and the
//! lookups a decoder needs (by name, by Rabin fingerprint, by Confluent schema id).
//!
//! Files may refer to named types defined in other files by full name (e.g. the envelope's
//! payload union names each event record). The catalogue resolves such references by
//! inlining the definition at its first use, so every schema it holds is self-contained:
//! its Parsing Canonical Form, fingerprint and id describe all of it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use serde_json::Value as Json;

use crate::json_avro::{Names, collect_names};

include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));

/// One version of one schema.
#[derive(Debug, Clone)]
pub struct SchemaVersion {
    /// Short name (the file stem, which is the record name), e.g. `SentimentScored`.
    pub name: String,
    /// Full name with namespace.
    pub full_name: String,
    /// Version, counted from 1.
    pub version: u32,
    /// The parsed, self-contained schema.
    pub schema: Schema,
    /// The self-contained schema as JSON.
    pub json: Json,
    /// CRC-64-AVRO (Rabin) fingerprint of the Parsing Canonical Form, as used by the
    /// single-object encoding.
    pub fingerprint: u64,
    /// The id this schema has in the embedded registry, used in the Confluent wire format
    /// when no external registry assigns one: the low 31 bits of the fingerprint.
    pub local_id: u32,
    /// Named types inside the schema, for resolving references.
    pub(crate) names: Names,
    /// The schema resolved for apache-avro's encoder and decoder, once.
    pub(crate) prepared: OnceLock<Result<Arc<Prepared>, String>>,
}

/// A schema resolved once for apache-avro's single-object writer and reader. Its
/// `to_avro_datum` and `from_avro_datum` resolve the schema's named types on every call
/// (a fresh map of names per message): 3 % of the embedded pipeline's CPU, more with the
/// hashing and allocation around it.
pub(crate) struct Prepared {
    /// Takes `&mut` for its buffer; held only while one value is encoded.
    writer: std::sync::Mutex<apache_avro::GenericSingleObjectWriter>,
    reader: apache_avro::GenericSingleObjectReader,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").finish_non_exhaustive()
    }
}

impl Prepared {
    fn new(schema: &Schema) -> Result<Prepared, apache_avro::Error> {
        Ok(Prepared {
            writer: std::sync::Mutex::new(
                apache_avro::GenericSingleObjectWriter::new_with_capacity(schema, 1024)?,
            ),
            reader: apache_avro::GenericSingleObjectReader::new(schema.clone())?,
        })
    }

    /// Appends `value`'s single-object encoding (`C3 01`, the fingerprint, the datum) to
    /// `out`, after checking it against the schema.
    pub(crate) fn encode(
        &self,
        value: &apache_avro::types::Value,
        out: &mut Vec<u8>,
    ) -> Result<(), apache_avro::Error> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.write_value_ref(value, out).map(|_| ())
    }

    /// Decodes a single-object encoding, advancing `bytes` past it.
    pub(crate) fn decode(
        &self,
        bytes: &mut &[u8],
    ) -> Result<apache_avro::types::Value, apache_avro::Error> {
        self.reader.read_value(bytes)
    }
}

impl SchemaVersion {
    /// The schema resolved for encoding and decoding (on first use).
    pub(crate) fn prepared(&self) -> Result<&Prepared, String> {
        self.prepared
            .get_or_init(|| {
                Prepared::new(&self.schema)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .as_deref()
            .map_err(Clone::clone)
    }
}

/// Every schema and every released version.
#[derive(Debug)]
pub struct Catalogue {
    current: BTreeMap<String, Arc<SchemaVersion>>,
    released: BTreeMap<String, Vec<Arc<SchemaVersion>>>,
    by_fingerprint: HashMap<u64, Arc<SchemaVersion>>,
    by_id: HashMap<u32, Arc<SchemaVersion>>,
}

/// A schema file could not be read into the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema {name}: {message}")]
pub struct CatalogueError {
    /// The schema's file stem.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

impl Catalogue {
    /// The catalogue built from the embedded schema files. Panics if a shipped schema is
    /// invalid, which the crate's tests rule out.
    pub fn get() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(|| {
            Catalogue::build(CURRENT, HISTORY)
                .unwrap_or_else(|e| panic!("embedded schemas are invalid: {e}"))
        })
    }

    /// Builds a catalogue from (name, text) current schemas and (name, version, text)
    /// released versions. A schema's current version is the number of its latest release;
    /// one with no release yet is version 1.
    pub fn build(
        current: &[(&str, &str)],
        history: &[(&str, u32, &str)],
    ) -> Result<Catalogue, CatalogueError> {
        let err = |name: &str, message: String| CatalogueError {
            name: name.to_owned(),
            message,
        };
        let mut raw: HashMap<String, Json> = HashMap::new();
        for (name, text) in current {
            let json: Json =
                serde_json::from_str(text).map_err(|e| err(name, format!("not JSON: {e}")))?;
            let full = full_name(&json).ok_or_else(|| err(name, "has no name".into()))?;
            raw.insert(full, json);
        }
        let mut current_map = BTreeMap::new();
        let mut released: BTreeMap<String, Vec<Arc<SchemaVersion>>> = BTreeMap::new();
        for (name, version, text) in history {
            let json: Json = serde_json::from_str(text)
                .map_err(|e| err(name, format!("v{version} is not JSON: {e}")))?;
            let v = make_version(name, *version, json)
                .map_err(|m| err(name, format!("v{version}: {m}")))?;
            released
                .entry((*name).to_owned())
                .or_default()
                .push(Arc::new(v));
        }
        for list in released.values_mut() {
            list.sort_by_key(|v| v.version);
        }
        for (name, text) in current {
            let json: Json =
                serde_json::from_str(text).map_err(|e| err(name, format!("not JSON: {e}")))?;
            let resolved = inline_references(&json, &raw, &mut HashSet::new());
            let version = released
                .get(*name)
                .and_then(|l| l.last())
                .map_or(1, |v| v.version);
            let v = make_version(name, version, resolved).map_err(|m| err(name, m))?;
            if !v.full_name.ends_with(&format!(".{name}")) && v.full_name != *name {
                return Err(err(
                    name,
                    format!("file name does not match record name {}", v.full_name),
                ));
            }
            current_map.insert((*name).to_owned(), Arc::new(v));
        }
        let mut by_fingerprint = HashMap::new();
        let mut by_id = HashMap::new();
        for v in current_map.values().chain(released.values().flatten()) {
            by_fingerprint.insert(v.fingerprint, v.clone());
            if let Some(other) = by_id.insert(v.local_id, v.clone())
                && other.fingerprint != v.fingerprint
            {
                return Err(err(
                    &v.name,
                    format!("local id {} collides with {}", v.local_id, other.name),
                ));
            }
        }
        Ok(Catalogue {
            current: current_map,
            released,
            by_fingerprint,
            by_id,
        })
    }

    /// The current version of a schema by short name.
    pub fn current(&self, name: &str) -> Option<&Arc<SchemaVersion>> {
        self.current.get(name)
    }

    /// Every current schema, in name order.
    pub fn all_current(&self) -> impl Iterator<Item = &Arc<SchemaVersion>> {
        self.current.values()
    }

    /// Whether a short name is a schema in the catalogue.
    pub fn contains(&self, name: &str) -> bool {
        self.current.contains_key(name)
    }

    /// The released versions of a schema, oldest first.
    pub fn released(&self, name: &str) -> &[Arc<SchemaVersion>] {
        self.released.get(name).map_or(&[], Vec::as_slice)
    }

    /// Any known version (current or released) by its fingerprint.
    pub fn by_fingerprint(&self, fingerprint: u64) -> Option<&Arc<SchemaVersion>> {
        self.by_fingerprint.get(&fingerprint)
    }

    /// Any known version by its embedded-registry id.
    pub fn by_local_id(&self, id: u32) -> Option<&Arc<SchemaVersion>> {
        self.by_id.get(&id)
    }
}

fn make_version(name: &str, version: u32, json: Json) -> Result<SchemaVersion, String> {
    let schema = Schema::parse(&json).map_err(|e| e.to_string())?;
    let full = full_name(&json).ok_or("has no name")?;
    let fp = schema.fingerprint::<Rabin>().bytes;
    let fingerprint = u64::from_le_bytes(
        fp.as_slice()
            .try_into()
            .map_err(|_| "fingerprint is not 8 bytes")?,
    );
    let mut names = Names::new();
    collect_names(&schema, &mut names);
    Ok(SchemaVersion {
        names,
        name: name.to_owned(),
        full_name: full,
        version,
        schema,
        json,
        fingerprint,
        local_id: (fingerprint & 0x7fff_ffff) as u32,
        prepared: OnceLock::new(),
    })
}

/// `namespace.name` of a named schema's JSON (the name itself when it holds a dot).
fn full_name(json: &Json) -> Option<String> {
    let name = json.get("name")?.as_str()?;
    if name.contains('.') {
        return Some(name.to_owned());
    }
    match json.get("namespace").and_then(Json::as_str) {
        Some(ns) if !ns.is_empty() => Some(format!("{ns}.{name}")),
        _ => Some(name.to_owned()),
    }
}

/// Replaces the first reference to each named type defined in another file by that file's
/// (recursively resolved) definition. Only type positions are walked: a record's fields'
/// types, array items, map values and union branches.
fn inline_references(
    json: &Json,
    files: &HashMap<String, Json>,
    defined: &mut HashSet<String>,
) -> Json {
    match json {
        Json::String(name) => match files.get(name) {
            Some(def) if !defined.contains(name) => inline_references(def, files, defined),
            _ => json.clone(),
        },
        Json::Array(branches) => Json::Array(
            branches
                .iter()
                .map(|b| inline_references(b, files, defined))
                .collect(),
        ),
        Json::Object(map) => {
            let mut out = map.clone();
            match map.get("type").and_then(Json::as_str) {
                Some("record" | "error") => {
                    if let Some(full) = full_name(json) {
                        defined.insert(full);
                    }
                    if let Some(Json::Array(fields)) = map.get("fields") {
                        let fields = fields
                            .iter()
                            .map(|f| {
                                let mut f = f.clone();
                                if let Some(t) = f.get("type").cloned() {
                                    f["type"] = inline_references(&t, files, defined);
                                }
                                f
                            })
                            .collect();
                        out.insert("fields".into(), Json::Array(fields));
                    }
                }
                Some("enum" | "fixed") => {
                    if let Some(full) = full_name(json) {
                        defined.insert(full);
                    }
                }
                Some("array") => {
                    if let Some(items) = map.get("items") {
                        out.insert("items".into(), inline_references(items, files, defined));
                    }
                }
                Some("map") => {
                    if let Some(values) = map.get("values") {
                        out.insert("values".into(), inline_references(values, files, defined));
                    }
                }
                _ => {
                    if let Some(inner @ (Json::Object(_) | Json::Array(_))) = map.get("type") {
                        out.insert("type".into(), inline_references(inner, files, defined));
                    }
                }
            }
            Json::Object(out)
        }
        _ => json.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_schema_parses_and_resolves() {
        let c = Catalogue::get();
        for name in [
            "Envelope",
            "Interaction",
            "InteractionScrubbed",
            "SentimentScored",
            "ResponseDrafted",
            "ResponseApproved",
            "ReviewRequested",
            "ReviewClaimed",
            "ReviewDecided",
            "FairnessReported",
            "FairnessAlertRaised",
            "AnomalyDetected",
            "DeadLettered",
            "SubjectErased",
            "DeadLetterRedriven",
            "ReviewReleased",
            "ReviewEscalated",
        ] {
            let v = c
                .current(name)
                .unwrap_or_else(|| panic!("{name} is in the catalogue"));
            assert!(v.full_name.ends_with(name));
        }
        // The envelope's payload union resolved every event, with the shared context
        // record defined once and referenced after.
        let env = c.current("Envelope").expect("envelope");
        let text = env.json.to_string();
        assert_eq!(
            text.matches("\"name\":\"InteractionContext\"").count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn a_reference_to_an_unknown_type_is_an_error() {
        let bad = r#"{"type":"record","name":"X","fields":[{"name":"a","type":"ns.Missing"}]}"#;
        let e = Catalogue::build(&[("X", bad)], &[]).expect_err("unknown type");
        assert_eq!(e.name, "X");
    }
}
