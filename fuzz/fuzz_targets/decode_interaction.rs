//! A raw interaction as producers send it (JSON, Avro single-object, Confluent wire
//! format): decoding never panics, and what decodes round-trips to the same value
//! (`insights_schemas::fuzzing::round_trips`).
#![no_main]

use insights_schemas::Interaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    insights_schemas::fuzzing::round_trips::<Interaction>(data);
});
