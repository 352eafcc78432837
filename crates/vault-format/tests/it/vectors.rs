//! Golden vectors: small vault files under `tests/vectors/v1/`, each with
//! its keys, SHA-256 and expected outcome in `manifest.json`. They are kept
//! forever: every later version must open every v1 success vector to the
//! same records, and refuse every failure vector with the same class.
//!
//! `write_missing_vectors` (ignored; run it by name) creates vectors that do
//! not exist yet. It never overwrites a file or a manifest entry.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vault_format::testing::{create_with_key, framed, minimal_records_body, reseal, vault_key};
use vault_format::{
    AccessToken, ClientAuth, Credential, Extension, KdfParams, Provider, Record, RefreshClass,
    RefreshStatus, RefreshTokenCredential, SecretBytes, SecretString, Slot, SlotSpec, Unlock,
    Vault, VaultKey, parse,
};

use crate::common::{
    age_slot_bytes, plaintext_via_age_slot, refresh_record, service_account_record, with_slots,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/v1")
}

const PASSPHRASE: &str = "correct horse battery staple";
/// The published vault key of the vectors that a key holder wrote.
const KNOWN_KEY: [u8; 32] = *b"tokvault v1 test vector key 0001";
const KNOWN_ID: [u8; 16] = *b"tokvault vector1";
const NOW: u64 = 1_760_000_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_identity(path: &Path) -> Box<dyn age::Identity> {
    let text = std::fs::read(path).expect("identity file");
    if text.starts_with(b"AGE-SECRET-KEY-") || text.starts_with(b"#") {
        let mut identities = age::IdentityFile::from_buffer(&text[..])
            .expect("age identity file")
            .into_identities()
            .expect("identities");
        identities.pop().expect("one identity")
    } else {
        let identity = age::ssh::Identity::from_buffer(&text[..], Some(path.display().to_string()))
            .expect("ssh identity");
        Box::new(identity)
    }
}

/// What a manifest entry's `unlock` names, loaded.
struct Material {
    identities: Vec<Box<dyn age::Identity>>,
    passphrase: Option<SecretString>,
    key: Option<VaultKey>,
}

impl Material {
    fn load(unlock: &Value) -> Self {
        Self {
            identities: unlock["identities"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|p| load_identity(&dir().join(p.as_str().expect("path"))))
                        .collect()
                })
                .unwrap_or_default(),
            passphrase: unlock["passphrase"].as_str().map(SecretString::copy_from),
            key: unlock["vault_key"].as_str().map(|h| {
                assert_eq!(h, hex(&KNOWN_KEY), "vectors publish one vault key");
                vault_key(KNOWN_KEY)
            }),
        }
    }

    fn unlock(&self) -> Unlock<'_> {
        let mut unlock = Unlock::new();
        for identity in &self.identities {
            unlock = unlock.identity(identity.as_ref());
        }
        if let Some(passphrase) = &self.passphrase {
            unlock = unlock.passphrase(passphrase);
        }
        if let Some(key) = &self.key {
            unlock = unlock.vault_key(key);
        }
        unlock
    }
}

fn extensions(list: &[Extension]) -> Vec<Value> {
    list.iter()
        .map(|e| json!([e.tag, e.critical, hex(e.data.expose_secret())]))
        .collect()
}

/// Every field of a record (secrets included: they are test data). Enum
/// values are written as their stable wire meaning, not Rust names.
fn summary(record: &Record) -> Value {
    let access = record.access_token.as_ref();
    let status = record.last_refresh.as_ref();
    let credential = match &record.credential {
        Credential::RefreshToken(c) => json!({
            "kind": "refresh_token",
            "client_id": c.client_id,
            "client_secret": c.client_secret.as_ref().map(SecretString::expose_secret),
            "client_auth": match c.client_auth {
                ClientAuth::None => "none",
                ClientAuth::ClientSecretPost => "client_secret_post",
                ClientAuth::ClientSecretBasic => "client_secret_basic",
            },
            "refresh_token": c.refresh_token.expose_secret(),
            "refresh_token_issued_at": c.refresh_token_issued_at,
            "authorization_endpoint": c.authorization_endpoint,
        }),
        Credential::ServiceAccount(c) => json!({
            "kind": "service_account",
            "client_email": c.client_email,
            "private_key_id": c.private_key_id,
            "private_key": c.private_key.expose_secret(),
            "subject": c.subject,
        }),
        _ => json!({"kind": "unknown"}),
    };
    json!({
        "name": record.name,
        "provider": record.provider.as_str(),
        "token_endpoint": record.token_endpoint,
        "scopes": record.scopes,
        "account": record.account,
        "credential": credential,
        "access_token": access.map(|a| a.token.expose_secret()),
        "access_token_expires_at": access.and_then(|a| a.expires_at),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "last_refresh": status.map(|s| json!({
            "at": s.at,
            "class": match s.class {
                RefreshClass::Refreshed => "refreshed",
                RefreshClass::ReauthorizationRequired => "reauthorization-required",
                RefreshClass::Misconfigured => "misconfigured",
                RefreshClass::Transient => "transient",
            },
            "error_code": s.error_code,
            "error_description": s.error_description,
        })),
        "extensions": extensions(&record.extensions),
    })
}

fn contents(vault: &Vault) -> Value {
    json!({
        "generation": vault.generation(),
        "written_at": vault.written_at(),
        "records": vault.records().iter().map(summary).collect::<Vec<_>>(),
        "vault_extensions": extensions(vault.extensions()),
    })
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("manifest.json")).expect("manifest"))
        .expect("json")
}

#[test]
fn every_golden_vector_has_its_declared_outcome() {
    let manifest = manifest();
    let vectors = manifest["vectors"].as_array().expect("vectors");
    // No vector disappears without the code saying so.
    let listed: BTreeSet<&str> = vectors
        .iter()
        .map(|v| v["name"].as_str().expect("name"))
        .collect();
    let specified: BTreeSet<&str> = specs().iter().map(|s| s.name).collect();
    assert_eq!(listed, specified, "manifest and vector specs differ");
    let mut classes = BTreeSet::new();
    for vector in vectors {
        let name = vector["name"].as_str().expect("name");
        let bytes =
            std::fs::read(dir().join(vector["file"].as_str().expect("file"))).expect("vector file");
        assert_eq!(
            hex(&Sha256::digest(&bytes)),
            vector["sha256"],
            "{name}: the file changed"
        );
        let material = Material::load(&vector["unlock"]);
        let expect = vector["expect"].as_str().expect("expect");
        match Vault::open(&bytes, &material.unlock()) {
            Ok(vault) => {
                assert_eq!(expect, "success", "{name}: opened, expected {expect}");
                assert_eq!(
                    contents(&vault),
                    vector["contents"],
                    "{name}: contents differ"
                );
            }
            Err(error) => assert_eq!(error.class().as_str(), expect, "{name}: {error}"),
        }
        classes.insert(expect);
    }
    for class in [
        "success",
        "malformed",
        "unsupported",
        "kdf-policy",
        "cannot-decrypt",
        "invalid-payload",
    ] {
        assert!(classes.contains(class), "no vector expects {class}");
    }
}

#[test]
fn the_recovery_vector_opens_with_the_key_inside_its_age_slot() {
    // The emergency path end to end on a kept file: age-decrypt the slot,
    // take the key from the plaintext, open.
    let bytes = std::fs::read(dir().join("emergency_recovery.tokvault")).expect("vector");
    let identity = load_identity(&key_path("identity.txt"));
    let plaintext = plaintext_via_age_slot(&bytes, identity.as_ref());
    let reopened = reseal(
        &parse(&bytes).expect("parses").header,
        &plaintext,
        &vault_key(KNOWN_KEY),
    );
    assert_eq!(reopened, bytes, "the slot's key is the published key");
}

struct Spec {
    name: &'static str,
    file: &'static str,
    comment: &'static str,
    unlock: Value,
    expect: &'static str,
    make: fn() -> Vec<u8>,
}

fn key_path(name: &str) -> PathBuf {
    dir().join("keys").join(name)
}

fn recipient_of(name: &str) -> String {
    std::fs::read_to_string(key_path(&format!("{name}.pub")))
        .expect("recipient")
        .trim()
        .to_owned()
}

fn sealed(slots: &[SlotSpec<'_>], records: Vec<Record>) -> Vec<u8> {
    let mut vault = Vault::create(slots).expect("create");
    *vault.records_mut() = records;
    vault.seal(NOW).expect("seal")
}

fn x25519_vault(records: Vec<Record>) -> Vec<u8> {
    sealed(&[SlotSpec::Recipient(&recipient_of("identity"))], records)
}

/// A vault under the published key (slot and MAC agree), for key-holder
/// edits of its plaintext.
fn known_key_vault(records: Vec<Record>) -> Vec<u8> {
    let recipient = recipient_of("identity");
    let mut vault =
        create_with_key(KNOWN_ID, KNOWN_KEY, &[SlotSpec::Recipient(&recipient)]).expect("create");
    *vault.records_mut() = records;
    vault.seal(NOW).expect("seal")
}

fn with_plaintext(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let file = known_key_vault(vec![refresh_record("gmail", "1//vector-refresh")]);
    let mut plain = vault_format::testing::plaintext_of(&file, &vault_key(KNOWN_KEY))
        .expect("authentic")
        .to_vec();
    edit(&mut plain);
    reseal(
        &parse(&file).expect("parses").header,
        &plain,
        &vault_key(KNOWN_KEY),
    )
}

fn replace(plain: &mut [u8], from: &[u8], to: &[u8]) {
    let at = plain
        .windows(from.len())
        .position(|w| w == from)
        .expect("present");
    plain[at..at + to.len()].copy_from_slice(to);
}

/// The body ends with the vault-level extension count (0): make it 1 and
/// append extension {tag, critical, data "v2"}, keeping the padded size.
fn add_vault_extension(plain: &mut Vec<u8>, tag: u8, critical: bool) {
    let len = u32::from_le_bytes(plain[..4].try_into().expect("4")) as usize;
    assert_eq!(plain[3 + len], 0, "no vault extensions yet");
    plain[3 + len] = 1;
    let extension = [tag, u8::from(critical), 2, b'v', b'2'];
    plain.splice(4 + len..4 + len, extension);
    plain.truncate(plain.len() - extension.len());
    plain[..4].copy_from_slice(&((len + extension.len()) as u32).to_le_bytes());
}

fn varied_records() -> Vec<Record> {
    let mut microsoft = Record::new(
        "graph@contoso",
        Provider::Microsoft,
        "https://login.microsoftonline.com/contoso/oauth2/v2.0/token",
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "00000000-0000-0000-0000-000000000001".into(),
            client_secret: Some(SecretString::copy_from("ms~secret")),
            client_auth: ClientAuth::ClientSecretBasic,
            refresh_token: SecretString::copy_from("0.ARwA-microsoft-refresh"),
            refresh_token_issued_at: Some(NOW - 86_400),
            authorization_endpoint: Some(
                "https://login.microsoftonline.com/contoso/oauth2/v2.0/authorize".into(),
            ),
        }),
        NOW - 90_000,
    );
    microsoft.scopes = vec![
        "offline_access".into(),
        "https://graph.microsoft.com/Mail.Read".into(),
    ];
    microsoft.account = Some("Jürgen Müller <j@contoso.example>".into());
    microsoft.last_refresh = Some(RefreshStatus {
        at: NOW - 60,
        class: RefreshClass::Refreshed,
        error_code: None,
        error_description: None,
    });
    let mut public = Record::new(
        "local.dev",
        Provider::Generic,
        "http://127.0.0.1:8080/token",
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "public-cli".into(),
            client_secret: None,
            client_auth: ClientAuth::None,
            refresh_token: SecretString::copy_from("opaque-refresh"),
            refresh_token_issued_at: None,
            authorization_endpoint: None,
        }),
        NOW,
    );
    public.access_token = Some(AccessToken {
        token: SecretString::copy_from("at-without-expiry"),
        expires_at: None,
    });
    public.last_refresh = Some(RefreshStatus {
        at: NOW,
        class: RefreshClass::Transient,
        error_code: Some("temporarily_unavailable".into()),
        error_description: None,
    });
    let mut other = Record::new(
        "forge+ci",
        Provider::from_label("github"),
        "https://github.example/login/oauth/access_token",
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "Iv1.0123".into(),
            client_secret: Some(SecretString::copy_from("gh-secret")),
            client_auth: ClientAuth::ClientSecretPost,
            refresh_token: SecretString::copy_from("ghr_refresh"),
            refresh_token_issued_at: Some(NOW),
            authorization_endpoint: None,
        }),
        NOW,
    );
    other.last_refresh = Some(RefreshStatus {
        at: NOW,
        class: RefreshClass::Misconfigured,
        error_code: Some("invalid_client".into()),
        error_description: Some("Client authentication failed".into()),
    });
    other.extensions = vec![
        Extension {
            tag: 1,
            critical: false,
            data: SecretBytes::copy_from(b""),
        },
        Extension {
            tag: u32::MAX,
            critical: false,
            data: SecretBytes::copy_from(&[0, 255, 7]),
        },
    ];
    vec![
        refresh_record("gmail", "1//a"),
        service_account_record("robot"),
        microsoft,
        public,
        other,
    ]
}

fn passphrase_slot_bytes() -> Vec<u8> {
    let file = sealed(
        &[SlotSpec::Passphrase {
            passphrase: &SecretString::copy_from(PASSPHRASE),
            params: KdfParams::FLOOR,
        }],
        vec![],
    );
    let l = crate::common::layout(&file);
    file[l.slots[0].start..l.slots[0].end].to_vec()
}

fn kdf_vault(params: KdfParams) -> Vec<u8> {
    let file = known_key_vault(vec![]);
    let mut header = parse(&file).expect("parses").header;
    let slot = parse(&with_slots(&file, &[&passphrase_slot_bytes()]))
        .expect("parses")
        .header
        .slots
        .remove(0);
    header.slots.push(slot);
    if let Some(Slot::Passphrase(slot)) = header.slots.last_mut() {
        slot.params = params;
    }
    let plain =
        vault_format::testing::plaintext_of(&file, &vault_key(KNOWN_KEY)).expect("authentic");
    reseal(&header, &plain, &vault_key(KNOWN_KEY))
}

fn first_slot_age_file(file: &[u8]) -> Vec<u8> {
    match parse(file).expect("parses").header.slots.into_iter().next() {
        Some(Slot::Age(slot)) => slot.age_file,
        _ => panic!("age slot first"),
    }
}

fn specs() -> Vec<Spec> {
    let identity = json!({"identities": ["keys/identity.txt"]});
    let known = json!({"vault_key": hex(&KNOWN_KEY)});
    let passphrase = json!({"passphrase": PASSPHRASE});
    vec![
        // Success: these must open to the same contents forever.
        Spec {
            name: "x25519-one-record",
            file: "x25519_one_record.tokvault",
            comment: "one Google refresh-token record, X25519 slot",
            unlock: identity.clone(),
            expect: "success",
            make: || x25519_vault(vec![refresh_record("gmail", "1//vector-refresh")]),
        },
        Spec {
            name: "x25519-empty",
            file: "x25519_empty.tokvault",
            comment: "no records",
            unlock: identity.clone(),
            expect: "success",
            make: || x25519_vault(vec![]),
        },
        Spec {
            name: "varied-records",
            file: "varied_records.tokvault",
            comment: "every credential kind, client authentication method, provider label and refresh class; extensions; non-ASCII text",
            unlock: identity.clone(),
            expect: "success",
            make: || x25519_vault(varied_records()),
        },
        Spec {
            name: "generation-5",
            file: "generation_5.tokvault",
            comment: "written five times",
            unlock: identity.clone(),
            expect: "success",
            make: || {
                let mut v = Vault::create(&[SlotSpec::Recipient(&recipient_of("identity"))])
                    .expect("create");
                v.records_mut().push(refresh_record("gmail", "1//g5"));
                for t in 0..4 {
                    v.seal(NOW + t).expect("seal");
                }
                v.seal(NOW + 4).expect("seal")
            },
        },
        Spec {
            name: "multi-slot-by-x25519",
            file: "multi_slot.tokvault",
            comment: "X25519, ssh-ed25519, ssh-rsa and passphrase slots; opened by X25519",
            unlock: identity.clone(),
            expect: "success",
            make: || {
                sealed(
                    &[
                        SlotSpec::Recipient(&recipient_of("identity")),
                        SlotSpec::Recipient(&recipient_of("ssh_ed25519")),
                        SlotSpec::Recipient(&recipient_of("ssh_rsa")),
                        SlotSpec::Passphrase {
                            passphrase: &SecretString::copy_from(PASSPHRASE),
                            params: KdfParams::FLOOR,
                        },
                    ],
                    vec![refresh_record("gmail", "1//multi")],
                )
            },
        },
        Spec {
            name: "multi-slot-by-ssh-ed25519",
            file: "multi_slot.tokvault",
            comment: "the same vault opened by its ssh-ed25519 slot",
            unlock: json!({"identities": ["keys/ssh_ed25519"]}),
            expect: "success",
            make: Vec::new,
        },
        Spec {
            name: "multi-slot-by-ssh-rsa",
            file: "multi_slot.tokvault",
            comment: "the same vault opened by its ssh-rsa slot",
            unlock: json!({"identities": ["keys/ssh_rsa"]}),
            expect: "success",
            make: Vec::new,
        },
        Spec {
            name: "multi-slot-by-passphrase",
            file: "multi_slot.tokvault",
            comment: "the same vault opened by its passphrase slot (Argon2id at the floor)",
            unlock: passphrase.clone(),
            expect: "success",
            make: Vec::new,
        },
        Spec {
            name: "emergency-recovery",
            file: "emergency_recovery.tokvault",
            comment: "vault key published; `age -d` of its slot yields that key",
            unlock: known.clone(),
            expect: "success",
            make: || known_key_vault(vec![refresh_record("gmail", "1//recovered")]),
        },
        Spec {
            name: "emergency-recovery-by-identity",
            file: "emergency_recovery.tokvault",
            comment: "the same vault opened by its X25519 slot",
            unlock: identity.clone(),
            expect: "success",
            make: Vec::new,
        },
        Spec {
            name: "vault-extension-kept",
            file: "vault_extension.tokvault",
            comment: "key holder: a non-critical vault-level extension (tag 9, data \"v2\")",
            unlock: known.clone(),
            expect: "success",
            make: || with_plaintext(|p| add_vault_extension(p, 9, false)),
        },
        // cannot-decrypt
        Spec {
            name: "wrong-identity",
            file: "x25519_one_record.tokvault",
            comment: "another X25519 identity",
            unlock: json!({"identities": ["keys/other_identity.txt"]}),
            expect: "cannot-decrypt",
            make: Vec::new,
        },
        Spec {
            name: "wrong-passphrase",
            file: "multi_slot.tokvault",
            comment: "wrong passphrase",
            unlock: json!({"passphrase": "Tr0ub4dor&3"}),
            expect: "cannot-decrypt",
            make: Vec::new,
        },
        Spec {
            name: "no-key",
            file: "x25519_one_record.tokvault",
            comment: "nothing offered",
            unlock: json!({}),
            expect: "cannot-decrypt",
            make: Vec::new,
        },
        Spec {
            name: "tampered-payload",
            file: "tampered_payload.tokvault",
            comment: "last payload byte flipped",
            unlock: identity.clone(),
            expect: "cannot-decrypt",
            make: || {
                let mut f = x25519_vault(vec![refresh_record("gmail", "1//t")]);
                *f.last_mut().expect("bytes") ^= 1;
                f
            },
        },
        Spec {
            name: "tampered-generation",
            file: "tampered_generation.tokvault",
            comment: "generation changed without the key",
            unlock: identity.clone(),
            expect: "cannot-decrypt",
            make: || {
                let mut f = x25519_vault(vec![refresh_record("gmail", "1//t")]);
                f[28] ^= 2;
                f
            },
        },
        // malformed
        Spec {
            name: "truncated",
            file: "truncated.tokvault",
            comment: "last 100 bytes missing",
            unlock: identity.clone(),
            expect: "malformed",
            make: || {
                let mut f = x25519_vault(vec![]);
                f.truncate(f.len() - 100);
                f
            },
        },
        Spec {
            name: "text-mode-mangled",
            file: "crlf_mangled.tokvault",
            comment: "CRLF turned into LF by a text-mode copy",
            unlock: identity.clone(),
            expect: "malformed",
            make: || {
                let mut f = x25519_vault(vec![]);
                f.remove(4);
                f
            },
        },
        Spec {
            name: "not-a-vault",
            file: "plain_age_file.tokvault",
            comment: "a plain age file",
            unlock: identity.clone(),
            expect: "malformed",
            make: || first_slot_age_file(&x25519_vault(vec![])),
        },
        Spec {
            name: "duplicate-slot",
            file: "duplicate_slot.tokvault",
            comment: "the age slot twice",
            unlock: identity.clone(),
            expect: "malformed",
            make: || {
                let f = x25519_vault(vec![]);
                let l = crate::common::layout(&f);
                let s = f[l.slots[0].start..l.slots[0].end].to_vec();
                with_slots(&f, &[&s, &s])
            },
        },
        Spec {
            name: "scrypt-stanza",
            file: "scrypt_stanza.tokvault",
            comment: "an age slot whose age file is passphrase (scrypt) encrypted",
            unlock: identity.clone(),
            expect: "malformed",
            make: || {
                let f = x25519_vault(vec![]);
                let a = age::encrypt(
                    &age::scrypt::Recipient::new(age::secrecy::SecretString::from("pw".to_owned())),
                    &[0; 68],
                )
                .expect("age");
                with_slots(&f, &[&age_slot_bytes(&recipient_of("identity"), &a)])
            },
        },
        Spec {
            name: "hidden-extra-reader",
            file: "hidden_extra_reader.tokvault",
            comment: "an age slot whose age file also names another recipient",
            unlock: identity.clone(),
            expect: "malformed",
            make: || {
                let f = x25519_vault(vec![]);
                let mine: age::x25519::Recipient = recipient_of("identity").parse().expect("r");
                let other: age::x25519::Recipient =
                    recipient_of("other_identity").parse().expect("r");
                let a = age::Encryptor::with_recipients(
                    [&mine as &dyn age::Recipient, &other].into_iter(),
                )
                .expect("age");
                let mut out = Vec::new();
                let mut w = a.wrap_output(&mut out).expect("age");
                std::io::Write::write_all(&mut w, &[0; 68]).expect("age");
                w.finish().expect("age");
                with_slots(&f, &[&age_slot_bytes(&recipient_of("identity"), &out)])
            },
        },
        Spec {
            name: "non-canonical-recipient",
            file: "non_canonical_recipient.tokvault",
            comment: "an ssh-ed25519 recipient stored with its comment",
            unlock: json!({"identities": ["keys/ssh_ed25519"]}),
            expect: "malformed",
            make: || {
                let r = recipient_of("ssh_ed25519");
                let f = sealed(&[SlotSpec::Recipient(&r)], vec![]);
                let canonical = vault_format::canonical_recipient(&r).expect("r").1;
                assert_ne!(canonical, r, "the .pub file has a comment");
                with_slots(&f, &[&age_slot_bytes(&r, &first_slot_age_file(&f))])
            },
        },
        Spec {
            name: "five-passphrase-slots",
            file: "five_passphrase_slots.tokvault",
            comment: "five distinct passphrase slots (at most 4 allowed)",
            unlock: passphrase.clone(),
            expect: "malformed",
            make: || {
                let f = x25519_vault(vec![]);
                let slots: Vec<Vec<u8>> = (0..5).map(|_| passphrase_slot_bytes()).collect();
                let refs: Vec<&[u8]> = slots.iter().map(Vec::as_slice).collect();
                with_slots(&f, &refs)
            },
        },
        // unsupported
        Spec {
            name: "version-2",
            file: "version_2.tokvault",
            comment: "format_version 2",
            unlock: identity.clone(),
            expect: "unsupported",
            make: || {
                let mut f = x25519_vault(vec![]);
                f[8] = 2;
                f
            },
        },
        Spec {
            name: "unknown-flags",
            file: "unknown_flags.tokvault",
            comment: "a reserved flag bit set",
            unlock: identity.clone(),
            expect: "unsupported",
            make: || {
                let mut f = x25519_vault(vec![]);
                f[10] = 1;
                f
            },
        },
        Spec {
            name: "unknown-slot-type",
            file: "unknown_slot_type.tokvault",
            comment: "slot type 3",
            unlock: identity.clone(),
            expect: "unsupported",
            make: || {
                let mut f = x25519_vault(vec![]);
                f[73] = 3;
                f
            },
        },
        Spec {
            name: "payload-critical-extension",
            file: "payload_critical_extension.tokvault",
            comment: "key holder: a critical vault-level extension",
            unlock: known.clone(),
            expect: "unsupported",
            make: || with_plaintext(|p| add_vault_extension(p, 1, true)),
        },
        // kdf-policy
        Spec {
            name: "kdf-below-floor",
            file: "kdf_below_floor.tokvault",
            comment: "authentic passphrase slot with m = 8 MiB",
            unlock: json!({"passphrase": PASSPHRASE, "vault_key": hex(&KNOWN_KEY)}),
            expect: "kdf-policy",
            make: || {
                kdf_vault(KdfParams {
                    memory_kib: 8 * 1024,
                    iterations: 3,
                    parallelism: 1,
                })
            },
        },
        Spec {
            name: "kdf-absurd",
            file: "kdf_absurd.tokvault",
            comment: "authentic passphrase slot with m = u32::MAX KiB",
            unlock: json!({"passphrase": PASSPHRASE, "vault_key": hex(&KNOWN_KEY)}),
            expect: "kdf-policy",
            make: || {
                kdf_vault(KdfParams {
                    memory_kib: u32::MAX,
                    iterations: 3,
                    parallelism: 1,
                })
            },
        },
        Spec {
            name: "kdf-above-opener-limit",
            file: "kdf_above_opener_limit.tokvault",
            comment: "authentic passphrase slot with m = 2 GiB: within the policy, above the default opener limit",
            unlock: passphrase.clone(),
            expect: "kdf-policy",
            make: || {
                kdf_vault(KdfParams {
                    memory_kib: 2 * 1024 * 1024,
                    iterations: 3,
                    parallelism: 1,
                })
            },
        },
        // invalid-payload
        Spec {
            name: "payload-trailing-bytes",
            file: "payload_trailing_bytes.tokvault",
            comment: "key holder: body length one byte past the records",
            unlock: known.clone(),
            expect: "invalid-payload",
            make: || {
                with_plaintext(|p| {
                    let n = u32::from_le_bytes(p[..4].try_into().expect("4")) + 1;
                    p[..4].copy_from_slice(&n.to_le_bytes());
                })
            },
        },
        Spec {
            name: "payload-http-endpoint",
            file: "payload_http_endpoint.tokvault",
            comment: "key holder: token endpoint over plain http to a remote host",
            unlock: known.clone(),
            expect: "invalid-payload",
            make: || with_plaintext(|p| replace(p, b"https://oauth2", b"http://oauth2x")),
        },
        Spec {
            name: "payload-nonzero-padding",
            file: "payload_nonzero_padding.tokvault",
            comment: "key holder: padding not zero",
            unlock: known.clone(),
            expect: "invalid-payload",
            make: || {
                with_plaintext(|p| {
                    *p.last_mut().expect("padded") = 0xff;
                })
            },
        },
        Spec {
            name: "payload-too-many-scopes",
            file: "payload_too_many_scopes.tokvault",
            comment: "key holder: a record with 257 scopes",
            unlock: known,
            expect: "invalid-payload",
            make: || {
                with_plaintext(|p| {
                    let mut body = framed(&minimal_records_body(1, 257));
                    body.resize(p.len().max(body.len()), 0);
                    *p = body;
                })
            },
        },
    ]
}

fn ensure_keys() {
    let keys = dir().join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir");
    for name in ["identity", "other_identity"] {
        let path = keys.join(format!("{name}.txt"));
        if !path.exists() {
            use age::secrecy::ExposeSecret;
            let identity = age::x25519::Identity::generate();
            let text = format!(
                "# test key, public key: {}\n{}\n",
                identity.to_public(),
                identity.to_string().expose_secret()
            );
            std::fs::write(&path, text).expect("write");
            std::fs::write(
                keys.join(format!("{name}.pub")),
                format!("{}\n", identity.to_public()),
            )
            .expect("write");
        }
    }
    for (name, args) in [
        ("ssh_ed25519", &["-t", "ed25519"][..]),
        ("ssh_rsa", &["-t", "rsa", "-b", "2048"][..]),
    ] {
        let path = keys.join(name);
        if !path.exists() {
            let status = std::process::Command::new("ssh-keygen")
                .args(args)
                .args(["-N", "", "-C", "tokvault-test-vector", "-f"])
                .arg(&path)
                .status()
                .expect("ssh-keygen");
            assert!(status.success());
        }
    }
}

#[test]
#[ignore = "writes new golden vectors; run by name when adding vectors"]
fn write_missing_vectors() {
    ensure_keys();
    let manifest_path = dir().join("manifest.json");
    let mut manifest: Value = std::fs::read(&manifest_path)
        .map(|b| serde_json::from_slice(&b).expect("json"))
        .unwrap_or_else(|_| json!({"format_version": 1, "vectors": []}));
    for spec in specs() {
        let exists = manifest["vectors"]
            .as_array()
            .expect("vectors")
            .iter()
            .any(|v| v["name"] == spec.name);
        if exists {
            continue;
        }
        let path = dir().join(spec.file);
        if !path.exists() {
            std::fs::write(&path, (spec.make)()).expect("write vector");
        }
        let bytes = std::fs::read(&path).expect("read");
        let mut entry = json!({
            "name": spec.name, "file": spec.file, "comment": spec.comment,
            "unlock": spec.unlock, "expect": spec.expect, "sha256": hex(&Sha256::digest(&bytes)),
        });
        let material = Material::load(&spec.unlock);
        match Vault::open(&bytes, &material.unlock()) {
            Ok(vault) => {
                assert_eq!(spec.expect, "success", "{}: opened", spec.name);
                entry["contents"] = contents(&vault);
            }
            Err(error) => assert_eq!(
                error.class().as_str(),
                spec.expect,
                "{}: {error}",
                spec.name
            ),
        }
        manifest["vectors"]
            .as_array_mut()
            .expect("vectors")
            .push(entry);
    }
    let text = serde_json::to_string_pretty(&manifest).expect("json");
    std::fs::write(&manifest_path, text + "\n").expect("write manifest");
}
