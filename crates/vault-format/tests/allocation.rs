//! Hostile length fields never cause a large allocation. This is a binary
//! of its own because it installs a global allocator with a limit: any
//! allocation past the limit aborts the process, failing the test loudly.
//! One test function, so no other test allocates concurrently.

use std::alloc::System;

use cap::Cap;
use vault_format::testing::{framed, minimal_records_body, reseal, vault_key};
use vault_format::{ErrorClass, KdfParams, SecretString, SlotSpec, Unlock, Vault, parse};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Headroom above what is already allocated while one hostile file is
/// opened: the file itself is a few KiB, age needs small buffers, and serde
/// preallocates at most 1 MiB for a sequence whatever length it claims.
/// 2 MiB is far below what the lengths ask for (4 GiB, 64 MiB, 2^35 records).
const BUDGET: usize = 2 << 20;

fn open_within_budget(file: &[u8], unlock: &Unlock<'_>) -> ErrorClass {
    open_within(file, unlock, BUDGET)
}

fn open_within(file: &[u8], unlock: &Unlock<'_>, budget: usize) -> ErrorClass {
    let baseline = ALLOCATOR.allocated();
    ALLOCATOR
        .set_limit(baseline + budget)
        .expect("limit above current use");
    let result = Vault::open(file, unlock);
    ALLOCATOR.set_limit(usize::MAX).expect("lift limit");
    match result {
        Ok(_) => panic!("a hostile file opened"),
        Err(error) => error.class(),
    }
}

#[test]
fn huge_lengths_are_refused_without_large_allocations() {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let passphrase = SecretString::copy_from("pw");
    let mut vault = Vault::create(&[
        SlotSpec::Recipient(&recipient),
        SlotSpec::Passphrase {
            passphrase: &passphrase,
            params: KdfParams::FLOOR,
        },
    ])
    .expect("create");
    let file = vault.seal(1).expect("seal");
    let unlock = Unlock::new().identity(&identity).passphrase(&passphrase);

    let set = |offset: usize, bytes: &[u8]| {
        let mut changed = file.clone();
        changed[offset..offset + bytes.len()].copy_from_slice(bytes);
        changed
    };
    let slot_len_at = 73 + 1;
    let recipient_len_at = 73 + 5;
    let second_slot = 73
        + 5
        + u32::from_le_bytes(file[slot_len_at..slot_len_at + 4].try_into().expect("4")) as usize;
    let hostile = [
        ("payload length", set(68, &u32::MAX.to_le_bytes())),
        (
            "payload length at the cap",
            set(68, &(64u32 * 1024 * 1024 + 16).to_le_bytes()),
        ),
        ("slot count", set(72, &[255])),
        ("age slot length", set(slot_len_at, &u32::MAX.to_le_bytes())),
        (
            "age slot length at the cap",
            set(slot_len_at, &(16u32 * 1024).to_le_bytes()),
        ),
        (
            "recipient length",
            set(recipient_len_at, &u16::MAX.to_le_bytes()),
        ),
        (
            "passphrase slot length",
            set(second_slot + 1, &u32::MAX.to_le_bytes()),
        ),
        (
            "Argon2 memory",
            set(second_slot + 5, &u32::MAX.to_le_bytes()),
        ),
    ];
    for (what, changed) in &hostile {
        let class = open_within_budget(changed, &unlock);
        let expected = if what.starts_with("Argon2") {
            ErrorClass::KdfPolicy
        } else {
            ErrorClass::Malformed
        };
        assert_eq!(class, expected, "{what}");
    }

    // Behind the MAC (a key holder's file): a record count of 2^35 with no
    // records behind it, and a string length of 2^35.
    let key = vault_key([3; 32]);
    let header = parse(&file).expect("parses").header;
    for body in [
        &[0xff, 0xff, 0xff, 0xff, 0x7f][..],
        &[0x01, 0xff, 0xff, 0xff, 0xff, 0x7f],
    ] {
        let mut plaintext = vec![0u8; 4096];
        plaintext[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
        plaintext[4..4 + body.len()].copy_from_slice(body);
        let authentic = reseal(&header, &plaintext, &key);
        let class = open_within_budget(&authentic, &Unlock::new().vault_key(&key));
        assert_eq!(class, ErrorClass::InvalidPayload, "{body:?}");
    }

    // Lists longer than their caps, behind the MAC: decoding stops at the
    // cap. A record costs a few hundred bytes once decoded, so 100,000 of
    // them may take up to about 32 MiB; scopes and extensions stay within
    // the budget above, and nothing grows with the claimed length.
    let key_holder = |plaintext: &[u8]| reseal(&header, plaintext, &key);
    let cases: [(&str, Vec<u8>, usize); 3] = [
        (
            "200,000 minimal records",
            framed(&minimal_records_body(200_000, 0)),
            48 << 20,
        ),
        (
            "one record with 2,000,000 scopes",
            framed(&minimal_records_body(1, 2_000_000)),
            BUDGET,
        ),
        (
            "2,000 records of 256 scopes",
            framed(&minimal_records_body(2_000, 256)),
            BUDGET + (8 << 20),
        ),
    ];
    for (what, plaintext, headroom) in cases {
        let authentic = key_holder(&plaintext);
        // The plaintext copy made while opening is part of the cost.
        let class = open_within(
            &authentic,
            &Unlock::new().vault_key(&key),
            plaintext.len() + headroom,
        );
        assert_eq!(class, ErrorClass::InvalidPayload, "{what}");
    }

    // The budget is real: opening the genuine vault fits in it, and a
    // 4 MiB reservation is refused (proving the limit is enforced).
    let baseline = ALLOCATOR.allocated();
    ALLOCATOR.set_limit(baseline + BUDGET).expect("limit");
    let opened = Vault::open(&file, &Unlock::new().identity(&identity));
    let too_big = Vec::<u8>::new().try_reserve(4 << 20).is_err();
    ALLOCATOR.set_limit(usize::MAX).expect("lift limit");
    assert!(opened.is_ok());
    assert!(too_big, "the allocator cap does not bite");
}
