//! The vault on disk: one resolved path, a sidecar lock, reads, writes
//! (atomic beside the vault, or in place with a journal when the vault is a
//! mount point), rollback pins, and the rescue file that keeps tokens the
//! vault could not take until a later run puts them back.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use vault_format::{OpenError, Pin, PinStatus, Vault};

use crate::error::{CliError, Exit, Result};
use crate::fsio::{self, FileLock, Reservation};
use crate::keys::Keys;

/// The vault path and where its pin and rescue file live.
pub(crate) struct Store {
    /// Resolved once ([`fsio::resolve`]): every lock, temp file, rename and
    /// pin uses this spelling.
    pub(crate) path: PathBuf,
    state_dir: PathBuf,
    accept_rollback: bool,
    lock_timeout: Duration,
}

/// Held while a read-modify-write runs; writing the vault needs one.
pub(crate) struct LockGuard {
    _lock: FileLock,
}

/// How [`Store::lock_or`] ended.
pub(crate) enum Locked<T> {
    Guard(LockGuard),
    Ready(T),
}

/// What to do when the vault cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IfWriteFails {
    /// Report it; nothing is lost that the user cannot redo.
    Fail,
    /// The change holds tokens a server may already have rotated: keep it
    /// in the rescue file, which the next run puts back.
    Rescue,
}

impl Store {
    pub(crate) fn new(
        path: &Path,
        state_dir: PathBuf,
        accept_rollback: bool,
        lock_timeout: Duration,
    ) -> Result<Self> {
        let path = fsio::resolve(path)
            .map_err(|e| CliError::io("cannot resolve the vault path", path, &e))?;
        Ok(Self {
            path,
            state_dir,
            accept_rollback,
            lock_timeout,
        })
    }

    fn dir(&self) -> PathBuf {
        fsio::parent_of(&self.path)
    }

    /// Takes the exclusive lock on `<vault>.lock`, waiting up to
    /// `--lock-timeout`. The vault's directory must be trusted.
    pub(crate) fn lock(&self) -> Result<LockGuard> {
        self.lock_within(self.lock_timeout)
    }

    /// [`Store::lock`], asking `ready` about every quarter second while
    /// another process holds the lock: what it returns ends the wait (a
    /// reader that finds the token it needs, saved by the lock holder).
    pub(crate) fn lock_or<T>(&self, mut ready: impl FnMut() -> Option<T>) -> Result<Locked<T>> {
        let started = std::time::Instant::now();
        loop {
            let left = self.lock_timeout.saturating_sub(started.elapsed());
            match self.lock_within(left.min(Duration::from_millis(250))) {
                Ok(guard) => return Ok(Locked::Guard(guard)),
                Err(error) if error.exit == Exit::Temporary && !left.is_zero() => {
                    if let Some(value) = ready() {
                        return Ok(Locked::Ready(value));
                    }
                }
                Err(error) if error.exit == Exit::Temporary => {
                    return Err(self.busy(self.lock_timeout));
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn busy(&self, waited: Duration) -> CliError {
        CliError::temporary(format!(
            "another tokvault holds the lock on {} (waited {}s); retry later or raise --lock-timeout",
            self.path.display(),
            waited.as_secs()
        ))
    }

    fn lock_within(&self, timeout: Duration) -> Result<LockGuard> {
        fsio::check_trusted_dir(&self.dir(), "the vault's directory")?;
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let lock = fsio::lock_file(Path::new(&lock_path), timeout, || self.busy(timeout))?;
        // Temp files of writers killed before their rename: only a lock
        // holder writes them, so under the lock none is in use.
        fsio::remove_leftovers(&self.dir(), &fsio::temp_prefix(&self.path), Duration::ZERO);
        Ok(LockGuard { _lock: lock })
    }

    /// Fails early, before a login's browser flow, when the vault's
    /// directory cannot take a new file.
    pub(crate) fn check_writable(&self) -> Result<()> {
        let dir = self.dir();
        fsio::remove_leftovers(&dir, ".tokvault-probe-", fsio::ABANDONED_AFTER);
        let probe = dir.join(format!(".tokvault-probe-{}", fsio::random_suffix()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|e| {
                CliError::io(
                    "the vault's directory is not writable, so nothing could be saved:",
                    &dir,
                    &e,
                )
            })?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    pub(crate) fn read(&self) -> Result<Vec<u8>> {
        self.read_optional()?.ok_or_else(|| {
            CliError::failure(format!(
                "no vault at {}: create one with `tokvault init -r RECIPIENT`, or pass --vault",
                self.path.display()
            ))
        })
    }

    fn read_optional(&self) -> Result<Option<Vec<u8>>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::io("cannot read the vault", &self.path, &e)),
        }
    }

    pub(crate) fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Writes a new vault (never over an existing file) and pins it.
    pub(crate) fn create(&self, _guard: &LockGuard, bytes: &[u8], vault: &Vault) -> Result<()> {
        fsio::write_atomic(&self.path, bytes, false)?;
        self.save_pin(&vault.pin())
    }

    /// The one read-modify-write: under the lock, open (putting back a
    /// rescue file first), change, seal, write, pin.
    pub(crate) fn update<T>(
        &self,
        keys: &mut Keys,
        if_fails: IfWriteFails,
        change: impl FnOnce(&mut Vault) -> Result<T>,
    ) -> Result<T> {
        let guard = self.lock()?;
        let mut vault = self.open_locked(&guard, keys)?;
        let value = change(&mut vault)?;
        let mut saver = Saver::new(self, if_fails);
        let saved = saver.save(&guard, &mut vault)?;
        saver.finish();
        match saved {
            Saved::Vault => Ok(value),
            Saved::Rescue(path) => Err(rescued_error(self, &path)),
        }
    }

    /// `state_dir/KIND/<first 16 bytes of sha256(resolved vault path)>`.
    fn state_path(&self, kind: &str) -> PathBuf {
        let digest = Sha256::digest(self.path.as_os_str().as_encoded_bytes());
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.state_dir.join(kind).join(name)
    }

    /// A private directory under the state directory, created when
    /// missing; both must be trusted.
    fn state_subdir(&self, path: &Path) -> Result<()> {
        let dir = fsio::parent_of(path);
        fsio::ensure_private_dir(&dir)?;
        fsio::check_trusted_dir(&self.state_dir, "the state directory")?;
        fsio::check_trusted_dir(&dir, "the state directory")
    }

    fn pin_path(&self) -> PathBuf {
        self.state_path("pins")
    }

    /// Where refresh health (failure streaks, outcome counters) is kept.
    pub(crate) fn health_path(&self) -> PathBuf {
        self.state_path("health")
    }

    /// The lock of the health file; it waits no longer than the vault's.
    pub(crate) fn lock_health(&self) -> Result<FileLock> {
        let path = self.health_path();
        self.state_subdir(&path)?;
        let mut lock_path = path.into_os_string();
        lock_path.push(".lock");
        let timeout = self.lock_timeout;
        fsio::lock_file(Path::new(&lock_path), timeout, || {
            CliError::temporary(format!(
                "another tokvault holds the lock on the refresh health file (waited {}s)",
                timeout.as_secs()
            ))
        })
    }

    /// The sealed vault a failed write left (`state_dir/rescue/<key>.tokvault`).
    pub(crate) fn rescue_path(&self) -> PathBuf {
        let mut path = self.state_path("rescue").into_os_string();
        path.push(".tokvault");
        PathBuf::from(path)
    }

    fn write_rescue(&self, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.rescue_path();
        self.state_subdir(&path)?;
        fsio::write_atomic(&path, bytes, true)?;
        Ok(path)
    }

    fn read_rescue(&self) -> Result<Option<Vec<u8>>> {
        let path = self.rescue_path();
        match std::fs::read(&path) {
            Ok(bytes) => {
                self.state_subdir(&path)?;
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::io("cannot read the rescue file", &path, &e)),
        }
    }

    fn remove_rescue(&self) {
        let path = self.rescue_path();
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove the rescue file {}: {e}", path.display());
        }
    }

    fn load_pin(&self) -> Result<Option<Pin>> {
        let path = self.pin_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                self.state_subdir(&path)?;
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
        let Ok(_guard) = self.lock_within(Duration::ZERO) else {
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
        let stored = self.load_pin()?;
        Ok(match Pin::classify_header(stored.as_ref(), header, mac) {
            PinStatus::New => "none (not opened here before)".to_owned(),
            PinStatus::DifferentVault => {
                "DIFFERENT VAULT than the one pinned for this path".to_owned()
            }
            PinStatus::Newer { pinned } => format!("newer than the pinned generation {pinned}"),
            PinStatus::Rollback { pinned, .. } => {
                format!("OLDER than the pinned generation {pinned}: rollback")
            }
            PinStatus::Same => "agrees".to_owned(),
            PinStatus::Fork { generation } => {
                format!("DIFFERS from the pinned generation {generation}: fork")
            }
            _ => "does not match its rollback pin".to_owned(),
        })
    }

    fn save_pin(&self, pin: &Pin) -> Result<()> {
        let path = self.pin_path();
        self.state_subdir(&path)?;
        let text = format!("# rollback pin for {}\n{pin}\n", self.path.display());
        fsio::write_atomic(&path, text.as_bytes(), true)
    }

    /// Opens the vault under the lock, prompting for a passphrase on a TTY
    /// when identities did not match and the vault has a passphrase slot,
    /// then checks the pin (a new or newer vault moves it). A rescue file
    /// left by a failed write is put back first when it is newer.
    pub(crate) fn open_locked(&self, guard: &LockGuard, keys: &mut Keys) -> Result<Vault> {
        let Some(rescued) = self.read_rescue()? else {
            let bytes = self.read()?;
            return self.open_as(&bytes, keys, true);
        };
        let current = self
            .read_optional()?
            .map(|bytes| self.decrypt(&bytes, keys));
        let candidate = match try_open(&rescued, keys) {
            Ok(candidate) => candidate,
            Err(error) => {
                tracing::warn!(
                    "the rescue file {} does not open with the keys given ({error}); it is left as it is",
                    self.rescue_path().display()
                );
                return self.checked(current);
            }
        };
        match &current {
            Some(Ok(vault)) if vault.vault_id() != candidate.vault_id() => {
                tracing::warn!(
                    "the rescue file {} holds another vault than {}; it is left as it is",
                    self.rescue_path().display(),
                    self.path.display()
                );
                self.checked(current)
            }
            Some(Ok(vault)) if vault.generation() >= candidate.generation() => {
                // Put back already (or overtaken): nothing left to rescue.
                self.remove_rescue();
                self.checked(current)
            }
            _ => {
                self.check_pin(&candidate, true)
                    .map_err(|e| CliError::new(e.exit, format!("the rescue file: {e}")))?;
                self.restore(guard, &rescued, &candidate)?;
                Ok(candidate)
            }
        }
    }

    /// Writes the rescued vault back in place of the vault.
    fn restore(&self, guard: &LockGuard, rescued: &[u8], vault: &Vault) -> Result<()> {
        let rescue = self.rescue_path();
        self.replace(guard, rescued).map_err(|e| {
            CliError::new(
                Exit::NotSaved,
                format!(
                    "the rescue file {} holds newer tokens than {}, which cannot take them yet ({e}); \
                     nothing was refreshed. Fix that (free space, permissions), then run again",
                    rescue.display(),
                    self.path.display()
                ),
            )
        })?;
        if let Err(e) = self.save_pin(&vault.pin()) {
            tracing::warn!("the rollback pin was not moved: {e}");
        }
        self.remove_rescue();
        tracing::warn!(
            "{} was updated from the rescue file {} that a failed write left",
            self.path.display(),
            rescue.display()
        );
        Ok(())
    }

    /// `current` (the vault as read under the lock) after its pin check.
    fn checked(&self, current: Option<Result<Vault>>) -> Result<Vault> {
        let vault = match current {
            Some(opened) => opened?,
            // No vault file: say so as a read does.
            None => {
                return Err(self.read().err().unwrap_or_else(|| {
                    CliError::failure("the vault appeared while it was being read; run again")
                }));
            }
        };
        self.check_pin(&vault, true)?;
        Ok(vault)
    }

    /// For commands that read without the lock (`token` on a valid token,
    /// `list`, `export`, `verify`). A writer renames the new vault into
    /// place and then moves the pin, so a reader can pair an old file with
    /// the new pin: when the open is refused, the file is read again and,
    /// if it changed, opened again. Such a reader moves the pin only if it
    /// can take the lock at once (pins move under the lock). A rescue file
    /// is put back under the lock first; if it cannot be, its tokens are
    /// read from it.
    pub(crate) fn read_and_open_unlocked(&self, keys: &mut Keys) -> Result<Vault> {
        if self.rescue_path().exists() {
            let opened = self.lock().and_then(|guard| self.open_locked(&guard, keys));
            return match opened {
                Err(error) if error.exit == Exit::NotSaved => {
                    tracing::warn!("{error}");
                    self.open_rescue_unlocked(keys)
                }
                other => other,
            };
        }
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

    fn open_rescue_unlocked(&self, keys: &mut Keys) -> Result<Vault> {
        let bytes = self.read_rescue()?.ok_or_else(|| {
            CliError::failure("the rescue file disappeared while it was being read; run again")
        })?;
        let vault = self.decrypt(&bytes, keys)?;
        let status = Pin::classify(self.load_pin()?.as_ref(), &vault.pin());
        if !matches!(
            status,
            PinStatus::New | PinStatus::Newer { .. } | PinStatus::Same
        ) {
            return Err(CliError::untrusted(format!(
                "the rescue file {} does not match the rollback pin of {}",
                self.rescue_path().display(),
                self.path.display()
            )));
        }
        Ok(vault)
    }

    fn open_as(&self, bytes: &[u8], keys: &mut Keys, locked: bool) -> Result<Vault> {
        let vault = self.decrypt(bytes, keys)?;
        self.check_pin(&vault, locked)?;
        Ok(vault)
    }

    fn decrypt(&self, bytes: &[u8], keys: &mut Keys) -> Result<Vault> {
        match try_open(bytes, keys) {
            Err(OpenError::CannotDecrypt(_)) if keys.can_prompt() && has_passphrase_slot(bytes) => {
                keys.prompt_passphrase()?;
                try_open(bytes, keys)
            }
            other => other,
        }
        .map_err(|e| self.open_error(&e, keys))
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

    /// Replaces the vault with `bytes`: renamed into place, or (a mount
    /// point, which rename cannot replace) written in place with the rescue
    /// file as its journal until the write is whole.
    fn replace(&self, _guard: &LockGuard, bytes: &[u8]) -> Result<()> {
        self.warn_if_shared();
        if !fsio::is_mount_point(&self.path) {
            match fsio::write_atomic_io(&self.path, bytes, true, 0o600) {
                Err(e) if fsio::is_busy(&e) => {}
                other => return other.map_err(|e| CliError::io("cannot write", &self.path, &e)),
            }
        }
        self.replace_in_place(bytes)
    }

    fn replace_in_place(&self, bytes: &[u8]) -> Result<()> {
        self.write_rescue(bytes).map_err(|e| {
            CliError::failure(format!(
                "{} is a mount point, written in place only with a copy in the rescue file, which failed: {e}",
                self.path.display()
            ))
        })?;
        fsio::write_in_place(&self.path, bytes)
            .map_err(|e| CliError::io("cannot write (in place)", &self.path, &e))?;
        self.remove_rescue();
        Ok(())
    }

    fn warn_if_shared(&self) {
        if let Ok(metadata) = std::fs::metadata(&self.path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %self.path.display(), "the vault was readable by group or others; the new file is 0600");
        }
    }
}

/// Where a save went.
#[derive(Debug)]
pub(crate) enum Saved {
    /// Into the vault.
    Vault,
    /// Into the rescue file at this path: the vault could not be written.
    Rescue(PathBuf),
}

/// The error of a command whose change went to the rescue file.
pub(crate) fn rescued_error(store: &Store, rescue: &Path) -> CliError {
    CliError::new(
        Exit::NotSaved,
        format!(
            "{} could not be written; the new tokens were saved in the rescue file {} instead, \
             and the next tokvault command that opens the vault puts them back. Fix the cause \
             (see the error above: free space, permissions), then run `tokvault list`",
            store.path.display(),
            rescue.display()
        ),
    )
}

/// Saves a vault whose tokens a server may already have rotated. Space
/// taken before the first token request (a ballast file beside the vault)
/// is released when a save needs it, and what the vault cannot take goes to
/// the rescue file. The pin moves once, when the run is done ([`Saver::finish`]).
pub(crate) struct Saver<'s> {
    store: &'s Store,
    if_fails: IfWriteFails,
    ballast: Option<Reservation>,
    /// Once one save went to the rescue file, the later ones go there too.
    rescued: Option<PathBuf>,
    /// The pin of the last vault written, moved by `finish`.
    pin: Option<Pin>,
}

impl<'s> Saver<'s> {
    pub(crate) fn new(store: &'s Store, if_fails: IfWriteFails) -> Self {
        Self {
            store,
            if_fails,
            ballast: None,
            rescued: None,
            pin: None,
        }
    }

    /// Before the first token request: takes `size` bytes beside the vault
    /// (written in full and fsynced), so that a full disk or a quota stops
    /// the run before any token is rotated. A vault that is a mount point
    /// is checked writable in place instead.
    pub(crate) fn reserve(&mut self, _guard: &LockGuard, size: u64) -> Result<()> {
        let path = &self.store.path;
        if fsio::is_mount_point(path) {
            fsio::check_writable_in_place(path).map_err(|e| {
                CliError::io(
                    "nothing was refreshed: the vault cannot be written",
                    path,
                    &e,
                )
            })?;
            return Ok(());
        }
        let ballast = Reservation::new(path, size).map_err(|e| {
            CliError::new(
                Exit::Temporary,
                format!(
                    "nothing was refreshed: cannot reserve {size} bytes beside {} for the refreshed \
                     vault ({e}); free space (or raise the quota) in {}, then run again",
                    path.display(),
                    fsio::parent_of(path).display()
                ),
            )
        })?;
        self.ballast = Some(ballast);
        Ok(())
    }

    /// Where the saves went when not into the vault.
    pub(crate) fn rescued(&self) -> Option<&Path> {
        self.rescued.as_deref()
    }

    /// Seals `vault` and writes it (or, failing that, the rescue file).
    pub(crate) fn save(&mut self, guard: &LockGuard, vault: &mut Vault) -> Result<Saved> {
        let bytes = vault
            .seal(crate::refresh::unix_now())
            .map_err(|e| CliError::failure(format!("cannot encrypt the vault: {e}")))?;
        if self.rescued.is_none() {
            match self.write(guard, &bytes) {
                Ok(()) => {
                    self.pin = Some(vault.pin());
                    return Ok(Saved::Vault);
                }
                Err(error) if self.if_fails == IfWriteFails::Rescue => {
                    tracing::error!("{error}");
                }
                Err(error) => return Err(error),
            }
        }
        match self.store.write_rescue(&bytes) {
            Ok(path) => {
                self.rescued = Some(path.clone());
                Ok(Saved::Rescue(path))
            }
            Err(error) => Err(CliError::new(
                Exit::NotSaved,
                format!(
                    "the refreshed tokens could not be saved: neither {} nor the rescue file could be \
                     written ({error}). Records whose provider rotates refresh tokens will need \
                     `tokvault login NAME --again`",
                    self.store.path.display()
                ),
            )),
        }
    }

    /// Writes the vault; when that fails and space was reserved, releases
    /// it and tries once more.
    fn write(&mut self, guard: &LockGuard, bytes: &[u8]) -> Result<()> {
        match self.store.replace(guard, bytes) {
            Err(error) if self.ballast.is_some() => {
                tracing::warn!("{error}; releasing the space reserved for it and trying again");
                drop(self.ballast.take());
                self.store.replace(guard, bytes)
            }
            other => other,
        }
    }

    /// Whether a next save still has its space: none went to the rescue
    /// file, and the reserved space, if any was taken, is still there.
    pub(crate) fn has_room(&self, reserved: bool) -> bool {
        self.rescued.is_none() && (!reserved || self.ballast.is_some())
    }

    /// Moves the rollback pin to the last vault written.
    pub(crate) fn finish(self) {
        if let Some(pin) = &self.pin
            && let Err(e) = self.store.save_pin(pin)
        {
            tracing::warn!("the rollback pin was not moved: {e}");
        }
    }
}

fn try_open(bytes: &[u8], keys: &Keys) -> std::result::Result<Vault, OpenError> {
    Vault::open(bytes, &keys.unlock())
}

fn has_passphrase_slot(bytes: &[u8]) -> bool {
    vault_format::inspect(bytes).is_ok_and(|(header, _)| header.has_passphrase_slot())
}
