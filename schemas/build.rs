//! Embeds every schema under `avro/` (current versions) and `avro/history/NAME/vN.avsc`
//! (released versions) so that adding a schema file is all it takes to add a schema.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    // Read at run time, not baked in with `env!`: cargo may reuse this build script's
    // binary for a copy of the crate elsewhere (a git worktree sharing the target dir).
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("avro");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut current: Vec<(String, String)> = Vec::new();
    let mut history: Vec<(String, u32, String)> = Vec::new();
    for entry in fs::read_dir(&root).expect("schemas/avro exists") {
        let path = entry.expect("readable dir entry").path();
        if path.extension().is_some_and(|e| e == "avsc") {
            let name = path
                .file_stem()
                .expect("file stem")
                .to_string_lossy()
                .into_owned();
            current.push((name, path.display().to_string()));
        }
    }
    let hist_root = root.join("history");
    println!("cargo:rerun-if-changed={}", hist_root.display());
    if let Ok(dirs) = fs::read_dir(&hist_root) {
        for dir in dirs {
            let dir = dir.expect("readable dir entry").path();
            if !dir.is_dir() {
                continue;
            }
            println!("cargo:rerun-if-changed={}", dir.display());
            let name = dir
                .file_name()
                .expect("dir name")
                .to_string_lossy()
                .into_owned();
            for file in fs::read_dir(&dir).expect("readable history dir") {
                let path = file.expect("readable dir entry").path();
                let stem = path
                    .file_stem()
                    .expect("file stem")
                    .to_string_lossy()
                    .into_owned();
                let version: u32 = stem
                    .strip_prefix('v')
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| {
                        panic!("history file {} must be named vN.avsc", path.display())
                    });
                history.push((name.clone(), version, path.display().to_string()));
            }
        }
    }
    current.sort();
    history.sort();
    let mut out = String::from(
        "/// Current schemas: (file stem, text).\npub(crate) static CURRENT: &[(&str, &str)] = &[\n",
    );
    for (name, path) in &current {
        writeln!(out, "    ({name:?}, include_str!({path:?})),").expect("write to string");
    }
    out.push_str("];\n/// Released versions: (file stem, version, text).\npub(crate) static HISTORY: &[(&str, u32, &str)] = &[\n");
    for (name, version, path) in &history {
        writeln!(out, "    ({name:?}, {version}, include_str!({path:?})),")
            .expect("write to string");
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_schemas.rs");
    fs::write(dest, out).expect("write embedded_schemas.rs");
}
