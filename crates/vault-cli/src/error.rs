//! Exit codes and the one error type of the CLI.

use std::fmt;
use std::process::ExitCode;

/// Exit codes: a contract for scripts and alerts (README, "Exit codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Exit {
    Success = 0,
    Failure = 1,
    Usage = 2,
    /// A refresh token was rejected: a person must re-authorize.
    Reauthorize = 3,
    /// Network, 5xx, 429, timeout, lock busy: retry later, nothing lost.
    Temporary = 4,
    /// The vault cannot be opened or trusted.
    Untrusted = 5,
    /// The vault could not be written after a server may have rotated a
    /// token: the new tokens wait in the rescue file, which the next
    /// command puts back once the vault can be written.
    NotSaved = 6,
}

impl Exit {
    /// Every exit code and what it means: `--help` and the man pages.
    pub(crate) const MEANINGS: [(u8, &str); 7] = [
        (0, "success"),
        (1, "error"),
        (2, "usage"),
        (3, "re-authorization required"),
        (4, "temporary failure (retry later)"),
        (5, "vault cannot be opened or trusted"),
        (
            6,
            "new tokens kept in a rescue file (the vault could not be written)",
        ),
    ];

    /// The exit codes as one sentence, for `--help`.
    pub(crate) fn help() -> String {
        let codes: Vec<String> = Self::MEANINGS
            .iter()
            .map(|(code, meaning)| format!("{code} {meaning}"))
            .collect();
        format!("Exit codes: {}.", codes.join(", "))
    }

    /// What the codes a refresh run ends with mean (metrics help text).
    pub(crate) const REFRESH_CODES: &str = "0 ok, 1 error, 3 re-authorization required, \
         4 temporary failure, 5 untrusted vault, 6 new tokens kept in the rescue file";
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// What went wrong and what to do; never anything secret.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) exit: Exit,
    pub(crate) message: String,
}

impl CliError {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }

    pub(crate) fn failure(message: impl Into<String>) -> Self {
        Self::new(Exit::Failure, message)
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub(crate) fn untrusted(message: impl Into<String>) -> Self {
        Self::new(Exit::Untrusted, message)
    }
}

/// The one place where the engine's classes become exit codes.
impl From<vault_engine::ErrorKind> for Exit {
    fn from(kind: vault_engine::ErrorKind) -> Self {
        use vault_engine::ErrorKind;
        match kind {
            ErrorKind::Usage => Exit::Usage,
            ErrorKind::Reauthorize => Exit::Reauthorize,
            ErrorKind::Temporary => Exit::Temporary,
            ErrorKind::Untrusted => Exit::Untrusted,
            ErrorKind::NotSaved => Exit::NotSaved,
            ErrorKind::Failure => Exit::Failure,
        }
    }
}

impl From<vault_engine::EngineError> for CliError {
    fn from(error: vault_engine::EngineError) -> Self {
        Self::new(error.kind().into(), error.to_string())
    }
}

/// A login plan that cannot be made, classed as the engine classes it.
impl From<vault_oauth::PlanError> for CliError {
    fn from(error: vault_oauth::PlanError) -> Self {
        vault_engine::EngineError::from(error).into()
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub(crate) type Result<T> = std::result::Result<T, CliError>;
