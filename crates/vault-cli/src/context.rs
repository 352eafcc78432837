//! What every command needs, resolved once from the global options (fd's
//! `Config`, ripgrep's `HiArgs`): paths, the lock wait, the rollback policy,
//! and the session on the vault. The clap `Global` stops here.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use vault_engine::{AnyBackend, Session, SessionOptions, UnlockMaterial};

use crate::cli::Global;
use crate::error::{CliError, Result};
use crate::ui::output::Report;

/// The session every command opens the vault with.
pub(crate) type VaultSession = Session<AnyBackend>;

/// The resolved global options.
pub(crate) struct Context {
    /// `--vault`; else the XDG default, found when a command needs it.
    vault: Option<PathBuf>,
    /// `--state-dir`; else the XDG default, likewise.
    state_dir: Option<PathBuf>,
    pub(crate) lock_timeout: Duration,
    /// `--lease-ttl`: how long a vault in a bucket stays leased to a
    /// writer that stopped answering.
    lease_ttl: Duration,
    pub(crate) accept_rollback: bool,
    /// `--passphrase-file`: the passphrase that opens the vault, and the
    /// one a new passphrase slot gets.
    pub(crate) passphrase_file: Option<PathBuf>,
    /// `-i`; the unlock material is loaded only when a command opens the
    /// vault.
    identities: Vec<PathBuf>,
    /// Where `init`, `import`, `remove` and `rekey` say what they did.
    pub(crate) report: Report,
}

impl Context {
    pub(crate) fn new(global: &Global) -> Self {
        Self {
            vault: global.vault.clone(),
            state_dir: global.state_dir.clone(),
            lock_timeout: global.lock_timeout,
            lease_ttl: global.lease_ttl,
            accept_rollback: global.accept_rollback,
            passphrase_file: global.passphrase_file.clone(),
            identities: global.identities.clone(),
            report: Report::new(global.quiet, global.log_format),
        }
    }

    /// The identities and passphrase the options (or their defaults) name.
    fn unlock_material(&self) -> Result<UnlockMaterial> {
        Ok(UnlockMaterial::locate(
            &self.identities,
            self.passphrase_file.as_deref(),
        )?)
    }

    /// A session that can open the vault.
    pub(crate) fn session(&self) -> Result<VaultSession> {
        self.session_with(self.unlock_material()?)
    }

    /// A session that never opens the vault (`init`, `inspect`).
    pub(crate) fn session_without_keys(&self) -> Result<VaultSession> {
        self.session_with(UnlockMaterial::default())
    }

    fn session_with(&self, unlock: UnlockMaterial) -> Result<VaultSession> {
        let vault = match &self.vault {
            Some(path) => path.clone(),
            None => vault_engine::paths::default_vault()?,
        };
        let state_dir = match &self.state_dir {
            Some(path) => path.clone(),
            None => vault_engine::paths::default_state_dir()?,
        };
        let backend = AnyBackend::locate(&vault, &state_dir, self.lease_ttl)?;
        Ok(Session::new(
            backend,
            state_dir,
            unlock,
            Box::new(crate::ui::prompt::Terminal),
            SessionOptions {
                accept_rollback: self.accept_rollback,
                lock_wait: self.lock_timeout,
            },
        ))
    }
}

/// Runs `future` on a single-threaded runtime (a command's storage and
/// network work).
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}
