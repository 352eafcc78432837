//! `tokvault init`: an empty vault with at least one key slot, never over
//! an existing one.

use crate::cli::RecipientArgs;
use crate::context::{Context, block_on};
use crate::error::{Exit, Result};
use crate::keys::slot_inputs;
use crate::ui::output::plural;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    recipients: RecipientArgs,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let session = ctx.session_without_keys()?;
    block_on(session.check_absent())??;
    let (recipients, passphrase) = slot_inputs(&args.recipients, ctx.passphrase_file.as_deref())?;
    let slots = block_on(session.init(&recipients, passphrase.as_ref()))??;
    ctx.report.done(&format!(
        "created {} with {}",
        session.location(),
        plural(slots, "key slot")
    ));
    Ok(Exit::Success)
}
