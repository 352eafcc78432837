//! `tokvault init`: an empty vault with at least one key slot, never over
//! an existing one.

use vault_engine::fsio;

use crate::cli::RecipientArgs;
use crate::context::{Context, block_on};
use crate::error::{CliError, Exit, Result};
use crate::keys::slot_inputs;
use vault_engine::vaults::create_vault;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    recipients: RecipientArgs,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let session = ctx.session_without_keys()?;
    if block_on(session.exists())?? {
        return Err(CliError::failure(format!(
            "{} already exists; refusing to overwrite a vault",
            session.location()
        )));
    }
    let (recipients, passphrase) = slot_inputs(&args.recipients, ctx.passphrase_file.as_deref())?;
    if let Some(parent) = session
        .backend()
        .path()
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        fsio::ensure_private_dir(parent)?;
    }
    let mut vault = create_vault(&recipients, passphrase.as_ref())?;
    block_on(session.create(&mut vault))??;
    tracing::info!(
        "created {} with {} key slot(s)",
        session.location(),
        vault.slots().len()
    );
    Ok(Exit::Success)
}
