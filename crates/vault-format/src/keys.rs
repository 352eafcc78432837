//! Every key derivation and key wrap of format v1, in one place.
//!
//! All keys come from the 32-byte vault key (MK) through HKDF-SHA256 with
//! distinct labels, so no key is ever used for two purposes.

use std::io::Read;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{KdfPolicyError, SlotError};
use crate::header::{Header, ParsedVault, PassphraseSlot, TAG_LEN, VaultId};
use crate::kdf::{KdfParams, derive_kek};
use crate::secret::{SecretString, VaultKey};

pub(crate) const LABEL_HEADER_MAC: &[u8] = b"tokvault/v1 header mac";
pub(crate) const LABEL_PAYLOAD_KEY: &[u8] = b"tokvault/v1 payload key";
pub(crate) const LABEL_FINGERPRINT: &[u8] = b"tokvault/v1 key fingerprint";
pub(crate) const LABEL_PASSPHRASE_WRAP: &[u8] = b"tokvault/v1 passphrase wrap";
pub(crate) const LABEL_PASSPHRASE_COMMIT: &[u8] = b"tokvault/v1 passphrase commitment";
/// First bytes of an age slot's plaintext; then the vault id and MK.
pub(crate) const AGE_SLOT_CONTEXT: &[u8; 20] = b"tokvault/v1 age slot";
pub(crate) const AGE_SLOT_PLAINTEXT_LEN: usize = 20 + 16 + 32;

fn hkdf_32(salt: Option<&[u8]>, ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(salt, ikm)
        .expand_multi_info(info, &mut out[..])
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

fn header_mac_key(key: &VaultKey, vault_id: &VaultId) -> Zeroizing<[u8; 32]> {
    hkdf_32(Some(&vault_id.0), key.bytes(), &[LABEL_HEADER_MAC])
}

/// `HMAC-SHA256(HKDF(MK, salt = vault_id, "tokvault/v1 header mac"), header)`.
pub(crate) fn header_mac(key: &VaultKey, vault_id: &VaultId, header: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&header_mac_key(key, vault_id)[..])
        .expect("HMAC takes any key length");
    mac.update(header);
    mac.finalize().into_bytes().into()
}

/// Checks the header MAC in constant time. This is also the key commitment:
/// only the vault key that wrote the header passes.
pub(crate) fn verify_header_mac(
    key: &VaultKey,
    vault_id: &VaultId,
    header: &[u8],
    tag: &[u8; 32],
) -> bool {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&header_mac_key(key, vault_id)[..])
        .expect("HMAC takes any key length");
    mac.update(header);
    mac.verify_slice(tag).is_ok()
}

/// The payload cipher of one write: `HKDF(MK, salt = nonce,
/// "tokvault/v1 payload key" || generation_le)`.
pub(crate) fn payload_cipher(
    key: &VaultKey,
    nonce: &[u8; 24],
    generation: u64,
) -> XChaCha20Poly1305 {
    let payload_key = hkdf_32(
        Some(nonce),
        key.bytes(),
        &[LABEL_PAYLOAD_KEY, &generation.to_le_bytes()],
    );
    XChaCha20Poly1305::new((&payload_key[..]).into())
}

/// `HKDF(MK, salt = vault_id, "tokvault/v1 key fingerprint")`: identifies a
/// vault key in the rollback pin without revealing it.
pub(crate) fn key_fingerprint(key: &VaultKey, vault_id: &VaultId) -> [u8; 32] {
    *hkdf_32(Some(&vault_id.0), key.bytes(), &[LABEL_FINGERPRINT])
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out)?;
    Ok(out)
}

/// Wraps MK in a complete age v1 file for one recipient.
///
/// The file is built here rather than with `age::Encryptor`, whose stream
/// writer copies the plaintext (which holds MK) into a 64 KiB buffer that it
/// drops without wiping. age itself only wraps the file key into the
/// recipient's stanza; the header MAC and the single payload chunk follow
/// the age v1 spec, and the interop test decrypts the result with stock
/// `age -d`.
pub(crate) fn wrap_age(
    recipient: &(dyn age::Recipient + Send + Sync),
    vault_id: &VaultId,
    key: &VaultKey,
) -> Result<Vec<u8>, SlotError> {
    use age_core::format::FileKey;
    use age_core::secrecy::ExposeSecret;
    use base64::Engine;
    use base64::prelude::BASE64_STANDARD_NO_PAD;
    use chacha20poly1305::ChaCha20Poly1305;

    let file_key = FileKey::try_init_with_mut(|k| getrandom::getrandom(k))
        .map_err(|e| SlotError::Random(e.to_string()))?;
    let (stanzas, _labels) = recipient
        .wrap_file_key(&file_key)
        .map_err(|e| SlotError::Age(e.to_string()))?;
    let file_key = file_key.expose_secret();

    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"age-encryption.org/v1\n");
    for stanza in &stanzas {
        out.extend_from_slice(b"-> ");
        out.extend_from_slice(stanza.tag.as_bytes());
        for arg in &stanza.args {
            out.push(b' ');
            out.extend_from_slice(arg.as_bytes());
        }
        out.push(b'\n');
        // Body lines of 64 columns; the last line is always shorter (it
        // is empty when the body fills whole lines).
        let body = BASE64_STANDARD_NO_PAD.encode(&stanza.body);
        for line in body.as_bytes().chunks(64) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        if body.len() % 64 == 0 {
            out.push(b'\n');
        }
    }
    out.extend_from_slice(b"---");
    let mac_key = hkdf_32(Some(&[]), file_key, &[b"header"]);
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&mac_key[..]).expect("HMAC takes any key length");
    mac.update(&out);
    out.push(b' ');
    out.extend_from_slice(
        BASE64_STANDARD_NO_PAD
            .encode(mac.finalize().into_bytes())
            .as_bytes(),
    );
    out.push(b'\n');

    let nonce: [u8; 16] = random().map_err(|e| SlotError::Random(e.to_string()))?;
    out.extend_from_slice(&nonce);
    let payload_key = hkdf_32(Some(&nonce), file_key, &[b"payload"]);
    let mut chunk = Zeroizing::new([0u8; AGE_SLOT_PLAINTEXT_LEN]);
    chunk[..20].copy_from_slice(AGE_SLOT_CONTEXT);
    chunk[20..36].copy_from_slice(&vault_id.0);
    chunk[36..].copy_from_slice(key.bytes());
    // STREAM nonce: 11-byte big-endian counter 0, then the last-chunk flag.
    let mut chunk_nonce = [0u8; 12];
    chunk_nonce[11] = 1;
    let tag = ChaCha20Poly1305::new((&payload_key[..]).into())
        .encrypt_in_place_detached((&chunk_nonce).into(), b"", &mut chunk[..])
        .map_err(|_| SlotError::Age("ChaCha20-Poly1305 refused 68 bytes".into()))?;
    out.extend_from_slice(&chunk[..]);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Tries the identities against one age slot. `None` when none matches or
/// the plaintext is not the v1 age-slot layout for this vault.
pub(crate) fn unwrap_age(
    age_file: &[u8],
    identities: &[&dyn age::Identity],
    vault_id: &VaultId,
) -> Option<VaultKey> {
    let decryptor = age::Decryptor::new_buffered(age_file).ok()?;
    if decryptor.is_scrypt() {
        return None;
    }
    let mut reader = decryptor.decrypt(identities.iter().copied()).ok()?;
    // One byte more than the layout, so a longer plaintext is noticed.
    let mut plaintext = Zeroizing::new([0u8; AGE_SLOT_PLAINTEXT_LEN + 1]);
    let mut filled = 0;
    while filled < plaintext.len() {
        match reader.read(&mut plaintext[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return None,
        }
    }
    parse_age_slot_plaintext(&plaintext[..filled], Some(vault_id))
}

pub(crate) fn parse_age_slot_plaintext(
    plaintext: &[u8],
    vault_id: Option<&VaultId>,
) -> Option<VaultKey> {
    if plaintext.len() != AGE_SLOT_PLAINTEXT_LEN || &plaintext[..20] != AGE_SLOT_CONTEXT {
        return None;
    }
    if vault_id.is_some_and(|id| plaintext[20..36] != id.0) {
        return None;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&plaintext[36..]);
    Some(VaultKey(key))
}

fn passphrase_keys(kek: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    (
        hkdf_32(None, kek, &[LABEL_PASSPHRASE_WRAP]),
        hkdf_32(None, kek, &[LABEL_PASSPHRASE_COMMIT]),
    )
}

/// Associated data of a sealed passphrase slot: vault id, parameters, salt.
fn passphrase_aad(vault_id: &VaultId, params: KdfParams, salt: &[u8; 32]) -> [u8; 16 + 12 + 32] {
    let mut aad = [0u8; 60];
    aad[..16].copy_from_slice(&vault_id.0);
    aad[16..28].copy_from_slice(&params.to_bytes());
    aad[28..].copy_from_slice(salt);
    aad
}

/// Creates a passphrase slot wrapping MK. Runs Argon2id once.
pub(crate) fn seal_passphrase(
    passphrase: &SecretString,
    params: KdfParams,
    vault_id: &VaultId,
    key: &VaultKey,
) -> Result<PassphraseSlot, SlotError> {
    if passphrase.is_empty() {
        return Err(SlotError::EmptyPassphrase);
    }
    params.check_policy()?;
    let random_error = |e: getrandom::Error| SlotError::Random(e.to_string());
    let salt: [u8; 32] = random().map_err(random_error)?;
    let nonce: [u8; 24] = random().map_err(random_error)?;
    let kek = derive_kek(passphrase.expose_secret().as_bytes(), &salt, params)?;
    let (wrap_key, commitment) = passphrase_keys(&kek);
    let mut sealed = Zeroizing::new([0u8; 48]);
    sealed[..32].copy_from_slice(key.bytes());
    let tag = XChaCha20Poly1305::new((&wrap_key[..]).into())
        .encrypt_in_place_detached(
            XNonce::from_slice(&nonce),
            &passphrase_aad(vault_id, params, &salt),
            &mut sealed[..32],
        )
        .map_err(|_| SlotError::Age("XChaCha20-Poly1305 refused to seal 32 bytes".into()))?;
    sealed[32..].copy_from_slice(&tag);
    Ok(PassphraseSlot {
        params,
        salt,
        commitment: *commitment,
        nonce,
        sealed_key: *sealed,
    })
}

/// Opens a passphrase slot: Argon2id (policy re-checked first), then the
/// commitment in constant time, then the AEAD.
pub(crate) fn open_passphrase(
    slot: &PassphraseSlot,
    passphrase: &SecretString,
    vault_id: &VaultId,
) -> Result<Option<VaultKey>, KdfPolicyError> {
    let kek = derive_kek(
        passphrase.expose_secret().as_bytes(),
        &slot.salt,
        slot.params,
    )?;
    let (wrap_key, commitment) = passphrase_keys(&kek);
    if !bool::from(commitment[..].ct_eq(&slot.commitment)) {
        return Ok(None);
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&slot.sealed_key[..32]);
    let opened = XChaCha20Poly1305::new((&wrap_key[..]).into()).decrypt_in_place_detached(
        XNonce::from_slice(&slot.nonce),
        &passphrase_aad(vault_id, slot.params, &slot.salt),
        &mut key[..],
        (&slot.sealed_key[32..]).into(),
    );
    Ok(opened.ok().map(|()| VaultKey(key)))
}

/// Encrypts the payload that follows the header in `file` (everything from
/// `header_len` on) in place, with the header as associated data, and
/// appends the tag. The one payload-encryption path, shared by
/// [`crate::Vault::seal`] and the test hooks.
pub(crate) fn encrypt_payload(
    key: &VaultKey,
    header: &Header,
    file: &mut Vec<u8>,
    header_len: usize,
) -> Result<(), chacha20poly1305::aead::Error> {
    let (header_bytes, body) = file.split_at_mut(header_len);
    let tag = payload_cipher(key, &header.payload_nonce, header.generation)
        .encrypt_in_place_detached(
            XNonce::from_slice(&header.payload_nonce),
            header_bytes,
            body,
        )?;
    file.extend_from_slice(&tag);
    Ok(())
}

/// Decrypts a parsed file's payload into a zeroizing buffer of exactly its
/// size. `None` when it does not authenticate under `key`.
pub(crate) fn decrypt_payload(
    key: &VaultKey,
    parsed: &ParsedVault<'_>,
) -> Option<Zeroizing<Vec<u8>>> {
    let header = &parsed.header;
    let (ciphertext, tag) = parsed.payload.split_at(parsed.payload.len() - TAG_LEN);
    let mut plaintext = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    plaintext.extend_from_slice(ciphertext);
    payload_cipher(key, &header.payload_nonce, header.generation)
        .decrypt_in_place_detached(
            XNonce::from_slice(&header.payload_nonce),
            parsed.header_bytes,
            &mut plaintext[..],
            tag.into(),
        )
        .ok()?;
    Some(plaintext)
}
