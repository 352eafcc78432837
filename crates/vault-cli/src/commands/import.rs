//! `tokvault import`: records from a token file, a service-account key or
//! another vault, added under the lock.

use std::path::PathBuf;

use vault_engine::IfWriteFails;
use vault_oauth::TokenFile;

use crate::context::{Context, block_on};
use crate::error::{CliError, Exit, Result};
use vault_engine::input::{parse_token_file, read_input, warn_plaintext_input};
use vault_engine::vaults::merge;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record name (required for JSON inputs)
    #[arg(long)]
    name: Option<String>,
    /// Token endpoint to use instead of the file's
    #[arg(long, value_name = "URL")]
    token_uri: Option<String>,
    /// Replace records with the same name
    #[arg(long)]
    replace: bool,
    /// Input file, or - for stdin
    input: PathBuf,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let bytes = read_input(&args.input)?;
    let session = ctx.session()?;
    let parsed = parse_token_file(&bytes, args.name.as_deref(), args.token_uri.as_deref())?;
    let plaintext_input = matches!(parsed, TokenFile::Record(_));
    let records = match parsed {
        TokenFile::Record(record) => vec![*record],
        TokenFile::Vault => {
            if args.name.is_some() || args.token_uri.is_some() {
                return Err(CliError::usage(
                    "--name and --token-uri apply to JSON inputs; a vault's records keep their own",
                ));
            }
            let input = args.input.display().to_string();
            session.open_other(&bytes, &input)?.records().to_vec()
        }
    };
    let imported: Vec<String> = records.iter().map(|r| r.name.clone()).collect();
    if !block_on(session.exists())?? {
        return Err(CliError::failure(format!(
            "no vault at {}: create one with `tokvault init -r RECIPIENT` first, or pass --vault",
            session.location()
        )));
    }
    block_on(session.update(IfWriteFails::Fail, |vault| {
        records
            .into_iter()
            .try_for_each(|record| merge(vault, record, args.replace).map_err(CliError::from))
    }))??;
    tracing::info!(
        "imported {} into {}",
        imported.join(", "),
        session.location()
    );
    if plaintext_input {
        warn_plaintext_input(&args.input);
    }
    Ok(Exit::Success)
}
