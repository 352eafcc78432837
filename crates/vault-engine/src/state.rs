//! Local state of one vault, always on this machine whatever the backend:
//! its rollback pin, its refresh health and its rescue file, under the
//! state directory and keyed by the vault's location. One lock helper (with
//! a timeout) serves them all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use vault_format::{Pin, PinStatus};

use crate::error::{EngineError, Result};
use crate::fsio::{self, FileLock};

/// How long a writer waits for the pin's lock (held only for a
/// load-compare-write).
const PIN_LOCK_WAIT: Duration = Duration::from_secs(10);

/// The state files of one vault.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// What the files are named after: the vault's location.
    location: String,
}

impl StateDir {
    /// The state of the vault at `location` (a resolved path, a URL) in
    /// `dir`.
    pub fn new(dir: PathBuf, location: &str) -> Self {
        Self {
            dir,
            location: location.to_owned(),
        }
    }

    /// `dir/KIND/<first 16 bytes of sha256(location)>`.
    fn path(&self, kind: &str) -> PathBuf {
        let digest = Sha256::digest(self.location.as_bytes());
        self.dir.join(kind).join(fsio::hex(&digest[..16]))
    }

    /// Creates the directory of `path` when missing; it and the state
    /// directory must be trusted.
    fn prepare(&self, path: &Path) -> Result<()> {
        let dir = fsio::parent_of(path);
        fsio::ensure_private_dir(&dir)?;
        fsio::check_trusted_dir(&self.dir, "the state directory")?;
        fsio::check_trusted_dir(&dir, "the state directory")
    }

    /// Reads a state file; `None` when it does not exist.
    fn read(&self, path: &Path, what: &str) -> Result<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(bytes) => {
                self.prepare(path)?;
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EngineError::io(&format!("cannot read {what}"), path, e)),
        }
    }

    /// The stored pin, if any.
    pub fn load_pin(&self) -> Result<Option<Pin>> {
        let path = self.path("pins");
        let Some(bytes) = self.read(&path, "the rollback pin")? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        let line = text
            .lines()
            .find(|l| l.starts_with("tokvault-pin"))
            .unwrap_or_default();
        Pin::parse(line).map(Some).map_err(|e| {
            EngineError::untrusted(format!(
                "the rollback pin {} is damaged ({e}); check it, or delete it to trust the vault as it is now",
                path.display()
            ))
        })
    }

    /// Stores `pin` (a writer, under the vault's lease).
    pub fn save_pin(&self, pin: &Pin) -> Result<()> {
        let _lock = self.lock_pin(PIN_LOCK_WAIT)?;
        self.write_pin(pin)
    }

    /// Moves the pin forward to `opened` if it is new or newer than the
    /// pinned one (a reader, without the vault's lease: the pin's own lock
    /// keeps a stalled reader from moving it back). Skipped while another
    /// process of this host holds that lock.
    pub fn advance_pin(&self, opened: &Pin) -> Result<()> {
        let Ok(_lock) = self.lock_pin(Duration::ZERO) else {
            return Ok(());
        };
        let status = Pin::classify(self.load_pin()?.as_ref(), opened);
        if matches!(status, PinStatus::New | PinStatus::Newer { .. }) {
            self.write_pin(opened)?;
        }
        Ok(())
    }

    fn write_pin(&self, pin: &Pin) -> Result<()> {
        let path = self.path("pins");
        let text = format!("# rollback pin for {}\n{pin}\n", self.location);
        fsio::write_atomic(&path, text.as_bytes(), true)
    }

    /// The pin's lock: held only for a load-compare-write, so short.
    fn lock_pin(&self, timeout: Duration) -> Result<FileLock> {
        let path = self.path("pins");
        self.prepare(&path)?;
        let mut lock_path = path.into_os_string();
        lock_path.push(".lock");
        fsio::lock_file(Path::new(&lock_path), timeout, || {
            EngineError::temporary("another tokvault holds the lock on the rollback pin".to_owned())
        })
    }

    /// Where refresh health (failure streaks, outcome counters) is kept.
    pub fn health_path(&self) -> PathBuf {
        self.path("health")
    }

    /// The lock of the health file, waiting at most `timeout`.
    pub fn lock_health(&self, timeout: Duration) -> Result<FileLock> {
        let path = self.health_path();
        self.prepare(&path)?;
        let mut lock_path = path.into_os_string();
        lock_path.push(".lock");
        fsio::lock_file(Path::new(&lock_path), timeout, || {
            EngineError::temporary(format!(
                "another tokvault holds the lock on the refresh health file (waited {}s)",
                timeout.as_secs()
            ))
        })
    }

    /// The health file's contents, if any.
    pub fn read_health(&self) -> Result<Option<Vec<u8>>> {
        self.read(&self.health_path(), "the refresh health file")
    }

    /// Replaces the health file (hold [`StateDir::lock_health`]).
    pub fn write_health(&self, _lock: &FileLock, text: &[u8]) -> Result<()> {
        fsio::write_atomic(&self.health_path(), text, true)
    }

    /// The sealed vault that a failed write left
    /// (`dir/rescue/<key>.tokvault`).
    pub fn rescue_path(&self) -> PathBuf {
        let mut path = self.path("rescue").into_os_string();
        path.push(".tokvault");
        PathBuf::from(path)
    }

    /// Keeps `bytes` (a sealed vault) in the rescue file.
    pub fn write_rescue(&self, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.rescue_path();
        self.prepare(&path)?;
        fsio::write_atomic(&path, bytes, true)?;
        Ok(path)
    }

    /// The rescue file's contents, if there is one.
    pub fn read_rescue(&self) -> Result<Option<Vec<u8>>> {
        self.read(&self.rescue_path(), "the rescue file")
    }

    /// Whether a rescue file exists.
    pub fn has_rescue(&self) -> bool {
        self.rescue_path().exists()
    }

    /// Renames the rescue file out of the way (`….superseded-<unix time>`),
    /// so that it is no longer put back but nothing in it is lost.
    pub fn set_rescue_aside(&self) -> Result<PathBuf> {
        let path = self.rescue_path();
        let mut aside = path.clone().into_os_string();
        aside.push(format!(".superseded-{}", crate::session::unix_now()));
        let aside = PathBuf::from(aside);
        std::fs::rename(&path, &aside)
            .map_err(|e| EngineError::io("cannot set aside the rescue file", &path, e))?;
        Ok(aside)
    }

    /// Removes the rescue file (a failure is only logged).
    pub fn remove_rescue(&self) {
        let path = self.rescue_path();
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove the rescue file {}: {e}", path.display());
        }
    }
}
