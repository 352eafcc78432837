//! `tokvault keygen [-o PATH]`: a new age identity, 0600, never over an
//! existing file; prints its recipient.

use std::path::PathBuf;

use crate::error::{Exit, Result};
use crate::ui::output::print;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to write it [default: $XDG_CONFIG_HOME/tokvault/identity.txt]
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
}

pub(crate) fn exec(args: &Args) -> Result<Exit> {
    let path = match &args.output {
        Some(path) => path.clone(),
        None => vault_engine::paths::default_identity()?,
    };
    let recipient = vault_engine::unlock::write_new_identity(&path)?;
    tracing::info!("identity written to {} (mode 0600)", path.display());
    print(&recipient)
}
