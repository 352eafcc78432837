//! Opening, sealing and rekeying a vault.

use zeroize::Zeroizing;

use crate::error::{OpenError, SealError, SlotError, UnlockSummary};
use crate::header::{
    self, AgeSlot, Header, MAC_LEN, MAX_PASSPHRASE_SLOTS, MAX_SLOTS, ParsedVault, Slot, TAG_LEN,
    VaultId,
};
use crate::kdf::KdfParams;
use crate::keys;
use crate::payload::{self, Encoder};
use crate::pin::Pin;
use crate::recipient::parse_recipient;
use crate::record::{Extension, Record};
use crate::secret::{SecretString, VaultKey};

/// A key slot to create.
#[derive(Debug)]
pub enum SlotSpec<'a> {
    /// An age recipient string (`age1…`, `ssh-ed25519 …`, `ssh-rsa …`).
    Recipient(&'a str),
    /// A passphrase and the Argon2id parameters to protect it with.
    Passphrase {
        /// The passphrase (non-empty).
        passphrase: &'a SecretString,
        /// Cost parameters; [`KdfParams::DEFAULT`] unless there is a reason.
        params: KdfParams,
    },
}

/// What to try when opening a vault. Slots are tried cheapest first: a raw
/// vault key, then age identities against every age slot, and only if none
/// matched, the passphrase against the passphrase slots (Argon2id is slow).
pub struct Unlock<'a> {
    identities: Vec<&'a dyn age::Identity>,
    passphrase: Option<&'a SecretString>,
    vault_key: Option<&'a VaultKey>,
    max_kdf: KdfParams,
}

impl Default for Unlock<'_> {
    fn default() -> Self {
        Self {
            identities: Vec::new(),
            passphrase: None,
            vault_key: None,
            max_kdf: KdfParams::UNLOCK_LIMIT,
        }
    }
}

impl<'a> Unlock<'a> {
    /// Nothing to try yet; Argon2 work limited to [`KdfParams::UNLOCK_LIMIT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows passphrase slots up to `limit` (still within the format's
    /// ceiling). Raise it only for a vault you trust: until the header MAC
    /// is verified, the parameters are whatever the file says.
    pub fn max_kdf(mut self, limit: KdfParams) -> Self {
        self.max_kdf = limit;
        self
    }

    /// Adds an age identity (X25519, or SSH from `age::ssh::Identity`).
    pub fn identity(mut self, identity: &'a dyn age::Identity) -> Self {
        self.identities.push(identity);
        self
    }

    /// Sets the passphrase.
    pub fn passphrase(mut self, passphrase: &'a SecretString) -> Self {
        self.passphrase = Some(passphrase);
        self
    }

    /// Sets a raw vault key (emergency recovery, see
    /// [`VaultKey::from_age_slot_plaintext`]).
    pub fn vault_key(mut self, key: &'a VaultKey) -> Self {
        self.vault_key = Some(key);
        self
    }
}

/// An open vault: the header state it was read or last written with, the
/// vault key, and the decrypted records.
#[derive(Debug)]
pub struct Vault {
    vault_id: VaultId,
    generation: u64,
    written_at: u64,
    header_mac: [u8; 32],
    slots: Vec<Slot>,
    key: VaultKey,
    records: Vec<Record>,
    extensions: Vec<Extension>,
}

fn random_error(e: getrandom::Error) -> SlotError {
    SlotError::Random(e.to_string())
}

/// What an error may quote of a refused recipient. Users paste identities
/// (`AGE-SECRET-KEY-1…`, OpenSSH private keys) where a recipient belongs, so
/// only input shaped like a public key is quoted, and only its start.
fn shown_recipient(input: &str) -> String {
    let input = input.trim();
    let looks_public = (input.starts_with("age1") || input.starts_with("ssh-"))
        && !input.to_ascii_uppercase().contains("SECRET")
        && !input.contains("PRIVATE");
    if looks_public {
        input
            .chars()
            .take(24)
            .filter(|c| !c.is_control())
            .collect::<String>()
            + "…"
    } else {
        "(not shown: it does not look like a public key)".to_owned()
    }
}

/// Builds the slots for `key`; at least one, at most 16, recipients unique.
fn build_slots(
    specs: &[SlotSpec<'_>],
    vault_id: &VaultId,
    key: &VaultKey,
) -> Result<Vec<Slot>, SlotError> {
    if specs.is_empty() {
        return Err(SlotError::NoSlots);
    }
    if specs.len() > MAX_SLOTS {
        return Err(SlotError::TooManySlots(specs.len()));
    }
    let passphrases = specs
        .iter()
        .filter(|s| matches!(s, SlotSpec::Passphrase { .. }))
        .count();
    if passphrases > MAX_PASSPHRASE_SLOTS {
        return Err(SlotError::TooManyPassphrases(passphrases));
    }
    let mut slots = Vec::with_capacity(specs.len());
    for spec in specs {
        let slot = match spec {
            SlotSpec::Recipient(input) => {
                let parsed =
                    parse_recipient(input).map_err(|reason| SlotError::InvalidRecipient {
                        recipient: shown_recipient(input),
                        reason,
                    })?;
                if slots
                    .iter()
                    .any(|s| matches!(s, Slot::Age(a) if a.recipient == parsed.canonical))
                {
                    return Err(SlotError::DuplicateRecipient(parsed.canonical));
                }
                Slot::Age(AgeSlot {
                    kind: parsed.kind,
                    age_file: keys::wrap_age(parsed.recipient.as_ref(), vault_id, key)?,
                    recipient: parsed.canonical,
                })
            }
            SlotSpec::Passphrase { passphrase, params } => {
                Slot::Passphrase(keys::seal_passphrase(passphrase, *params, vault_id, key)?)
            }
        };
        slots.push(slot);
    }
    Ok(slots)
}

impl Vault {
    /// A new, empty vault with a random id and vault key. Nothing is written
    /// until [`Vault::seal`], whose first call produces generation 1.
    pub fn create(slots: &[SlotSpec<'_>]) -> Result<Self, SlotError> {
        Self::create_with_id(VaultId(keys::random().map_err(random_error)?), slots)
    }

    pub(crate) fn create_with_id(
        vault_id: VaultId,
        slots: &[SlotSpec<'_>],
    ) -> Result<Self, SlotError> {
        Self::create_with_id_and_key(vault_id, VaultKey::generate().map_err(random_error)?, slots)
    }

    pub(crate) fn create_with_id_and_key(
        vault_id: VaultId,
        key: VaultKey,
        slots: &[SlotSpec<'_>],
    ) -> Result<Self, SlotError> {
        let slots = build_slots(slots, &vault_id, &key)?;
        Ok(Self {
            vault_id,
            generation: 0,
            written_at: 0,
            header_mac: [0; 32],
            slots,
            key,
            records: Vec::new(),
            extensions: Vec::new(),
        })
    }

    /// Opens a vault file: parse (structure and KDF policy, no crypto),
    /// recover the vault key from a slot, verify the header MAC, decrypt the
    /// payload with the header as associated data, decode and validate.
    pub fn open(bytes: &[u8], unlock: &Unlock<'_>) -> Result<Self, OpenError> {
        let parsed = header::parse(bytes)?;
        let key = recover_key(&parsed, unlock)?;
        let plaintext = keys::decrypt_payload(&key, &parsed)
            .ok_or_else(|| OpenError::CannotDecrypt(summary(&parsed, unlock)))?;
        let (records, extensions) = payload::decode(&plaintext)?;
        let header = &parsed.header;
        Ok(Self {
            vault_id: header.vault_id,
            generation: header.generation,
            written_at: header.written_at,
            header_mac: parsed.mac,
            slots: parsed.header.slots,
            key,
            records,
            extensions,
        })
    }

    /// Encrypts the records into a complete vault file: generation + 1, a
    /// fresh random payload nonce, the same slots (no passphrase, no Argon2).
    /// On success the vault reflects the written state (see [`Vault::pin`]).
    pub fn seal(&mut self, now: u64) -> Result<Vec<u8>, SealError> {
        let generation = self
            .generation
            .checked_add(1)
            .ok_or(SealError::GenerationExhausted)?;
        let payload_nonce: [u8; 24] =
            keys::random().map_err(|e| SealError::Random(e.to_string()))?;
        let encoder = Encoder::new(&self.records, &self.extensions)?;
        let plaintext_len = encoder.plaintext_len();
        let header = Header {
            vault_id: self.vault_id,
            generation,
            written_at: now,
            payload_nonce,
            payload_len: u32::try_from(plaintext_len + TAG_LEN)
                .expect("plaintext is capped at 64 MiB"),
            slots: self.slots.clone(),
        };
        let mut file = Zeroizing::new(header.to_bytes());
        let mac = keys::header_mac(&self.key, &self.vault_id, &file);
        file.reserve_exact(MAC_LEN + plaintext_len + TAG_LEN);
        file.extend_from_slice(&mac);
        let header_len = file.len();
        file.resize(header_len + plaintext_len, 0);
        encoder.write(&mut file[header_len..])?;
        keys::encrypt_payload(&self.key, &header, &mut file, header_len).map_err(|_| {
            SealError::Payload(crate::PayloadError::Framing("payload too large to encrypt"))
        })?;
        self.generation = generation;
        self.written_at = now;
        self.header_mac = mac;
        // The buffer now holds only ciphertext; hand it out without a copy.
        Ok(std::mem::take(&mut *file))
    }

    /// Replaces every slot and rotates the vault key. Age slots can be
    /// rebuilt from [`Vault::recipients`]; passphrase slots need the
    /// passphrase again. Takes effect at the next [`Vault::seal`].
    pub fn rekey(&mut self, slots: &[SlotSpec<'_>]) -> Result<(), SlotError> {
        let key = VaultKey::generate().map_err(random_error)?;
        self.slots = build_slots(slots, &self.vault_id, &key)?;
        self.key = key;
        Ok(())
    }

    /// The records.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The records, to change. Names must stay unique: [`Vault::seal`]
    /// refuses otherwise.
    pub fn records_mut(&mut self) -> &mut Vec<Record> {
        &mut self.records
    }

    /// The record named `name`.
    pub fn record(&self, name: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.name == name)
    }

    /// The record named `name`, to change.
    pub fn record_mut(&mut self, name: &str) -> Option<&mut Record> {
        self.records.iter_mut().find(|r| r.name == name)
    }

    /// Vault-level extensions from a later version, kept as found.
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }

    /// The vault id.
    pub fn vault_id(&self) -> VaultId {
        self.vault_id
    }

    /// Generation read, or last written (0 for a vault never sealed).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Write time read, or last written (Unix seconds).
    pub fn written_at(&self) -> u64 {
        self.written_at
    }

    /// The key slots.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Whether a passphrase can open this vault (it has a passphrase slot).
    pub fn has_passphrase_slot(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Slot::Passphrase(_)))
    }

    /// The recipient strings of the age slots, in slot order.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().filter_map(|slot| match slot {
            Slot::Age(age) => Some(age.recipient.as_str()),
            Slot::Passphrase(_) => None,
        })
    }

    #[cfg(feature = "testing")]
    pub(crate) fn key_bytes(&self) -> &[u8; 32] {
        self.key.bytes()
    }

    /// The pin describing this vault as read or last written.
    pub fn pin(&self) -> Pin {
        Pin {
            vault_id: self.vault_id,
            generation: self.generation,
            header_mac: self.header_mac,
            key_fingerprint: keys::key_fingerprint(&self.key, &self.vault_id),
        }
    }
}

fn summary(parsed: &ParsedVault<'_>, unlock: &Unlock<'_>) -> UnlockSummary {
    let slots = &parsed.header.slots;
    UnlockSummary {
        identities: unlock.identities.len(),
        passphrase: unlock.passphrase.is_some(),
        vault_key: unlock.vault_key.is_some(),
        age_slots: slots.iter().filter(|s| matches!(s, Slot::Age(_))).count(),
        passphrase_slots: slots
            .iter()
            .filter(|s| matches!(s, Slot::Passphrase(_)))
            .count(),
    }
}

/// Finds a slot that yields a key passing the header MAC. A slot that
/// unwraps to a key failing the MAC (transplanted from another vault, or
/// the header was changed) is skipped like a non-matching one.
fn recover_key(parsed: &ParsedVault<'_>, unlock: &Unlock<'_>) -> Result<VaultKey, OpenError> {
    let header = &parsed.header;
    let authentic = |key: &VaultKey| {
        keys::verify_header_mac(key, &header.vault_id, parsed.mac_input, &parsed.mac)
    };
    if let Some(key) = unlock.vault_key.filter(|key| authentic(key)) {
        return Ok(VaultKey(Zeroizing::new(*key.bytes())));
    }
    if !unlock.identities.is_empty() {
        let age_slots = header.slots.iter().filter_map(|slot| match slot {
            Slot::Age(age) => Some(age),
            Slot::Passphrase(_) => None,
        });
        for age in age_slots {
            let key = keys::unwrap_age(&age.age_file, &unlock.identities, &header.vault_id);
            if let Some(key) = key.filter(|key| authentic(key)) {
                return Ok(key);
            }
        }
    }
    if let Some(passphrase) = unlock.passphrase {
        for (index, slot) in header.slots.iter().enumerate() {
            if let Slot::Passphrase(slot) = slot {
                if !slot.params.within(&unlock.max_kdf) {
                    return Err(OpenError::KdfLimit {
                        index,
                        params: slot.params,
                        limit: unlock.max_kdf,
                    });
                }
                let opened = keys::open_passphrase(slot, passphrase, &header.vault_id)
                    .map_err(|error| crate::ParseError::KdfPolicy { index, error })?;
                if let Some(key) = opened.filter(|key| authentic(key)) {
                    return Ok(key);
                }
            }
        }
    }
    Err(OpenError::CannotDecrypt(summary(parsed, unlock)))
}
