//! A vault in a local file: a sidecar `flock` as the lease, writes to a temp
//! file beside the vault (fsync, rename, fsync of the directory), or in
//! place with the rescue file as journal when the vault is a mount point.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::{Backend, Lease, Snapshot, Version};
use crate::error::{EngineError, Result};
use crate::fsio::{self, FileLock, Reservation};
use crate::state::StateDir;

/// A vault file. Its path is resolved once ([`fsio::resolve`]): every lock,
/// temp file, rename and state key uses that one spelling.
#[derive(Debug)]
pub struct FileBackend {
    path: PathBuf,
    location: String,
    /// Where an in-place write keeps its copy until it is whole: the
    /// vault's rescue file, which the next open puts back if needed.
    journal: StateDir,
}

impl FileBackend {
    /// The vault at `path`, with its local state under `state_dir`.
    pub fn new(path: &Path, state_dir: &Path) -> Result<Self> {
        let path = fsio::resolve(path)
            .map_err(|e| EngineError::io("cannot resolve the vault path", path, e))?;
        let location = path.to_string_lossy().into_owned();
        Ok(Self {
            journal: StateDir::new(state_dir.to_path_buf(), &location),
            path,
            location,
        })
    }

    /// The resolved path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> PathBuf {
        fsio::parent_of(&self.path)
    }

    fn read_now(&self) -> Result<Option<Snapshot>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(Snapshot {
                version: version_of(&bytes),
                bytes,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EngineError::io("cannot read the vault", &self.path, e)),
        }
    }

    /// Replaces the vault with `bytes`: renamed into place, or (a mount
    /// point, which rename cannot replace) written in place with the
    /// journal holding a whole copy until the write is done.
    fn replace(&self, bytes: &[u8]) -> Result<()> {
        self.warn_if_shared();
        if !fsio::is_mount_point(&self.path) {
            match fsio::write_atomic_io(&self.path, bytes, true, 0o600) {
                Err(e) if fsio::is_busy(&e) => {}
                other => return other.map_err(|e| EngineError::io("cannot write", &self.path, e)),
            }
        }
        self.journal.write_rescue(bytes).map_err(|e| {
            EngineError::failure(format!(
                "{} is a mount point, written in place only with a copy in the rescue file, which failed: {e}",
                self.path.display()
            ))
        })?;
        fsio::write_in_place(&self.path, bytes)
            .map_err(|e| EngineError::io("cannot write (in place)", &self.path, e))?;
        self.journal.remove_rescue();
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

fn version_of(bytes: &[u8]) -> Version {
    Version(fsio::hex(&Sha256::digest(bytes)))
}

/// The `flock` on `<vault>.lock`, and the space reserved for the next write.
#[derive(Debug)]
pub struct FileLease<'a> {
    backend: &'a FileBackend,
    _lock: FileLock,
    ballast: Option<Reservation>,
    /// A commit needed the reserved room and released it.
    released: bool,
}

impl Backend for FileBackend {
    type Lease<'a> = FileLease<'a>;

    fn location(&self) -> &str {
        &self.location
    }

    async fn read(&self) -> Result<Option<Snapshot>> {
        self.read_now()
    }

    async fn acquire(&self, wait: Duration) -> Result<FileLease<'_>> {
        fsio::check_trusted_dir(&self.dir(), "the vault's directory")?;
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let lock = fsio::lock_file(Path::new(&lock_path), wait, || EngineError::Busy {
            location: self.location.clone(),
            waited: wait,
        })?;
        // Temp files of writers killed before their rename: only a lock
        // holder writes them, so under the lock none is in use.
        fsio::remove_leftovers(&self.dir(), &fsio::temp_prefix(&self.path), Duration::ZERO);
        Ok(FileLease {
            backend: self,
            _lock: lock,
            ballast: None,
            released: false,
        })
    }

    fn prepare_new(&self) -> Result<()> {
        match self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => fsio::ensure_private_dir(parent),
            None => Ok(()),
        }
    }

    async fn check_writable(&self) -> Result<()> {
        let dir = self.dir();
        fsio::probe_writable_dir(&dir).map_err(|e| {
            EngineError::io(
                "the vault's directory is not writable, so nothing could be saved:",
                &dir,
                e,
            )
        })
    }
}

impl Lease for FileLease<'_> {
    async fn reserve(&mut self, size: u64) -> Result<()> {
        let path = &self.backend.path;
        if fsio::is_mount_point(path) {
            return fsio::check_writable_in_place(path)
                .map_err(|e| EngineError::io("the vault cannot be written:", path, e));
        }
        let ballast = Reservation::new(path, size).map_err(|e| {
            EngineError::io(&format!("cannot reserve {size} bytes beside"), path, e)
        })?;
        self.ballast = Some(ballast);
        Ok(())
    }

    async fn commit(&mut self, expected: Option<&Version>, bytes: &[u8]) -> Result<Version> {
        let backend = self.backend;
        let Some(expected) = expected else {
            fsio::write_atomic(&backend.path, bytes, false)?;
            return Ok(version_of(bytes));
        };
        let current = backend.read_now()?.map(|s| s.version);
        if current.as_ref() != Some(expected) {
            return Err(EngineError::Conflict {
                location: backend.location.clone(),
            });
        }
        match backend.replace(bytes) {
            Err(error) if self.ballast.is_some() => {
                tracing::warn!("{error}; releasing the space reserved for it and trying again");
                drop(self.ballast.take());
                self.released = true;
                backend.replace(bytes)?;
            }
            other => other?,
        }
        Ok(version_of(bytes))
    }

    fn has_room(&self) -> bool {
        !self.released
    }

    fn remaining(&self) -> Option<Duration> {
        None
    }
}
