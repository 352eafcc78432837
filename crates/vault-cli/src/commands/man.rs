//! `tokvault man [COMMAND]`: the man page of tokvault, or of one command
//! as `tokvault-COMMAND`, each with the global options and the exit codes.

use std::io::Write as _;

use crate::cli::Cli;
use crate::error::{CliError, Exit, Result};
use crate::ui::output::write_stdout;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A command, for its own page (tokvault-COMMAND.1)
    command: Option<String>,
}

pub(crate) fn exec(args: &Args) -> Result<Exit> {
    let mut top = <Cli as clap::CommandFactory>::command();
    // Building propagates the global options into every command's page.
    top.build();
    let page = match args.command.as_deref() {
        None => clap_mangen::Man::new(top),
        Some(name) => {
            let sub = top.find_subcommand(name).cloned().ok_or_else(|| {
                CliError::usage(format!("no command {name:?}; see `tokvault --help`"))
            })?;
            let title = format!("tokvault-{}", sub.get_name());
            let sub = sub.name(title.clone()).bin_name(format!("tokvault {name}"));
            clap_mangen::Man::new(sub).title(title)
        }
    };
    let mut out = Vec::with_capacity(64 * 1024);
    page.render(&mut out)
        .and_then(|()| render_exit_status(&mut out))
        .map_err(|e| CliError::failure(format!("cannot render the man page: {e}")))?;
    write_stdout(&out)
}

/// The EXIT STATUS section, which clap_mangen has no place for.
fn render_exit_status(out: &mut Vec<u8>) -> std::io::Result<()> {
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (code, meaning) in Exit::MEANINGS {
        writeln!(out, ".TP\n\\fB{code}\\fR\n{}", meaning.replace('-', "\\-"))?;
    }
    Ok(())
}
