//! `tokvault seal`: one token file into a new vault for recipients, with no
//! private key at hand.

use std::path::PathBuf;

use super::import::RecordArgs;
use crate::cli::RecipientArgs;
use crate::context::Context;
use crate::error::{Exit, Result};
use crate::keys::slot_inputs;
use crate::ui::output::plural;
use vault_engine::input::{Input, record_to_seal, warn_plaintext_input};
use vault_engine::vaults::{check_new_file, seal_records};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    record: RecordArgs,
    #[command(flatten)]
    recipients: RecipientArgs,
    /// New vault file (never overwritten)
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    /// Token file (google-auth JSON or tokvault JSON), or - for stdin
    input: PathBuf,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    check_new_file(&args.output)?;
    let input = Input::read(&args.input)?;
    let record = record_to_seal(&input, &args.record.options())?;
    let name = record.name.clone();
    let (recipients, passphrase) = slot_inputs(&args.recipients, ctx.passphrase_file.as_deref())?;
    let slots = seal_records(&args.output, &recipients, passphrase.as_ref(), vec![record])?;
    ctx.report.done(&format!(
        "sealed {name} into {} for {}",
        args.output.display(),
        plural(slots, "key slot")
    ));
    warn_plaintext_input(&args.input);
    Ok(Exit::Success)
}
