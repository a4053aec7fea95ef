//! The decoders' properties, shared by the fuzz targets (`fuzz/`) and the regression test
//! that replays their findings (`cli/tests/fuzz_regressions.rs`).

use crate::{AvroRecord, Codec, Format};

/// Decodes `data` as a `T` in whatever format it is; if that works, checks that the value
/// encodes in every format and decodes back to the same value (JSON alone may refuse: it
/// has no NaN or infinities, which Avro doubles may carry). Values are compared by their
/// `Debug` text, where NaN equals NaN. Not the bytes: apache-avro writes a map's entries
/// in its `HashMap`'s order, so two encodings of one value may order them differently
/// (found by the fuzzer; the store keeps JSON, whose maps are sorted). Returns whether
/// `data` decoded; panics where a property fails.
pub fn round_trips<T: AvroRecord + std::fmt::Debug>(data: &[u8]) -> bool {
    let codec = Codec::new();
    let Ok(value) = codec.decode::<T>(data) else {
        return false;
    };
    let shown = format!("{value:?}");
    for format in [Format::SingleObject, Format::Confluent, Format::Json] {
        let Ok(bytes) = codec.encode(&value, format) else {
            assert_eq!(format, Format::Json, "{shown} encodes in Avro");
            continue;
        };
        let again: T = codec.decode(&bytes).expect("what was encoded decodes");
        assert_eq!(format!("{again:?}"), shown, "{format:?} round trip");
    }
    true
}
