//! `tokvault export NAME`: a record in plaintext (google-auth or tokvault
//! JSON), to stdout or a new 0600 file.

use std::path::PathBuf;

use vault_engine::fsio;
use vault_oauth::GoogleExportError;

use crate::cli::ExportFormat;
use crate::context::{Context, block_on};
use crate::error::{CliError, Exit, Result};
use crate::ui::output::print_line;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record name
    #[arg(add = crate::completion::record_names())]
    name: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
    format: ExportFormat,
    /// Output file (created 0600, never overwritten) [default: stdout]
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let session = ctx.session()?;
    let vault = block_on(session.open())??;
    let name = &args.name;
    let record = vault_engine::vaults::record(&vault, name)?;
    let text = match args.format {
        ExportFormat::Google => vault_oauth::to_google_json(record).map_err(|e| match e {
            GoogleExportError::ServiceAccount { .. } => {
                CliError::failure(format!("{e} (use --format json)"))
            }
            _ => CliError::failure(e.to_string()),
        })?,
        ExportFormat::Json => vault_oauth::to_tokvault_json(record),
    };
    match &args.output {
        Some(path) => {
            fsio::write_new_private(path, text.as_bytes())?;
            tracing::warn!(
                "{} holds the record in PLAINTEXT (mode 0600); delete it when done",
                path.display()
            );
        }
        None => {
            tracing::warn!("the output is PLAINTEXT: it holds the refresh token");
            print_line(&text)?;
        }
    }
    Ok(Exit::Success)
}
