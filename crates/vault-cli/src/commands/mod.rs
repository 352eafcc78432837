//! One module per command (cargo's `commands/<name>.rs`): each turns its
//! clap `Args` into calls of the engine and renders the result.

pub(crate) mod completions;
pub(crate) mod exec;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod init;
pub(crate) mod inspect;
pub(crate) mod keygen;
pub(crate) mod list;
pub(crate) mod login;
pub(crate) mod man;
pub(crate) mod refresh;
pub(crate) mod rekey;
pub(crate) mod remove;
pub(crate) mod seal;
pub(crate) mod serve;
pub(crate) mod token;
pub(crate) mod verify;

use crate::cli::Command;
use crate::context::Context;
use crate::error::{Exit, Result};

/// Runs `command`.
pub(crate) fn dispatch(ctx: &Context, command: Command) -> Result<Exit> {
    match command {
        Command::Keygen(args) => keygen::exec(&args),
        Command::Init(args) => init::exec(ctx, &args),
        Command::Seal(args) => seal::exec(ctx, &args),
        Command::Login(args) => login::exec(ctx, &args),
        Command::Import(args) => import::exec(ctx, &args),
        Command::List(args) => list::exec(ctx, &args),
        Command::Refresh(args) => refresh::exec(ctx, &args),
        Command::Token(args) => token::exec_token(ctx, &args),
        Command::Header(args) => token::exec_header(ctx, &args),
        Command::Exec(args) => exec::exec(ctx, &args),
        Command::Serve(args) => serve::exec(ctx, &args),
        Command::Export(args) => export::exec(ctx, &args),
        Command::Remove(args) => remove::exec(ctx, &args),
        Command::Rekey(args) => rekey::exec(ctx, &args),
        Command::Inspect(args) => inspect::exec(ctx, &args),
        Command::Verify => verify::exec(ctx),
        Command::Completions(args) => completions::exec(&args),
        Command::Man(args) => man::exec(&args),
    }
}
