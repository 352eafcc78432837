//! The engine's one error type: what went wrong and what to do, never
//! anything secret, with a class ([`ErrorKind`]) that a front end maps to
//! what it speaks (the CLI to exit codes, a server to HTTP statuses). The
//! cases a caller decides on (a busy lock, a vault changed since it was
//! read) are variants of their own.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Who has to act, and how urgently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Any other error: I/O, bad input, an unknown record, a misconfiguration.
    Failure,
    /// The request itself is wrong (bad arguments, an impossible change).
    Usage,
    /// A refresh token was rejected: a person must authorize again.
    Reauthorize,
    /// Try again later: nothing was lost (busy lock, network, full disk
    /// before any request).
    Temporary,
    /// The vault cannot be opened or trusted.
    Untrusted,
    /// The vault could not be written after a server answered; the new
    /// tokens wait in the rescue file.
    NotSaved,
}

/// An error of an engine operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Another process holds the vault's lock.
    #[error(
        "another tokvault holds the lock on {location} (waited {}s); retry later or raise --lock-timeout",
        waited.as_secs()
    )]
    Busy {
        /// The vault.
        location: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The vault changed since it was read under the lock (a writer that
    /// ignored the lock, or a lease that was taken over).
    #[error("{location} changed since it was read; nothing was written, run again")]
    Conflict {
        /// The vault.
        location: String,
    },
    /// An I/O failure on `path` while doing `what`.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot write").
        what: String,
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// Anything else, with its class.
    #[error("{message}")]
    Other {
        /// Its class.
        kind: ErrorKind,
        /// What went wrong and what to do.
        message: String,
    },
}

impl EngineError {
    /// Its class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Busy { .. } | Self::Conflict { .. } => ErrorKind::Temporary,
            Self::Io { .. } => ErrorKind::Failure,
            Self::Other { kind, .. } => *kind,
        }
    }

    /// An error of class `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Other {
            kind,
            message: message.into(),
        }
    }

    /// A [`ErrorKind::Failure`].
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failure, message)
    }

    /// A [`ErrorKind::Usage`] error.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    /// A [`ErrorKind::Untrusted`] error.
    pub fn untrusted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Untrusted, message)
    }

    /// A [`ErrorKind::Temporary`] error.
    pub fn temporary(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Temporary, message)
    }

    /// An I/O failure on `path` while doing `what`.
    pub fn io(what: &str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            what: what.to_owned(),
            path: path.to_path_buf(),
            source,
        }
    }

    /// There is no record `name` in the vault.
    pub fn no_record(name: &str) -> Self {
        Self::failure(format!("no record named {name:?} (see `tokvault list`)"))
    }

    /// The same error with `context: ` before its message, same class.
    pub fn context(self, context: &str) -> Self {
        let kind = self.kind();
        Self::new(kind, format!("{context}: {self}"))
    }
}

/// The engine's result.
pub type Result<T> = std::result::Result<T, EngineError>;

/// A login plan that cannot be made: the request is wrong (usage), or
/// what it names is (failure).
impl From<vault_oauth::PlanError> for EngineError {
    fn from(error: vault_oauth::PlanError) -> Self {
        match error {
            vault_oauth::PlanError::Usage(message) => Self::usage(message),
            vault_oauth::PlanError::Invalid(message) => Self::failure(message),
        }
    }
}
