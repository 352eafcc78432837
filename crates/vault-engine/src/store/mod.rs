//! Where a vault's bytes live, behind one trait: no crypto, no pins, no
//! prompts. A backend reads `(bytes, version)` and writes only through a
//! lease (an exclusive lock, or a lease object with a time to live) with
//! compare-and-swap on the version, so a remote store with conditional
//! writes fits the same callers as a local file.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;

pub mod any;
pub mod file;
pub mod memory;
pub mod s3;

pub use any::{AnyBackend, AnyLease};
pub use file::FileBackend;
pub use memory::MemoryBackend;
pub use s3::{S3Backend, S3Location, S3Settings};

/// The version of a vault as stored: a file's SHA-256, an object's ETag.
/// Opaque; only compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version(pub(crate) String);

/// A vault's bytes and the version they were read at.
#[derive(Debug)]
pub struct Snapshot {
    /// The sealed vault.
    pub bytes: Vec<u8>,
    /// Its version, for a later compare-and-swap.
    pub version: Version,
}

/// A place that holds one vault.
pub trait Backend: Send + Sync {
    /// The exclusive right to replace the vault.
    type Lease<'a>: Lease
    where
        Self: 'a;

    /// For messages, and the key of local state (pins, health, rescue):
    /// `/var/lib/tokvault/vault.tokvault`, `s3://bucket/vault.tokvault`.
    fn location(&self) -> &str;

    /// The current bytes and their version; `None` when no vault exists.
    fn read(&self) -> impl Future<Output = Result<Option<Snapshot>>> + Send;

    /// Takes the lease, waiting up to `wait` for another holder.
    fn acquire(&self, wait: Duration) -> impl Future<Output = Result<Self::Lease<'_>>> + Send;

    /// Fails when a new vault file could not be stored here (checked before
    /// something slow that ends in a write, such as a login).
    fn check_writable(&self) -> impl Future<Output = Result<()>> + Send;

    /// Makes the place a new vault goes (a file's private directory).
    fn prepare_new(&self) -> Result<()> {
        Ok(())
    }
}

/// Held while a read-modify-write runs; the only way to write.
pub trait Lease: Send {
    /// Takes the room a commit of `size` bytes needs before anything that
    /// must not be lost happens (a token request), so a full disk shows
    /// now; a commit that then lacks room releases it and tries again.
    fn reserve(&mut self, size: u64) -> impl Future<Output = Result<()>> + Send;

    /// Replaces the vault with `bytes` if it is still at `expected` (`None`:
    /// only if there is no vault yet); returns the new version.
    fn commit(
        &mut self,
        expected: Option<&Version>,
        bytes: &[u8],
    ) -> impl Future<Output = Result<Version>> + Send;

    /// Whether the room taken by [`Lease::reserve`] is still held (a commit
    /// that lacked room releases it); true when none was taken.
    fn has_room(&self) -> bool;

    /// Time left before another writer may take the lease over (`None`:
    /// never, as with a file lock). Checked before each token request.
    fn remaining(&self) -> Option<Duration>;
}
