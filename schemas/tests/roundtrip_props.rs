//! Property tests: encode → decode is the identity for arbitrary envelopes of every event
//! type and arbitrary raw interactions, in every format.
//!
//! Values are generated from the Avro schemas themselves (so a new event or field is
//! covered without touching this file), deserialized into the Rust types (which checks
//! that the types match the schemas), then round-tripped through the codec.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::Name;
use insights_schemas::{Catalogue, Codec, Envelope, Format, Interaction};
use proptest::prelude::*;
use serde_json::{Map, Value as Json};

type Names = HashMap<String, Schema>;

fn collect(schema: &Schema, names: &mut Names) {
    match schema {
        Schema::Record(r) => {
            names.insert(r.name.fullname(None), schema.clone());
            r.fields.iter().for_each(|f| collect(&f.schema, names));
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Array(a) => collect(&a.items, names),
        Schema::Map(m) => collect(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect(v, names)),
        _ => {}
    }
}

fn resolve<'a>(name: &Name, names: &'a Names) -> &'a Schema {
    &names[&name.fullname(None)]
}

fn text() -> BoxedStrategy<String> {
    "\\PC{0,12}".boxed()
}

/// An arbitrary JSON value of `schema`, in the form the Rust types serialize to.
fn arb(schema: &Schema, names: &Names) -> BoxedStrategy<Json> {
    match schema {
        Schema::Null => Just(Json::Null).boxed(),
        Schema::Boolean => any::<bool>().prop_map(Json::from).boxed(),
        Schema::Int => any::<i32>().prop_map(Json::from).boxed(),
        Schema::Long | Schema::TimestampMicros => any::<i64>().prop_map(Json::from).boxed(),
        Schema::Double => prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            Just(0.0),
            Just(-1.5e-300)
        ]
        .prop_map(Json::from)
        .boxed(),
        Schema::String => text().prop_map(Json::from).boxed(),
        Schema::Uuid => any::<u128>()
            .prop_map(|u| Json::from(uuid::Uuid::from_u128(u).to_string()))
            .boxed(),
        Schema::Enum(e) => proptest::sample::select(e.symbols.clone())
            .prop_map(Json::from)
            .boxed(),
        Schema::Array(a) => proptest::collection::vec(arb(&a.items, names), 0..3)
            .prop_map(Json::Array)
            .boxed(),
        Schema::Map(m) => proptest::collection::btree_map(text(), arb(&m.types, names), 0..3)
            .prop_map(|m| Json::Object(m.into_iter().collect()))
            .boxed(),
        Schema::Union(u) => {
            let branches: Vec<BoxedStrategy<Json>> =
                u.variants().iter().map(|v| arb(v, names)).collect();
            proptest::strategy::Union::new(branches).boxed()
        }
        Schema::Record(r) => {
            let fields: Vec<(String, BoxedStrategy<Json>)> = r
                .fields
                .iter()
                .map(|f| (f.name.clone(), arb(&f.schema, names)))
                .collect();
            let names_only: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
            let strategies: Vec<BoxedStrategy<Json>> = fields.into_iter().map(|(_, s)| s).collect();
            strategies
                .prop_map(move |values| {
                    Json::Object(
                        names_only
                            .iter()
                            .cloned()
                            .zip(values)
                            .collect::<Map<_, _>>(),
                    )
                })
                .boxed()
        }
        Schema::Ref { name } => arb(resolve(name, names), names),
        other => panic!("no generator for {other:?}"),
    }
}

/// Arbitrary envelopes: one generator per payload branch, with `event_type` set to match.
fn arb_envelope() -> BoxedStrategy<Envelope> {
    let env = Catalogue::get().current("Envelope").expect("envelope");
    let mut names = Names::new();
    collect(&env.schema, &mut names);
    let Schema::Record(record) = &env.schema else {
        panic!("envelope is a record")
    };
    let mut header_fields = Vec::new();
    let mut branches = Vec::new();
    for f in &record.fields {
        match (f.name.as_str(), &f.schema) {
            ("payload", Schema::Union(u)) => {
                for v in u.variants() {
                    let name = match v {
                        Schema::Record(r) => r.name.name.clone(),
                        Schema::Ref { name } => name.name.clone(),
                        _ => panic!("payload branches are records"),
                    };
                    branches.push((name, arb(v, &names)));
                }
            }
            ("event_type", _) => {}
            (field, schema) => header_fields.push((field.to_owned(), arb(schema, &names))),
        }
    }
    let header_names: Vec<String> = header_fields.iter().map(|(n, _)| n.clone()).collect();
    let header: Vec<BoxedStrategy<Json>> = header_fields.into_iter().map(|(_, s)| s).collect();
    let payloads: Vec<BoxedStrategy<(String, Json)>> = branches
        .into_iter()
        .map(|(name, s)| s.prop_map(move |p| (name.clone(), p)).boxed())
        .collect();
    (header, proptest::strategy::Union::new(payloads))
        .prop_map(move |(values, (event_type, payload))| {
            let mut obj: Map<String, Json> = header_names.iter().cloned().zip(values).collect();
            obj.insert("event_type".into(), Json::from(event_type));
            obj.insert("payload".into(), payload);
            serde_json::from_value::<Envelope>(Json::Object(obj))
                .expect("generated JSON fits the Rust types")
        })
        .boxed()
}

fn arb_interaction() -> BoxedStrategy<Interaction> {
    let v = Catalogue::get()
        .current("Interaction")
        .expect("interaction");
    let mut names = Names::new();
    collect(&v.schema, &mut names);
    arb(&v.schema, &names)
        .prop_map(|json| serde_json::from_value(json).expect("generated JSON fits the Rust types"))
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn envelopes_round_trip(e in arb_envelope()) {
        let codec = Codec::new();
        for format in [Format::SingleObject, Format::Confluent, Format::Json] {
            let bytes = codec.encode(&e, format).expect("encodes");
            prop_assert_eq!(&codec.decode::<Envelope>(&bytes).expect("decodes"), &e);
        }
    }

    #[test]
    fn interactions_round_trip(i in arb_interaction()) {
        let codec = Codec::new();
        for format in [Format::SingleObject, Format::Confluent, Format::Json] {
            let bytes = codec.encode(&i, format).expect("encodes");
            prop_assert_eq!(&codec.decode::<Interaction>(&bytes).expect("decodes"), &i);
        }
    }

    /// The codec's direct Avro writer and the reference path (an Avro `Value`, then
    /// apache-avro's writer) agree on every envelope and interaction.
    #[test]
    fn the_direct_writer_agrees_with_apache_avros(e in arb_envelope(), i in arb_interaction()) {
        insights_schemas::fuzzing::encoders_agree(&e);
        insights_schemas::fuzzing::encoders_agree(&i);
    }

    /// The codec's direct reader and the reference path (a JSON tree) read every encoded
    /// envelope and interaction alike.
    #[test]
    fn the_direct_reader_agrees_with_the_json_path(e in arb_envelope(), i in arb_interaction()) {
        let codec = Codec::new();
        for format in [Format::SingleObject, Format::Confluent] {
            insights_schemas::fuzzing::decoders_agree::<Envelope>(&codec.encode(&e, format).expect("encodes"));
            insights_schemas::fuzzing::decoders_agree::<Interaction>(&codec.encode(&i, format).expect("encodes"));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let codec = Codec::new();
        let _ = codec.decode::<Envelope>(&bytes);
        let mut prefixed = vec![0xC3, 0x01];
        prefixed.extend_from_slice(&Catalogue::get().current("Envelope").expect("envelope").fingerprint.to_le_bytes());
        prefixed.extend_from_slice(&bytes);
        let _ = codec.decode::<Envelope>(&prefixed);
    }
}

/// Writes 48 values of `strategy` in every format to `dir`, checking each decodes back.
fn write_seeds<T>(dir: &std::path::Path, strategy: BoxedStrategy<T>)
where
    T: insights_schemas::AvroRecord + PartialEq + std::fmt::Debug,
{
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let codec = Codec::new();
    let mut runner = TestRunner::deterministic();
    std::fs::create_dir_all(dir).expect("corpus dir");
    for n in 0..48 {
        let value = strategy.new_tree(&mut runner).expect("generates").current();
        for (f, format) in [Format::SingleObject, Format::Confluent, Format::Json]
            .into_iter()
            .enumerate()
        {
            let bytes = codec.encode(&value, format).expect("encodes");
            assert_eq!(codec.decode::<T>(&bytes).expect("decodes"), value);
            std::fs::write(dir.join(format!("seed-{n}-{f}")), bytes).expect("writes");
        }
    }
}

/// The fuzz targets' seed corpus (scripts/fuzz.sh): generated values in every format,
/// written to `$INSIGHTS_FUZZ_CORPUS/<target>/` (a temporary directory otherwise), and each
/// file checked to decode to its value.
#[test]
fn the_seed_corpus_decodes() {
    let temp = tempfile::tempdir().expect("temp dir");
    let root = std::env::var_os("INSIGHTS_FUZZ_CORPUS")
        .map_or_else(|| temp.path().to_path_buf(), std::path::PathBuf::from);
    write_seeds(&root.join("decode_envelope"), arb_envelope());
    write_seeds(&root.join("decode_interaction"), arb_interaction());
}
