//! An envelope on an internal topic (JSON, Avro single-object, Confluent wire
//! format): decoding never panics, and what decodes encodes, decodes and encodes to the same bytes.
#![no_main]

use insights_schemas::{Codec, Envelope, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let codec = Codec::new();
    let Ok(value) = codec.decode::<Envelope>(data) else {
        return;
    };
    for format in [Format::SingleObject, Format::Confluent, Format::Json] {
        // JSON has no NaN or infinities, which Avro doubles may carry: only JSON may refuse.
        let Ok(bytes) = codec.encode(&value, format) else {
            assert_eq!(format, Format::Json, "a decoded value encodes in Avro");
            continue;
        };
        let again: Envelope = codec.decode(&bytes).expect("what was encoded decodes");
        let bytes_again = codec.encode(&again, format).expect("encodes again");
        assert_eq!(bytes, bytes_again, "{format:?} round trip");
    }
});
