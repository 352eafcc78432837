//! The vault on disk: a sidecar lock, reads, atomic writes (temp file in the
//! same directory, fsync, rename, fsync directory) and rollback pins.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use vault_format::{OpenError, Pin, PinStatus, Vault};

use crate::error::{CliError, Exit, Result};
use crate::keys::Keys;

/// The vault path and where its pin lives.
pub(crate) struct Store {
    pub(crate) path: PathBuf,
    state_dir: PathBuf,
    accept_rollback: bool,
}

/// Held while a read-modify-write runs; released on drop (and by the
/// kernel if the process dies).
pub(crate) struct LockGuard {
    _file: File,
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::getrandom(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `bytes` to `path` atomically with mode 0600. With `overwrite`
/// false an existing file is never replaced (link, not rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    write_atomic_mode(path, bytes, overwrite, 0o600)
}

/// [`write_atomic`] with another mode (metrics are read by other users).
pub(crate) fn write_atomic_mode(
    path: &Path,
    bytes: &[u8],
    overwrite: bool,
    mode: u32,
) -> Result<()> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map_or_else(|| "vault".into(), |n| n.to_string_lossy().into_owned());
    let prefix = format!(".{name}.tmp-");
    remove_leftovers(&dir, &prefix, ABANDONED_AFTER);
    let temp = dir.join(format!("{prefix}{}", random_suffix()));
    let result = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        // Exactly `mode`, whatever the umask (systemd units often set 0077).
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if overwrite {
            std::fs::rename(&temp, path)?;
        } else {
            std::fs::hard_link(&temp, path)?;
            std::fs::remove_file(&temp)?;
        }
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::failure(format!(
                "{} already exists; refusing to overwrite it",
                path.display()
            ))
        } else {
            CliError::io("cannot write", path, &e)
        }
    })
}

/// A temp file this old belongs to a writer that was killed (a live one
/// keeps it for milliseconds).
const ABANDONED_AFTER: Duration = Duration::from_secs(600);

/// Removes files in `dir` named `prefix…` last modified at least
/// `older_than` ago: what killed writers left behind. Pins, health files
/// and metrics are written without the vault's lock, so there age
/// ([`ABANDONED_AFTER`]), not the lock, tells an abandoned file from one
/// being written.
fn remove_leftovers(dir: &Path, prefix: &str, older_than: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let abandoned = entry.file_name().to_string_lossy().starts_with(prefix)
            && (older_than.is_zero()
                || entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|at| at.elapsed().is_ok_and(|age| age >= older_than)));
        if abandoned {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Creates `dir` (and parents) with mode 0700 when missing.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::io("cannot create directory", dir, &e))
}

impl Store {
    pub(crate) fn new(path: PathBuf, state_dir: PathBuf, accept_rollback: bool) -> Self {
        Self {
            path,
            state_dir,
            accept_rollback,
        }
    }

    /// Takes the exclusive lock on `<vault>.lock`, waiting up to `timeout`.
    pub(crate) fn lock(&self, timeout: Duration) -> Result<LockGuard> {
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| CliError::io("cannot open the lock file", &lock_path, &e))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    self.remove_stale_temp_files();
                    return Ok(LockGuard { _file: file });
                }
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(CliError::temporary(format!(
                        "another tokvault holds the lock on {} (waited {}s); retry later or raise --lock-timeout",
                        self.path.display(),
                        timeout.as_secs()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(CliError::io("cannot lock", &lock_path, &e));
                }
            }
        }
    }

    /// Temp files of writers that were killed before their rename. Only a
    /// lock holder writes them, so under the lock none is in use.
    fn remove_stale_temp_files(&self) {
        let Some(name) = self.path.file_name() else {
            return;
        };
        let prefix = format!(".{}.tmp-", name.to_string_lossy());
        remove_leftovers(&parent_of(&self.path), &prefix, Duration::ZERO);
    }

    /// Fails early, before any token endpoint is called, when the vault's
    /// directory cannot take a new file.
    pub(crate) fn check_writable(&self) -> Result<()> {
        let dir = parent_of(&self.path);
        remove_leftovers(&dir, ".tokvault-probe-", ABANDONED_AFTER);
        let probe = dir.join(format!(".tokvault-probe-{}", random_suffix()));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&probe)
            .map_err(|e| {
                CliError::io(
                    "the vault's directory is not writable; nothing was refreshed:",
                    &dir,
                    &e,
                )
            })?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    pub(crate) fn read(&self) -> Result<Vec<u8>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CliError::failure(format!(
                "no vault at {}: create one with `tokvault init -r RECIPIENT`, or pass --vault",
                self.path.display()
            ))),
            Err(e) => Err(CliError::io("cannot read the vault", &self.path, &e)),
        }
    }

    pub(crate) fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Writes the sealed vault and moves the pin to it.
    pub(crate) fn write(&self, bytes: &[u8], vault: &Vault, overwrite: bool) -> Result<()> {
        if let Ok(metadata) = std::fs::metadata(&self.path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %self.path.display(), "the vault was readable by group or others; the new file is 0600");
        }
        write_atomic(&self.path, bytes, overwrite)?;
        self.save_pin(&vault.pin())
    }

    /// `state_dir/KIND/<first 16 bytes of sha256(absolute vault path)>`.
    fn state_path(&self, kind: &str) -> PathBuf {
        let absolute = std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone());
        let digest = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.state_dir.join(kind).join(name)
    }

    fn pin_path(&self) -> PathBuf {
        self.state_path("pins")
    }

    /// Where refresh health (failure streaks, outcome counters) is kept.
    pub(crate) fn health_path(&self) -> PathBuf {
        self.state_path("health")
    }

    fn load_pin(&self) -> Result<Option<Pin>> {
        let path = self.pin_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let line = text
                    .lines()
                    .find(|l| l.starts_with("tokvault-pin"))
                    .unwrap_or_default();
                Pin::parse(line).map(Some).map_err(|e| {
                    CliError::untrusted(format!(
                        "the rollback pin {} is damaged ({e}); check it, or delete it to trust the vault as it is now",
                        path.display()
                    ))
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::io("cannot read the rollback pin", &path, &e)),
        }
    }

    /// A reader moves the pin forward only under the lock, and only if it
    /// is still behind: a stalled reader must not move it back.
    fn advance_pin_if_free(&self, opened: &Pin) -> Result<()> {
        let Ok(_guard) = self.lock(Duration::ZERO) else {
            return Ok(()); // a writer holds it and will move the pin itself
        };
        let status = Pin::classify(self.load_pin()?.as_ref(), opened);
        if matches!(status, PinStatus::New | PinStatus::Newer { .. }) {
            self.save_pin(opened)?;
        }
        Ok(())
    }

    /// How the header relates to the stored pin, without the key (so the
    /// key fingerprint is not compared).
    pub(crate) fn pin_status_without_key(
        &self,
        header: &vault_format::Header,
        mac: &[u8; 32],
    ) -> Result<String> {
        let Some(pin) = self.load_pin()? else {
            return Ok("none (not opened here before)".to_owned());
        };
        Ok(if pin.vault_id != header.vault_id {
            "DIFFERENT VAULT than the one pinned for this path".to_owned()
        } else if header.generation > pin.generation {
            format!("newer than the pinned generation {}", pin.generation)
        } else if header.generation < pin.generation {
            format!(
                "OLDER than the pinned generation {}: rollback",
                pin.generation
            )
        } else if pin.header_mac == *mac {
            "agrees".to_owned()
        } else {
            format!(
                "DIFFERS from the pinned generation {}: fork",
                pin.generation
            )
        })
    }

    fn save_pin(&self, pin: &Pin) -> Result<()> {
        let path = self.pin_path();
        ensure_private_dir(&parent_of(&path))?;
        let text = format!("# rollback pin for {}\n{pin}\n", self.path.display());
        write_atomic(&path, text.as_bytes(), true)
    }

    /// Opens `bytes` with `keys` (prompting for a passphrase on a TTY when
    /// identities did not match and the vault has a passphrase slot), then
    /// checks the pin; a new or newer vault moves the pin.
    pub(crate) fn open(&self, bytes: &[u8], keys: &mut Keys) -> Result<Vault> {
        self.open_as(bytes, keys, true)
    }

    /// For commands that read without the lock (`token` on a valid token,
    /// `list`, `export`, `verify`). A writer renames the new vault into
    /// place and then moves the pin, so a reader can pair an old file with
    /// the new pin: when the open is refused, the file is read again and,
    /// if it changed, opened again. Such a reader moves the pin only if it
    /// can take the lock at once (pins move under the lock).
    pub(crate) fn read_and_open_unlocked(&self, keys: &mut Keys) -> Result<Vault> {
        let mut bytes = self.read()?;
        for _ in 0..5 {
            match self.open_as(&bytes, keys, false) {
                Err(error) if error.exit == Exit::Untrusted => {
                    let again = self.read()?;
                    if again == bytes {
                        return Err(error);
                    }
                    bytes = again;
                }
                other => return other,
            }
        }
        self.open_as(&bytes, keys, false)
    }

    fn open_as(&self, bytes: &[u8], keys: &mut Keys, locked: bool) -> Result<Vault> {
        let vault = match try_open(bytes, keys) {
            Err(OpenError::CannotDecrypt(_)) if keys.can_prompt() && has_passphrase_slot(bytes) => {
                keys.prompt_passphrase()?;
                try_open(bytes, keys)
            }
            other => other,
        }
        .map_err(|e| self.open_error(&e, keys))?;
        self.check_pin(&vault, locked)?;
        Ok(vault)
    }

    fn open_error(&self, error: &OpenError, keys: &Keys) -> CliError {
        let hint = if keys.identities.is_empty() && keys.passphrase.is_none() {
            " (no identity or passphrase was given: use -i PATH or --passphrase-file PATH)"
        } else {
            ""
        };
        CliError::untrusted(format!("{}: {error}{hint}", self.path.display()))
    }

    fn check_pin(&self, vault: &Vault, locked: bool) -> Result<()> {
        let stored = self.load_pin()?;
        let opened = vault.pin();
        let status = Pin::classify(stored.as_ref(), &opened);
        let explain = match status {
            PinStatus::New | PinStatus::Newer { .. } if locked => return self.save_pin(&opened),
            PinStatus::New | PinStatus::Newer { .. } => return self.advance_pin_if_free(&opened),
            PinStatus::Same => return Ok(()),
            PinStatus::Rollback { pinned, found } => format!(
                "is generation {found}, older than generation {pinned} seen before: a restored backup, or a replayed old copy"
            ),
            PinStatus::Fork { generation } => format!(
                "differs from the generation {generation} seen before: two writers diverged, or the file was forged"
            ),
            PinStatus::DifferentKey => {
                "opens under a different vault key than before: rekeyed elsewhere, or substituted"
                    .to_owned()
            }
            PinStatus::DifferentVault => {
                "is a different vault than the one seen at this path before".to_owned()
            }
            _ => "does not match its rollback pin".to_owned(),
        };
        if self.accept_rollback {
            tracing::warn!(path = %self.path.display(), "accepting a vault that {explain} (--accept-rollback)");
            return self.save_pin(&opened);
        }
        Err(CliError::new(
            Exit::Untrusted,
            format!(
                "{} {explain}. If you restored it on purpose, run again with --accept-rollback",
                self.path.display()
            ),
        ))
    }
}

fn try_open(bytes: &[u8], keys: &Keys) -> std::result::Result<Vault, OpenError> {
    Vault::open(bytes, &keys.unlock())
}

fn has_passphrase_slot(bytes: &[u8]) -> bool {
    vault_format::inspect(bytes)
        .map(|(header, _)| {
            header
                .slots
                .iter()
                .any(|s| matches!(s, vault_format::Slot::Passphrase(_)))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_aged(dir: &Path, name: &str, age: Duration) -> PathBuf {
        let path = dir.join(name);
        let file = File::create(&path).expect("create");
        let at = std::time::SystemTime::now()
            .checked_sub(age)
            .expect("a time in the past");
        file.set_modified(at).expect("set mtime");
        path
    }

    #[test]
    fn a_write_removes_what_killed_writers_of_that_file_left_behind() {
        // Found by scripts/reliability: after 3,000 kills, 256 temp files
        // of pins and health files and 3 writability probes were left.
        let dir = tempfile::tempdir().expect("temp dir");
        let old = Duration::from_secs(3600);
        let abandoned = file_aged(dir.path(), ".pin.tmp-abandoned", old);
        let in_flight = file_aged(dir.path(), ".pin.tmp-in-flight", Duration::ZERO);
        let other_file = file_aged(dir.path(), ".health.tmp-old", old);
        let probe = file_aged(dir.path(), ".tokvault-probe-old", old);
        write_atomic(&dir.path().join("pin"), b"pinned", true).expect("write");
        assert!(
            !abandoned.exists(),
            "an hour-old temp file of the same file stays"
        );
        assert!(in_flight.exists(), "a temp file being written was removed");
        assert!(other_file.exists(), "another file's temp file was removed");
        assert_eq!(
            std::fs::read(dir.path().join("pin")).expect("read"),
            b"pinned"
        );

        let store = Store::new(
            dir.path().join("vault.tokvault"),
            dir.path().join("state"),
            false,
        );
        store.check_writable().expect("writable");
        assert!(!probe.exists(), "an hour-old probe stays");
    }
}
