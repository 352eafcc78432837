//! `tokvault`: an encrypted OAuth token vault for jobs that run on servers.
//! Thin glue over `vault-format` and `vault-oauth`: unlock sources, the lock
//! and atomic writes, commands, exit codes and output.

// A command-line program prints by design.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod duration;
mod error;
mod keys;
mod login;
mod output;
mod paths;
mod records;
mod refresh;
mod store;
mod timefmt;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, LogFormat};
use crate::error::Exit;

/// No core dumps: a crash must not write decrypted tokens to disk.
fn disable_core_dumps() {
    let none = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Core, none);
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}

fn init_logging(global: &cli::Global) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        (false, _) => tracing::Level::DEBUG,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match global.log_format {
        LogFormat::Text => builder.without_time().with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

fn main() -> ExitCode {
    disable_core_dumps();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            }
            .into();
        }
    };
    init_logging(&cli.global);
    match commands::run(cli) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("tokvault: error: {error}");
            error.exit.into()
        }
    }
}
