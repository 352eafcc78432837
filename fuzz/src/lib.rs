//! Fixed keys shared by the fuzz targets and the seed generator
//! (`src/bin/make_seeds.rs`). Test material only: never use these keys for
//! a real vault.

use std::sync::LazyLock;

use vault_format::{VaultKey, age};

/// A fixed age X25519 identity, generated once with
/// `age::x25519::Identity::generate()`. The seed vaults carry an age slot
/// for its recipient.
pub const IDENTITY: &str =
    "AGE-SECRET-KEY-1G9XPHP4DFDJ8S8UKN856DSFYS7CJ8S2ZP5HJE0J2SYF82VW5D2VSAS4KWY";

/// The recipient of [`IDENTITY`].
pub const RECIPIENT: &str = "age1nlfzx87nxay60jxlf447lgewug3xpxnu8p3p9fsc9lmfvz76kvdqkrfa88";

/// Bytes of the known vault key the `known-key-*` seeds are sealed under.
pub const KEY_BYTES: [u8; 32] = *b"tokvault-fuzz-known-vault-key-01";

/// [`IDENTITY`], parsed.
pub static ID: LazyLock<age::x25519::Identity> =
    LazyLock::new(|| IDENTITY.parse().expect("IDENTITY is a valid age identity"));

/// [`KEY_BYTES`] as a vault key.
pub static KEY: LazyLock<VaultKey> = LazyLock::new(|| vault_format::testing::vault_key(KEY_BYTES));
