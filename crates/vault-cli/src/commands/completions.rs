//! `tokvault completions SHELL`.

use crate::cli::Cli;
use crate::error::{Exit, Result};
use crate::ui::output::write_stdout;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The shell
    shell: clap_complete::Shell,
}

pub(crate) fn exec(args: &Args) -> Result<Exit> {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::with_capacity(64 * 1024);
    clap_complete::generate(args.shell, &mut command, "tokvault", &mut out);
    write_stdout(&out)
}
