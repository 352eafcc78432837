//! Unlock material: identity files, passphrases, recipients. Secret files
//! must not be readable by group or others.

use std::io::{BufReader, IsTerminal as _, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use vault_format::{SecretString, canonical_recipient};
use zeroize::Zeroizing;

use crate::cli::{Global, RecipientArgs};
use crate::error::{CliError, Result};
use crate::paths;

/// Identities and (maybe) a passphrase, loaded once per command.
pub(crate) struct Keys {
    pub(crate) identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    pub(crate) passphrase: Option<SecretString>,
}

/// Reads a secret file: refuses group/other access, sizes the buffer up
/// front so no reallocation leaves a copy behind.
pub(crate) fn read_secret_file(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| CliError::io(&format!("cannot open {what}"), path, &e))?;
    let metadata = file
        .metadata()
        .map_err(|e| CliError::io(&format!("cannot read {what}"), path, &e))?;
    // systemd credentials are 0400 plus an ACL for the service user, which
    // stat shows as 0440; systemd already limits who can read that
    // directory, so the mode check applies everywhere else.
    if metadata.permissions().mode() & 0o077 != 0 && !in_credentials_directory(path) {
        return Err(CliError::failure(format!(
            "{what} {} is readable by group or others (mode {:o}): run chmod 600 {}",
            path.display(),
            metadata.permissions().mode() & 0o777,
            path.display()
        )));
    }
    let len = usize::try_from(metadata.len()).unwrap_or(usize::MAX);
    if len > 1024 * 1024 {
        return Err(CliError::failure(format!(
            "{what} {} is larger than 1 MiB",
            path.display()
        )));
    }
    let mut buffer = Zeroizing::new(Vec::with_capacity(len + 1));
    file.read_to_end(&mut buffer)
        .map_err(|e| CliError::io(&format!("cannot read {what}"), path, &e))?;
    Ok(buffer)
}

/// Whether `path` lies in systemd's `$CREDENTIALS_DIRECTORY`.
fn in_credentials_directory(path: &Path) -> bool {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return false;
    };
    match (std::fs::canonicalize(dir), std::fs::canonicalize(path)) {
        (Ok(dir), Ok(path)) => path.starts_with(dir),
        _ => false,
    }
}

/// Parses an age identity file (`AGE-SECRET-KEY-1…` lines) or an
/// unencrypted OpenSSH / PEM SSH private key.
pub(crate) fn load_identity_file(path: &Path) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>> {
    let bytes = read_secret_file(path, "identity file")?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::failure(format!("identity file {} is not text", path.display())))?;
    if text.contains("PRIVATE KEY-----") {
        let identity = age::ssh::Identity::from_buffer(
            BufReader::new(text.as_bytes()),
            Some(path.display().to_string()),
        )
        .map_err(|_| {
            CliError::failure(format!(
                "{} is not a usable SSH private key",
                path.display()
            ))
        })?;
        return match identity {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(identity)]),
            age::ssh::Identity::Encrypted(_) => Err(CliError::failure(format!(
                "the SSH key {} is passphrase-protected; tokvault needs an unencrypted key or an age identity (tokvault keygen)",
                path.display()
            ))),
            age::ssh::Identity::Unsupported(_) => Err(CliError::failure(format!(
                "the SSH key {} is of a kind age does not support (use ed25519 or RSA)",
                path.display()
            ))),
        };
    }
    let file = age::IdentityFile::from_buffer(BufReader::new(text.as_bytes())).map_err(|_| {
        CliError::failure(format!(
            "{} is not an age identity file (AGE-SECRET-KEY-1… lines) or an SSH private key",
            path.display()
        ))
    })?;
    let identities = file.into_identities().map_err(|_| {
        CliError::failure(format!(
            "{} holds an identity tokvault cannot use",
            path.display()
        ))
    })?;
    if identities.is_empty() {
        return Err(CliError::failure(format!(
            "{} holds no identity",
            path.display()
        )));
    }
    Ok(identities)
}

/// Identity files: `-i`/`TOKVAULT_IDENTITY`, else the systemd credential and
/// the XDG default when they exist.
fn identity_paths(global: &Global) -> Result<Vec<PathBuf>> {
    if !global.identities.is_empty() {
        return Ok(global.identities.clone());
    }
    let mut found = Vec::new();
    if let Some(path) = paths::credential("tokvault-identity").filter(|p| p.exists()) {
        found.push(path);
    }
    if let Ok(path) = paths::default_identity()
        && path.exists()
    {
        found.push(path);
    }
    Ok(found)
}

fn passphrase_path(global: &Global) -> Option<PathBuf> {
    global
        .passphrase_file
        .clone()
        .or_else(|| paths::credential("tokvault-passphrase").filter(|p| p.exists()))
}

fn passphrase_from_file(path: &Path) -> Result<SecretString> {
    let bytes = read_secret_file(path, "passphrase file")?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        CliError::failure(format!("passphrase file {} is not UTF-8", path.display()))
    })?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(CliError::failure(format!(
            "passphrase file {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::copy_from(text))
}

impl Keys {
    /// Everything the options name; a passphrase prompt comes later, only
    /// if needed ([`Keys::prompt_passphrase`]).
    pub(crate) fn load(global: &Global) -> Result<Self> {
        let mut identities = Vec::new();
        for path in identity_paths(global)? {
            identities.extend(load_identity_file(&path)?);
        }
        let passphrase = passphrase_path(global)
            .map(|p| passphrase_from_file(&p))
            .transpose()?;
        Ok(Self {
            identities,
            passphrase,
        })
    }

    /// What `Vault::open` should try: every identity, then the passphrase.
    pub(crate) fn unlock(&self) -> vault_format::Unlock<'_> {
        let mut unlock = vault_format::Unlock::new();
        for identity in &self.identities {
            unlock = unlock.identity(identity.as_ref());
        }
        if let Some(passphrase) = &self.passphrase {
            unlock = unlock.passphrase(passphrase);
        }
        unlock
    }

    /// Whether a passphrase prompt is possible and not yet done.
    pub(crate) fn can_prompt(&self) -> bool {
        self.passphrase.is_none() && std::io::stdin().is_terminal()
    }

    pub(crate) fn prompt_passphrase(&mut self) -> Result<()> {
        let text = rpassword::prompt_password("Vault passphrase: ")
            .map_err(|e| CliError::failure(format!("cannot read the passphrase: {e}")))?;
        self.passphrase = Some(SecretString::new(text));
        Ok(())
    }
}

/// A new passphrase: from `--passphrase-file`, else prompted twice on a TTY.
pub(crate) fn new_passphrase(global: &Global) -> Result<SecretString> {
    if let Some(path) = &global.passphrase_file {
        return passphrase_from_file(path);
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

/// Recipients from `-r` and `-R`, canonicalized, without duplicates.
pub(crate) fn recipients(args: &RecipientArgs) -> Result<Vec<String>> {
    let mut inputs: Vec<(String, String)> = args
        .recipients
        .iter()
        .map(|r| (r.clone(), "-r".to_owned()))
        .collect();
    for path in &args.recipients_files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::io("cannot read recipients file", path, &e))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                inputs.push((
                    line.to_owned(),
                    format!("{}:{}", path.display(), number + 1),
                ));
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for (input, source) in inputs {
        let (_, canonical) = canonical_recipient(&input).map_err(|reason| {
            CliError::usage(format!("recipient from {source} is not usable: {reason}"))
        })?;
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}
