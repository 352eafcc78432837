//! Where the unlock material is (options, systemd credentials, XDG
//! defaults), and the recipients and passphrase of new key slots. Reading
//! and checking the files is the engine's; the passphrase prompts are
//! `ui::prompt`'s.

use std::path::{Path, PathBuf};

use vault_engine::{SecretFilePolicy, UnlockMaterial};
use vault_format::SecretString;

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
    Ok(vault_engine::vaults::recipients(
        &args.recipients,
        &args.recipients_files,
    )?)
}

/// The recipients and new passphrase of a new vault's slots.
pub(crate) fn slot_inputs(
    args: &RecipientArgs,
    passphrase_file: Option<&Path>,
) -> Result<(Vec<String>, Option<SecretString>)> {
    let recipients = recipients(args)?;
    let passphrase = if args.passphrase {
        Some(crate::ui::prompt::new_passphrase(passphrase_file)?)
    } else {
        None
    };
    if recipients.is_empty() && passphrase.is_none() {
        return Err(CliError::usage(
            "a vault needs at least one key slot: give -r RECIPIENT, -R FILE or --passphrase",
        ));
    }
    Ok((recipients, passphrase))
}
