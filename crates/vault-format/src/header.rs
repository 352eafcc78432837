//! The cleartext header: a pure parser over `&[u8]` and a separate encoder.
//! Nothing here touches keys; `keys` and `vault` do the crypto. The parser
//! enforces every structural rule (lengths, counts, slot shapes, KDF policy)
//! so that crypto code only ever sees well-formed input.

use std::fmt;

use crate::error::ParseError;
use crate::kdf::KdfParams;
use crate::reader::Reader;
use crate::recipient::{RecipientKind, parse_recipient};

/// The 8 magic bytes. Like PNG's: a high-bit byte, then CR LF, SUB, LF, so a
/// text-mode transfer that rewrites line endings is caught at once.
pub const MAGIC: [u8; 8] = [0x89, b'T', b'K', b'V', b'\r', b'\n', 0x1a, b'\n'];
/// The format version this crate reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Most key slots a vault may have.
pub const MAX_SLOTS: usize = 16;
/// Most passphrase slots a vault may have: each may cost an Argon2id run
/// at up to the policy ceiling when a passphrase is tried, before the MAC
/// can be checked, so their number bounds what a forged file can demand.
pub const MAX_PASSPHRASE_SLOTS: usize = 4;
/// Longest slot body in bytes (an ssh-rsa 4096 age slot needs about 1.5 KiB).
pub const MAX_SLOT_LEN: usize = 16 * 1024;
/// Longest plaintext payload in bytes (64 MiB).
pub const MAX_PLAINTEXT_LEN: usize = 64 * 1024 * 1024;
/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;
/// HMAC-SHA256 length.
pub(crate) const MAC_LEN: usize = 32;
/// Fixed header fields before the slots.
pub(crate) const FIXED_LEN: usize = 8 + 2 + 2 + 16 + 8 + 8 + 24 + 4 + 1;

pub(crate) const SLOT_TYPE_AGE: u8 = 1;
pub(crate) const SLOT_TYPE_PASSPHRASE: u8 = 2;
/// Body length of a passphrase slot: params 12, salt 32, commitment 32,
/// nonce 24, sealed key 32 + tag 16.
pub(crate) const PASSPHRASE_SLOT_LEN: usize = 12 + 32 + 32 + 24 + 48;
const MAX_RECIPIENT_LEN: usize = 4096;
const MAX_AGE_STANZAS: usize = 2;
const AGE_VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";

/// A vault's random 16-byte identifier, fixed at creation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VaultId(pub [u8; 16]);

impl fmt::Display for VaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for VaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultId({self})")
    }
}

/// An age key slot: the recipient (canonical public string, so a rekey can
/// re-wrap without private keys) and a complete binary age file whose
/// plaintext is the age-slot layout holding the vault key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgeSlot {
    /// Recipient kind.
    pub kind: RecipientKind,
    /// Canonical recipient string.
    pub recipient: String,
    /// The embedded age file; `age -d` with the identity decrypts it.
    pub age_file: Vec<u8>,
}

/// An Argon2id passphrase slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassphraseSlot {
    /// Argon2id cost parameters.
    pub params: KdfParams,
    /// Argon2id salt.
    pub salt: [u8; 32],
    /// `HKDF(KEK, "tokvault/v1 passphrase commitment")`.
    pub commitment: [u8; 32],
    /// XChaCha20-Poly1305 nonce of the sealed key.
    pub nonce: [u8; 24],
    /// The vault key sealed under the slot's wrap key, with its tag.
    pub sealed_key: [u8; 48],
}

/// One key slot.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Slot {
    /// Unlocked by an age identity.
    Age(AgeSlot),
    /// Unlocked by a passphrase.
    Passphrase(PassphraseSlot),
}

/// The header fields (everything before the header MAC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Random id fixed at creation.
    pub vault_id: VaultId,
    /// +1 on every write.
    pub generation: u64,
    /// Unix seconds of the write (informational, authenticated).
    pub written_at: u64,
    /// Fresh random nonce of this write's payload.
    pub payload_nonce: [u8; 24],
    /// Ciphertext length including the 16-byte tag.
    pub payload_len: u32,
    /// Key slots, 1 to 16.
    pub slots: Vec<Slot>,
}

/// A structurally valid vault file, not yet authenticated.
#[derive(Clone, Debug)]
pub struct ParsedVault<'a> {
    /// The parsed header fields.
    pub header: Header,
    /// The header MAC as stored.
    pub mac: [u8; 32],
    /// The bytes the MAC covers.
    pub(crate) mac_input: &'a [u8],
    /// The whole header including the MAC (the payload's associated data).
    pub(crate) header_bytes: &'a [u8],
    /// The payload ciphertext and tag.
    pub payload: &'a [u8],
}

/// Parses a vault file's structure. Pure: no keys, no allocation beyond the
/// slots (each bounded by [`MAX_SLOT_LEN`]).
pub fn parse(bytes: &[u8]) -> Result<ParsedVault<'_>, ParseError> {
    let mut r = Reader::new(bytes);
    let magic = r
        .take(MAGIC.len(), "magic")
        .map_err(|_| ParseError::NotAVault)?;
    if magic != MAGIC {
        return Err(ParseError::NotAVault);
    }
    let version = r.u16("format version")?;
    if version != FORMAT_VERSION {
        return Err(ParseError::UnsupportedVersion { version });
    }
    let flags = r.u16("flags")?;
    if flags != 0 {
        return Err(ParseError::UnknownFlags { flags });
    }
    let vault_id = VaultId(r.take_array("vault id")?);
    let generation = r.u64("generation")?;
    let written_at = r.u64("write time")?;
    let payload_nonce = r.take_array("payload nonce")?;
    let payload_len = r.u32("payload length")?;
    if (payload_len as usize) < TAG_LEN + 4 || payload_len as usize > MAX_PLAINTEXT_LEN + TAG_LEN {
        return Err(ParseError::PayloadLength { len: payload_len });
    }
    let slot_count = r.u8("slot count")?;
    if slot_count == 0 || slot_count as usize > MAX_SLOTS {
        return Err(ParseError::SlotCount { count: slot_count });
    }
    let mut slots = Vec::with_capacity(slot_count as usize);
    for index in 0..slot_count as usize {
        let slot_type = r.u8("slot type")?;
        let len = r.u32("slot length")? as usize;
        if len > MAX_SLOT_LEN {
            return Err(ParseError::MalformedSlot {
                index,
                reason: "slot longer than 16 KiB",
            });
        }
        let body = r.take(len, "key slot")?;
        let slot = match slot_type {
            SLOT_TYPE_AGE => Slot::Age(parse_age_slot(index, body)?),
            SLOT_TYPE_PASSPHRASE => Slot::Passphrase(parse_passphrase_slot(index, body)?),
            other => {
                return Err(ParseError::UnknownSlotType {
                    index,
                    slot_type: other,
                });
            }
        };
        let passphrase_slots = slots
            .iter()
            .filter(|s| matches!(s, Slot::Passphrase(_)))
            .count();
        if matches!(slot, Slot::Passphrase(_)) && passphrase_slots == MAX_PASSPHRASE_SLOTS {
            return Err(ParseError::MalformedSlot {
                index,
                reason: "more than 4 passphrase slots",
            });
        }
        if slots.contains(&slot) || is_duplicate_recipient(&slots, &slot) {
            return Err(ParseError::MalformedSlot {
                index,
                reason: "duplicate of an earlier slot",
            });
        }
        slots.push(slot);
    }
    let mac_input = &bytes[..r.position()];
    let mac = r.take_array("header MAC")?;
    let header_bytes = &bytes[..r.position()];
    let payload = r.take(payload_len as usize, "payload")?;
    if r.remaining() != 0 {
        return Err(ParseError::TrailingData {
            extra: r.remaining(),
        });
    }
    Ok(ParsedVault {
        header: Header {
            vault_id,
            generation,
            written_at,
            payload_nonce,
            payload_len,
            slots,
        },
        mac,
        mac_input,
        header_bytes,
        payload,
    })
}

fn is_duplicate_recipient(slots: &[Slot], slot: &Slot) -> bool {
    let Slot::Age(new) = slot else { return false };
    slots
        .iter()
        .any(|s| matches!(s, Slot::Age(old) if old.recipient == new.recipient))
}

fn parse_age_slot(index: usize, body: &[u8]) -> Result<AgeSlot, ParseError> {
    let malformed = |reason| ParseError::MalformedSlot { index, reason };
    let mut r = Reader::new(body);
    let recipient_len = r.u16("age slot recipient length")? as usize;
    if recipient_len == 0 || recipient_len > MAX_RECIPIENT_LEN {
        return Err(malformed("recipient length out of range"));
    }
    let recipient = r.take(recipient_len, "age slot recipient")?;
    let recipient =
        std::str::from_utf8(recipient).map_err(|_| malformed("recipient is not UTF-8"))?;
    let parsed = parse_recipient(recipient)
        .map_err(|_| malformed("recipient is not a supported age recipient"))?;
    if parsed.canonical != recipient {
        return Err(malformed("recipient is not in canonical form"));
    }
    let age_file = r.rest();
    check_age_stanzas(age_file, parsed.kind).map_err(malformed)?;
    Ok(AgeSlot {
        kind: parsed.kind,
        recipient: parsed.canonical,
        age_file: age_file.to_vec(),
    })
}

/// Checks the stanza lines of the embedded age header: exactly one stanza
/// of the recipient's kind, and besides it at most one `*-grease` stanza
/// (which age's own encryptor adds). Anything else is refused: a `scrypt`
/// stanza (passphrases belong in Argon2id slots), and any other recipient's
/// stanza, which would be a hidden extra reader that the stored recipient
/// string does not show. The stanza contents are age's job at unwrap time.
fn check_age_stanzas(age_file: &[u8], kind: RecipientKind) -> Result<(), &'static str> {
    let rest = age_file
        .strip_prefix(AGE_VERSION_LINE)
        .ok_or("embedded file is not an age v1 file")?;
    let mut stanzas = 0;
    let mut of_kind = 0;
    let mut lines = rest.split(|&b| b == b'\n');
    loop {
        let line = lines.next().ok_or("embedded age header has no MAC line")?;
        if line.starts_with(b"--- ") {
            break;
        }
        if let Some(stanza) = line.strip_prefix(b"-> ") {
            stanzas += 1;
            if stanzas > MAX_AGE_STANZAS {
                return Err("embedded age file has too many stanzas");
            }
            let tag = stanza.split(|&b| b == b' ').next().unwrap_or_default();
            if tag == b"scrypt" {
                return Err(
                    "embedded age file holds a scrypt (passphrase) stanza, which tokvault refuses",
                );
            }
            if tag == kind.stanza_tag().as_bytes() {
                of_kind += 1;
            } else if !tag.ends_with(b"-grease") {
                return Err("embedded age file holds a stanza for another recipient");
            }
        }
    }
    if of_kind != 1 {
        return Err("embedded age file does not hold exactly one stanza for its recipient");
    }
    Ok(())
}

fn parse_passphrase_slot(index: usize, body: &[u8]) -> Result<PassphraseSlot, ParseError> {
    if body.len() != PASSPHRASE_SLOT_LEN {
        return Err(ParseError::MalformedSlot {
            index,
            reason: "passphrase slot has the wrong length",
        });
    }
    let mut r = Reader::new(body);
    let params = KdfParams {
        memory_kib: r.u32("Argon2 memory")?,
        iterations: r.u32("Argon2 passes")?,
        parallelism: r.u32("Argon2 lanes")?,
    };
    params
        .check_policy()
        .map_err(|error| ParseError::KdfPolicy { index, error })?;
    Ok(PassphraseSlot {
        params,
        salt: r.take_array("Argon2 salt")?,
        commitment: r.take_array("passphrase commitment")?,
        nonce: r.take_array("sealed key nonce")?,
        sealed_key: r.take_array("sealed key")?,
    })
}

impl Header {
    /// Whether a passphrase can open this vault (it has a passphrase slot).
    pub fn has_passphrase_slot(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Slot::Passphrase(_)))
    }

    /// Encodes the header fields: exactly the bytes the header MAC covers.
    /// `parse` followed by this, the MAC and the payload reproduces the input.
    pub fn to_bytes(&self) -> Vec<u8> {
        let slots_len: usize = self.slots.iter().map(|s| 5 + slot_body_len(s)).sum();
        let mut out = Vec::with_capacity(FIXED_LEN + slots_len + MAC_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.vault_id.0);
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.written_at.to_le_bytes());
        out.extend_from_slice(&self.payload_nonce);
        out.extend_from_slice(&self.payload_len.to_le_bytes());
        out.push(self.slots.len() as u8);
        for slot in &self.slots {
            let len = slot_body_len(slot) as u32;
            match slot {
                Slot::Age(age) => {
                    out.push(SLOT_TYPE_AGE);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&(age.recipient.len() as u16).to_le_bytes());
                    out.extend_from_slice(age.recipient.as_bytes());
                    out.extend_from_slice(&age.age_file);
                }
                Slot::Passphrase(p) => {
                    out.push(SLOT_TYPE_PASSPHRASE);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&p.params.to_bytes());
                    out.extend_from_slice(&p.salt);
                    out.extend_from_slice(&p.commitment);
                    out.extend_from_slice(&p.nonce);
                    out.extend_from_slice(&p.sealed_key);
                }
            }
        }
        // The size was computed up front (the caller appends the MAC into
        // the same allocation); a wrong FIXED_LEN or slot length shows here.
        debug_assert_eq!(out.len(), FIXED_LEN + slots_len);
        out
    }
}

fn slot_body_len(slot: &Slot) -> usize {
    match slot {
        Slot::Age(age) => 2 + age.recipient.len() + age.age_file.len(),
        Slot::Passphrase(_) => PASSPHRASE_SLOT_LEN,
    }
}

/// Parses only the header of a vault file, for `inspect`: no key needed.
pub fn inspect(bytes: &[u8]) -> Result<(Header, [u8; 32]), ParseError> {
    parse(bytes).map(|parsed| (parsed.header, parsed.mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_scan_refuses_scrypt_and_counts_kind() {
        let x25519 =
            b"age-encryption.org/v1\n-> X25519 abc\nbody\n-> a-grease x\n\n--- mac\n\x00\xff";
        assert_eq!(check_age_stanzas(x25519, RecipientKind::X25519), Ok(()));
        assert!(check_age_stanzas(x25519, RecipientKind::SshEd25519).is_err());
        let scrypt = b"age-encryption.org/v1\n-> scrypt salt 18\nbody\n--- mac\n";
        assert!(check_age_stanzas(scrypt, RecipientKind::X25519).is_err());
        let two = b"age-encryption.org/v1\n-> X25519 a\nb\n-> X25519 c\nd\n--- mac\n";
        assert!(check_age_stanzas(two, RecipientKind::X25519).is_err());
        let hidden = b"age-encryption.org/v1\n-> X25519 a\nb\n-> ssh-ed25519 t k\nd\n--- mac\n";
        assert!(check_age_stanzas(hidden, RecipientKind::X25519).is_err());
        let greases =
            b"age-encryption.org/v1\n-> X25519 a\nb\n-> a-grease\n\n-> b-grease\n\n--- mac\n";
        assert!(check_age_stanzas(greases, RecipientKind::X25519).is_err());
        assert!(
            check_age_stanzas(
                b"age-encryption.org/v1\n-> X25519 a\n",
                RecipientKind::X25519
            )
            .is_err()
        );
        assert!(check_age_stanzas(b"not age", RecipientKind::X25519).is_err());
    }
}
