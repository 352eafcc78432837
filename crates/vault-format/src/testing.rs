//! Test and fuzzing hooks (feature `testing`), never needed by
//! applications: they build files that a correct writer would refuse to
//! produce, so attack tests and fuzzers can reach the code behind the MAC.

use zeroize::Zeroizing;

use crate::error::SlotError;
use crate::header::{Header, TAG_LEN, VaultId};
use crate::keys;
use crate::secret::VaultKey;
use crate::vault::{SlotSpec, Vault};

/// A vault key with known bytes.
pub fn vault_key(bytes: [u8; 32]) -> VaultKey {
    VaultKey(Zeroizing::new(bytes))
}

/// Encodes `header` (its `payload_len` is overwritten to fit), MACs it
/// under `key` and encrypts `plaintext` as the payload. The result passes
/// every cryptographic check, whatever `plaintext` holds.
pub fn reseal(header: &Header, plaintext: &[u8], key: &VaultKey) -> Vec<u8> {
    let mut header = header.clone();
    header.payload_len = u32::try_from(plaintext.len() + TAG_LEN).unwrap_or(u32::MAX);
    let mut file = header.to_bytes();
    let mac = keys::header_mac(key, &header.vault_id, &file);
    file.extend_from_slice(&mac);
    let header_len = file.len();
    file.extend_from_slice(plaintext);
    keys::encrypt_payload(key, &header, &mut file, header_len).expect("payloads here are small");
    file
}

/// Decrypts the payload of an authentic file without decoding it.
pub fn plaintext_of(file: &[u8], key: &VaultKey) -> Option<Zeroizing<Vec<u8>>> {
    keys::decrypt_payload(key, &crate::header::parse(file).ok()?)
}

/// Argon2 runs on the calling thread so far, to prove a refusal came before
/// any key-derivation work.
pub fn argon2_runs_on_this_thread() -> u64 {
    crate::kdf::ARGON2_RUNS.with(|runs| runs.get())
}

/// Creates a vault with a chosen id, as an attacker who knows a victim's
/// (cleartext) vault id and public recipient could.
pub fn create_with_vault_id(
    vault_id: [u8; 16],
    slots: &[SlotSpec<'_>],
) -> Result<Vault, SlotError> {
    Vault::create_with_id(VaultId(vault_id), slots)
}

/// A copy of an open vault's key, to play a key holder writing raw files.
pub fn key_of(vault: &Vault) -> VaultKey {
    VaultKey(Zeroizing::new(*vault.key_bytes()))
}

/// A postcard body of `count` minimal service-account records, each with
/// `scopes` one-byte scopes, encoded by hand (as a hostile writer would).
pub fn minimal_records_body(count: usize, scopes: usize) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut n: usize) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    let mut out = Vec::new();
    varint(&mut out, count);
    for i in 0..count {
        let name = format!("r{i}");
        varint(&mut out, name.len());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\x07generic");
        let endpoint = b"https://example.com/token";
        varint(&mut out, endpoint.len());
        out.extend_from_slice(endpoint);
        varint(&mut out, scopes);
        for _ in 0..scopes {
            out.extend_from_slice(b"\x01s");
        }
        // account none; ServiceAccount {email "e", no key id, key "k", no subject}
        out.extend_from_slice(b"\x00\x01\x01e\x00\x01k\x00");
        // no access token, created 0, updated 0, no last refresh, no extensions
        out.extend_from_slice(b"\x00\x00\x00\x00\x00");
    }
    out.push(0);
    out
}

/// `body_len || body`, the unpadded payload plaintext.
pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Creates a vault with a chosen id and a chosen vault key, so that its
/// slots and header MAC agree on a key a test vector can publish.
pub fn create_with_key(
    vault_id: [u8; 16],
    key: [u8; 32],
    slots: &[SlotSpec<'_>],
) -> Result<Vault, SlotError> {
    Vault::create_with_id_and_key(VaultId(vault_id), vault_key(key), slots)
}
