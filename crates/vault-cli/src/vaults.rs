//! New vaults and their key slots, and records merged into a vault: what
//! `init`, `seal`, `login`, `import` and `rekey` share.

use std::path::Path;

use vault_format::{KdfParams, Record, SecretString, SlotSpec, Vault};

use crate::cli::RecipientArgs;
use crate::error::{CliError, Result};
use crate::keys;

/// Slot specs for recipients and an optional new passphrase.
pub(crate) fn slot_specs<'a>(
    recipients: &'a [String],
    passphrase: Option<&'a SecretString>,
) -> Vec<SlotSpec<'a>> {
    let mut slots: Vec<SlotSpec<'a>> = recipients.iter().map(|r| SlotSpec::Recipient(r)).collect();
    if let Some(passphrase) = passphrase {
        slots.push(SlotSpec::Passphrase {
            passphrase,
            params: KdfParams::DEFAULT,
        });
    }
    slots
}

/// The recipients and new passphrase of a new vault's slots.
pub(crate) fn slot_inputs(
    args: &RecipientArgs,
    passphrase_file: Option<&Path>,
) -> Result<(Vec<String>, Option<SecretString>)> {
    let recipients = keys::recipients(args)?;
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

/// A new empty vault with these slots.
pub(crate) fn create_vault(
    recipients: &[String],
    passphrase: Option<&SecretString>,
) -> Result<Vault> {
    Vault::create(&slot_specs(recipients, passphrase)).map_err(slot_error)
}

/// The sealed bytes of `vault`.
pub(crate) fn seal_vault(vault: &mut Vault) -> Result<Vec<u8>> {
    vault
        .seal(vault_engine::unix_now())
        .map_err(|e| CliError::failure(format!("cannot encrypt the vault: {e}")))
}

/// Key slots could not be built: a usage error when the slots asked for
/// are wrong, a failure when the system (its random generator, age) is.
pub(crate) fn slot_error(error: vault_format::SlotError) -> CliError {
    let message = format!("cannot build the key slots: {error}");
    match error {
        vault_format::SlotError::Random(_) | vault_format::SlotError::Age(_) => {
            CliError::failure(message)
        }
        _ => CliError::usage(message),
    }
}

/// Adds `record`, or replaces the one of the same name when `replace`.
pub(crate) fn merge(vault: &mut Vault, record: Record, replace: bool) -> Result<()> {
    match vault.record_mut(&record.name) {
        Some(existing) if replace => *existing = record,
        Some(_) => {
            return Err(CliError::failure(format!(
                "a record named {:?} already exists; pass --replace to replace it, or choose another --name",
                record.name
            )));
        }
        None => vault.records_mut().push(record),
    }
    Ok(())
}
