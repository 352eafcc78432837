//! Opens arbitrary bytes with a fixed age identity and a fixed vault key.
//! Must never panic. A file that opens must reseal, and the result must
//! reopen with the same unlock to the same contents.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_format::{SealError, Unlock, Vault};
use vault_format_fuzz::{ID, KEY};

fuzz_target!(|data: &[u8]| {
    let unlock = Unlock::new().identity(&*ID).vault_key(&KEY);
    let Ok(mut vault) = Vault::open(data, &unlock) else {
        return;
    };
    let generation = vault.generation();
    let resealed = match vault.seal(0) {
        Ok(file) => file,
        // The only refusal a vault that opened may get.
        Err(SealError::GenerationExhausted) if generation == u64::MAX => return,
        Err(error) => panic!("an opened vault does not reseal: {error}"),
    };
    let reopened = match Vault::open(&resealed, &unlock) {
        Ok(vault) => vault,
        Err(error) => panic!("a resealed vault does not reopen: {error}"),
    };
    assert_eq!(reopened.vault_id(), vault.vault_id());
    assert_eq!(reopened.generation(), generation + 1);
    assert_eq!(reopened.slots(), vault.slots());
    assert!(reopened.records() == vault.records(), "records changed");
    assert!(
        reopened.extensions() == vault.extensions(),
        "vault extensions changed"
    );
});
