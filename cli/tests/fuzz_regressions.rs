//! The fuzz targets' properties (fuzz/fuzz_targets) on every input kept under
//! `fuzz/regressions/TARGET/` (a crash scripts/fuzz.sh found goes there) and on hand-made
//! hostile inputs: decoders and the bundle reader answer with an error, never a panic, and
//! what decodes round-trips to the same value.

use std::path::Path;

use insights_schemas::fuzzing::round_trips;
use insights_schemas::{Catalogue, Envelope, Interaction};

fn kept(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| std::fs::read(e.expect("dir entry").path()).expect("reads an input"))
        .collect()
}

/// Single-object framing (`C3 01` + the schema's fingerprint) around `body`.
fn single_object(schema: &str, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xC3, 0x01];
    out.extend_from_slice(
        &Catalogue::get()
            .current(schema)
            .expect("in the catalogue")
            .fingerprint
            .to_le_bytes(),
    );
    out.extend_from_slice(body);
    out
}

fn hostile(schema: &str) -> Vec<Vec<u8>> {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    vec![
        Vec::new(),
        b"{".to_vec(),
        b"{\"interaction_id\": 1}".to_vec(),
        b"{\"sent_at\": 1e400}".to_vec(),
        deep.into_bytes(),
        vec![0xC3, 0x01],
        single_object(schema, &[]),
        // A string length far beyond the input, then a negative one.
        single_object(schema, &[0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
        single_object(schema, &[0x01, 0x41]),
        // Confluent framing with a schema id nobody registered.
        vec![0x00, 0x7F, 0xFF, 0xFF, 0xFF, 0x02, 0x41],
        vec![0x00, 0x00, 0x00, 0x00, 0x01],
        vec![0xFF; 64],
    ]
}

#[test]
fn decoders_reject_hostile_and_kept_inputs_without_panicking() {
    for input in hostile("Interaction")
        .into_iter()
        .chain(kept("decode_interaction"))
    {
        round_trips::<Interaction>(&input);
    }
    for input in hostile("Envelope")
        .into_iter()
        .chain(kept("decode_envelope"))
    {
        round_trips::<Envelope>(&input);
    }
    // And a valid input does decode, so the property is not vacuous.
    let valid = br#"{"interaction_id":"i","conversation_id":"c","customer_id":"u","channel":"chat","text":"hi","sent_at":"2026-11-23T10:00:00Z"}"#;
    assert!(round_trips::<Interaction>(valid));
}

#[test]
fn the_bundle_reader_rejects_hostile_and_kept_bundles_without_panicking() {
    let header = "{\"format\":\"insights-audit-bundle/1\"}\n";
    let hostile = [
        String::new(),
        "not json\n".to_owned(),
        header.to_owned(),
        format!("{header}{{\"head\":{{\"position\":-1,\"hash\":\"00\"}}}}\n"),
        format!(
            "{header}{{\"head\":{{\"position\":0,\"hash\":\"{}\"}}}}\n",
            "zz".repeat(32)
        ),
        format!("{header}{{\"position\":18446744073709551615,\"payload\":7}}\n"),
        format!(
            "{header}{{\"position\":1,\"stream_version\":1,\"recorded_at\":0,\"hash\":\"{}\",\
             \"event_id\":\"not-a-uuid\"}}\n",
            "00".repeat(32)
        ),
        format!("{header}\u{0}\u{ffff}\n"),
    ];
    for input in hostile
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain(kept("audit_bundle"))
    {
        let _ = insights_event_store::bundle::verify(input.as_slice(), |_| {});
    }
    // An empty log with its head verifies, so the reader is not just failing everything.
    let empty = format!(
        "{header}{{\"head\":{{\"position\":0,\"hash\":\"{}\"}}}}\n",
        "00".repeat(32)
    );
    let report = insights_event_store::bundle::verify(empty.as_bytes(), |_| {}).expect("reads");
    assert!(report.is_intact(), "{report:?}");
}
