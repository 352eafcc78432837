//! The recipients and passphrase of new key slots, from the options. Where
//! the unlock material is, and reading it, is the engine's
//! (`UnlockMaterial::locate`); the passphrase prompts are `ui::prompt`'s.

use std::path::Path;

use vault_format::SecretString;

use crate::cli::RecipientArgs;
use crate::error::{CliError, Result};

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
