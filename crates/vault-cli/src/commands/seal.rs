//! `tokvault seal`: one token file into a new vault for recipients, with no
//! private key at hand.

use std::path::PathBuf;

use crate::cli::RecipientArgs;
use crate::context::Context;
use crate::error::{Exit, Result};
use crate::keys::slot_inputs;
use vault_engine::input::{read_input, record_to_seal, warn_plaintext_input};
use vault_engine::vaults::{check_new_file, seal_records};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record name
    #[arg(long)]
    name: String,
    #[command(flatten)]
    recipients: RecipientArgs,
    /// New vault file (never overwritten)
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    /// Token endpoint to use instead of the file's
    #[arg(long, value_name = "URL")]
    token_uri: Option<String>,
    /// Token file (google-auth JSON or tokvault JSON), or - for stdin
    input: PathBuf,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    check_new_file(&args.output)?;
    let bytes = read_input(&args.input)?;
    let record = record_to_seal(&bytes, &args.name, args.token_uri.as_deref())?;
    let (recipients, passphrase) = slot_inputs(&args.recipients, ctx.passphrase_file.as_deref())?;
    let slots = seal_records(&args.output, &recipients, passphrase.as_ref(), vec![record])?;
    tracing::info!(
        "sealed record {:?} into {} for {slots} key slot(s)",
        args.name,
        args.output.display(),
    );
    warn_plaintext_input(&args.input);
    Ok(Exit::Success)
}
