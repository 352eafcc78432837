//! Shared fixtures.

use std::sync::LazyLock;

use vault_format::{
    AccessToken, ClientAuth, Credential, Extension, KdfParams, Provider, Record, RefreshClass,
    RefreshStatus, RefreshTokenCredential, SecretBytes, SecretString, ServiceAccountCredential,
    SlotSpec, Vault,
};

pub(crate) static IDENTITY: LazyLock<age::x25519::Identity> =
    LazyLock::new(age::x25519::Identity::generate);
pub(crate) static OTHER_IDENTITY: LazyLock<age::x25519::Identity> =
    LazyLock::new(age::x25519::Identity::generate);
pub(crate) static PASSPHRASE: LazyLock<SecretString> =
    LazyLock::new(|| SecretString::copy_from("correct horse battery staple"));

pub(crate) fn recipient() -> String {
    IDENTITY.to_public().to_string()
}

pub(crate) fn refresh_record(name: &str, refresh_token: &str) -> Record {
    let mut record = Record::new(
        name,
        Provider::Google,
        "https://oauth2.googleapis.com/token",
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "1234.apps.googleusercontent.com".into(),
            client_secret: Some(SecretString::copy_from("GOCSPX-client-secret")),
            client_auth: ClientAuth::ClientSecretPost,
            refresh_token: SecretString::copy_from(refresh_token),
            refresh_token_issued_at: Some(1_760_000_000),
            authorization_endpoint: Some("https://accounts.google.com/o/oauth2/auth".into()),
        }),
        1_760_000_000,
    );
    record.scopes = vec!["https://www.googleapis.com/auth/gmail.readonly".into()];
    record.account = Some("user@example.com".into());
    record.access_token = Some(AccessToken {
        token: SecretString::copy_from("ya29.access-token"),
        expires_at: Some(1_760_003_600),
    });
    record
}

pub(crate) fn service_account_record(name: &str) -> Record {
    let mut record = Record::new(
        name,
        Provider::Google,
        "https://oauth2.googleapis.com/token",
        Credential::ServiceAccount(ServiceAccountCredential {
            client_email: "robot@project.iam.gserviceaccount.com".into(),
            private_key_id: Some("abc123".into()),
            private_key: SecretString::copy_from(
                "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
            ),
            subject: Some("admin@example.com".into()),
        }),
        1_760_000_000,
    );
    record.last_refresh = Some(RefreshStatus {
        at: 1_760_000_100,
        class: RefreshClass::ReauthorizationRequired,
        error_code: Some("invalid_grant".into()),
        error_description: Some("Token has been expired or revoked.".into()),
    });
    record.extensions = vec![Extension {
        tag: 0x7fff_0001,
        critical: false,
        data: SecretBytes::copy_from(b"from a later version"),
    }];
    record
}

/// A sealed vault with one age slot for [`IDENTITY`] and the given records.
pub(crate) fn age_vault(records: Vec<Record>) -> (Vault, Vec<u8>) {
    let recipient = recipient();
    let mut vault = Vault::create(&[SlotSpec::Recipient(&recipient)]).expect("create");
    *vault.records_mut() = records;
    let file = vault.seal(1_760_000_000).expect("seal");
    (vault, file)
}

/// A sealed vault with an age slot and a passphrase slot at the floor.
pub(crate) fn age_and_passphrase_vault() -> (Vault, Vec<u8>) {
    let recipient = recipient();
    let mut vault = Vault::create(&[
        SlotSpec::Recipient(&recipient),
        SlotSpec::Passphrase {
            passphrase: &PASSPHRASE,
            params: KdfParams::FLOOR,
        },
    ])
    .expect("create");
    vault
        .records_mut()
        .push(refresh_record("gmail", "1//refresh"));
    let file = vault.seal(1_760_000_000).expect("seal");
    (vault, file)
}

/// Offsets of a v1 file's parts, re-derived here from the spec rather than
/// taken from the parser (so the tests check the parser against the spec).
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) slots: Vec<SlotLayout>,
    pub(crate) mac: usize,
    pub(crate) payload: usize,
}

#[derive(Debug)]
pub(crate) struct SlotLayout {
    pub(crate) start: usize,
    pub(crate) slot_type: u8,
    pub(crate) body: usize,
    pub(crate) end: usize,
}

pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_FLAGS: usize = 10;
pub(crate) const OFF_VAULT_ID: usize = 12;
pub(crate) const OFF_PAYLOAD_LEN: usize = 68;
pub(crate) const OFF_SLOT_COUNT: usize = 72;
pub(crate) const OFF_SLOTS: usize = 73;

pub(crate) fn layout(file: &[u8]) -> Layout {
    let mut slots = Vec::new();
    let mut at = OFF_SLOTS;
    for _ in 0..file[OFF_SLOT_COUNT] {
        let len = u32::from_le_bytes(file[at + 1..at + 5].try_into().expect("4")) as usize;
        slots.push(SlotLayout {
            start: at,
            slot_type: file[at],
            body: at + 5,
            end: at + 5 + len,
        });
        at += 5 + len;
    }
    Layout {
        slots,
        mac: at,
        payload: at + 32,
    }
}

/// Serializes a header the way the spec says, for building hostile files.
pub(crate) fn with_slots(file: &[u8], slot_bytes: &[&[u8]]) -> Vec<u8> {
    let l = layout(file);
    let mut out = file[..OFF_SLOT_COUNT].to_vec();
    out.push(slot_bytes.len() as u8);
    for slot in slot_bytes {
        out.extend_from_slice(slot);
    }
    out.extend_from_slice(&file[l.mac..]);
    out
}

/// The bytes of an age slot (type, length, recipient, age file).
pub(crate) fn age_slot_bytes(recipient: &str, age_file: &[u8]) -> Vec<u8> {
    let mut slot = vec![1u8];
    slot.extend_from_slice(&((2 + recipient.len() + age_file.len()) as u32).to_le_bytes());
    slot.extend_from_slice(&(recipient.len() as u16).to_le_bytes());
    slot.extend_from_slice(recipient.as_bytes());
    slot.extend_from_slice(age_file);
    slot
}

/// Recovers the vault key from the first age slot, the way an emergency
/// `age -d` would, and returns the decrypted payload plaintext.
pub(crate) fn plaintext_via_age_slot(file: &[u8], identity: &dyn age::Identity) -> Vec<u8> {
    let Some(vault_format::Slot::Age(slot)) = vault_format::parse(file)
        .expect("parses")
        .header
        .slots
        .into_iter()
        .next()
    else {
        panic!("the first slot is an age slot")
    };
    let decryptor = age::Decryptor::new_buffered(&slot.age_file[..]).expect("age");
    let mut out = Vec::new();
    let mut reader = decryptor.decrypt(std::iter::once(identity)).expect("age");
    std::io::Read::read_to_end(&mut reader, &mut out).expect("age");
    let key = vault_format::VaultKey::from_age_slot_plaintext(&out).expect("layout");
    vault_format::testing::plaintext_of(file, &key)
        .expect("authentic")
        .to_vec()
}
