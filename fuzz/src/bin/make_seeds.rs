//! Writes the seed corpora: `cargo run --release --bin make_seeds -- seeds`
//! (from `fuzz/`). Every run makes new files (random vault ids, keys and
//! nonces); each is checked before it is written.
//!
//! * `vault-N-records.tkv`: a real vault (an age slot for [`RECIPIENT`] and
//!   a passphrase slot at [`KdfParams::FLOOR`]) holding N records; opens
//!   with [`ID`].
//! * `known-key-N-records.tkv`: the same header and plaintext resealed under
//!   [`KEY`]; opens only with `vault_key(KEY)` (the slots wrap another key).
//! * `plain-payload-N-records.tkv`: the same header with the decrypted,
//!   postcard-framed plaintext (zero padding trimmed) in the payload
//!   position, for `open_mac_fixup`, which treats the payload as plaintext.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use vault_format::{
    AccessToken, ClientAuth, Credential, Extension, KdfParams, Provider, Record, RefreshClass,
    RefreshStatus, RefreshTokenCredential, SecretBytes, SecretString, ServiceAccountCredential,
    Slot, SlotSpec, Unlock, Vault, VaultKey, age, parse, testing,
};
use vault_format_fuzz::{ID, KEY, RECIPIENT};

const NOW: u64 = 1_700_000_000;
const PASSPHRASE: &str = "fuzz seed passphrase";

fn records(count: usize) -> Vec<Record> {
    let mut gmail = Record::new(
        "gmail",
        Provider::Google,
        "https://oauth2.googleapis.com/token",
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "client.apps.googleusercontent.com".into(),
            client_secret: Some(SecretString::copy_from("client-secret")),
            client_auth: ClientAuth::ClientSecretPost,
            refresh_token: SecretString::copy_from("1//refresh"),
            refresh_token_issued_at: Some(NOW),
            authorization_endpoint: Some("https://accounts.google.com/o/oauth2/v2/auth".into()),
        }),
        NOW,
    );
    gmail.scopes = vec!["https://mail.google.com/".into(), "openid".into()];
    gmail.account = Some("someone@example.com".into());
    gmail.access_token = Some(AccessToken {
        token: SecretString::copy_from("ya29.access"),
        expires_at: Some(NOW + 3600),
    });
    gmail.last_refresh = Some(RefreshStatus {
        at: NOW,
        class: RefreshClass::Refreshed,
        error_code: None,
        error_description: None,
    });

    let mut service = Record::new(
        "svc:reports",
        Provider::Google,
        "https://oauth2.googleapis.com/token",
        Credential::ServiceAccount(ServiceAccountCredential {
            client_email: "reports@project.iam.gserviceaccount.com".into(),
            private_key_id: Some("0123abcd".into()),
            // A deliberately truncated placeholder, not a usable key: the
            // seeds only need PEM-shaped text in the record.
            private_key: SecretString::copy_from(
                "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
            ),
            subject: Some("admin@example.com".into()),
        }),
        NOW,
    );
    service.scopes = vec!["https://www.googleapis.com/auth/admin.reports.audit.readonly".into()];

    let mut local = Record::new(
        "local-dev",
        Provider::Other("my-idp".into()),
        "http://127.0.0.1:8080/token",
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "dev".into(),
            client_secret: None,
            client_auth: ClientAuth::None,
            refresh_token: SecretString::copy_from("r"),
            refresh_token_issued_at: None,
            authorization_endpoint: None,
        }),
        NOW,
    );
    local.last_refresh = Some(RefreshStatus {
        at: NOW + 60,
        class: RefreshClass::Transient,
        error_code: Some("temporarily_unavailable".into()),
        error_description: Some("try again later".into()),
    });
    local.extensions = vec![Extension {
        tag: 7,
        critical: false,
        data: SecretBytes::copy_from(b"ext"),
    }];

    let mut all = vec![gmail, service, local];
    all.truncate(count);
    all
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<(), Box<dyn Error>> {
    let path = dir.join(target).join(name);
    fs::write(&path, bytes)?;
    println!("{} ({} bytes)", path.display(), bytes.len());
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: make_seeds OUT_DIR (writes OUT_DIR/<target>/*.tkv)")?
        .into();
    for target in ["header_roundtrip", "open_known_key", "open_mac_fixup"] {
        fs::create_dir_all(out.join(target))?;
    }
    let passphrase = SecretString::copy_from(PASSPHRASE);

    for count in [0, 1, 3] {
        let mut vault = Vault::create(&[
            SlotSpec::Recipient(RECIPIENT),
            SlotSpec::Passphrase {
                passphrase: &passphrase,
                params: KdfParams::FLOOR,
            },
        ])?;
        vault.records_mut().extend(records(count));
        let file = vault.seal(NOW + count as u64)?;
        let opened = Vault::open(&file, &Unlock::new().identity(&*ID))?;
        assert!(opened.records() == vault.records());
        if count == 1 {
            // One Argon2id run at the floor checks the passphrase slot too.
            Vault::open(&file, &Unlock::new().passphrase(&passphrase))?;
        }

        // The vault key is random; recover it from the age slot as in an
        // emergency (`age -d`), to decrypt the payload.
        let parsed = parse(&file)?;
        let Some(Slot::Age(age_slot)) = parsed.header.slots.first() else {
            return Err("the first slot is not the age slot".into());
        };
        let slot_plaintext = age::decrypt(&*ID, &age_slot.age_file)?;
        let vault_key = VaultKey::from_age_slot_plaintext(&slot_plaintext)
            .ok_or("age slot plaintext is not a vault key")?;
        let plaintext =
            testing::plaintext_of(&file, &vault_key).ok_or("cannot decrypt the payload")?;

        // Known key: only `vault_key(KEY)` opens it.
        let known = testing::reseal(&parsed.header, &plaintext, &KEY);
        let opened = Vault::open(&known, &Unlock::new().vault_key(&KEY))?;
        assert!(opened.records() == vault.records());

        // Plaintext in the payload position, zero padding trimmed (the
        // header parser wants at least 20 payload bytes).
        let body_len = u32::from_le_bytes(plaintext[..4].try_into()?) as usize;
        let trimmed = &plaintext[..(4 + body_len).max(20)];
        let mut header = parsed.header.clone();
        header.payload_len = u32::try_from(trimmed.len())?;
        let mut plain = header.to_bytes();
        plain.extend_from_slice(&parsed.mac);
        plain.extend_from_slice(trimmed);
        let reparsed = parse(&plain)?;
        let fixed = testing::reseal(&reparsed.header, reparsed.payload, &KEY);
        let opened = Vault::open(&fixed, &Unlock::new().vault_key(&KEY))?;
        assert!(opened.records() == vault.records());

        let vault_name = format!("vault-{count}-records.tkv");
        let known_name = format!("known-key-{count}-records.tkv");
        for target in ["header_roundtrip", "open_known_key"] {
            write(&out, target, &vault_name, &file)?;
            write(&out, target, &known_name, &known)?;
        }
        write(
            &out,
            "open_mac_fixup",
            &format!("plain-payload-{count}-records.tkv"),
            &plain,
        )?;
    }
    Ok(())
}
