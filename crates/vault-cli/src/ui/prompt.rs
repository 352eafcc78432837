//! Passphrases asked at the terminal: the engine's question when a vault
//! opens ([`Terminal`]) and a new passphrase, typed twice.

use std::io::IsTerminal as _;
use std::path::Path;

use vault_engine::Callbacks;
use vault_format::SecretString;
use zeroize::Zeroizing;

use crate::error::{CliError, Result};

/// The terminal on stdin, when there is one, answers the engine's
/// passphrase question.
pub(crate) struct Terminal;

impl Callbacks for Terminal {
    fn request_passphrase(&self, prompt: &str) -> vault_engine::Result<Option<SecretString>> {
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        let text = rpassword::prompt_password(prompt).map_err(|e| {
            vault_engine::EngineError::failure(format!("cannot read the passphrase: {e}"))
        })?;
        Ok(Some(SecretString::new(text)))
    }
}

/// A new passphrase: from `--passphrase-file`, else prompted twice on a TTY.
pub(crate) fn new_passphrase(passphrase_file: Option<&Path>) -> Result<SecretString> {
    if let Some(path) = passphrase_file {
        return Ok(vault_engine::SecretFilePolicy::from_env().read_passphrase(path)?);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "--passphrase needs a passphrase: pass --passphrase-file PATH (mode 0600) or run on a terminal",
        ));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("New passphrase: ")
            .map_err(|e| CliError::failure(format!("cannot read the passphrase: {e}")))?,
    );
    let second = Zeroizing::new(
        rpassword::prompt_password("Repeat it: ")
            .map_err(|e| CliError::failure(format!("cannot read the passphrase: {e}")))?,
    );
    if *first != *second {
        return Err(CliError::failure(
            "the passphrases differ; nothing was written",
        ));
    }
    if first.chars().count() < 8 {
        return Err(CliError::failure(
            "use a passphrase of at least 8 characters; nothing was written",
        ));
    }
    Ok(SecretString::copy_from(&first))
}
