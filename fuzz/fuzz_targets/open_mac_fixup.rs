//! Treats the payload of any structurally valid input as plaintext and
//! reseals it under the known key (`testing::reseal`), so the header MAC
//! and the payload AEAD pass and the fuzzer reaches the slot code and the
//! payload decoder (framing, postcard, caps, record validation). Must never
//! panic. A payload that decodes must survive a seal and reopen unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_format::{SealError, Unlock, Vault, testing};
use vault_format_fuzz::{ID, KEY};

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = vault_format::parse(data) else {
        return;
    };
    let file = testing::reseal(&parsed.header, parsed.payload, &KEY);

    // The age slots do not wrap KEY, so this fails at the header MAC, after
    // age has parsed and tried every (fuzzed) embedded age file.
    let _ = Vault::open(&file, &Unlock::new().identity(&*ID));

    let unlock = Unlock::new().vault_key(&KEY);
    let Ok(mut vault) = Vault::open(&file, &unlock) else {
        return;
    };
    let generation = vault.generation();
    let resealed = match vault.seal(0) {
        Ok(file) => file,
        Err(SealError::GenerationExhausted) if generation == u64::MAX => return,
        Err(error) => panic!("a decoded payload does not reseal: {error}"),
    };
    let reopened = match Vault::open(&resealed, &unlock) {
        Ok(vault) => vault,
        Err(error) => panic!("a resealed vault does not reopen: {error}"),
    };
    assert!(reopened.records() == vault.records(), "records changed");
    assert!(
        reopened.extensions() == vault.extensions(),
        "vault extensions changed"
    );
});
