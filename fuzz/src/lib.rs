//! Fixed keys shared by the fuzz targets and the seed generator
//! (`src/bin/make_seeds.rs`). Test material only: never use these keys for
//! a real vault.

use std::sync::{LazyLock, Mutex};

use vault_format::{Record, SealError, SlotSpec, Vault, VaultKey, age};

/// A fixed age X25519 identity file (test data in `fuzz/keys/`), generated
/// once with `age::x25519::Identity::generate()`. The seed vaults carry an
/// age slot for its recipient.
pub const IDENTITY_FILE: &str = include_str!("../keys/identity.txt");

/// The recipient of [`IDENTITY_FILE`].
pub const RECIPIENT: &str = "age1nlfzx87nxay60jxlf447lgewug3xpxnu8p3p9fsc9lmfvz76kvdqkrfa88";

/// Bytes of the known vault key the `known-key-*` seeds are sealed under.
pub const KEY_BYTES: [u8; 32] = *b"tokvault-fuzz-known-vault-key-01";

/// [`IDENTITY_FILE`], parsed.
pub static ID: LazyLock<age::x25519::Identity> = LazyLock::new(|| {
    IDENTITY_FILE
        .lines()
        .find(|line| line.starts_with("AGE-SECRET-KEY-"))
        .and_then(|line| line.parse().ok())
        .expect("IDENTITY_FILE holds a valid age identity")
});

/// [`KEY_BYTES`] as a vault key.
pub static KEY: LazyLock<VaultKey> = LazyLock::new(|| vault_format::testing::vault_key(KEY_BYTES));

/// A vault with one age slot for [`RECIPIENT`], created once: targets that
/// check "whatever a server sends, the record still seals" reuse it.
static SEALER: LazyLock<Mutex<Vault>> = LazyLock::new(|| {
    let vault = Vault::create(&[SlotSpec::Recipient(RECIPIENT)]).expect("a vault for RECIPIENT");
    Mutex::new(vault)
});

/// Seals `record` as the only record of a vault.
pub fn seal_one(record: Record, now: u64) -> Result<Vec<u8>, SealError> {
    let mut vault = SEALER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *vault.records_mut() = vec![record];
    vault.seal(now)
}
