//! One error enum per operation. Crypto failures are deliberately opaque: a
//! wrong identity, a wrong passphrase and a modified file all produce
//! [`OpenError::CannotDecrypt`], so the error reveals nothing about which
//! byte or which key was wrong.

use std::fmt;

use crate::kdf::KdfParams;

/// The broad class of an error, for callers that map errors to exit codes
/// or test expectations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Not a vault, or its structure is damaged (truncated, bad lengths).
    Malformed,
    /// A newer format version, flag, slot type or critical extension.
    Unsupported,
    /// Argon2id parameters outside the policy; no Argon2 work was done.
    KdfPolicy,
    /// No key matched, the passphrase is wrong, or the file was modified.
    CannotDecrypt,
    /// The vault authenticated but its records violate the v1 rules.
    InvalidPayload,
}

impl ErrorClass {
    /// A short stable identifier (`malformed`, `unsupported`, `kdf-policy`,
    /// `cannot-decrypt`, `invalid-payload`) used by the golden vectors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unsupported => "unsupported",
            Self::KdfPolicy => "kdf-policy",
            Self::CannotDecrypt => "cannot-decrypt",
            Self::InvalidPayload => "invalid-payload",
        }
    }
}

/// Argon2id parameters outside tokvault's policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error(
    "{params} is outside tokvault's policy ({reason}; allowed: m 64 MiB..4 GiB, t 3..64, p 1..16); \
     no Argon2 work was done"
)]
pub struct KdfPolicyError {
    /// The refused parameters.
    pub params: KdfParams,
    /// Which bound they break.
    pub reason: &'static str,
}

/// Errors from parsing the cleartext structure of a vault file. No key is
/// involved, so these describe the file's shape, never its secrets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The file does not start with the tokvault magic bytes.
    #[error(
        "not a tokvault vault: the file does not start with the tokvault magic bytes \
         (check the path; a file copied in text mode is damaged this way)"
    )]
    NotAVault,
    /// `format_version` is not 1.
    #[error(
        "vault format version {version} is not supported by this tokvault (it reads version 1): upgrade tokvault"
    )]
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// Reserved flag bits are set.
    #[error(
        "the vault sets header flags {flags:#06x} that this tokvault does not know: upgrade tokvault"
    )]
    UnknownFlags {
        /// The flags found.
        flags: u16,
    },
    /// The file ends inside a field.
    #[error("the vault file is truncated (it ends inside the {field}): restore it from a backup")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes follow the payload.
    #[error(
        "the vault file has {extra} unexpected bytes after the payload: it is damaged or was modified, restore it from a backup"
    )]
    TrailingData {
        /// How many bytes follow.
        extra: usize,
    },
    /// The slot count is 0 or above 16.
    #[error("the vault declares {count} key slots (allowed: 1 to 16): the file is damaged")]
    SlotCount {
        /// The count found.
        count: u8,
    },
    /// A slot type this version does not know.
    #[error(
        "key slot {index} has type {slot_type}, which this tokvault does not know: upgrade tokvault"
    )]
    UnknownSlotType {
        /// Slot position (0-based).
        index: usize,
        /// The type byte found.
        slot_type: u8,
    },
    /// A slot's contents break the v1 rules.
    #[error(
        "key slot {index} is malformed ({reason}): the file is damaged or was not written by tokvault"
    )]
    MalformedSlot {
        /// Slot position (0-based).
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The payload length is outside the allowed range.
    #[error("the payload length {len} is outside the allowed range: the file is damaged")]
    PayloadLength {
        /// The length found.
        len: u32,
    },
    /// A passphrase slot carries Argon2id parameters outside the policy.
    #[error("key slot {index}: {error}")]
    KdfPolicy {
        /// Slot position (0-based).
        index: usize,
        /// The violation.
        error: KdfPolicyError,
    },
}

impl ParseError {
    /// The broad class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::UnsupportedVersion { .. }
            | Self::UnknownFlags { .. }
            | Self::UnknownSlotType { .. } => ErrorClass::Unsupported,
            Self::KdfPolicy { .. } => ErrorClass::KdfPolicy,
            _ => ErrorClass::Malformed,
        }
    }
}

/// Errors in the decrypted records, found when opening (a vault written by
/// something other than a correct v1 writer) or before sealing (records a
/// v1 reader would refuse are never written).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The plaintext framing (length prefix, zero padding) is wrong.
    #[error("the payload framing is invalid ({0})")]
    Framing(&'static str),
    /// postcard could not decode the records.
    #[error("the records could not be decoded (wrong schema)")]
    Decode,
    /// Bytes remain after the encoded records.
    #[error("{0} bytes remain after the encoded records")]
    TrailingBytes(usize),
    /// A list is longer than v1 allows, found while decoding (before the
    /// list was allocated) or before sealing.
    #[error(
        "a list in the records is longer than format v1 allows (at most 100000 records, \
         256 scopes and 64 extensions per record, 262144 scopes and extensions in all)"
    )]
    CountLimit,
    /// More records than the cap.
    #[error("{count} records exceed the limit of {max}")]
    TooManyRecords {
        /// Records found.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// The encoded records exceed the payload cap.
    #[error("the records need {len} bytes, more than the {max}-byte payload limit")]
    TooLarge {
        /// Bytes needed.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Two records share a name.
    #[error("two records are named {0:?}; names must be unique")]
    DuplicateName(String),
    /// A record field breaks a rule.
    #[error("record {record}: {field} {reason}")]
    InvalidRecord {
        /// The record's name, or `#N` when the name itself is invalid.
        record: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A critical extension this version does not understand.
    #[error(
        "{location} carries critical extension {tag} that this tokvault does not understand: upgrade tokvault"
    )]
    UnsupportedExtension {
        /// `record NAME` or `the vault`.
        location: String,
        /// The extension tag.
        tag: u32,
    },
}

impl PayloadError {
    /// The broad class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::UnsupportedExtension { .. } => ErrorClass::Unsupported,
            _ => ErrorClass::InvalidPayload,
        }
    }
}

/// What an unlock attempt had to work with, for the "cannot decrypt"
/// message. Holds counts only, never key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnlockSummary {
    /// age identities offered.
    pub identities: usize,
    /// Whether a passphrase was offered.
    pub passphrase: bool,
    /// Whether a raw vault key was offered.
    pub vault_key: bool,
    /// age slots in the vault.
    pub age_slots: usize,
    /// Passphrase slots in the vault.
    pub passphrase_slots: usize,
}

impl fmt::Display for UnlockSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tried {} age identit{} against {} age slot{}",
            self.identities,
            if self.identities == 1 { "y" } else { "ies" },
            self.age_slots,
            if self.age_slots == 1 { "" } else { "s" },
        )?;
        match (self.passphrase, self.passphrase_slots) {
            (true, _) => write!(
                f,
                " and a passphrase against {} passphrase slot(s)",
                self.passphrase_slots
            )?,
            (false, 0) => {}
            (false, n) => write!(
                f,
                "; no passphrase was given for the {n} passphrase slot(s)"
            )?,
        }
        if self.vault_key {
            f.write_str("; a vault key was given")?;
        }
        Ok(())
    }
}

/// Errors from [`crate::Vault::open`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file's structure is wrong, unsupported, or out of KDF policy.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// No key matched, the passphrase is wrong, or the file was modified.
    /// Deliberately one case: the error says nothing about which.
    #[error(
        "cannot decrypt the vault ({0}): no identity or passphrase matches, or the file was modified. \
         Check the identity (-i) or passphrase; if they are right, restore the vault from a backup"
    )]
    CannotDecrypt(UnlockSummary),
    /// A passphrase slot asks for more Argon2 work than the opener allows
    /// (within the format's policy, but above [`crate::Unlock::max_kdf`]).
    #[error(
        "key slot {index} asks for {params}, more Argon2 work than allowed ({limit}); \
         nothing was tried. If you trust this vault, raise the limit"
    )]
    KdfLimit {
        /// Slot position (0-based).
        index: usize,
        /// What the slot asks for.
        params: KdfParams,
        /// The opener's limit.
        limit: KdfParams,
    },
    /// The vault authenticated but its records are invalid.
    #[error("the vault decrypted, but its contents are invalid: {0}")]
    Payload(#[from] PayloadError),
}

impl OpenError {
    /// The broad class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Parse(error) => error.class(),
            Self::CannotDecrypt(_) => ErrorClass::CannotDecrypt,
            Self::KdfLimit { .. } => ErrorClass::KdfPolicy,
            Self::Payload(error) => error.class(),
        }
    }
}

/// Errors from creating key slots ([`crate::Vault::create`],
/// [`crate::Vault::rekey`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlotError {
    /// No slot was asked for.
    #[error("a vault needs at least one recipient or passphrase")]
    NoSlots,
    /// More than 16 slots.
    #[error("{0} key slots asked for; a vault holds at most 16")]
    TooManySlots(usize),
    /// More than 4 passphrase slots.
    #[error("{0} passphrase slots asked for; a vault holds at most 4")]
    TooManyPassphrases(usize),
    /// A recipient string could not be parsed.
    #[error("invalid recipient {recipient}: {reason}")]
    InvalidRecipient {
        /// The start of the recipient as given, only if it looks public
        /// (an identity pasted by mistake is never quoted).
        recipient: String,
        /// Why it was refused.
        reason: String,
    },
    /// The same recipient twice.
    #[error("recipient {0:?} is listed twice")]
    DuplicateRecipient(String),
    /// An empty passphrase.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// Argon2id parameters outside the policy.
    #[error(transparent)]
    KdfPolicy(#[from] KdfPolicyError),
    /// The age library refused to encrypt.
    #[error("age could not wrap the vault key: {0}")]
    Age(String),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// Errors from [`crate::Vault::seal`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The records break a v1 rule; nothing was written.
    #[error("refusing to write the vault: {0}")]
    Payload(#[from] PayloadError),
    /// The generation counter would overflow.
    #[error("the vault generation counter is exhausted")]
    GenerationExhausted,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// Errors from parsing a stored [`crate::Pin`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the rollback pin is unreadable ({0}); delete it to start a new pin (rollback protection restarts from the vault as it is now)"
)]
pub struct PinParseError(pub(crate) &'static str);
