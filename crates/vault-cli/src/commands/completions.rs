//! `tokvault completions SHELL`: the script that hooks the shell up to
//! tokvault's own completer, which knows the commands, the options and the
//! vault's record names (crate::completion).

use crate::error::{CliError, Exit, Result};
use crate::ui::output::write_stdout;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The shell
    shell: clap_complete::Shell,
}

pub(crate) fn exec(args: &Args) -> Result<Exit> {
    let name = args.shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let shell = shells
        .completer(&name)
        .ok_or_else(|| CliError::usage(format!("no completion for {name}")))?;
    let mut out = Vec::with_capacity(4096);
    // The script runs `tokvault` from PATH at each TAB, so an upgraded
    // binary and an installed script cannot drift apart.
    shell
        .write_registration(
            crate::completion::VARIABLE,
            "tokvault",
            "tokvault",
            "tokvault",
            &mut out,
        )
        .map_err(|e| CliError::failure(format!("cannot write the {name} completion: {e}")))?;
    write_stdout(&out)
}
