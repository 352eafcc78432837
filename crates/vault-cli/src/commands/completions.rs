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
    if args.shell == clap_complete::Shell::Zsh {
        out = complete_first_tab_when_autoloaded(out);
    }
    write_stdout(&out)
}

/// The zsh script registers its completer with `compdef` when sourced. Put
/// in `fpath` as `_tokvault` (where packages put it), zsh runs the file at
/// the first TAB instead: it must then complete that TAB itself.
fn complete_first_tab_when_autoloaded(script: Vec<u8>) -> Vec<u8> {
    const REGISTER: &str = "compdef _clap_dynamic_completer_tokvault tokvault";
    let text = String::from_utf8_lossy(&script);
    if !text.contains(REGISTER) {
        return script;
    }
    text.replace(
        REGISTER,
        &format!(
            "if [[ \"${{funcstack[1]}}\" == _tokvault ]]; then\n    \
             _clap_dynamic_completer_tokvault \"$@\"\nelse\n    {REGISTER}\nfi"
        ),
    )
    .into_bytes()
}
