//! A vault's header read without any key, and what this machine's rollback
//! pin says of it: what `inspect` shows, and all a person can learn of a
//! vault they cannot open.

use vault_format::{Header, Pin, PinStatus};

use crate::error::{EngineError, Result};
use crate::session::Session;
use crate::store::Backend;

/// The header of a vault and its standing against the local pin.
#[derive(Debug)]
pub struct Inspection {
    /// The header, MAC unchecked (checking it needs the key).
    pub header: Header,
    /// What the pin for this location says of it.
    pub pin: PinStatus,
    /// The size of the vault file in bytes.
    pub file_size: usize,
}

impl<B: Backend> Session<B> {
    /// Reads the vault's header with no key. A header that does not parse
    /// makes the vault untrusted.
    pub async fn inspect(&self) -> Result<Inspection> {
        let bytes = self
            .backend()
            .read()
            .await?
            .ok_or_else(|| self.no_vault())?
            .bytes;
        let (header, mac) = vault_format::inspect(&bytes)
            .map_err(|e| EngineError::untrusted(format!("{}: {e}", self.location())))?;
        let stored = self.state().load_pin()?;
        Ok(Inspection {
            pin: Pin::classify_header(stored.as_ref(), &header, &mac),
            header,
            file_size: bytes.len(),
        })
    }
}
