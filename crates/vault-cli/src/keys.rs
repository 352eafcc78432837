//! Where the unlock material is (options, systemd credentials, XDG
//! defaults), the terminal that may be asked for a passphrase, and
//! recipients. Reading and checking the files is the engine's.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use vault_engine::{Callbacks, SecretFilePolicy, UnlockMaterial};
use vault_format::{SecretString, canonical_recipient};
use zeroize::Zeroizing;

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
/// needed ([`Terminal`]).
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

/// The terminal on stdin, when there is one, answers the engine's
/// passphrase question.
pub(crate) struct Terminal;

impl Callbacks for Terminal {
    fn request_passphrase(&self, prompt: &str) -> vault_engine::Result<Option<SecretString>> {
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        let text = rpassword::prompt_password(prompt).map_err(|e| {
            vault_engine::EngineError::failure(format!("cannot read the passphrase: {e}"))
        })?;
        Ok(Some(SecretString::new(text)))
    }
}

/// A new passphrase: from `--passphrase-file`, else prompted twice on a TTY.
pub(crate) fn new_passphrase(passphrase_file: Option<&Path>) -> Result<SecretString> {
    if let Some(path) = passphrase_file {
        return Ok(secret_file_policy().read_passphrase(path)?);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "--passphrase needs a passphrase: pass --passphrase-file PATH (mode 0600) or run on a terminal",
        ));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("New passphrase: ")
            .map_err(|e| CliError::failure(format!("cannot read the passphrase: {e}")))?,
    );
    let second = Zeroizing::new(
        rpassword::prompt_password("Repeat it: ")
            .map_err(|e| CliError::failure(format!("cannot read the passphrase: {e}")))?,
    );
    if *first != *second {
        return Err(CliError::failure(
            "the passphrases differ; nothing was written",
        ));
    }
    if first.chars().count() < 8 {
        return Err(CliError::failure(
            "use a passphrase of at least 8 characters; nothing was written",
        ));
    }
    Ok(SecretString::copy_from(&first))
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
