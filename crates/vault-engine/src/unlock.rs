//! Unlock material: age identities (or unencrypted SSH keys) and a
//! passphrase, read from files that must not be readable by group or
//! others, and a new identity written. Where the files are by default is
//! [`crate::paths`]'s business.

use std::io::{BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use vault_format::SecretString;
use zeroize::Zeroizing;

use crate::error::{EngineError, Result};

/// The largest secret file read.
const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// Identities and (maybe) a passphrase, loaded once per operation.
#[derive(Default)]
pub struct UnlockMaterial {
    pub(crate) identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// The identity files and the policy they were read under: their
    /// recipients are worked out only for a message that needs them
    /// ([`UnlockMaterial::recipients`]), never on the token path.
    identity_files: Vec<PathBuf>,
    policy: SecretFilePolicy,
    pub(crate) passphrase: Option<SecretString>,
    /// A passphrase was asked for already (ask once).
    pub(crate) asked: bool,
}

impl std::fmt::Debug for UnlockMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnlockMaterial")
            .field("identities", &self.identities.len())
            .field("passphrase", &self.passphrase.is_some())
            .finish()
    }
}

/// Where secret files may be less private: systemd's credentials directory.
#[derive(Clone, Debug, Default)]
pub struct SecretFilePolicy {
    /// `$CREDENTIALS_DIRECTORY`: its files are 0400 plus an ACL for the
    /// service user, which stat shows as 0440; systemd already limits who
    /// can read that directory, so the mode check applies elsewhere.
    pub credentials_dir: Option<PathBuf>,
}

impl SecretFilePolicy {
    fn exempts(&self, path: &Path) -> bool {
        let Some(dir) = &self.credentials_dir else {
            return false;
        };
        match (std::fs::canonicalize(dir), std::fs::canonicalize(path)) {
            (Ok(dir), Ok(path)) => path.starts_with(dir),
            _ => false,
        }
    }

    /// Reads a secret file: refuses group/other access, sizes the buffer up
    /// front so no reallocation leaves a copy behind.
    pub fn read(&self, path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
        let mut file = std::fs::File::open(path)
            .map_err(|e| EngineError::io(&format!("cannot open {what}"), path, e))?;
        let metadata = file
            .metadata()
            .map_err(|e| EngineError::io(&format!("cannot read {what}"), path, e))?;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 && !self.exempts(path) {
            return Err(EngineError::failure(format!(
                "{what} {} is readable by group or others (mode {:o}): run chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
        if metadata.len() > MAX_SECRET_FILE {
            return Err(EngineError::failure(format!(
                "{what} {} is larger than 1 MiB",
                path.display()
            )));
        }
        let len = usize::try_from(metadata.len()).unwrap_or(0);
        let mut buffer = Zeroizing::new(Vec::with_capacity(len + 1));
        file.read_to_end(&mut buffer)
            .map_err(|e| EngineError::io(&format!("cannot read {what}"), path, e))?;
        Ok(buffer)
    }

    /// A passphrase from a file: one line, a final newline dropped.
    pub fn read_passphrase(&self, path: &Path) -> Result<SecretString> {
        let bytes = self.read(path, "passphrase file")?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            EngineError::failure(format!("passphrase file {} is not UTF-8", path.display()))
        })?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            return Err(EngineError::failure(format!(
                "passphrase file {} is empty",
                path.display()
            )));
        }
        Ok(SecretString::copy_from(text))
    }

    /// An age identity file (`AGE-SECRET-KEY-1…` lines) or an unencrypted
    /// OpenSSH / PEM SSH private key.
    pub fn read_identities(&self, path: &Path) -> Result<Identities> {
        match self.read_identity_file(path)? {
            IdentityFile::Ssh(identities) => Ok(identities),
            IdentityFile::Age(file) => age_identities(path, file),
        }
    }

    /// The recipients of the age identities in `path` (public; SSH keys
    /// give none). Costs a public-key computation per identity.
    fn read_recipients(&self, path: &Path) -> Result<Vec<String>> {
        let IdentityFile::Age(file) = self.read_identity_file(path)? else {
            return Ok(Vec::new());
        };
        let mut listed = Vec::new();
        file.write_recipients_file(&mut listed)
            .map_err(|e| EngineError::failure(format!("{}: {e}", path.display())))?;
        Ok(String::from_utf8_lossy(&listed)
            .lines()
            .map(str::to_owned)
            .collect())
    }

    fn read_identity_file(&self, path: &Path) -> Result<IdentityFile> {
        let bytes = self.read(path, "identity file")?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            EngineError::failure(format!("identity file {} is not text", path.display()))
        })?;
        if text.contains("PRIVATE KEY-----") {
            return Ok(IdentityFile::Ssh(ssh_identity(path, text)?));
        }
        age::IdentityFile::from_buffer(BufReader::new(text.as_bytes()))
            .map(IdentityFile::Age)
            .map_err(|_| {
                EngineError::failure(format!(
                    "{} is not an age identity file (AGE-SECRET-KEY-1… lines) or an SSH private key",
                    path.display()
                ))
            })
    }
}

/// An identity file as read: SSH keys, or age's parsed file.
enum IdentityFile {
    Ssh(Identities),
    Age(age::IdentityFile<age::NoCallbacks>),
}

fn age_identities(path: &Path, file: age::IdentityFile<age::NoCallbacks>) -> Result<Identities> {
    let identities = file.into_identities().map_err(|_| {
        EngineError::failure(format!(
            "{} holds an identity tokvault cannot use",
            path.display()
        ))
    })?;
    if identities.is_empty() {
        return Err(EngineError::failure(format!(
            "{} holds no identity",
            path.display()
        )));
    }
    Ok(identities)
}

/// Identities as age takes them.
type Identities = Vec<Box<dyn age::Identity + Send + Sync>>;

fn ssh_identity(path: &Path, text: &str) -> Result<Identities> {
    let identity = age::ssh::Identity::from_buffer(
        BufReader::new(text.as_bytes()),
        Some(path.display().to_string()),
    )
    .map_err(|_| {
        EngineError::failure(format!(
            "{} is not a usable SSH private key",
            path.display()
        ))
    })?;
    match identity {
        age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(identity)]),
        age::ssh::Identity::Encrypted(_) => Err(EngineError::failure(format!(
            "the SSH key {} is passphrase-protected; tokvault needs an unencrypted key or an age identity (tokvault keygen)",
            path.display()
        ))),
        age::ssh::Identity::Unsupported(_) => Err(EngineError::failure(format!(
            "the SSH key {} is of a kind age does not support (use ed25519 or RSA)",
            path.display()
        ))),
    }
}

impl UnlockMaterial {
    /// Material already in memory (tests, a front end with its own store).
    pub fn new(
        identities: Vec<Box<dyn age::Identity + Send + Sync>>,
        passphrase: Option<SecretString>,
    ) -> Self {
        Self {
            identities,
            identity_files: Vec::new(),
            policy: SecretFilePolicy::default(),
            passphrase,
            asked: false,
        }
    }

    /// The identities in `identity_files` and the passphrase in
    /// `passphrase_file`, read under `policy`.
    pub fn load(
        identity_files: &[PathBuf],
        passphrase_file: Option<&Path>,
        policy: &SecretFilePolicy,
    ) -> Result<Self> {
        let mut identities = Vec::new();
        for path in identity_files {
            identities.extend(policy.read_identities(path)?);
        }
        let passphrase = passphrase_file
            .map(|p| policy.read_passphrase(p))
            .transpose()?;
        Ok(Self {
            identities,
            identity_files: identity_files.to_vec(),
            policy: policy.clone(),
            passphrase,
            asked: false,
        })
    }

    /// The recipients of the identity files (public, for a message): read
    /// again here, so loading the identities costs no public-key
    /// computation. A file that no longer reads gives none.
    pub(crate) fn recipients(&self) -> Vec<String> {
        self.identity_files
            .iter()
            .filter_map(|path| self.policy.read_recipients(path).ok())
            .flatten()
            .collect()
    }

    /// Whether nothing was given that could open a vault.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.passphrase.is_none()
    }

    /// What `Vault::open` should try: every identity, then the passphrase.
    pub fn unlock(&self) -> vault_format::Unlock<'_> {
        let mut unlock = vault_format::Unlock::new();
        for identity in &self.identities {
            unlock = unlock.identity(identity.as_ref());
        }
        if let Some(passphrase) = &self.passphrase {
            unlock = unlock.passphrase(passphrase);
        }
        unlock
    }
}

/// Writes a new age identity to `path` (mode 0600, its directory private,
/// never over an existing file) and returns its recipient.
pub fn write_new_identity(path: &Path) -> Result<String> {
    if path.exists() {
        return Err(EngineError::failure(format!(
            "{} already exists; refusing to overwrite an identity",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::fsio::ensure_private_dir(parent)?;
    }
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = {
        use age::secrecy::ExposeSecret as _;
        let secret = identity.to_string();
        let mut text = Zeroizing::new(String::with_capacity(200));
        text.push_str(&format!(
            "# created: {}\n# public key: {recipient}\n",
            vault_oauth::rfc3339(crate::unix_now())
        ));
        text.push_str(secret.expose_secret());
        text.push('\n');
        text
    };
    crate::fsio::write_new_private(path, secret.as_bytes())?;
    Ok(recipient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_identity_is_private_readable_back_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokvault/identity.txt");
        let recipient = write_new_identity(&path).expect("written");
        assert!(recipient.starts_with("age1"), "{recipient}");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains(&format!("# public key: {recipient}\n")),
            "{text}"
        );
        let identities = SecretFilePolicy::default()
            .read_identities(&path)
            .expect("an identity file");
        assert_eq!(identities.len(), 1);
        let material = UnlockMaterial::load(
            std::slice::from_ref(&path),
            None,
            &SecretFilePolicy::default(),
        )
        .expect("loaded");
        assert_eq!(
            material.recipients(),
            std::slice::from_ref(&recipient),
            "its recipient"
        );
        let again = write_new_identity(&path).expect_err("exists");
        assert!(
            again.to_string().contains("refusing to overwrite"),
            "{again}"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
    }
}
