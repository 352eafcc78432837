//! `tokvault remove NAME`.

use vault_engine::IfWriteFails;

use crate::context::{Context, block_on};
use crate::error::{CliError, Exit, Result};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record name
    name: String,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let session = ctx.session()?;
    let name = &args.name;
    block_on(session.update(IfWriteFails::Fail, |vault| {
        let before = vault.records().len();
        vault.records_mut().retain(|r| &r.name != name);
        if vault.records().len() == before {
            return Err(CliError::failure(format!(
                "no record named {name:?} (see `tokvault list`)"
            )));
        }
        Ok(())
    }))??;
    tracing::info!("removed {name:?}");
    Ok(Exit::Success)
}
