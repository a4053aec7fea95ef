//! Codec round trips, error cases and schema evolution over the shipped catalogue.

use std::collections::BTreeMap;

use apache_avro::Schema;
use insights_schemas::{
    Catalogue, Codec, DecodeError, Envelope, Event, Format, Interaction, InteractionContext,
    ReviewDecided, ReviewDecision, SentimentLabel, SentimentScored, Timestamp, compat,
};
use serde_json::json;
use uuid::Uuid;

fn context() -> InteractionContext {
    InteractionContext {
        interaction_id: "i-1".into(),
        conversation_id: "c-1".into(),
        tenant_id: "acme".into(),
        customer_pseudonym: "cust_9f2c".into(),
        channel: "chat".into(),
        product: Some("router".into()),
        language: None,
        demographics: BTreeMap::from([("age_band".into(), "25-34".into())]),
        sent_at: Timestamp(1_790_000_000_000_000),
    }
}

fn scored() -> Envelope {
    Envelope {
        event_id: Envelope::derived_id("sentiment", "i-1", Timestamp(1_790_000_000_000_000), 0),
        schema_version: 1,
        stream_id: "conversation-c-1".into(),
        causation_id: Some("i-1".into()),
        correlation_id: "i-1".into(),
        occurred_at: Timestamp(1_790_000_000_123_456),
        producer: "sentiment".into(),
        producer_version: "minilm-head-1".into(),
        event: Event::SentimentScored(SentimentScored {
            context: context(),
            text: "my router is broken again".into(),
            label: SentimentLabel::Negative,
            scores: BTreeMap::from([
                ("negative".into(), 0.91),
                ("neutral".into(), 0.07),
                ("positive".into(), 0.02),
            ]),
            confidence: 0.91,
            model_name: "minilm-sentiment".into(),
            model_version: "1".into(),
            backend: "transformer".into(),
            fallback: false,
            latency_micros: 5123,
        }),
    }
}

fn interaction() -> Interaction {
    Interaction {
        interaction_id: Some("i-1".into()),
        conversation_id: "c-1".into(),
        customer_id: "cust-42".into(),
        channel: "email".into(),
        product: None,
        language: Some("de".into()),
        text: "Hallo, mein Paket ist nicht angekommen.".into(),
        demographics: BTreeMap::from([("gender".into(), "female".into())]),
        sent_at: Timestamp(1_790_000_000_000_000),
        tenant_id: "acme".into(),
    }
}

#[test]
fn envelope_round_trips_in_every_format() {
    let codec = Codec::new();
    let e = scored();
    for format in [Format::Json, Format::SingleObject, Format::Confluent] {
        let bytes = codec.encode(&e, format).expect("encodes");
        let (back, detected) = codec
            .decode_with_format::<Envelope>(&bytes)
            .expect("decodes");
        assert_eq!(detected, format);
        assert_eq!(back, e, "{format}");
    }
}

#[test]
fn single_object_header_is_the_spec_header_with_the_rabin_fingerprint() {
    let bytes = Codec::new()
        .encode(&scored(), Format::SingleObject)
        .expect("encodes");
    let env = Catalogue::get().current("Envelope").expect("envelope");
    assert_eq!(&bytes[..2], &[0xC3, 0x01]);
    assert_eq!(&bytes[2..10], &env.fingerprint.to_le_bytes());
    let confluent = Codec::new()
        .encode(&scored(), Format::Confluent)
        .expect("encodes");
    assert_eq!(confluent[0], 0);
    assert_eq!(&confluent[1..5], &env.local_id.to_be_bytes());
}

#[test]
fn registered_ids_are_used_for_encoding_and_decoding() {
    let mut codec = Codec::new();
    let env = Catalogue::get().current("Envelope").expect("envelope");
    codec
        .register_id(7, &env.json.to_string())
        .expect("registers");
    let bytes = codec.encode(&scored(), Format::Confluent).expect("encodes");
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 7]);
    assert_eq!(codec.decode::<Envelope>(&bytes).expect("decodes"), scored());
    // A codec that never learnt id 7 cannot read it.
    assert_eq!(
        Codec::new().decode::<Envelope>(&bytes),
        Err(DecodeError::UnknownSchemaId(7))
    );
}

#[test]
fn raw_interactions_decode_from_producer_json() {
    let text = br#"{"conversation_id":"c-9","customer_id":"u-1","channel":"chat",
        "text":"where is my order?","sent_at":"2026-11-23T10:00:00Z","unknown_extra":1}"#;
    let i: Interaction = Codec::new().decode(text).expect("decodes");
    assert_eq!(i.tenant_id, "default");
    assert_eq!(i.interaction_id, None);
    assert_eq!(
        i.sent_at,
        Timestamp::parse_rfc3339("2026-11-23T10:00:00Z").expect("valid")
    );
    let bytes = Codec::new()
        .encode(&interaction(), Format::Confluent)
        .expect("encodes");
    assert_eq!(
        Codec::new().decode::<Interaction>(&bytes).expect("decodes"),
        interaction()
    );
}

#[test]
fn bad_messages_get_one_clear_error_each() {
    let codec = Codec::new();
    let good = codec
        .encode(&scored(), Format::SingleObject)
        .expect("encodes");
    type Case = (&'static str, Vec<u8>, fn(&DecodeError) -> bool);
    let cases: Vec<Case> = vec![
        ("empty", vec![], |e| *e == DecodeError::Empty),
        ("blank", b"  \n".to_vec(), |e| *e == DecodeError::Empty),
        ("garbage", b"hello".to_vec(), |e| {
            *e == DecodeError::UnknownFormat { first_byte: b'h' }
        }),
        ("short single-object", vec![0xC3, 0x01, 1, 2], |e| {
            matches!(e, DecodeError::Truncated { .. })
        }),
        ("short confluent", vec![0, 0, 1], |e| {
            matches!(e, DecodeError::Truncated { .. })
        }),
        (
            "unknown fingerprint",
            [&[0xC3, 0x01][..], &[9; 8], &[0]].concat(),
            |e| matches!(e, DecodeError::UnknownFingerprint(_)),
        ),
        ("unknown id", vec![0, 0, 0, 0, 3, 0], |e| {
            *e == DecodeError::UnknownSchemaId(3)
        }),
        ("cut datum", good[..good.len() - 3].to_vec(), |e| {
            matches!(e, DecodeError::Avro(_))
        }),
        (
            "trailing bytes",
            [good.as_slice(), &[0, 0]].concat(),
            |e| matches!(e, DecodeError::Avro(m) if m.contains("trailing")),
        ),
        ("bad json", b"{\"event_id\": 3".to_vec(), |e| {
            matches!(e, DecodeError::Json(_))
        }),
        (
            "json missing field",
            br#"{"conversation_id":"c"}"#.to_vec(),
            |e| matches!(e, DecodeError::Json(m) if m.contains("missing field")),
        ),
        ("invalid utf-8", b"{\"text\": \"\xff\xfe\"}".to_vec(), |e| {
            matches!(e, DecodeError::Json(_))
        }),
    ];
    for (what, bytes, ok) in cases {
        let err = codec.decode::<Envelope>(&bytes).expect_err(what);
        assert!(ok(&err), "{what}: got {err:?}");
    }
    // An interaction is not an envelope.
    let interaction = codec
        .encode(&interaction(), Format::SingleObject)
        .expect("encodes");
    assert!(matches!(
        codec.decode::<Envelope>(&interaction),
        Err(DecodeError::WrongSchema { .. })
    ));
}

#[test]
fn every_schema_equals_its_latest_release_and_reads_all_releases() {
    let errors = compat::check(Catalogue::get());
    assert!(
        errors.is_empty(),
        "schema evolution rules broken:\n{}",
        errors
            .iter()
            .map(|e| format!("  - {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn interaction_v1_data_reads_with_the_current_schema() {
    // Version 1 had no tenant_id; a v1 writer's message decodes with tenant "default".
    let v1 = &Catalogue::get().released("Interaction")[0];
    assert_eq!(v1.version, 1);
    let mut i = interaction();
    i.tenant_id = "default".into();
    let mut record = apache_avro::types::Record::new(&v1.schema).expect("record schema");
    record.put(
        "interaction_id",
        apache_avro::types::Value::Union(1, Box::new("i-1".into())),
    );
    record.put("conversation_id", "c-1");
    record.put("customer_id", "cust-42");
    record.put("channel", "email");
    record.put(
        "product",
        apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)),
    );
    record.put(
        "language",
        apache_avro::types::Value::Union(1, Box::new("de".into())),
    );
    record.put("text", "Hallo, mein Paket ist nicht angekommen.");
    record.put(
        "demographics",
        apache_avro::types::Value::Map(
            [("gender".to_owned(), "female".into())]
                .into_iter()
                .collect(),
        ),
    );
    record.put(
        "sent_at",
        apache_avro::types::Value::TimestampMicros(1_790_000_000_000_000),
    );
    let datum = apache_avro::to_avro_datum(&v1.schema, record).expect("v1 datum");
    let bytes = [&[0xC3, 0x01][..], &v1.fingerprint.to_le_bytes(), &datum].concat();
    assert_eq!(
        Codec::new()
            .decode::<Interaction>(&bytes)
            .expect("resolves v1 -> v2"),
        i
    );
}

/// Every schema, grown by a field with a default, still reads data written with the
/// current schema: the evolution path we promise producers.
#[test]
fn a_newer_reader_with_an_added_defaulted_field_reads_current_data() {
    let codec = Codec::new();
    let bytes = codec
        .encode(&scored(), Format::SingleObject)
        .expect("encodes");
    let current = Catalogue::get().current("Envelope").expect("envelope");
    let newer = with_added_field(
        &current.json,
        json!({"name": "region", "type": "string", "default": "eu"}),
    );
    compat::can_read(&current.schema, &newer).expect("compatible");
    let value = apache_avro::from_avro_datum(&current.schema, &mut &bytes[10..], Some(&newer))
        .expect("resolves");
    let apache_avro::types::Value::Record(fields) = value else {
        panic!("a record")
    };
    assert!(fields.contains(&(
        "region".to_owned(),
        apache_avro::types::Value::String("eu".into())
    )));

    for v in Catalogue::get().all_current() {
        let newer = with_added_field(
            &v.json,
            json!({"name": "added", "type": ["null", "long"], "default": null}),
        );
        compat::can_read(&v.schema, &newer).unwrap_or_else(|e| panic!("{}: {e}", v.name));
    }
}

#[test]
fn an_added_field_without_default_is_caught_as_incompatible() {
    for v in Catalogue::get().all_current() {
        let newer = with_added_field(&v.json, json!({"name": "added", "type": "long"}));
        assert!(
            compat::can_read(&v.schema, &newer).is_err(),
            "{} accepted an added required field",
            v.name
        );
    }
    // And the catalogue check reports it when such a change is released.
    let cat = Catalogue::get();
    let mut current: Vec<(String, String)> = Vec::new();
    let mut history: Vec<(String, u32, String)> = Vec::new();
    for v in cat.all_current() {
        let text = if v.name == "SentimentScored" {
            with_added_field_json(&v.json, json!({"name": "added", "type": "long"})).to_string()
        } else {
            v.json.to_string()
        };
        for r in cat.released(&v.name) {
            history.push((v.name.clone(), r.version, r.json.to_string()));
        }
        if v.name == "SentimentScored" {
            history.push((v.name.clone(), v.version + 1, text.clone()));
        }
        current.push((v.name.clone(), text));
    }
    let current_refs: Vec<(&str, &str)> = current
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let history_refs: Vec<(&str, u32, &str)> = history
        .iter()
        .map(|(a, v, b)| (a.as_str(), *v, b.as_str()))
        .collect();
    let changed = Catalogue::build(&current_refs, &history_refs).expect("builds");
    let errors = compat::check(&changed);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        matches!(&errors[0], compat::EvolutionError::Incompatible { name, version: 1, .. } if name == "SentimentScored"),
        "{errors:?}"
    );
}

#[test]
fn editing_a_schema_without_a_new_release_is_caught() {
    let cat = Catalogue::get();
    let mut current = Vec::new();
    let mut history = Vec::new();
    for v in cat.all_current() {
        let json = if v.name == "DeadLettered" {
            with_added_field_json(&v.json, json!({"name": "x", "type": "int", "default": 0}))
        } else {
            v.json.clone()
        };
        current.push((v.name.clone(), json.to_string()));
        for r in cat.released(&v.name) {
            history.push((v.name.clone(), r.version, r.json.to_string()));
        }
    }
    let current_refs: Vec<(&str, &str)> = current
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let history_refs: Vec<(&str, u32, &str)> = history
        .iter()
        .map(|(a, v, b)| (a.as_str(), *v, b.as_str()))
        .collect();
    let errors = compat::check(&Catalogue::build(&current_refs, &history_refs).expect("builds"));
    assert_eq!(
        errors,
        vec![compat::EvolutionError::ChangedWithoutRelease {
            name: "DeadLettered".into(),
            version: 1
        }]
    );
}

#[test]
fn review_decisions_round_trip_with_enum_symbols() {
    let e = Envelope {
        event: Event::ReviewDecided(ReviewDecided {
            context: context(),
            review_id: Uuid::from_u128(42),
            reviewer: "ana".into(),
            decision: ReviewDecision::Edit,
            edited_text: Some("Sorry about that!".into()),
            reason: None,
            corrected_sentiment: Some("neutral".into()),
            role: "sole".into(),
            settles: true,
        }),
        ..scored()
    };
    let codec = Codec::new();
    let bytes = codec.encode(&e, Format::SingleObject).expect("encodes");
    assert_eq!(codec.decode::<Envelope>(&bytes).expect("decodes"), e);
    let text = String::from_utf8(codec.encode(&e, Format::Json).expect("encodes")).expect("utf-8");
    assert!(text.contains(r#""event_type":"ReviewDecided""#), "{text}");
    assert!(text.contains(r#""decision":"edit""#), "{text}");
}

fn with_added_field_json(
    schema: &serde_json::Value,
    field: serde_json::Value,
) -> serde_json::Value {
    let mut json = schema.clone();
    json["fields"].as_array_mut().expect("a record").push(field);
    json
}

fn with_added_field(schema: &serde_json::Value, field: serde_json::Value) -> Schema {
    Schema::parse(&with_added_field_json(schema, field)).expect("parses")
}

/// Found by scripts/fuzz.sh: 207 bytes announcing a map of half a billion entries made
/// apache-avro reserve 5.4 GB. The decoder's allocations are capped now; the message is
/// refused as undecodable (and dead-lettered by the runtime).
#[test]
fn a_message_announcing_more_than_it_holds_is_refused_without_allocating_it() {
    let input = include_bytes!("../../fuzz/regressions/decode_interaction/oom-map-count-a9679d0a");
    let codec = Codec::new();
    assert_eq!(
        insights_schemas::limit_allocations(usize::MAX),
        insights_schemas::codec::DEFAULT_MAX_ALLOCATION,
        "the first limit set stays"
    );
    let err = codec
        .decode::<insights_schemas::Interaction>(input)
        .expect_err("refused");
    assert!(err.to_string().contains("allocat"), "{err}");
}
