//! What every command needs, resolved once from the global options (fd's
//! `Config`, ripgrep's `HiArgs`): paths, the lock wait, the rollback policy,
//! and the session on the vault. The clap `Global` stops here.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use vault_engine::{
    AnyBackend, FileBackend, S3Backend, S3Location, S3Settings, Session, SessionOptions,
    UnlockMaterial,
};
use vault_format::SecretString;

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
        let backend = self.backend(&vault, &state_dir)?;
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

impl Context {
    /// A file, or an object for `s3://BUCKET/KEY`.
    fn backend(&self, vault: &std::path::Path, state_dir: &std::path::Path) -> Result<AnyBackend> {
        let Some(url) = vault.to_str().filter(|v| v.starts_with("s3://")) else {
            return Ok(AnyBackend::File(FileBackend::new(vault, state_dir)?));
        };
        let location = S3Location::parse(url).ok_or_else(|| {
            CliError::usage(format!(
                "--vault {url:?}: write s3://BUCKET/KEY (a lowercase bucket name and an object key)"
            ))
        })?;
        let settings = s3_settings(self.lease_ttl)?;
        Ok(AnyBackend::S3(Box::new(S3Backend::new(
            &location, &settings, state_dir,
        )?)))
    }
}

/// The standard AWS variables, and the systemd credentials
/// `aws-access-key-id`, `aws-secret-access-key`, `aws-session-token`.
fn s3_settings(lease_ttl: Duration) -> Result<S3Settings> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let credential = |name: &str| -> Result<Option<SecretString>> {
        let Some(dir) = var("CREDENTIALS_DIRECTORY") else {
            return Ok(None);
        };
        let path = std::path::Path::new(&dir).join(name);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = vault_engine::SecretFilePolicy::from_env().read(&path, "S3 credential")?;
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        Ok(Some(SecretString::from(text)))
    };
    let secret = |variable: &str, file: &str| -> Result<Option<SecretString>> {
        Ok(match var(variable) {
            Some(value) => Some(SecretString::from(value)),
            None => credential(file)?,
        })
    };
    Ok(S3Settings {
        endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
        region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
        access_key_id: match var("AWS_ACCESS_KEY_ID") {
            Some(id) => Some(id),
            None => credential("aws-access-key-id")?.map(|s| s.expose_secret().to_owned()),
        },
        secret_access_key: secret("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key")?,
        session_token: secret("AWS_SESSION_TOKEN", "aws-session-token")?,
        lease_ttl,
    })
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
