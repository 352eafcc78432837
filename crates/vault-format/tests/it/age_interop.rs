//! Stock `age -d` (Debian's `age` package) decrypts the embedded age file of
//! an age slot, and the key it yields opens the vault: the emergency path
//! that needs no tokvault at all to recover the vault key.

use std::path::Path;
use std::process::Command;

use vault_format::{Slot, SlotSpec, Unlock, Vault, VaultKey};

use crate::common::refresh_record;
use tokvault_test_support::peers::age_binary;

fn vector_key(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/v1/keys")
        .join(name)
}

fn recover_with_stock_age(identity_file: &Path, recipient: &str) {
    let Some(age) = age_binary() else { return };
    let mut vault = Vault::create(&[SlotSpec::Recipient(recipient)]).expect("create");
    vault
        .records_mut()
        .push(refresh_record("gmail", "1//interop"));
    let file = vault.seal(1).expect("seal");
    let Some(Slot::Age(slot)) = vault.slots().first() else {
        panic!("age slot")
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let slot_path = dir.path().join("slot.age");
    std::fs::write(&slot_path, &slot.age_file).expect("write slot");
    let output = Command::new(age)
        .arg("-d")
        .arg("-i")
        .arg(identity_file)
        .arg(&slot_path)
        .output()
        .expect("run age");
    assert!(
        output.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout.len(), 68, "age slot plaintext is 68 bytes");
    assert!(output.stdout.starts_with(b"tokvault/v1 age slot"));
    assert_eq!(&output.stdout[20..36], &vault.vault_id().0);

    let key = VaultKey::from_age_slot_plaintext(&output.stdout).expect("layout");
    let opened = Vault::open(&file, &Unlock::new().vault_key(&key))
        .expect("the recovered key opens the vault");
    assert_eq!(opened.records(), vault.records());
    // A corrupted recovered key does not.
    let mut wrong = output.stdout.clone();
    wrong[40] ^= 1;
    let wrong = VaultKey::from_age_slot_plaintext(&wrong).expect("layout");
    assert!(Vault::open(&file, &Unlock::new().vault_key(&wrong)).is_err());
}

#[test]
fn stock_age_decrypts_an_x25519_slot() {
    let recipient = std::fs::read_to_string(vector_key("identity.pub")).expect("recipient");
    recover_with_stock_age(&vector_key("identity.txt"), recipient.trim());
}

#[test]
fn stock_age_decrypts_ssh_slots() {
    for name in ["ssh_ed25519", "ssh_rsa"] {
        let recipient =
            std::fs::read_to_string(vector_key(&format!("{name}.pub"))).expect("recipient");
        recover_with_stock_age(&vector_key(name), recipient.trim());
    }
}

/// A file that stock `age -r` wrote for the right recipient, put in place of
/// a slot's age file, decrypts under the identity but is not a tokvault age
/// slot (wrong plaintext layout, and the header MAC no longer matches):
/// refused as "cannot decrypt".
#[test]
fn a_plain_age_file_in_a_slot_does_not_open_the_vault() {
    let Some(age) = age_binary() else { return };
    let recipient = std::fs::read_to_string(vector_key("identity.pub")).expect("recipient");
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain");
    std::fs::write(&plain, [0u8; 68]).expect("write");
    // `age -r` writes an X25519 file we can splice into a slot and open.
    let out = dir.path().join("x.age");
    let status = Command::new(age)
        .args(["-r", recipient.trim(), "-o"])
        .arg(&out)
        .arg(&plain)
        .status()
        .expect("run age");
    assert!(status.success());
    let age_file = std::fs::read(&out).expect("read");
    let mut vault = Vault::create(&[SlotSpec::Recipient(recipient.trim())]).expect("create");
    let file = vault.seal(1).expect("seal");
    // Swap our slot's age file for stock age's one (same recipient): the
    // parser accepts its shape, and decryption fails closed (wrong layout,
    // and the header MAC no longer matches).
    let l = crate::common::layout(&file);
    let recipient = recipient.trim();
    let slot = crate::common::age_slot_bytes(recipient, &age_file);
    let spliced = crate::common::with_slots(&file, &[&slot]);
    assert_eq!(l.slots.len(), 1);
    let identity = std::fs::read_to_string(vector_key("identity.txt")).expect("identity");
    let identity: age::x25519::Identity = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("key")
        .parse()
        .expect("identity");
    let error = Vault::open(&spliced, &Unlock::new().identity(&identity)).expect_err("refused");
    assert_eq!(error.class(), vault_format::ErrorClass::CannotDecrypt);
}

/// An ssh-rsa 3072 key wraps into a 384-byte stanza body: 512 base64
/// characters, whole 64-column lines, after which the age header needs an
/// extra empty line. Mutation testing found that branch of our age header
/// writer (`keys.rs`, `wrap_age`) untested: the other keys' bodies never
/// fill a line exactly. Both our reader and stock age must take the slot.
#[test]
fn an_ssh_rsa_3072_slot_whose_stanza_fills_whole_lines_opens() {
    let recipient = std::fs::read_to_string(vector_key("ssh_rsa_3072.pub")).expect("recipient");
    let recipient = recipient.trim();
    let mut vault = Vault::create(&[SlotSpec::Recipient(recipient)]).expect("create");
    let file = vault.seal(1).expect("seal");
    let Some(Slot::Age(slot)) = vault.slots().first() else {
        panic!("age slot")
    };
    let header_end = slot
        .age_file
        .windows(4)
        .position(|w| w == b"\n---")
        .expect("an age header");
    let header = std::str::from_utf8(&slot.age_file[..header_end]).expect("text header");
    assert!(
        header.lines().any(|line| line.len() == 64) && header.ends_with('\n'),
        "the stanza body should fill whole lines, ending with an empty one"
    );

    let text = std::fs::read(vector_key("ssh_rsa_3072")).expect("identity");
    let identity = age::ssh::Identity::from_buffer(&text[..], None).expect("ssh identity");
    Vault::open(&file, &Unlock::new().identity(&identity)).expect("our reader opens it");
    recover_with_stock_age(&vector_key("ssh_rsa_3072"), recipient);
}
