//! The process's secrets: the pseudonym key and the JWT signing secret, from their
//! environment variable or file (created, mode 0600, only where a command may). A leaf.

use std::path::Path;

use anyhow::{Context, Result};

/// The secret behind pseudonyms: `INSIGHTS_PRIVACY_KEY` (64 hex digits), else the key
/// file. Only the embedded default creates a missing key file: replicas of a real
/// deployment must share one key, or the same person gets different pseudonyms.
pub(crate) fn privacy_key(file: &Path, may_create: bool) -> Result<[u8; 32]> {
    secret("INSIGHTS_PRIVACY_KEY", file, may_create, "pseudonym key")
}

/// A 32-byte secret: the environment variable `var` (64 hex digits), else `file`, which
/// is created with a random secret (mode 0600) if missing and `may_create`.
pub(crate) fn secret(var: &str, file: &Path, may_create: bool, what: &str) -> Result<[u8; 32]> {
    let parse = |hex_text: &str, from: &str| -> Result<[u8; 32]> {
        let bytes = hex::decode(hex_text.trim()).with_context(|| format!("{from} is not hex"))?;
        bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{from} must be 32 bytes (64 hex digits)"))
    };
    if let Ok(k) = std::env::var(var) {
        return parse(&k, var);
    }
    match std::fs::read_to_string(file) {
        Ok(text) => parse(&text, &file.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key)
                .map_err(|e| anyhow::anyhow!("no randomness for a new {what}: {e}"))?;
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_private(file, &hex::encode(key))?;
            eprintln!("insights: created a new {what} at {}", file.display());
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!(
            "no {what}: set {var} or provide {} ({e})",
            file.display()
        )),
    }
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
