//! The decoders' properties, shared by the fuzz targets (`fuzz/`) and the regression test
//! that replays their findings (`cli/tests/fuzz_regressions.rs`).

use crate::{AvroRecord, Codec, Format};

/// Decodes `data` as a `T` in whatever format it is; if that works, checks that the value
/// encodes in every format, decodes back, and encodes to the same bytes again (JSON alone
/// may refuse: it has no NaN or infinities, which Avro doubles may carry). Returns whether
/// `data` decoded; panics where a property fails.
pub fn round_trips<T: AvroRecord + std::fmt::Debug>(data: &[u8]) -> bool {
    let codec = Codec::new();
    let Ok(value) = codec.decode::<T>(data) else {
        return false;
    };
    for format in [Format::SingleObject, Format::Confluent, Format::Json] {
        let Ok(bytes) = codec.encode(&value, format) else {
            assert_eq!(format, Format::Json, "{value:?} encodes in Avro");
            continue;
        };
        let again: T = codec.decode(&bytes).expect("what was encoded decodes");
        let bytes_again = codec.encode(&again, format).expect("encodes again");
        assert_eq!(bytes, bytes_again, "{format:?} round trip of {value:?}");
    }
    true
}
