//! The decoders' properties, shared by the fuzz targets (`fuzz/`) and the regression test
//! that replays their findings (`cli/tests/fuzz_regressions.rs`).

use crate::{AvroRecord, Codec, Format};

/// Decodes `data` as a `T` in whatever format it is; if that works, checks that the value
/// encodes in every format and decodes back to the same value (JSON alone may refuse: it
/// has no NaN or infinities, which Avro doubles may carry). Values are compared by their
/// `Debug` text, where NaN equals NaN. Not the bytes: the input may order a map's entries
/// differently from the codec, which writes them sorted (apache-avro's writer, used until
/// the direct one, wrote them in its `HashMap`'s order; found by the fuzzer). Returns whether
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

/// Checks that the codec's direct Avro writer and the reference path (JSON to an Avro
/// `Value`, then apache-avro's validating writer) agree on `value`: both encode or
/// neither does, and where they do, to the same number of bytes that apache-avro reads
/// back as the same Avro value (a map's entries may be ordered differently: the reference
/// writes them in its `HashMap`'s order). Panics where they differ.
pub fn encoders_agree<T: AvroRecord + std::fmt::Debug>(value: &T) {
    let codec = Codec::new();
    let direct = codec.encode(value, Format::SingleObject);
    let reference = codec.encode_through_value(value);
    match (direct, reference) {
        (Ok(direct), Ok(reference)) => {
            assert_eq!(
                direct.len(),
                reference.len(),
                "lengths differ for {value:?}"
            );
            assert_eq!(
                direct[..10],
                reference[..10],
                "headers differ for {value:?}"
            );
            let version = crate::Catalogue::get()
                .current(T::SCHEMA)
                .expect("a current schema");
            let prepared = version.prepared().expect("prepared");
            let read = |mut bytes: &[u8]| prepared.decode(&mut bytes).expect("reads back");
            assert_eq!(
                read(&direct),
                read(&reference),
                "values differ for {value:?}"
            );
        }
        (Err(_), Err(_)) => {}
        (direct, reference) => panic!(
            "one encoder refused {value:?}: direct {:?}, reference {:?}",
            direct.map(|b| b.len()),
            reference.map(|b| b.len())
        ),
    }
}

/// Checks that the codec's direct reader (a type straight from the decoded Avro value)
/// reads `bytes` as a `T` exactly as the reference path (through a JSON tree) does: where
/// the reference reads it, the direct reader does too, to an equal value (by `Debug` text,
/// where NaN equals NaN). Panics where they differ.
pub fn decoders_agree<T: AvroRecord + std::fmt::Debug>(bytes: &[u8]) {
    use crate::codec::Read;
    let codec = Codec::new();
    let shown = |how| {
        codec
            .decode_as::<T>(bytes, how)
            .map(|(v, _)| format!("{v:?}"))
            .map_err(|e| e.to_string())
    };
    if let Ok(reference) = shown(Read::ThroughJson) {
        assert_eq!(
            shown(Read::DirectOnly),
            Ok(reference),
            "the direct reader differs"
        );
    }
}
