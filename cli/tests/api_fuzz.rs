//! Schema-driven fuzzing of the HTTP API, briefly (scripts/api_fuzz.sh with few examples
//! per operation): schemathesis against /openapi.json of the embedded pipeline, without a
//! token and with a token of each role. No 5xx, only documented statuses and content
//! types, responses matching their schemas, out-of-range input refused, auth enforced.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_api_survives_schemathesis_for_every_role() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = Command::new(root.join("scripts/api_fuzz.sh"))
        .args(["--bin", env!("CARGO_BIN_EXE_insights")])
        .args(["--max-examples", "4", "--max-time", "25", "--seed", "7"])
        .current_dir(root)
        .stdout(log.reopen().expect("log"))
        .stderr(Stdio::from(log.reopen().expect("log")))
        .spawn()
        .expect("runs scripts/api_fuzz.sh");
    let limit = Duration::from_secs(420);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "scripts/api_fuzz.sh did not finish in {limit:?}:\n{}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
    assert!(status.success(), "schemathesis found failures:\n{output}");
    assert!(
        output.contains("clean for every role"),
        "the run did not cover every role:\n{output}"
    );
}
