//! Event time as microseconds since the Unix epoch, Avro's `timestamp-micros`.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Microseconds since 1970-01-01T00:00:00Z.
///
/// Serialized as an integer (what Avro and the store hold); deserialized from that integer
/// or from an RFC 3339 string, which is what producers writing JSON by hand tend to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The wall clock now (0 before 1970). For the runtime, the store and tools: a
    /// processor never reads the clock (it gets `now` in its context).
    pub fn now() -> Self {
        Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }

    /// The timestamp's microseconds.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 date-time, e.g. `2026-11-23T17:31:00Z`.
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| Timestamp(t.timestamp_micros()))
            .map_err(|e| format!("{s:?} is not an RFC 3339 timestamp: {e}"))
    }

    /// As a chrono UTC date-time, if representable.
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.0)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp(t.timestamp_micros())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => write!(f, "{}µs", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Micros(i64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Micros(m) => Ok(Timestamp(m)),
            Repr::Text(s) => Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_micros_agree() {
        let t: Timestamp = serde_json::from_str("\"2026-11-23T17:31:00.000001Z\"").expect("parses");
        let m: Timestamp = serde_json::from_str(&t.0.to_string()).expect("parses");
        assert_eq!(t, m);
        assert_eq!(t.to_string(), "2026-11-23T17:31:00.000001Z");
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
