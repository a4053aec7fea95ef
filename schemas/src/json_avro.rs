//! Schema-directed conversion between JSON values and Avro values.
//!
//! Rust types reach Avro through their JSON form (serde), and producers' JSON reaches the
//! Rust types the same way, so one conversion serves every schema, including ones added
//! later. Rules:
//! - a record field absent from the JSON takes the field's default, or is an error;
//! - `["null", T]` unions take JSON `null` as null and anything else as `T`;
//! - a union of several records (the envelope's payload) picks the branch named by the
//!   sibling `event_type` field; failing that, the first branch that converts;
//! - `timestamp-micros` takes an integer or an RFC 3339 string; `uuid` takes a string;
//! - enums take a symbol, or the enum's default for an unknown symbol when it has one.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, RecordSchema, UnionSchema};
use apache_avro::types::Value;
use serde_json::{Map, Number, Value as Json};

use crate::Timestamp;

/// Named types of a self-contained schema by full name, for resolving `Schema::Ref`.
pub(crate) type Names = HashMap<String, Schema>;

/// Collects every named type defined in `schema`.
pub(crate) fn collect_names(schema: &Schema, names: &mut Names) {
    match schema {
        Schema::Record(r) => {
            names.insert(r.name.fullname(None), schema.clone());
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

fn lookup<'a>(name: &Name, names: &'a Names) -> Result<&'a Schema, String> {
    names
        .get(&name.fullname(None))
        .ok_or_else(|| format!("unknown named type {}", name.fullname(None)))
}

/// Converts JSON to an Avro value of `schema`. Errors name the field path.
pub(crate) fn json_to_avro(json: &Json, schema: &Schema, names: &Names) -> Result<Value, String> {
    convert(json, schema, names, None)
}

fn convert(
    json: &Json,
    schema: &Schema,
    names: &Names,
    hint: Option<&str>,
) -> Result<Value, String> {
    let want = |what: &str| format!("expected {what}, found {}", kind(json));
    Ok(match schema {
        Schema::Null => match json {
            Json::Null => Value::Null,
            _ => return Err(want("null")),
        },
        Schema::Boolean => Value::Boolean(json.as_bool().ok_or_else(|| want("a boolean"))?),
        Schema::Int => {
            let n = json.as_i64().ok_or_else(|| want("an integer"))?;
            Value::Int(i32::try_from(n).map_err(|_| format!("{n} does not fit a 32-bit int"))?)
        }
        Schema::Long => Value::Long(json.as_i64().ok_or_else(|| want("an integer"))?),
        Schema::Float => Value::Float(json.as_f64().ok_or_else(|| want("a number"))? as f32),
        Schema::Double => Value::Double(json.as_f64().ok_or_else(|| want("a number"))?),
        Schema::String => Value::String(json.as_str().ok_or_else(|| want("a string"))?.to_owned()),
        Schema::Bytes => match json {
            Json::String(s) => Value::Bytes(s.as_bytes().to_vec()),
            Json::Array(items) => Value::Bytes(
                items
                    .iter()
                    .map(|b| {
                        b.as_u64()
                            .and_then(|b| u8::try_from(b).ok())
                            .ok_or_else(|| want("bytes"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(want("bytes")),
        },
        Schema::Uuid => {
            let s = json.as_str().ok_or_else(|| want("a UUID string"))?;
            Value::Uuid(s.parse().map_err(|e| format!("{s:?} is not a UUID: {e}"))?)
        }
        Schema::TimestampMicros => Value::TimestampMicros(timestamp(json)?.micros()),
        Schema::TimestampMillis => Value::TimestampMillis(timestamp(json)?.micros() / 1000),
        Schema::Enum(e) => {
            let s = json.as_str().ok_or_else(|| want("a symbol"))?;
            match e.symbols.iter().position(|x| x == s) {
                Some(i) => Value::Enum(i as u32, s.to_owned()),
                None => match e
                    .default
                    .as_ref()
                    .and_then(|d| e.symbols.iter().position(|x| x == d))
                {
                    Some(i) => Value::Enum(i as u32, e.symbols[i].clone()),
                    None => return Err(format!("{s:?} is not one of {:?}", e.symbols)),
                },
            }
        }
        Schema::Array(a) => {
            let items = json.as_array().ok_or_else(|| want("an array"))?;
            Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        convert(item, &a.items, names, None).map_err(|e| format!("[{i}]: {e}"))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        Schema::Map(m) => {
            let obj = json.as_object().ok_or_else(|| want("an object"))?;
            Value::Map(
                obj.iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            convert(v, &m.types, names, None).map_err(|e| format!("{k}: {e}"))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        Schema::Union(u) => union(json, u, names, hint)?,
        Schema::Record(r) => record(json, r, names)?,
        Schema::Ref { name } => convert(json, lookup(name, names)?, names, hint)?,
        other => return Err(format!("schema type {other:?} is not supported")),
    })
}

fn record(json: &Json, r: &RecordSchema, names: &Names) -> Result<Value, String> {
    let obj = json.as_object().ok_or_else(|| {
        format!(
            "expected an object for {}, found {}",
            r.name.name,
            kind(json)
        )
    })?;
    let hint = obj.get("event_type").and_then(Json::as_str);
    let mut fields = Vec::with_capacity(r.fields.len());
    for f in &r.fields {
        let value = match obj.get(&f.name) {
            Some(v) => convert(v, &f.schema, names, hint),
            None => match &f.default {
                Some(default) => convert_default(default, &f.schema, names),
                None => Err("missing".to_owned()),
            },
        }
        .map_err(|e| format!("{}: {e}", f.name))?;
        fields.push((f.name.clone(), value));
    }
    Ok(Value::Record(fields))
}

/// A field default: for a union it belongs to the first branch (Avro's rule).
fn convert_default(default: &Json, schema: &Schema, names: &Names) -> Result<Value, String> {
    match schema {
        Schema::Union(u) => {
            let first = u.variants().first().ok_or("empty union")?;
            Ok(Value::Union(
                0,
                Box::new(convert(default, first, names, None)?),
            ))
        }
        _ => convert(default, schema, names, None),
    }
}

fn union(json: &Json, u: &UnionSchema, names: &Names, hint: Option<&str>) -> Result<Value, String> {
    let variants = u.variants();
    let wrap = |i: usize, v: Value| Value::Union(i as u32, Box::new(v));
    if json.is_null()
        && let Some(i) = variants.iter().position(|s| matches!(s, Schema::Null))
    {
        return Ok(wrap(i, Value::Null));
    }
    let non_null: Vec<usize> = (0..variants.len())
        .filter(|&i| !matches!(variants[i], Schema::Null))
        .collect();
    if let [only] = non_null.as_slice() {
        return Ok(wrap(*only, convert(json, &variants[*only], names, None)?));
    }
    if let Some(hint) = hint {
        for &i in &non_null {
            if record_name(&variants[i], names).is_some_and(|n| n == hint) {
                return Ok(wrap(i, convert(json, &variants[i], names, None)?));
            }
        }
        return Err(format!("no branch of the union is named {hint:?}"));
    }
    let mut last = String::from("empty union");
    for &i in &non_null {
        match convert(json, &variants[i], names, None) {
            Ok(v) => return Ok(wrap(i, v)),
            Err(e) => last = e,
        }
    }
    Err(format!("matches no branch of the union ({last})"))
}

/// Writes JSON as the Avro binary datum of `schema` straight into `out`: the rules of
/// [`json_to_avro`] and the bytes apache-avro writes for its result, without the `Value`
/// tree in between or apache-avro's second walk to validate it (the codec's encoding was a
/// sixth of the response processor's CPU). A map's entries go in the JSON object's (sorted)
/// order, so equal values make equal bytes. On error `out` may hold part of the datum.
pub(crate) fn write_json(
    json: &Json,
    schema: &Schema,
    names: &Names,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    write(json, schema, names, None, out)
}

fn write(
    json: &Json,
    schema: &Schema,
    names: &Names,
    hint: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let want = |what: &str| format!("expected {what}, found {}", kind(json));
    match schema {
        Schema::Null => match json {
            Json::Null => {}
            _ => return Err(want("null")),
        },
        Schema::Boolean => out.push(u8::from(json.as_bool().ok_or_else(|| want("a boolean"))?)),
        Schema::Int => {
            let n = json.as_i64().ok_or_else(|| want("an integer"))?;
            let n = i32::try_from(n).map_err(|_| format!("{n} does not fit a 32-bit int"))?;
            long(i64::from(n), out);
        }
        Schema::Long => long(json.as_i64().ok_or_else(|| want("an integer"))?, out),
        Schema::Float => {
            let x = json.as_f64().ok_or_else(|| want("a number"))? as f32;
            out.extend_from_slice(&x.to_le_bytes());
        }
        Schema::Double => {
            let x = json.as_f64().ok_or_else(|| want("a number"))?;
            out.extend_from_slice(&x.to_le_bytes());
        }
        Schema::String => bytes(
            json.as_str().ok_or_else(|| want("a string"))?.as_bytes(),
            out,
        ),
        Schema::Bytes => match json {
            Json::String(s) => bytes(s.as_bytes(), out),
            Json::Array(items) => {
                let b = items
                    .iter()
                    .map(|b| {
                        b.as_u64()
                            .and_then(|b| u8::try_from(b).ok())
                            .ok_or_else(|| want("bytes"))
                    })
                    .collect::<Result<Vec<u8>, _>>()?;
                bytes(&b, out);
            }
            _ => return Err(want("bytes")),
        },
        Schema::Uuid => {
            let s = json.as_str().ok_or_else(|| want("a UUID string"))?;
            let u: uuid::Uuid = s.parse().map_err(|e| format!("{s:?} is not a UUID: {e}"))?;
            bytes(
                u.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .as_bytes(),
                out,
            );
        }
        Schema::TimestampMicros => long(timestamp(json)?.micros(), out),
        Schema::TimestampMillis => long(timestamp(json)?.micros() / 1000, out),
        Schema::Enum(e) => {
            let s = json.as_str().ok_or_else(|| want("a symbol"))?;
            let i = match e.symbols.iter().position(|x| x == s) {
                Some(i) => i,
                None => e
                    .default
                    .as_ref()
                    .and_then(|d| e.symbols.iter().position(|x| x == d))
                    .ok_or_else(|| format!("{s:?} is not one of {:?}", e.symbols))?,
            };
            long(i as i64, out);
        }
        Schema::Array(a) => {
            let items = json.as_array().ok_or_else(|| want("an array"))?;
            if !items.is_empty() {
                long(items.len() as i64, out);
                for (i, item) in items.iter().enumerate() {
                    write(item, &a.items, names, None, out).map_err(|e| format!("[{i}]: {e}"))?;
                }
            }
            out.push(0);
        }
        Schema::Map(m) => {
            let obj = json.as_object().ok_or_else(|| want("an object"))?;
            if !obj.is_empty() {
                long(obj.len() as i64, out);
                for (k, v) in obj {
                    bytes(k.as_bytes(), out);
                    write(v, &m.types, names, None, out).map_err(|e| format!("{k}: {e}"))?;
                }
            }
            out.push(0);
        }
        Schema::Union(u) => write_union(json, u, names, hint, out)?,
        Schema::Record(r) => {
            let obj = json.as_object().ok_or_else(|| {
                format!(
                    "expected an object for {}, found {}",
                    r.name.name,
                    kind(json)
                )
            })?;
            let hint = obj.get("event_type").and_then(Json::as_str);
            for f in &r.fields {
                match obj.get(&f.name) {
                    Some(v) => write(v, &f.schema, names, hint, out),
                    None => match &f.default {
                        Some(default) => write_default(default, &f.schema, names, out),
                        None => Err("missing".to_owned()),
                    },
                }
                .map_err(|e| format!("{}: {e}", f.name))?;
            }
        }
        Schema::Ref { name } => write(json, lookup(name, names)?, names, hint, out)?,
        other => return Err(format!("schema type {other:?} is not supported")),
    }
    Ok(())
}

/// [`convert_default`]'s rule: a union's default belongs to its first branch.
fn write_default(
    default: &Json,
    schema: &Schema,
    names: &Names,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match schema {
        Schema::Union(u) => {
            let first = u.variants().first().ok_or("empty union")?;
            long(0, out);
            write(default, first, names, None, out)
        }
        _ => write(default, schema, names, None, out),
    }
}

/// [`union`]'s choice of branch, then the branch's index and datum.
fn write_union(
    json: &Json,
    u: &UnionSchema,
    names: &Names,
    hint: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let variants = u.variants();
    if json.is_null()
        && let Some(i) = variants.iter().position(|s| matches!(s, Schema::Null))
    {
        long(i as i64, out);
        return Ok(());
    }
    let non_null: Vec<usize> = (0..variants.len())
        .filter(|&i| !matches!(variants[i], Schema::Null))
        .collect();
    let branch = |i: usize, out: &mut Vec<u8>| {
        long(i as i64, out);
        write(json, &variants[i], names, None, out)
    };
    if let [only] = non_null.as_slice() {
        return branch(*only, out);
    }
    if let Some(hint) = hint {
        for &i in &non_null {
            if record_name(&variants[i], names).is_some_and(|n| n == hint) {
                return branch(i, out);
            }
        }
        return Err(format!("no branch of the union is named {hint:?}"));
    }
    let mut last = String::from("empty union");
    let start = out.len();
    for &i in &non_null {
        match branch(i, out) {
            Ok(()) => return Ok(()),
            Err(e) => {
                out.truncate(start);
                last = e;
            }
        }
    }
    Err(format!("matches no branch of the union ({last})"))
}

/// Avro's `long`: zig-zag, then base-128 varint (an `int` is written the same way).
fn long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Avro's `bytes` and `string`: the length, then the bytes.
fn bytes(b: &[u8], out: &mut Vec<u8>) {
    long(b.len() as i64, out);
    out.extend_from_slice(b);
}

/// The short name of a record schema (following references).
pub(crate) fn record_name<'a>(schema: &'a Schema, names: &'a Names) -> Option<&'a str> {
    match schema {
        Schema::Record(r) => Some(r.name.name.as_str()),
        Schema::Ref { name } => names
            .get(&name.fullname(None))
            .and_then(|s| record_name(s, names)),
        _ => None,
    }
}

fn timestamp(json: &Json) -> Result<Timestamp, String> {
    match json {
        Json::Number(n) => n
            .as_i64()
            .map(Timestamp)
            .ok_or_else(|| format!("{n} is not a whole number of microseconds")),
        Json::String(s) => Timestamp::parse_rfc3339(s),
        _ => Err(format!("expected a timestamp, found {}", kind(json))),
    }
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Converts an Avro value to JSON: unions unwrap, enums become their symbol, logical
/// types their underlying number or string, non-finite doubles `null`.
pub(crate) fn avro_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(n) | Value::Date(n) | Value::TimeMillis(n) => Json::from(*n),
        Value::Long(n)
        | Value::TimeMicros(n)
        | Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n) => Json::from(*n),
        Value::Float(f) => Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
        Value::Double(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Bytes(b) | Value::Fixed(_, b) => {
            Json::Array(b.iter().map(|x| Json::from(*x)).collect())
        }
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::Union(_, v) => avro_to_json(v),
        Value::Array(items) => Json::Array(items.iter().map(avro_to_json).collect()),
        Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), avro_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), avro_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        other => Json::String(format!("{other:?}")),
    }
}
