//! `tokvault remove NAME`.

use vault_engine::IfWriteFails;

use crate::context::{Context, block_on};
use crate::error::{Exit, Result};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record name
    #[arg(add = crate::completion::record_names())]
    name: String,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let session = ctx.session()?;
    let name = &args.name;
    block_on(session.update(IfWriteFails::Fail, |vault| {
        vault_engine::vaults::remove_record(vault, name)
    }))??;
    ctx.report
        .done(&format!("removed {name} from {}", session.location()));
    Ok(Exit::Success)
}
