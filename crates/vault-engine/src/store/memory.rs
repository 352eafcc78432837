//! A vault in memory, for tests of everything above the storage: it can
//! refuse a commit as a conflict, fail a write, stay busy, and let a lease
//! expire, as a remote store can.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Backend, Lease, Snapshot, Version};
use crate::error::{EngineError, ErrorKind, Result};

/// What the store holds and what it is told to do wrong next.
#[derive(Debug, Default)]
struct Inner {
    bytes: Option<Vec<u8>>,
    /// Bumped on every commit; the version is its decimal form.
    counter: u64,
    held: bool,
    commits: usize,
    /// Commits still to fail as if the disk were full.
    failing_writes: usize,
    /// The next commit finds the vault changed.
    conflict_next: bool,
    /// Leases expire this long after they were taken.
    lease_ttl: Option<Duration>,
    /// Reservations still to refuse.
    failing_reservations: usize,
}

/// A shared in-memory vault; clones see the same one.
#[derive(Clone, Debug)]
pub struct MemoryBackend {
    location: String,
    inner: Arc<Mutex<Inner>>,
}

impl MemoryBackend {
    /// An empty store named `location`.
    pub fn new(location: &str) -> Self {
        Self {
            location: location.to_owned(),
            inner: Arc::default(),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bytes now stored.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        self.inner().bytes.clone()
    }

    /// Replaces the stored bytes behind every lease's back (a restored
    /// backup, another writer).
    pub fn set_bytes(&self, bytes: Vec<u8>) {
        let mut inner = self.inner();
        inner.bytes = Some(bytes);
        inner.counter += 1;
    }

    /// Commits that succeeded.
    pub fn commits(&self) -> usize {
        self.inner().commits
    }

    /// The next `n` commits fail as a full disk would.
    pub fn fail_writes(&self, n: usize) {
        self.inner().failing_writes = n;
    }

    /// The next `n` reservations fail as a full disk would.
    pub fn fail_reservations(&self, n: usize) {
        self.inner().failing_reservations = n;
    }

    /// The next commit finds that the vault changed since it was read.
    pub fn conflict_next(&self) {
        self.inner().conflict_next = true;
    }

    /// Leases taken from now on expire after `ttl`.
    pub fn lease_ttl(&self, ttl: Duration) {
        self.inner().lease_ttl = Some(ttl);
    }

    /// Marks the lease as held by someone else (until [`MemoryBackend::release`]).
    pub fn hold(&self) {
        self.inner().held = true;
    }

    /// Releases a [`MemoryBackend::hold`].
    pub fn release(&self) {
        self.inner().held = false;
    }

    fn full() -> EngineError {
        EngineError::io(
            "cannot write",
            std::path::Path::new("memory"),
            std::io::Error::from_raw_os_error(28),
        )
    }
}

/// A lease on a [`MemoryBackend`]; released on drop.
#[derive(Debug)]
pub struct MemoryLease<'a> {
    backend: &'a MemoryBackend,
    taken: Instant,
    ttl: Option<Duration>,
}

impl Drop for MemoryLease<'_> {
    fn drop(&mut self) {
        self.backend.inner().held = false;
    }
}

impl Backend for MemoryBackend {
    type Lease<'a> = MemoryLease<'a>;

    fn location(&self) -> &str {
        &self.location
    }

    async fn read(&self) -> Result<Option<Snapshot>> {
        let inner = self.inner();
        Ok(inner.bytes.clone().map(|bytes| Snapshot {
            bytes,
            version: Version(inner.counter.to_string()),
        }))
    }

    async fn acquire(&self, wait: Duration) -> Result<MemoryLease<'_>> {
        let started = Instant::now();
        loop {
            {
                let mut inner = self.inner();
                if !inner.held {
                    inner.held = true;
                    return Ok(MemoryLease {
                        backend: self,
                        taken: Instant::now(),
                        ttl: inner.lease_ttl,
                    });
                }
            }
            if started.elapsed() >= wait {
                return Err(EngineError::Busy {
                    location: self.location.clone(),
                    waited: wait,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    async fn check_writable(&self) -> Result<()> {
        match self.inner().failing_writes {
            0 => Ok(()),
            _ => Err(Self::full()),
        }
    }
}

impl Lease for MemoryLease<'_> {
    async fn reserve(&mut self, _size: u64) -> Result<()> {
        let mut inner = self.backend.inner();
        if inner.failing_reservations > 0 {
            inner.failing_reservations -= 1;
            return Err(MemoryBackend::full());
        }
        Ok(())
    }

    async fn commit(&mut self, expected: Option<&Version>, bytes: &[u8]) -> Result<Version> {
        if self.remaining().is_some_and(|left| left.is_zero()) {
            return Err(EngineError::new(
                ErrorKind::Temporary,
                format!(
                    "the lease on {} expired before the commit",
                    self.backend.location
                ),
            ));
        }
        let mut inner = self.backend.inner();
        let current = inner
            .bytes
            .as_ref()
            .map(|_| Version(inner.counter.to_string()));
        if std::mem::take(&mut inner.conflict_next) || current.as_ref() != expected {
            return Err(EngineError::Conflict {
                location: self.backend.location.clone(),
            });
        }
        if inner.failing_writes > 0 {
            inner.failing_writes -= 1;
            return Err(MemoryBackend::full());
        }
        inner.bytes = Some(bytes.to_vec());
        inner.counter += 1;
        inner.commits += 1;
        Ok(Version(inner.counter.to_string()))
    }

    fn has_room(&self) -> bool {
        true
    }

    fn remaining(&self) -> Option<Duration> {
        self.ttl.map(|ttl| ttl.saturating_sub(self.taken.elapsed()))
    }
}
