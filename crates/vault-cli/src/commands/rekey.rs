//! `tokvault rekey`: changes the key slots and rotates the vault key.

use vault_format::{SecretString, Vault};

use crate::cli::RecipientArgs;
use crate::context::{Context, block_on};
use crate::error::{CliError, Exit, Result};
use crate::keys;
use crate::ui::output::plural;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    recipients: RecipientArgs,
    /// Drop this recipient's slot (repeatable)
    #[arg(long, value_name = "RECIPIENT")]
    remove_recipient: Vec<String>,
    /// Drop the passphrase slots
    #[arg(long, conflicts_with = "passphrase")]
    remove_passphrase: bool,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let session = ctx.session()?;
    let added = keys::recipients(&args.recipients)?;
    let mut removed = Vec::new();
    for r in &args.remove_recipient {
        let (_, canonical) = vault_format::canonical_recipient(r)
            .map_err(|reason| CliError::usage(format!("--remove-recipient {r:?}: {reason}")))?;
        removed.push(canonical);
    }
    let (count, with_passphrase) = block_on(session.rekey(&removed, added, |vault, current| {
        new_passphrase(ctx, args, vault, current)
    }))??;
    ctx.report.done(&format!(
        "rekeyed {}: a new vault key, sealed to {}{}",
        session.location(),
        plural(count, "recipient"),
        if with_passphrase {
            " and a passphrase"
        } else {
            ""
        }
    ));
    Ok(Exit::Success)
}

/// The vault's recipients without `removed` (each must be one of them),
/// with `added`.
fn new_passphrase(
    ctx: &Context,
    args: &Args,
    vault: &Vault,
    current: Option<SecretString>,
) -> Result<Option<SecretString>> {
    if args.recipients.passphrase {
        return crate::ui::prompt::new_passphrase(ctx.passphrase_file.as_deref()).map(Some);
    }
    if !vault.has_passphrase_slot() || args.remove_passphrase {
        return Ok(None);
    }
    current.map(Some).ok_or_else(|| {
        CliError::usage(
            "the vault has a passphrase slot, which a rekey must rebuild: give the current passphrase \
             (--passphrase-file), set a new one (--passphrase) or drop it (--remove-passphrase)",
        )
    })
}
