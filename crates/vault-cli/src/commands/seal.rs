//! `tokvault seal`: one token file into a new vault for recipients, with no
//! private key at hand.

use std::path::PathBuf;

use vault_oauth::TokenFile;

use crate::cli::RecipientArgs;
use crate::context::Context;
use crate::error::{CliError, Exit, Result};
use crate::keys::slot_inputs;
use vault_engine::input::{parse_token_file, read_input, warn_plaintext_input};
use vault_engine::vaults::{create_vault, write_new_vault};

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
    if args.output.exists() {
        return Err(CliError::failure(format!(
            "{} already exists; refusing to overwrite it",
            args.output.display()
        )));
    }
    let bytes = read_input(&args.input)?;
    let record = match parse_token_file(&bytes, Some(&args.name), args.token_uri.as_deref())? {
        TokenFile::Record(record) => record,
        TokenFile::Vault => {
            return Err(CliError::usage(
                "seal takes a token file, not a vault (use `tokvault rekey` to change a vault's recipients)",
            ));
        }
    };
    let (recipients, passphrase) = slot_inputs(&args.recipients, ctx.passphrase_file.as_deref())?;
    let mut vault = create_vault(&recipients, passphrase.as_ref())?;
    vault.records_mut().push(*record);
    write_new_vault(&args.output, &mut vault)?;
    tracing::info!(
        "sealed record {:?} into {} for {} key slot(s)",
        args.name,
        args.output.display(),
        vault.slots().len()
    );
    warn_plaintext_input(&args.input);
    Ok(Exit::Success)
}
