//! Where the unlock material is (options, systemd credentials, XDG
//! defaults) and recipients. Reading and checking the files is the
//! engine's; the passphrase prompts are `ui::prompt`'s.

use std::path::{Path, PathBuf};

use vault_engine::{SecretFilePolicy, UnlockMaterial};
use vault_format::canonical_recipient;

use crate::cli::RecipientArgs;
use crate::error::{CliError, Result};
use crate::paths;

/// Secret files may be 0440 in systemd's credentials directory.
pub(crate) fn secret_file_policy() -> SecretFilePolicy {
    SecretFilePolicy {
        credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    }
}

/// Identity files: `-i`/`TOKVAULT_IDENTITY`, else the systemd credential and
/// the XDG default when they exist.
fn identity_paths(given: &[PathBuf]) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let mut found = Vec::new();
    if let Some(path) = paths::credential("tokvault-identity").filter(|p| p.exists()) {
        found.push(path);
    }
    if let Ok(path) = paths::default_identity()
        && path.exists()
    {
        found.push(path);
    }
    found
}

fn passphrase_path(given: Option<&Path>) -> Option<PathBuf> {
    given
        .map(Path::to_path_buf)
        .or_else(|| paths::credential("tokvault-passphrase").filter(|p| p.exists()))
}

/// Everything the options name; a passphrase prompt comes later, only if
/// needed ([`crate::ui::prompt::Terminal`]).
pub(crate) fn unlock_material(
    identities: &[PathBuf],
    passphrase_file: Option<&Path>,
) -> Result<UnlockMaterial> {
    Ok(UnlockMaterial::load(
        &identity_paths(identities),
        passphrase_path(passphrase_file).as_deref(),
        &secret_file_policy(),
    )?)
}

/// Recipients from `-r` and `-R`, canonicalized, without duplicates.
pub(crate) fn recipients(args: &RecipientArgs) -> Result<Vec<String>> {
    let mut inputs: Vec<(String, String)> = args
        .recipients
        .iter()
        .map(|r| (r.clone(), "-r".to_owned()))
        .collect();
    for path in &args.recipients_files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::io("cannot read recipients file", path, &e))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                inputs.push((
                    line.to_owned(),
                    format!("{}:{}", path.display(), number + 1),
                ));
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for (input, source) in inputs {
        let (_, canonical) = canonical_recipient(&input).map_err(|reason| {
            CliError::usage(format!("recipient from {source} is not usable: {reason}"))
        })?;
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}
