//! Reading a type straight from a decoded Avro value: what [`avro_to_json`] followed by
//! `serde_json::from_value` does, without building the JSON tree in between (decoding was
//! about an eighth of the fairness processor's CPU). The rules are `avro_to_json`'s: unions
//! unwrap, enums are their symbol, logical types their number, UUIDs their text, bytes a
//! sequence of numbers, non-finite floats `null`; integers are visited as serde_json
//! visits them (`u64` when not negative, else `i64`), a map's entries in sorted key order.
//!
//! [`avro_to_json`]: crate::json_avro::avro_to_json

use apache_avro::types::Value;
use serde::de::value::{StrDeserializer, U64Deserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::forward_to_deserialize_any;

type Error = serde_json::Error;

/// A decoded Avro value as a serde `Deserializer`.
pub(crate) struct AvroDe<'a>(pub(crate) &'a Value);

/// Whether `avro_to_json` makes `v` JSON `null`.
fn is_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Union(_, inner) => is_null(inner),
        Value::Float(f) => !f.is_finite(),
        Value::Double(f) => !f.is_finite(),
        _ => false,
    }
}

fn integer<'de, V: Visitor<'de>>(n: i64, visitor: V) -> Result<V::Value, Error> {
    match u64::try_from(n) {
        Ok(n) => visitor.visit_u64(n),
        Err(_) => visitor.visit_i64(n),
    }
}

impl<'de> Deserializer<'de> for AvroDe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Boolean(b) => visitor.visit_bool(*b),
            Value::Int(n) | Value::Date(n) | Value::TimeMillis(n) => {
                integer(i64::from(*n), visitor)
            }
            Value::Long(n)
            | Value::TimeMicros(n)
            | Value::TimestampMillis(n)
            | Value::TimestampMicros(n)
            | Value::TimestampNanos(n)
            | Value::LocalTimestampMillis(n)
            | Value::LocalTimestampMicros(n)
            | Value::LocalTimestampNanos(n) => integer(*n, visitor),
            Value::Float(f) if f.is_finite() => visitor.visit_f64(f64::from(*f)),
            Value::Double(f) if f.is_finite() => visitor.visit_f64(*f),
            Value::Float(_) | Value::Double(_) => visitor.visit_unit(),
            Value::Bytes(b) | Value::Fixed(_, b) => seq_of(
                b.iter()
                    .map(|b| -> U64Deserializer<Error> { u64::from(*b).into_deserializer() }),
                visitor,
            ),
            Value::String(s) | Value::Enum(_, s) => visitor.visit_str(s),
            Value::Uuid(u) => visitor.visit_string(u.to_string()),
            Value::Union(_, inner) => AvroDe(inner).deserialize_any(visitor),
            Value::Array(items) => seq_of(items.iter().map(AvroDe), visitor),
            Value::Map(m) => {
                let mut entries: Vec<(&str, &Value)> =
                    m.iter().map(|(k, v)| (k.as_str(), v)).collect();
                entries.sort_unstable_by_key(|(k, _)| *k);
                entries_of(entries, visitor)
            }
            Value::Record(fields) => {
                // In the schema's field order: a struct reads its fields in any order.
                let entries = fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
                entries_of(entries, visitor)
            }
            other => visitor.visit_string(format!("{other:?}")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match is_null(self.0) {
            true => visitor.visit_none(),
            false => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Union(_, inner) => AvroDe(inner).deserialize_enum(name, variants, visitor),
            Value::String(s) | Value::Enum(_, s) => {
                let symbol: StrDeserializer<'_, Error> = s.as_str().into_deserializer();
                visitor.visit_enum(symbol)
            }
            // An enum with data (an object of one entry in JSON): not in the schemas; the
            // caller falls back to the JSON path for anything this does not read.
            _ => Err(de::Error::custom(format!(
                "the enum {name} is not a symbol here"
            ))),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

fn entries_of<'de, V: Visitor<'de>>(
    entries: Vec<(&str, &Value)>,
    visitor: V,
) -> Result<V::Value, Error> {
    let len = entries.len();
    let mut map = Entries {
        entries: entries.into_iter(),
        value: None,
    };
    let value = visitor.visit_map(&mut map)?;
    match map.entries.len() {
        0 => Ok(value),
        _ => Err(de::Error::invalid_length(len, &"fewer elements in map")),
    }
}

/// Visits `items` as a sequence; the visitor must take every one (as serde_json's).
fn seq_of<'de, I, D, V>(items: I, visitor: V) -> Result<V::Value, Error>
where
    I: ExactSizeIterator<Item = D>,
    D: Deserializer<'de, Error = Error>,
    V: Visitor<'de>,
{
    let len = items.len();
    let mut seq = Seq(items);
    let value = visitor.visit_seq(&mut seq)?;
    match seq.0.len() {
        0 => Ok(value),
        _ => Err(de::Error::invalid_length(len, &"fewer elements in array")),
    }
}

struct Seq<I>(I);

impl<'de, I, D> SeqAccess<'de> for Seq<I>
where
    I: ExactSizeIterator<Item = D>,
    D: Deserializer<'de, Error = Error>,
{
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|d| seed.deserialize(d)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'a> {
    entries: std::vec::IntoIter<(&'a str, &'a Value)>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                let key: StrDeserializer<'_, Error> = k.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(AvroDe(v)),
            None => Err(de::Error::custom("a map value without its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
