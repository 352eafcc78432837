//! Default locations (XDG base directories).

use std::path::PathBuf;

use crate::error::{CliError, Result};

fn xdg(variable: &str, fallback: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(variable).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            CliError::usage(format!(
                "neither {variable} nor HOME is set: pass the path explicitly"
            ))
        })?;
    Ok(PathBuf::from(home).join(fallback))
}

/// `$XDG_DATA_HOME/tokvault/vault.tokvault`.
pub(crate) fn default_vault() -> Result<PathBuf> {
    Ok(xdg("XDG_DATA_HOME", ".local/share")?.join("tokvault/vault.tokvault"))
}

/// `$XDG_STATE_HOME/tokvault`.
pub(crate) fn default_state_dir() -> Result<PathBuf> {
    Ok(xdg("XDG_STATE_HOME", ".local/state")?.join("tokvault"))
}

/// `$XDG_CONFIG_HOME/tokvault/identity.txt`.
pub(crate) fn default_identity() -> Result<PathBuf> {
    Ok(xdg("XDG_CONFIG_HOME", ".config")?.join("tokvault/identity.txt"))
}

/// systemd `LoadCredential=` files.
pub(crate) fn credential(name: &str) -> Option<PathBuf> {
    std::env::var_os("CREDENTIALS_DIRECTORY")
        .filter(|v| !v.is_empty())
        .map(|dir| PathBuf::from(dir).join(name))
}
