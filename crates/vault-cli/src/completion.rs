//! Shell completion that knows the vault's record names
//! (`tokvault completions SHELL` registers it; the shell then runs
//! `TOKVAULT_COMPLETE=SHELL tokvault -- WORDS…` at each TAB).
//!
//! The names are read with identity files only: a TAB never prompts, never
//! runs Argon2 for a passphrase it was not given, never touches the
//! network (a vault in a bucket gets no names), never takes the lock,
//! refreshes or writes. Any failure completes nothing.

use clap::{CommandFactory as _, FromArgMatches as _};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::cli::{Cli, Global};

/// The variable that makes a run a completion. Our own name, not clap's
/// `COMPLETE`: a job's environment may well hold a `COMPLETE` of its own.
pub(crate) const VARIABLE: &str = "TOKVAULT_COMPLETE";

/// Answers the shell and exits when it asked for completions.
pub(crate) fn complete_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(VARIABLE)
        .complete();
}

/// The candidates for an argument that names a record.
pub(crate) fn record_names() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        names()
            .unwrap_or_default()
            .into_iter()
            .map(CompletionCandidate::new)
            .collect::<Vec<_>>()
    })
}

fn names() -> Option<Vec<String>> {
    let global = typed_global_options()?;
    let path = match global.vault {
        Some(path) => path,
        None => vault_engine::paths::default_vault().ok()?,
    };
    if path.to_str().is_some_and(|p| p.starts_with("s3://")) {
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    let material = vault_engine::UnlockMaterial::locate(&global.identities, None).ok()?;
    let vault = vault_format::Vault::open(&bytes, &material.unlock()).ok()?;
    Some(vault.records().iter().map(|r| r.name.clone()).collect())
}

/// `--vault` and `-i` as typed so far on the line being completed (the
/// words after `--`), with their variables and defaults.
fn typed_global_options() -> Option<Global> {
    let words: Vec<std::ffi::OsString> = std::env::args_os()
        .skip_while(|word| word != "--")
        .skip(1)
        .collect();
    let matches = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(words)
        .ok()?;
    Global::from_arg_matches(&matches).ok()
}
