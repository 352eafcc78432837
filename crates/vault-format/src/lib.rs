//! # vault-format
//!
//! tokvault's encrypted token vault, format version 1: one file holding
//! OAuth token records, encrypted under a random 32-byte vault key that
//! 1 to 16 key slots wrap (age recipients and Argon2id passphrases). The
//! byte-level specification is `docs/FORMAT.md`; the security properties
//! are in `SECURITY.md`.
//!
//! This crate is pure: no network, no files, no clock. Callers pass bytes
//! and the current time and receive bytes.
//!
//! ```
//! use vault_format::{
//!     ClientAuth, Credential, Provider, Record, RefreshTokenCredential, SecretString, SlotSpec,
//!     Unlock, Vault,
//! };
//!
//! // The server's key pair; a laptop needs only the public recipient.
//! let identity = age::x25519::Identity::generate();
//! let recipient = identity.to_public().to_string();
//!
//! let mut vault = Vault::create(&[SlotSpec::Recipient(&recipient)])?;
//! let credential = Credential::RefreshToken(RefreshTokenCredential {
//!     client_id: "client.apps.googleusercontent.com".into(),
//!     client_secret: Some(SecretString::copy_from("client-secret")),
//!     client_auth: ClientAuth::ClientSecretPost,
//!     refresh_token: SecretString::copy_from("1//refresh"),
//!     refresh_token_issued_at: Some(1_700_000_000),
//!     authorization_endpoint: None,
//! });
//! vault.records_mut().push(Record::new(
//!     "gmail",
//!     Provider::Google,
//!     "https://oauth2.googleapis.com/token",
//!     credential,
//!     1_700_000_000,
//! ));
//! let file = vault.seal(1_700_000_000)?;
//!
//! // On the server.
//! let opened = Vault::open(&file, &Unlock::new().identity(&identity))?;
//! assert_eq!(opened.generation(), 1);
//! assert_eq!(opened.record("gmail"), vault.record("gmail"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod header;
mod kdf;
mod keys;
mod payload;
mod pin;
mod reader;
mod recipient;
mod record;
mod secret;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;
mod vault;

pub use age;
pub use error::{
    ErrorClass, KdfPolicyError, OpenError, ParseError, PayloadError, PinParseError, SealError,
    SlotError, UnlockSummary,
};
pub use header::{
    AgeSlot, FORMAT_VERSION, Header, MAGIC, MAX_PASSPHRASE_SLOTS, MAX_PLAINTEXT_LEN, MAX_SLOT_LEN,
    MAX_SLOTS, ParsedVault, PassphraseSlot, Slot, VaultId, inspect, parse,
};
pub use kdf::KdfParams;
pub use payload::{
    MAX_ERROR_CODE_LEN, MAX_ERROR_DESCRIPTION_LEN, MAX_NESTED_ELEMENTS, MAX_RECORDS,
    check_endpoint, check_record_name, is_loopback, is_unsafe_to_display, validate_record,
};
pub use pin::{Pin, PinStatus};
pub use recipient::{RecipientKind, canonical_recipient};
pub use record::{
    AccessToken, ClientAuth, Credential, Extension, Provider, Record, RefreshClass, RefreshStatus,
    RefreshTokenCredential, ServiceAccountCredential,
};
pub use secret::{SecretBytes, SecretString, VaultKey};
pub use vault::{SlotSpec, Unlock, Vault};
