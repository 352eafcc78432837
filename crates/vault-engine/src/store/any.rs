//! One backend type for a front end that takes the vault's location from
//! its options: a local file or an object in a bucket.

use std::time::Duration;

use super::file::FileLease;
use super::s3::S3Lease;
use super::{Backend, FileBackend, Lease, S3Backend, Snapshot, Version};
use crate::error::Result;

/// A local file or an S3 object.
#[derive(Debug)]
pub enum AnyBackend {
    /// A vault file.
    File(FileBackend),
    /// A vault object in a bucket.
    S3(Box<S3Backend>),
}

/// The lease of an [`AnyBackend`].
#[derive(Debug)]
pub enum AnyLease<'a> {
    /// A file lock.
    File(FileLease<'a>),
    /// A lease object.
    S3(S3Lease<'a>),
}

impl Backend for AnyBackend {
    type Lease<'a> = AnyLease<'a>;

    fn location(&self) -> &str {
        match self {
            Self::File(b) => b.location(),
            Self::S3(b) => b.location(),
        }
    }

    async fn read(&self) -> Result<Option<Snapshot>> {
        match self {
            Self::File(b) => b.read().await,
            Self::S3(b) => b.read().await,
        }
    }

    async fn acquire(&self, wait: Duration) -> Result<AnyLease<'_>> {
        Ok(match self {
            Self::File(b) => AnyLease::File(b.acquire(wait).await?),
            Self::S3(b) => AnyLease::S3(b.acquire(wait).await?),
        })
    }

    async fn check_writable(&self) -> Result<()> {
        match self {
            Self::File(b) => b.check_writable().await,
            Self::S3(b) => b.check_writable().await,
        }
    }

    fn prepare_new(&self) -> Result<()> {
        match self {
            Self::File(b) => b.prepare_new(),
            Self::S3(b) => b.prepare_new(),
        }
    }
}

impl Lease for AnyLease<'_> {
    async fn reserve(&mut self, size: u64) -> Result<()> {
        match self {
            Self::File(l) => l.reserve(size).await,
            Self::S3(l) => l.reserve(size).await,
        }
    }

    async fn commit(&mut self, expected: Option<&Version>, bytes: &[u8]) -> Result<Version> {
        match self {
            Self::File(l) => l.commit(expected, bytes).await,
            Self::S3(l) => l.commit(expected, bytes).await,
        }
    }

    fn has_room(&self) -> bool {
        match self {
            Self::File(l) => l.has_room(),
            Self::S3(l) => l.has_room(),
        }
    }

    fn remaining(&self) -> Option<Duration> {
        match self {
            Self::File(l) => l.remaining(),
            Self::S3(l) => l.remaining(),
        }
    }
}
