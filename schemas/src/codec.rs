//! Encoding and decoding records in the three wire formats producers use.
//!
//! - **Avro single-object encoding**: `C3 01`, the writer schema's 8-byte CRC-64-AVRO
//!   fingerprint (little-endian), then the Avro datum.
//! - **Confluent wire format**: `00`, a 4-byte big-endian schema id, then the Avro datum.
//!   Ids come from the embedded registry (each schema's `local_id`) or from ids registered
//!   with [`Codec::register_id`] (as learnt from a Confluent-compatible schema registry).
//! - **JSON**: the record's JSON form (what the Rust types serialize to).
//!
//! Decoding detects the format from the first bytes, finds the writer's schema (any
//! released version), and resolves it to the current (reader) schema, so data written with
//! an older version of a schema reads with the newer one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::avro_de::AvroDe;
use crate::catalogue::{Catalogue, SchemaVersion};
use crate::json_avro::{Names, avro_to_json, collect_names, json_to_avro, write_json};
use crate::{Envelope, Interaction};

/// A type with a schema in the catalogue.
pub trait AvroRecord: Serialize + DeserializeOwned {
    /// The schema's short name in `schemas/avro/`.
    const SCHEMA: &'static str;
}

impl AvroRecord for Envelope {
    const SCHEMA: &'static str = "Envelope";
}

impl AvroRecord for Interaction {
    const SCHEMA: &'static str = "Interaction";
}

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JSON text.
    Json,
    /// Avro single-object encoding.
    SingleObject,
    /// Confluent wire format (magic byte + schema id).
    Confluent,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "json",
            Format::SingleObject => "avro-single-object",
            Format::Confluent => "confluent-avro",
        })
    }
}

impl Format {
    /// Detects the format of a message from its first bytes.
    pub fn detect(bytes: &[u8]) -> Result<Format, DecodeError> {
        match bytes {
            [] => Err(DecodeError::Empty),
            [0xC3, 0x01, ..] => Ok(Format::SingleObject),
            [0x00, ..] => Ok(Format::Confluent),
            _ => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => Ok(Format::Json),
                Some(&b) => Err(DecodeError::UnknownFormat { first_byte: b }),
                None => Err(DecodeError::Empty),
            },
        }
    }
}

/// Why a message could not be decoded. Every variant means the message itself is bad
/// (poison), never that retrying could help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is empty.
    #[error("empty message")]
    Empty,
    /// The message is not JSON, Avro single-object or Confluent Avro.
    #[error(
        "unknown format: first byte 0x{first_byte:02x} is not '{{', 0xc3 (Avro single-object) or 0x00 (Confluent)"
    )]
    UnknownFormat {
        /// The first byte.
        first_byte: u8,
    },
    /// The header is cut short.
    #[error("{format} message is {len} bytes, shorter than its header")]
    Truncated {
        /// The detected format.
        format: Format,
        /// The message length.
        len: usize,
    },
    /// A single-object message names a schema this build does not know.
    #[error("unknown schema fingerprint {0:016x}")]
    UnknownFingerprint(u64),
    /// A Confluent message names a schema id this build does not know.
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    /// The writer schema is a different record than the one expected.
    #[error("schema mismatch: expected {expected}, message was written with {found}")]
    WrongSchema {
        /// The expected record.
        expected: String,
        /// The writer's record.
        found: String,
    },
    /// The Avro datum does not decode with the writer schema, or does not resolve to the
    /// reader schema.
    #[error("invalid Avro: {0}")]
    Avro(String),
    /// The JSON is malformed or does not fit the record.
    #[error("invalid JSON: {0}")]
    Json(String),
}

/// A value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The type's schema is not in the catalogue.
    #[error("no schema named {0}")]
    UnknownSchema(String),
    /// The value does not fit its schema.
    #[error("value does not fit schema {schema}: {message}")]
    Mismatch {
        /// The schema.
        schema: String,
        /// What does not fit, with its field path.
        message: String,
    },
}

/// Encodes and decodes catalogue records; holds schema ids learnt from a registry.
#[derive(Debug, Clone, Default)]
pub struct Codec {
    registered: HashMap<u32, Arc<SchemaVersion>>,
    ids_by_fingerprint: HashMap<u64, u32>,
}

/// The most a decoder allocates for one length or count read from a message, unless
/// [`limit_allocations`] set another limit first: the default `max_message_bytes`.
pub const DEFAULT_MAX_ALLOCATION: usize = 1 << 20;

/// Caps what apache-avro allocates for one length or count it reads from a message (a
/// string's bytes, an array's or a map's entries) at `max_bytes`, for the whole process;
/// the first call wins, and [`Codec::new`] makes it with [`DEFAULT_MAX_ALLOCATION`]. A
/// message's strings and collections cannot be longer than the message, so the largest
/// message accepted (`max_message_bytes`) is the right limit. Without it a 207-byte message
/// announcing a map of half a billion entries made the decoder reserve 5.4 GB (found by
/// scripts/fuzz.sh). Returns the limit in force.
pub fn limit_allocations(max_bytes: usize) -> usize {
    apache_avro::util::max_allocation_bytes(max_bytes.max(1024))
}

impl Codec {
    /// A codec knowing the catalogue's schemas and their embedded-registry ids (bounds the
    /// decoder's allocations: [`limit_allocations`]).
    pub fn new() -> Codec {
        limit_allocations(DEFAULT_MAX_ALLOCATION);
        Codec::default()
    }

    /// Registers a schema id assigned by an external registry. `schema_json` must parse;
    /// its record must be one the catalogue knows (any compatible version).
    pub fn register_id(&mut self, id: u32, schema_json: &str) -> Result<(), DecodeError> {
        let schema =
            Schema::parse_str(schema_json).map_err(|e| DecodeError::Avro(e.to_string()))?;
        let fingerprint = fingerprint(&schema)?;
        let full_name = match &schema {
            Schema::Record(r) => r.name.fullname(None),
            _ => {
                return Err(DecodeError::Avro(
                    "registered schema is not a record".into(),
                ));
            }
        };
        let name = full_name
            .rsplit('.')
            .next()
            .unwrap_or(&full_name)
            .to_owned();
        let version = Catalogue::get()
            .by_fingerprint(fingerprint)
            .map_or(0, |v| v.version);
        let json =
            serde_json::from_str(schema_json).map_err(|e| DecodeError::Json(e.to_string()))?;
        let mut names = Names::new();
        collect_names(&schema, &mut names);
        let v = SchemaVersion {
            name,
            full_name,
            version,
            schema,
            json,
            fingerprint,
            local_id: id,
            names,
            prepared: std::sync::OnceLock::new(),
        };
        self.ids_by_fingerprint.insert(fingerprint, id);
        self.registered.insert(id, Arc::new(v));
        Ok(())
    }

    /// Encodes a record in `format` with the current version of its schema.
    pub fn encode<T: AvroRecord>(&self, value: &T, format: Format) -> Result<Vec<u8>, EncodeError> {
        if format == Format::Json {
            return serde_json::to_vec(value).map_err(|e| EncodeError::Mismatch {
                schema: T::SCHEMA.to_owned(),
                message: e.to_string(),
            });
        }
        let v = current::<T>().ok_or_else(|| EncodeError::UnknownSchema(T::SCHEMA.to_owned()))?;
        let mismatch = |message: String| EncodeError::Mismatch {
            schema: T::SCHEMA.to_owned(),
            message,
        };
        let json = serde_json::to_value(value).map_err(|e| mismatch(e.to_string()))?;
        // The single-object encoding: `C3 01`, the fingerprint (little-endian), the datum.
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&[0xC3, 0x01]);
        out.extend_from_slice(&v.fingerprint.to_le_bytes());
        write_json(&json, &v.schema, &v.names, &mut out).map_err(mismatch)?;
        if format == Format::Confluent {
            let id = self
                .ids_by_fingerprint
                .get(&v.fingerprint)
                .copied()
                .unwrap_or(v.local_id);
            let mut header = [0u8; 5];
            header[1..].copy_from_slice(&id.to_be_bytes());
            out.splice(..SINGLE_OBJECT_HEADER, header);
        }
        Ok(out)
    }

    /// [`Codec::encode`]'s single-object encoding the way it was written before the direct
    /// writer: JSON to an Avro `Value`, then apache-avro's writer (which validates the
    /// value first). Kept as the reference the direct writer is checked against.
    pub(crate) fn encode_through_value<T: AvroRecord>(
        &self,
        value: &T,
    ) -> Result<Vec<u8>, EncodeError> {
        let v = current::<T>().ok_or_else(|| EncodeError::UnknownSchema(T::SCHEMA.to_owned()))?;
        let mismatch = |message: String| EncodeError::Mismatch {
            schema: T::SCHEMA.to_owned(),
            message,
        };
        let json = serde_json::to_value(value).map_err(|e| mismatch(e.to_string()))?;
        let avro = json_to_avro(&json, &v.schema, &v.names).map_err(mismatch)?;
        let mut out = Vec::with_capacity(256);
        v.prepared()
            .map_err(&mismatch)?
            .encode(&avro, &mut out)
            .map_err(|e| mismatch(e.to_string()))?;
        Ok(out)
    }

    /// Decodes a record of type `T` from any of the three formats.
    pub fn decode<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        self.decode_with_format(bytes).map(|(v, _)| v)
    }

    /// Decodes a record and tells which format it was in.
    pub fn decode_with_format<T: AvroRecord>(
        &self,
        bytes: &[u8],
    ) -> Result<(T, Format), DecodeError> {
        self.decode_as(bytes, Read::Direct)
    }

    /// [`Codec::decode_with_format`], reading the decoded Avro value into `T` as `how` says.
    pub(crate) fn decode_as<T: AvroRecord>(
        &self,
        bytes: &[u8],
        how: Read,
    ) -> Result<(T, Format), DecodeError> {
        let format = Format::detect(bytes)?;
        let truncated = |len| DecodeError::Truncated { format, len };
        let (writer, datum): (&SchemaVersion, &[u8]) = match format {
            Format::Json => {
                let value =
                    serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
                return Ok((value, format));
            }
            Format::SingleObject => {
                let header: [u8; 8] = bytes
                    .get(2..10)
                    .and_then(|h| h.try_into().ok())
                    .ok_or(truncated(bytes.len()))?;
                let fp = u64::from_le_bytes(header);
                let writer = Catalogue::get()
                    .by_fingerprint(fp)
                    .ok_or(DecodeError::UnknownFingerprint(fp))?;
                (writer, &bytes[10..])
            }
            Format::Confluent => {
                let header: [u8; 4] = bytes
                    .get(1..5)
                    .and_then(|h| h.try_into().ok())
                    .ok_or(truncated(bytes.len()))?;
                let id = u32::from_be_bytes(header);
                let writer = self
                    .registered
                    .get(&id)
                    .or_else(|| Catalogue::get().by_local_id(id))
                    .ok_or(DecodeError::UnknownSchemaId(id))?;
                (writer, &bytes[5..])
            }
        };
        let reader = current::<T>()
            .ok_or_else(|| DecodeError::Avro(format!("no schema named {}", T::SCHEMA)))?;
        if writer.full_name != reader.full_name {
            return Err(DecodeError::WrongSchema {
                expected: reader.full_name.clone(),
                found: writer.full_name.clone(),
            });
        }
        let prepared = writer.prepared().map_err(DecodeError::Avro)?;
        // The prepared reader reads the single-object encoding: a Confluent datum gets the
        // writer's header in front.
        let framed: Vec<u8>;
        let mut datum: &[u8] = match format {
            Format::SingleObject => bytes,
            _ => {
                framed = [&[0xC3, 0x01], &writer.fingerprint.to_le_bytes()[..], datum].concat();
                &framed
            }
        };
        let mut value = prepared
            .decode(&mut datum)
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
        if writer.fingerprint != reader.fingerprint {
            value = value
                .resolve(&reader.schema)
                .map_err(|e| DecodeError::Avro(e.to_string()))?;
        }
        if !datum.is_empty() {
            return Err(DecodeError::Avro(format!(
                "{} trailing bytes after the datum",
                datum.len()
            )));
        }
        let through_json = |value: &apache_avro::types::Value| {
            serde_json::from_value(avro_to_json(value))
                .map_err(|e| DecodeError::Avro(e.to_string()))
        };
        let decoded = match how {
            // Anything the direct reader does not take (nothing the schemas hold, so far)
            // goes the JSON way, which also words the error.
            Read::Direct => T::deserialize(AvroDe(&value)).or_else(|_| through_json(&value))?,
            Read::DirectOnly => {
                T::deserialize(AvroDe(&value)).map_err(|e| DecodeError::Avro(e.to_string()))?
            }
            Read::ThroughJson => through_json(&value)?,
        };
        Ok((decoded, format))
    }
}

/// How a decoded Avro value becomes the Rust type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// Straight from the value ([`AvroDe`]), the JSON way where that fails.
    Direct,
    /// Straight from the value only (to test it).
    DirectOnly,
    /// Through a JSON tree (`avro_to_json`, then serde_json): the reference.
    ThroughJson,
}

/// `C3 01` and the 8-byte fingerprint.
const SINGLE_OBJECT_HEADER: usize = 10;

fn current<T: AvroRecord>() -> Option<&'static Arc<SchemaVersion>> {
    Catalogue::get().current(T::SCHEMA)
}

fn fingerprint(schema: &Schema) -> Result<u64, DecodeError> {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    bytes
        .as_slice()
        .try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| DecodeError::Avro("fingerprint is not 8 bytes".into()))
}
