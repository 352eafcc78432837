//! Secret values: zeroized on drop, redacted in `Debug`, never `Display` or
//! `Serialize` (the payload encoder borrows their bytes explicitly).

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret UTF-8 string (access token, refresh token, client secret,
/// private key PEM).
///
/// The buffer (including spare capacity) is overwritten with zeros when the
/// value is dropped. `Debug` prints `SecretString(<redacted>)`; there is no
/// `Display` and no `Serialize`, so a secret cannot reach a log or a JSON
/// document by accident. Read it with [`SecretString::expose_secret`].
///
/// These do not compile (each next to a control that does, so they fail
/// for the stated reason):
///
/// ```compile_fail
/// let secret = vault_format::SecretString::copy_from("token");
/// let _ = format!("{secret}");
/// ```
/// ```compile_fail
/// fn serialize<T: serde::Serialize>(_: &T) {}
/// serialize(&vault_format::SecretString::copy_from("token"));
/// ```
/// ```compile_fail
/// fn serialize<T: serde::Serialize>(_: &T) {}
/// serialize(&vault_format::SecretBytes::copy_from(b"token"));
/// ```
/// ```compile_fail
/// fn display<T: std::fmt::Display>(_: &T) {}
/// display(&vault_format::SecretBytes::copy_from(b"token"));
/// ```
/// ```
/// // Controls: the same calls with public data compile.
/// fn serialize<T: serde::Serialize>(_: &T) {}
/// fn display<T: std::fmt::Display>(_: &T) {}
/// let secret = vault_format::SecretString::copy_from("token");
/// serialize(&secret.expose_secret());
/// display(&secret.expose_secret());
/// let _ = format!("{secret:?}");
/// ```
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Takes ownership of `value` without copying it.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// Copies `value` into a buffer of exactly its size (no reallocation that
    /// could leave an unwiped copy behind).
    pub fn copy_from(value: &str) -> Self {
        let mut owned = String::with_capacity(value.len());
        owned.push_str(value);
        Self::new(owned)
    }

    /// The secret itself. Keep the borrow short and never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Length in bytes (not secret in this system: it is padded in the file).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Compares in constant time for equal lengths.
impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SecretString {}

/// Secret bytes (the data of record extensions, which may hold secrets that
/// a later version defines).
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `value` without copying it.
    pub fn new(value: Vec<u8>) -> Self {
        Self(Zeroizing::new(value))
    }

    /// Copies `value` into a buffer of exactly its size.
    pub fn copy_from(value: &[u8]) -> Self {
        let mut owned = Vec::with_capacity(value.len());
        owned.extend_from_slice(value);
        Self::new(owned)
    }

    /// The secret bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for SecretBytes {}

/// The 32-byte vault key that every slot wraps.
///
/// Opaque: it can only be obtained by opening a vault or by recovering it from
/// an age slot decrypted with stock `age -d` (see
/// [`VaultKey::from_age_slot_plaintext`]), and only used to open a vault.
pub struct VaultKey(pub(crate) Zeroizing<[u8; 32]>);

impl VaultKey {
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut key[..])?;
        Ok(Self(key))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Recovers the vault key from the plaintext of an age slot, as printed by
    /// `age -d -i IDENTITY slot.age` in an emergency (see `docs/FORMAT.md`).
    ///
    /// Returns `None` unless the plaintext is exactly the v1 age-slot layout.
    /// The vault id inside is not checked here; opening the vault checks the
    /// header MAC, which only the right key passes.
    pub fn from_age_slot_plaintext(plaintext: &[u8]) -> Option<Self> {
        crate::keys::parse_age_slot_plaintext(plaintext, None)
    }
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = SecretString::copy_from("1//refresh-token-canary");
        let shown = format!("{secret:?} {:?}", SecretBytes::copy_from(b"canary"));
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("redacted"));
        assert!(!format!("{:?}", VaultKey([7u8; 32].into())).contains('7'));
    }

    #[test]
    fn equality_compares_contents() {
        assert_eq!(SecretString::copy_from("a"), SecretString::copy_from("a"));
        assert_ne!(SecretString::copy_from("a"), SecretString::copy_from("b"));
        assert_ne!(SecretString::copy_from("a"), SecretString::copy_from("ab"));
    }

    #[test]
    fn copy_from_allocates_exactly() {
        let secret = SecretString::copy_from("exact");
        assert_eq!(secret.0.capacity(), 5);
    }
}
