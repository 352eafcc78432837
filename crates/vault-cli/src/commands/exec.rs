//! `tokvault exec NAME -- CMD...`: runs CMD with a valid access token in its
//! environment, and nothing that unlocks the vault.

use std::os::unix::process::CommandExt as _;
use std::time::Duration;

use crate::context::Context;
use crate::duration::parse_duration;
use crate::error::{CliError, Exit, Result};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Record name
    name: String,
    /// Environment variable for the token
    #[arg(long, default_value = "TOKVAULT_ACCESS_TOKEN", value_name = "VAR")]
    env: String,
    /// Refresh when less than this validity remains
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    min_valid: Duration,
    /// The command and its arguments
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<String>,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let env = &args.env;
    if env.is_empty() || env.contains('=') || env.contains('\0') {
        return Err(CliError::usage(format!(
            "--env {env:?} is not a valid environment variable name"
        )));
    }
    let token = super::token::valid_token(ctx, &args.name, args.min_valid)?;
    let (program, program_args) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::usage("exec needs a command after --"))?;
    let mut command = std::process::Command::new(program);
    command.args(program_args);
    for variable in vault_engine::paths::KEY_VARIABLES {
        command.env_remove(variable);
    }
    // exec replaces this process: the child's exit status is ours, and no
    // decrypted state outlives the switch.
    let error = command.env(env, token.expose_secret()).exec();
    Err(CliError::failure(format!(
        "cannot run {program:?}: {error}"
    )))
}
