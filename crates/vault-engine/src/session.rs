//! A vault in use: its backend, its local state and the keys to open it.
//! Reads take no lease; every write goes through [`Session::update`] (or a
//! [`Saver`] under a lease the caller holds), which opens under the lease,
//! checks the rollback pin, puts back a rescue file first, seals, commits
//! with compare-and-swap and moves the pin.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vault_format::{OpenError, Pin, PinStatus, SecretString, Vault};
use zeroize::Zeroizing;

use crate::callbacks::Callbacks;
use crate::error::{EngineError, ErrorKind, Result};
use crate::state::StateDir;
use crate::store::{Backend, Lease, Version};
use crate::unlock::UnlockMaterial;

/// How a session treats what it opens.
#[derive(Clone, Copy, Debug)]
pub struct SessionOptions {
    /// Accept a vault that fails its rollback pin, and move the pin to it.
    pub accept_rollback: bool,
    /// How long to wait for another holder of the lease.
    pub lock_wait: Duration,
}

/// What to do when the vault cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfWriteFails {
    /// Report it; nothing is lost that the user cannot redo.
    Fail,
    /// The change holds tokens a server may already have rotated: keep it
    /// in the rescue file, which the next open puts back.
    Rescue,
}

/// How [`Session::lock_or`] ended.
pub enum Locked<L, T> {
    /// The lease.
    Lease(L),
    /// What the caller's check found while the lease was busy.
    Ready(T),
}

/// A vault opened under the lease, and the version it was read at.
#[derive(Debug)]
pub struct Opened {
    /// The vault.
    pub vault: Vault,
    /// Its version as stored (`None`: the vault was created in this lease).
    pub version: Option<Version>,
    /// Its size as stored, in bytes.
    pub size: u64,
}

/// One vault and what is needed to use it.
pub struct Session<B: Backend> {
    backend: B,
    state: StateDir,
    unlock: Mutex<UnlockMaterial>,
    callbacks: Box<dyn Callbacks>,
    options: SessionOptions,
}

impl<B: Backend> std::fmt::Debug for Session<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("location", &self.backend.location())
            .field("state", &self.state)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Unix seconds now (0 before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<B: Backend> Session<B> {
    /// A session on `backend`, with local state under `state_dir`.
    pub fn new(
        backend: B,
        state_dir: PathBuf,
        unlock: UnlockMaterial,
        callbacks: Box<dyn Callbacks>,
        options: SessionOptions,
    ) -> Self {
        let state = StateDir::new(state_dir, backend.location());
        Self {
            backend,
            state,
            unlock: Mutex::new(unlock),
            callbacks,
            options,
        }
    }

    /// Where the vault is, for messages.
    pub fn location(&self) -> &str {
        self.backend.location()
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The vault's local state.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The session's options.
    pub fn options(&self) -> SessionOptions {
        self.options
    }

    fn material(&self) -> MutexGuard<'_, UnlockMaterial> {
        self.unlock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The passphrase given (or asked for), if any.
    pub fn passphrase(&self) -> Option<SecretString> {
        self.material().passphrase.clone()
    }

    /// Whether a vault exists.
    pub async fn exists(&self) -> Result<bool> {
        Ok(self.backend.read().await?.is_some())
    }

    /// The error of an operation that needs a vault where there is none.
    pub fn no_vault(&self) -> EngineError {
        EngineError::failure(format!(
            "no vault at {}: create one with `tokvault init -r RECIPIENT`, or pass --vault",
            self.location()
        ))
    }

    /// The lease on a vault that must already exist. When it cannot be
    /// taken because there is no vault (not even its directory), the error
    /// is [`Session::no_vault`], what readers say, not the directory's.
    pub async fn lock_existing(&self) -> Result<B::Lease<'_>> {
        match self.lock().await {
            Ok(lease) => Ok(lease),
            Err(error) => match self.backend.read().await {
                Ok(None) => Err(self.no_vault()),
                _ => Err(error),
            },
        }
    }

    /// Takes the lease, waiting up to the session's lock wait.
    pub async fn lock(&self) -> Result<B::Lease<'_>> {
        self.backend.acquire(self.options.lock_wait).await
    }

    /// [`Session::lock`], asking `ready` about every quarter second while
    /// another process holds the lease: what it returns ends the wait (a
    /// reader that finds the token it needs, saved by the holder).
    pub async fn lock_or<T>(
        &self,
        mut ready: impl AsyncFnMut() -> Option<T>,
    ) -> Result<Locked<B::Lease<'_>, T>> {
        let started = Instant::now();
        let wait = self.options.lock_wait;
        loop {
            let left = wait.saturating_sub(started.elapsed());
            match self
                .backend
                .acquire(left.min(Duration::from_millis(250)))
                .await
            {
                Ok(lease) => return Ok(Locked::Lease(lease)),
                Err(EngineError::Busy { .. }) if !left.is_zero() => {
                    if let Some(value) = ready().await {
                        return Ok(Locked::Ready(value));
                    }
                }
                Err(EngineError::Busy { location, .. }) => {
                    return Err(EngineError::Busy {
                        location,
                        waited: wait,
                    });
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Opens `bytes` with the session's keys, asking for a passphrase once
    /// when the identities do not open it and it has a passphrase slot. No
    /// pin check.
    pub fn decrypt(&self, bytes: &[u8]) -> Result<Vault> {
        let mut material = self.material();
        let opened = match Vault::open(bytes, &material.unlock()) {
            Err(OpenError::CannotDecrypt(_))
                if material.passphrase.is_none()
                    && !material.asked
                    && has_passphrase_slot(bytes) =>
            {
                material.asked = true;
                match self.callbacks.request_passphrase("Vault passphrase: ")? {
                    Some(passphrase) => {
                        material.passphrase = Some(passphrase);
                        Vault::open(bytes, &material.unlock())
                    }
                    None => Vault::open(bytes, &material.unlock()),
                }
            }
            other => other,
        };
        opened.map_err(|error| match error {
            // Nothing was tried: the cause is the missing key, not the file.
            OpenError::CannotDecrypt(_) if material.is_empty() => EngineError::untrusted(format!(
                "{}: no identity or passphrase was given to open it: use -i PATH \
                 (or TOKVAULT_IDENTITY, or put the identity at $XDG_CONFIG_HOME/tokvault/identity.txt) \
                 or --passphrase-file PATH",
                self.location()
            )),
            error => EngineError::untrusted(format!("{}: {error}", self.location())),
        })
    }

    /// Opens another vault's `bytes` (`import` of a vault) with the same
    /// keys; no pin is involved. `name` is for messages.
    pub fn open_other(&self, bytes: &[u8], name: &str) -> Result<Vault> {
        let material = self.material();
        Vault::open(bytes, &material.unlock())
            .map_err(|e| EngineError::untrusted(format!("{name}: {e}")))
    }

    /// Decrypts an age-encrypted input (`input` names it in messages) with
    /// the session's identities, in memory.
    pub fn decrypt_age_input(&self, bytes: &[u8], input: &str) -> Result<Zeroizing<Vec<u8>>> {
        let material = self.material();
        let identities: Vec<&dyn age::Identity> = material
            .identities
            .iter()
            .map(|identity| identity.as_ref() as &dyn age::Identity)
            .collect();
        Ok(crate::age_input::decrypt(
            bytes,
            input,
            &identities,
            &|| material.recipients(),
        )?)
    }

    /// For readers that take no lease (`token` on a valid token, `list`,
    /// `export`, `verify`). A writer commits the new vault and then moves
    /// the pin, so a reader can pair an old file with the new pin: when the
    /// open is refused, the vault is read again and, if it changed, opened
    /// again. Such a reader moves the pin only if it can take the lease at
    /// once. A rescue file is put back under the lease first; if it cannot
    /// be, the tokens are read from it.
    pub async fn open(&self) -> Result<Vault> {
        if self.state.has_rescue() {
            let opened = match self.lock().await {
                Ok(mut lease) => self.open_locked(&mut lease).await.map(|o| o.vault),
                Err(error) => Err(error),
            };
            return match opened {
                Err(error) if error.kind() == ErrorKind::NotSaved => {
                    tracing::warn!("{error}");
                    self.open_rescue_unlocked()
                }
                other => other,
            };
        }
        let mut bytes = self.read_bytes().await?;
        for _ in 0..5 {
            match self.checked(&bytes, false).await {
                Err(error) if error.kind() == ErrorKind::Untrusted => {
                    let again = self.read_bytes().await?;
                    if again == bytes {
                        return Err(error);
                    }
                    bytes = again;
                }
                other => return other,
            }
        }
        self.checked(&bytes, false).await
    }

    async fn read_bytes(&self) -> Result<Vec<u8>> {
        match self.backend.read().await? {
            Some(snapshot) => Ok(snapshot.bytes),
            None => Err(self.no_vault()),
        }
    }

    /// Decrypts and checks the pin (a new or newer vault moves it: at once
    /// under the lease, else only if the lease is free).
    async fn checked(&self, bytes: &[u8], locked: bool) -> Result<Vault> {
        let vault = self.decrypt(bytes)?;
        self.check_pin(&vault, locked).await?;
        Ok(vault)
    }

    fn open_rescue_unlocked(&self) -> Result<Vault> {
        let bytes = self.state.read_rescue()?.ok_or_else(|| {
            EngineError::failure("the rescue file disappeared while it was being read; run again")
        })?;
        let vault = self.decrypt(&bytes)?;
        let status = Pin::classify(self.state.load_pin()?.as_ref(), &vault.pin());
        if !matches!(
            status,
            PinStatus::New | PinStatus::Newer { .. } | PinStatus::Same
        ) {
            return Err(EngineError::untrusted(format!(
                "the rescue file {} does not match the rollback pin of {}",
                self.state.rescue_path().display(),
                self.location()
            )));
        }
        Ok(vault)
    }

    /// Opens the vault under `lease` and checks its pin. A rescue file that
    /// a failed write left is put back first when it opens with the same
    /// keys, is newer than the vault and passes the pin.
    pub async fn open_locked(&self, lease: &mut B::Lease<'_>) -> Result<Opened> {
        let snapshot = self.backend.read().await?;
        let Some(rescued) = self.state.read_rescue()? else {
            let snapshot = snapshot.ok_or_else(|| self.no_vault())?;
            let vault = self.checked(&snapshot.bytes, true).await?;
            return Ok(Opened {
                vault,
                version: Some(snapshot.version),
                size: snapshot.bytes.len() as u64,
            });
        };
        let rescue = self.state.rescue_path();
        let current = snapshot.as_ref().map(|s| self.decrypt(&s.bytes));
        let size = snapshot.as_ref().map_or(0, |s| s.bytes.len() as u64);
        let version = snapshot.map(|s| s.version);
        let candidate = match self.decrypt(&rescued) {
            Ok(candidate) => candidate,
            Err(error) => {
                tracing::warn!(
                    "the rescue file {} does not open with the keys given ({error}); it is left as it is",
                    rescue.display()
                );
                return self.keep(current, version, size).await;
            }
        };
        match &current {
            Some(Ok(vault)) if vault.vault_id() != candidate.vault_id() => {
                tracing::warn!(
                    "the rescue file {} holds another vault than {}; it is left as it is",
                    rescue.display(),
                    self.location()
                );
                self.keep(current, version, size).await
            }
            Some(Ok(vault)) if vault.pin() == candidate.pin() => {
                // Put back already: nothing left to rescue.
                self.state.remove_rescue();
                self.keep(current, version, size).await
            }
            Some(Ok(vault)) if vault.generation() >= candidate.generation() => {
                // Overtaken by a vault that is not the one rescued: keep the
                // rescued tokens where a person can still find them.
                match self.state.set_rescue_aside() {
                    Ok(aside) => tracing::warn!(
                        "the rescue file {} is older than {} but not part of it; it was kept as {}",
                        rescue.display(),
                        self.location(),
                        aside.display()
                    ),
                    Err(e) => tracing::warn!("the rescue file {} is stale: {e}", rescue.display()),
                }
                self.keep(current, version, size).await
            }
            _ => {
                self.check_pin_only(&candidate)
                    .map_err(|e| e.context("the rescue file"))?;
                let version = self.restore(lease, &rescued, version.as_ref()).await?;
                if let Err(e) = self.state.save_pin(&candidate.pin()) {
                    tracing::warn!("the rollback pin was not moved: {e}");
                }
                Ok(Opened {
                    vault: candidate,
                    version: Some(version),
                    size: rescued.len() as u64,
                })
            }
        }
    }

    /// The vault as read under the lease, once its pin is checked.
    async fn keep(
        &self,
        current: Option<Result<Vault>>,
        version: Option<Version>,
        size: u64,
    ) -> Result<Opened> {
        let vault = current.ok_or_else(|| self.no_vault())??;
        self.check_pin(&vault, true).await?;
        Ok(Opened {
            vault,
            version,
            size,
        })
    }

    /// Writes the rescued vault back in place of the vault.
    async fn restore(
        &self,
        lease: &mut B::Lease<'_>,
        rescued: &[u8],
        expected: Option<&Version>,
    ) -> Result<Version> {
        let rescue = self.state.rescue_path();
        let version = lease.commit(expected, rescued).await.map_err(|e| {
            EngineError::new(
                ErrorKind::NotSaved,
                format!(
                    "the rescue file {} holds newer tokens than {}, which cannot take them yet ({e}); \
                     nothing was refreshed. Fix that (free space, permissions), then run again",
                    rescue.display(),
                    self.location()
                ),
            )
        })?;
        self.state.remove_rescue();
        tracing::warn!(
            "{} was updated from the rescue file {} that a failed write left",
            self.location(),
            rescue.display()
        );
        Ok(version)
    }

    /// The pin check of a vault opened under the lease: `Ok` when it may be
    /// used (the pin is moved by the caller).
    fn check_pin_only(&self, vault: &Vault) -> Result<()> {
        let status = Pin::classify(self.state.load_pin()?.as_ref(), &vault.pin());
        match self.refusal(status) {
            None => Ok(()),
            Some(_) if self.options.accept_rollback => Ok(()),
            Some(explain) => Err(self.pin_error(&explain)),
        }
    }

    async fn check_pin(&self, vault: &Vault, locked: bool) -> Result<()> {
        let opened = vault.pin();
        let status = Pin::classify(self.state.load_pin()?.as_ref(), &opened);
        match status {
            PinStatus::New | PinStatus::Newer { .. } if locked => {
                return self.state.save_pin(&opened);
            }
            PinStatus::New | PinStatus::Newer { .. } => {
                return self.advance_pin_if_free(&opened).await;
            }
            PinStatus::Same => return Ok(()),
            _ => {}
        }
        let explain = self.refusal(status).unwrap_or_default();
        if self.options.accept_rollback {
            tracing::warn!(path = %self.location(), "accepting a vault that {explain} (--accept-rollback)");
            return self.state.save_pin(&opened);
        }
        Err(self.pin_error(&explain))
    }

    /// Why `status` refuses a vault, or `None` when it does not.
    fn refusal(&self, status: PinStatus) -> Option<String> {
        Some(match status {
            PinStatus::New | PinStatus::Newer { .. } | PinStatus::Same => return None,
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
        })
    }

    fn pin_error(&self, explain: &str) -> EngineError {
        EngineError::untrusted(format!(
            "{} {explain}. If you restored it on purpose, run again with --accept-rollback",
            self.location()
        ))
    }

    /// A reader moves the pin forward only if it is still behind, under the
    /// pin's own lock (no lease: a reader of a remote vault sends one GET).
    async fn advance_pin_if_free(&self, opened: &Pin) -> Result<()> {
        self.state.advance_pin(opened)
    }

    /// The one read-modify-write: under the lease, open (putting back a
    /// rescue file first), change, seal, commit, pin.
    pub async fn update<T, E: From<EngineError>>(
        &self,
        if_fails: IfWriteFails,
        change: impl FnOnce(&mut Vault) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut lease = self.lock_existing().await?;
        let opened = self.open_locked(&mut lease).await?;
        let mut vault = opened.vault;
        let value = change(&mut vault)?;
        let mut saver = Saver::new(self, &mut lease, opened.version, if_fails);
        let saved = saver.save(&mut vault).await?;
        saver.finish();
        match saved {
            Saved::Vault => Ok(value),
            Saved::Rescue(path) => Err(rescued_error(self.location(), &path).into()),
        }
    }

    /// Writes a new vault (never over an existing one) and pins it.
    pub async fn create(&self, vault: &mut Vault) -> Result<()> {
        let mut lease = self.lock().await?;
        let bytes = vault
            .seal(unix_now())
            .map_err(|e| EngineError::failure(format!("cannot encrypt the vault: {e}")))?;
        lease.commit(None, &bytes).await?;
        self.state.save_pin(&vault.pin())
    }
}

/// The error of an operation whose change went to the rescue file.
pub fn rescued_error(location: &str, rescue: &Path) -> EngineError {
    EngineError::new(
        ErrorKind::NotSaved,
        format!(
            "{location} could not be written; the new tokens were saved in the rescue file {} instead, \
             and the next tokvault command that opens the vault puts them back. Fix the cause \
             (see the error above: free space, permissions), then run `tokvault list`",
            rescue.display()
        ),
    )
}

/// Where a save went.
#[derive(Debug)]
pub enum Saved {
    /// Into the vault.
    Vault,
    /// Into the rescue file at this path: the vault could not be written.
    Rescue(PathBuf),
}

/// Saves a vault whose tokens a server may already have rotated, under a
/// lease the caller holds: committed with compare-and-swap on the version
/// last read or written, and kept in the rescue file when the vault cannot
/// take it. The pin moves once, in [`Saver::finish`].
pub struct Saver<'s, 'l, B: Backend> {
    session: &'s Session<B>,
    lease: &'l mut B::Lease<'s>,
    version: Option<Version>,
    if_fails: IfWriteFails,
    /// Once one save went to the rescue file, the later ones go there too.
    rescued: Option<PathBuf>,
    /// The pin of the last vault written.
    pin: Option<Pin>,
}

impl<'s, 'l, B: Backend> Saver<'s, 'l, B> {
    /// A saver for the vault read at `version` under `lease`.
    pub fn new(
        session: &'s Session<B>,
        lease: &'l mut B::Lease<'s>,
        version: Option<Version>,
        if_fails: IfWriteFails,
    ) -> Self {
        Self {
            session,
            lease,
            version,
            if_fails,
            rescued: None,
            pin: None,
        }
    }

    /// The lease, to reserve room or check the time left.
    pub fn lease(&mut self) -> &mut B::Lease<'s> {
        self.lease
    }

    /// Where the saves went when not into the vault.
    pub fn rescued(&self) -> Option<&Path> {
        self.rescued.as_deref()
    }

    /// Seals `vault` and commits it (or, failing that, writes the rescue
    /// file when the saver was made to).
    pub async fn save(&mut self, vault: &mut Vault) -> Result<Saved> {
        let bytes = vault
            .seal(unix_now())
            .map_err(|e| EngineError::failure(format!("cannot encrypt the vault: {e}")))?;
        if self.rescued.is_none() {
            match self.lease.commit(self.version.as_ref(), &bytes).await {
                Ok(version) => {
                    self.version = Some(version);
                    self.pin = Some(vault.pin());
                    return Ok(Saved::Vault);
                }
                Err(error) if self.if_fails == IfWriteFails::Rescue => {
                    tracing::error!("{error}");
                }
                Err(error) => return Err(error),
            }
        }
        match self.session.state.write_rescue(&bytes) {
            Ok(path) => {
                self.rescued = Some(path.clone());
                Ok(Saved::Rescue(path))
            }
            Err(error) => Err(EngineError::new(
                ErrorKind::NotSaved,
                format!(
                    "the refreshed tokens could not be saved: neither {} nor the rescue file could be \
                     written ({error}). Records whose provider rotates refresh tokens will need \
                     `tokvault login NAME --again`",
                    self.session.location()
                ),
            )),
        }
    }

    /// Moves the rollback pin to the last vault written.
    pub fn finish(self) {
        if let Some(pin) = &self.pin
            && let Err(e) = self.session.state.save_pin(pin)
        {
            tracing::warn!("the rollback pin was not moved: {e}");
        }
    }
}

fn has_passphrase_slot(bytes: &[u8]) -> bool {
    vault_format::inspect(bytes).is_ok_and(|(header, _)| header.has_passphrase_slot())
}
