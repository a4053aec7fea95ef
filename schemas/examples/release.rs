//! Releases schemas: for each current schema that differs from its latest release (or has
//! none), writes `schemas/avro/history/NAME/vN.avsc` with the self-contained schema.
//! Run after editing a schema file: `cargo run -p insights-schemas --example release`.
//! The evolution test then checks the new release against every older one.

use std::path::Path;

use insights_schemas::Catalogue;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro/history");
    let catalogue = Catalogue::get();
    let mut released = 0;
    for current in catalogue.all_current() {
        let releases = catalogue.released(&current.name);
        let next = match releases.last() {
            Some(latest) if latest.schema.canonical_form() == current.schema.canonical_form() => {
                continue;
            }
            Some(latest) => latest.version + 1,
            None => 1,
        };
        let dir = root.join(&current.name);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("v{next}.avsc"));
        std::fs::write(&path, serde_json::to_string_pretty(&current.json)? + "\n")?;
        println!("released {}", path.display());
        released += 1;
    }
    if released == 0 {
        println!("every schema equals its latest release");
    }
    Ok(())
}
