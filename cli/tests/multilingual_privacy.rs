//! Privacy through the runtime in the five languages the product serves (and one message
//! whose language is not declared): the privacy processor on the embedded default, then no
//! national identifier, phone number, e-mail address, date of birth, name, street or
//! postcode of the input is in clear in any stored `InteractionScrubbed` (the events
//! `interactions.scrubbed` carries). The messages are written for this test, not drawn from
//! the taggers' templates.

use std::path::Path;
use std::process::Command;
use testkit::OutputWithin;

use insights_event_store::{EventFilter, EventStore, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_phones_emails_birth_dates_names_and_addresses_never_reach_the_store_in_any_language()
 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(root.join("topology.toml"), dir.path().join("topology.toml")).expect("copies");
    let messages: &[(Option<&str>, &str, &[&str])] = &[
        (
            Some("en"),
            "My passport number is C01X00T47, my NI number AB 12 34 56 C. Call +44 20 7930 4832 or mail jo.white@example.co.uk. Born 1984-03-07.",
            &[
                "C01X00T47",
                "AB 12 34 56 C",
                "7930 4832",
                "jo.white@example",
                "1984-03-07",
            ],
        ),
        (
            Some("de"),
            "Meine Steuer-ID ist 86 095 742 719, Personalausweisnummer L01X00T471, Handy 015123456789, geboren am 3. März 1985, E-Mail k.becker@example.de",
            &[
                "86 095 742 719",
                "L01X00T471",
                "015123456789",
                "3. März 1985",
                "k.becker@example",
            ],
        ),
        (
            Some("fr"),
            "Mon NIR : 1 84 03 76 451 089 96, permis de conduire 13AA00002, date de naissance : 8 juillet 1983, portable +33 6 12 34 56 78",
            &[
                "1 84 03 76 451 089 96",
                "13AA00002",
                "8 juillet 1983",
                "6 12 34 56 78",
            ],
        ),
        (
            Some("es"),
            "Mi DNI es 12345678Z y mi NIE X1234567L, pasaporte PAA123456, fecha de nacimiento: 3 de mayo de 1990, móvil +34 612 345 678",
            &[
                "12345678Z",
                "X1234567L",
                "PAA123456",
                "3 de mayo de 1990",
                "612 345 678",
            ],
        ),
        (
            Some("nl"),
            "Mijn BSN is 111222333, rijbewijsnummer 5123456789, geboortedatum 14-03-1981, bel 0612345678 of mail p.visser@example.nl",
            &[
                "111222333",
                "5123456789",
                "14-03-1981",
                "0612345678",
                "p.visser@example",
            ],
        ),
        (
            None,
            "Guten Tag, bitte rufen Sie mich unter 030 901820 zurück, meine Steuer-ID ist 86095742719.",
            &["901820", "86095742719"],
        ),
        // Names, streets and postcodes with towns, written as customers write them.
        (
            Some("en"),
            "Hi, this is Siobhan O'Connell. Please send the new router to 14 Larkfield Grove, Dublin D06 F2X3, not to my old flat.",
            &["Siobhan", "O'Connell", "Larkfield Grove", "D06 F2X3"],
        ),
        (
            Some("de"),
            "Guten Tag, ich bin umgezogen. Neue Anschrift: Jürgen Weißmüller, Lindenstraße 42, 04109 Leipzig. Bitte ändern Sie das.",
            &["Jürgen", "Weißmüller", "Lindenstraße 42", "04109"],
        ),
        (
            Some("fr"),
            "Bonjour, je m'appelle Hélène Lefèvre et j'habite au 18, rue des Lilas, 69003 Lyon. La box ne marche plus depuis lundi.",
            &["Hélène", "Lefèvre", "rue des Lilas", "69003"],
        ),
        (
            Some("es"),
            "Hola, soy Begoña Martínez Ruiz. Mi dirección es Calle de Alcalá 123, 4º B, 28009 Madrid. Cambien la factura, por favor.",
            &["Begoña", "Martínez Ruiz", "Alcalá 123", "28009"],
        ),
        (
            Some("nl"),
            "Goedemiddag, met Anouk van den Berg. Ons adres is Prinsengracht 263, 1016 GV Amsterdam. De modem doet het niet.",
            &["Anouk", "van den Berg", "Prinsengracht 263", "1016 GV"],
        ),
    ];
    let input: Vec<String> = messages
        .iter()
        .enumerate()
        .map(|(i, (language, text, _))| {
            let mut line = serde_json::json!({
                "interaction_id": format!("m{i}"), "conversation_id": format!("conv-{i}"),
                "customer_id": format!("cust-{i}"), "channel": "email",
                "text": text, "sent_at": "2026-11-20T10:00:00Z",
            });
            if let Some(l) = language {
                line["language"] = (*l).into();
            }
            line.to_string()
        })
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), input.join("\n") + "\n").expect("writes");
    let run = Command::new(env!("CARGO_BIN_EXE_insights"))
        .args([
            "run",
            "--processor",
            "privacy",
            "--until-idle",
            "--ops-listen",
            "off",
            "--no-projections",
            "--input",
            "in.jsonl",
        ])
        .current_dir(dir.path())
        .env_remove("INSIGHTS_BROKERS")
        .env_remove("INSIGHTS_STORE_URL")
        .env_remove("INSIGHTS_PRIVACY_KEY")
        .output_within(testkit::COMMAND_LIMIT)
        .expect("runs insights");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let url = format!("sqlite://{}", dir.path().join("data/insights.db").display());
    let store = SqliteStore::open(&url, 2).await.expect("opens the store");
    let stored = store
        .read_all(0, 1_000, &EventFilter::All)
        .await
        .expect("reads");
    let scrubbed: Vec<serde_json::Value> = stored
        .iter()
        .filter(|e| e.data.event_type == "InteractionScrubbed")
        .map(|e| serde_json::from_slice(&e.data.payload).expect("JSON"))
        .collect();
    assert_eq!(
        scrubbed.len(),
        messages.len(),
        "one scrubbed event per message"
    );
    for (i, (language, _, secrets)) in messages.iter().enumerate() {
        let event = scrubbed
            .iter()
            .find(|s| s["context"]["interaction_id"] == format!("interaction:m{i}"))
            .unwrap_or_else(|| panic!("no scrubbed m{i} among {scrubbed:?}"));
        let text = event.to_string();
        for secret in *secrets {
            assert!(
                !text.contains(secret),
                "{language:?}: {secret} stored in clear: {}",
                event["text"]
            );
        }
    }
    // Nothing anywhere in the store either (dead letters included).
    let everything = stored
        .iter()
        .map(|e| String::from_utf8_lossy(&e.data.payload).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    for (_, _, secrets) in messages {
        for secret in *secrets {
            assert!(
                !everything.contains(secret),
                "{secret} somewhere in the store"
            );
        }
    }
}
