//! `tokvault`: an encrypted OAuth token vault for jobs that run on servers.
//! The front end of `vault-engine`: parse the command line, build a
//! [`context::Context`] once, run one command, render, exit. The terminal
//! (output, prompts, the browser: [`ui`]) and signals live here; storage,
//! transactions, refresh runs, the vault side of logins and the monitoring
//! after a run (warnings, the alert hook, metrics) are the engine's, and
//! the login flows `vault-oauth`'s.

// A command-line program prints by design.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod completion;
mod context;
mod duration;
mod error;
mod keys;
mod servers;
mod signals;
mod ui;

use std::process::ExitCode;

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
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    // JSON logs feed a collector: every refresh (info) by default. Text
    // logs are for people: warnings and errors unless -v.
    let level = match (global.quiet, global.verbose, global.log_format) {
        (true, _, _) => LevelFilter::ERROR,
        (false, 0, LogFormat::Text) => LevelFilter::WARN,
        (false, 0, LogFormat::Json) | (false, 1, _) => LevelFilter::INFO,
        (false, 2, _) => LevelFilter::DEBUG,
        (false, _, _) => LevelFilter::TRACE,
    };
    // Our crates at the chosen level; the HTTP/TLS stack at most at WARN,
    // so that no verbosity shows its internals.
    let targets = tracing_subscriber::filter::Targets::new()
        .with_target("tokvault", level)
        .with_target("vault_oauth", level)
        .with_target("vault_engine", level)
        .with_target("vault_serve", level)
        .with_target("vault_format", level)
        .with_default(level.min(LevelFilter::WARN));
    let registry = tracing_subscriber::registry().with(targets);
    let _ = match global.log_format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .without_time()
                    .with_ansi(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr)
                    .with_target(false),
            )
            .try_init(),
    };
}

fn main() -> ExitCode {
    disable_core_dumps();
    completion::complete_if_asked();
    let cli = match Cli::parse_args() {
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
    let ctx = context::Context::new(&cli.global);
    match commands::dispatch(&ctx, cli.command) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("tokvault: error: {error}");
            error.exit.into()
        }
    }
}
