//! `tokvault import`: records from a token file, a service-account key or
//! another vault, added under the lock.

use std::path::PathBuf;

use crate::context::{Context, block_on};
use crate::error::{Exit, Result};
use vault_engine::input::{read_input, warn_plaintext_input};

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
    let imported = block_on(session.import(
        &bytes,
        &args.input,
        args.name.as_deref(),
        args.token_uri.as_deref(),
        args.replace,
    ))??;
    ctx.report.done(&format!(
        "imported {} into {}",
        imported.names.join(", "),
        session.location()
    ));
    if imported.plaintext {
        warn_plaintext_input(&args.input);
    }
    Ok(Exit::Success)
}
