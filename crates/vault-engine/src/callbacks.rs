//! How the engine asks its front end for what only a person can give
//! (age's `Callbacks`): the engine never prompts, and a front end with
//! nobody to ask (cron, systemd, a server) answers `None`.

use vault_format::SecretString;

use crate::error::Result;

/// Questions the engine may ask.
pub trait Callbacks: Send + Sync {
    /// A passphrase for the vault, asked with `prompt`: `Ok(None)` when
    /// nobody can be asked; an error when asking failed.
    fn request_passphrase(&self, prompt: &str) -> Result<Option<SecretString>>;
}

/// A front end with nobody to ask.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUi;

impl Callbacks for NoUi {
    fn request_passphrase(&self, _prompt: &str) -> Result<Option<SecretString>> {
        Ok(None)
    }
}
