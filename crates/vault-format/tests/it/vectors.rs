//! Golden vectors: small vault files under `tests/vectors/v1/`, each with
//! its keys and expected outcome in `manifest.json`. They are kept forever:
//! every later version must still open every v1 success vector.
//!
//! `write_missing_vectors` (ignored; run it by name) creates vectors that do
//! not exist yet. It never overwrites a file or a manifest entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vault_format::testing::{reseal, vault_key};
use vault_format::{
    Credential, KdfParams, Record, SecretString, Slot, SlotSpec, Unlock, Vault, VaultKey, parse,
};

use crate::common::{refresh_record, service_account_record};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/v1")
}

const PASSPHRASE: &str = "correct horse battery staple";
/// The vault key of vectors written as a key holder would (`reseal`).
const KNOWN_KEY: [u8; 32] = *b"tokvault v1 test vector key 0001";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
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

/// What the runner checks of a record (secrets included: they are test data).
fn summary(record: &Record) -> Value {
    let access = record.access_token.as_ref();
    let mut value = json!({
        "name": record.name,
        "provider": record.provider.as_str(),
        "token_endpoint": record.token_endpoint,
        "scopes": record.scopes,
        "account": record.account,
        "access_token": access.map(|a| a.token.expose_secret()),
        "access_token_expires_at": access.and_then(|a| a.expires_at),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "last_refresh_error": record.last_refresh.as_ref().and_then(|s| s.error_code.clone()),
        "extensions": record.extensions.iter().map(|e| json!([e.tag, e.critical, hex(e.data.expose_secret())])).collect::<Vec<_>>(),
    });
    let credential = match &record.credential {
        Credential::RefreshToken(c) => json!({
            "kind": "refresh_token",
            "client_id": c.client_id,
            "client_secret": c.client_secret.as_ref().map(SecretString::expose_secret),
            "client_auth": format!("{:?}", c.client_auth),
            "refresh_token": c.refresh_token.expose_secret(),
            "refresh_token_issued_at": c.refresh_token_issued_at,
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
    value["credential"] = credential;
    value
}

fn class_name(error: &vault_format::OpenError) -> &'static str {
    error.class().as_str()
}

#[test]
fn every_golden_vector_has_its_declared_outcome() {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir().join("manifest.json")).expect("manifest"))
            .expect("json");
    let vectors = manifest["vectors"].as_array().expect("vectors");
    assert!(vectors.len() >= 20, "the vector set shrank");
    let mut outcomes = BTreeMap::new();
    for vector in vectors {
        let name = vector["name"].as_str().expect("name");
        let bytes =
            std::fs::read(dir().join(vector["file"].as_str().expect("file"))).expect("vector file");
        let identities: Vec<Box<dyn age::Identity>> = vector["unlock"]["identities"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|p| load_identity(&dir().join(p.as_str().expect("path"))))
                    .collect()
            })
            .unwrap_or_default();
        let passphrase = vector["unlock"]["passphrase"]
            .as_str()
            .map(SecretString::copy_from);
        let key = vector["unlock"]["vault_key"].as_str().map(|h| {
            let bytes: [u8; 32] = unhex(h).try_into().expect("32 bytes");
            vault_key(bytes)
        });
        let mut unlock = Unlock::new();
        for identity in &identities {
            unlock = unlock.identity(identity.as_ref());
        }
        if let Some(passphrase) = &passphrase {
            unlock = unlock.passphrase(passphrase);
        }
        if let Some(key) = &key {
            unlock = unlock.vault_key(key);
        }
        let expect = vector["expect"].as_str().expect("expect");
        match Vault::open(&bytes, &unlock) {
            Ok(vault) => {
                assert_eq!(expect, "success", "{name}: opened, expected {expect}");
                assert_eq!(
                    vault.generation(),
                    vector["generation"].as_u64().expect("generation"),
                    "{name}"
                );
                let records: Vec<Value> = vault.records().iter().map(summary).collect();
                assert_eq!(
                    Value::from(records),
                    vector["records"],
                    "{name}: records differ"
                );
            }
            Err(error) => assert_eq!(class_name(&error), expect, "{name}: {error}"),
        }
        *outcomes.entry(expect.to_owned()).or_insert(0) += 1;
    }
    // Every class is represented.
    for class in [
        "success",
        "malformed",
        "unsupported",
        "kdf-policy",
        "cannot-decrypt",
        "invalid-payload",
    ] {
        assert!(
            outcomes.contains_key(class),
            "no vector expects {class}: {outcomes:?}"
        );
    }
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
    let text = std::fs::read_to_string(key_path(&format!("{name}.pub"))).expect("recipient");
    text.trim().to_owned()
}

fn sealed(slots: &[SlotSpec<'_>], records: Vec<Record>) -> Vec<u8> {
    let mut vault = Vault::create(slots).expect("create");
    *vault.records_mut() = records;
    vault.seal(1_760_000_000).expect("seal")
}

fn x25519_vault(records: Vec<Record>) -> Vec<u8> {
    sealed(&[SlotSpec::Recipient(&recipient_of("identity"))], records)
}

fn plaintext(file: &[u8]) -> Vec<u8> {
    let identity = load_identity(&key_path("identity.txt"));
    let Some(Slot::Age(slot)) = parse(file).expect("parses").header.slots.into_iter().next() else {
        panic!("age slot first")
    };
    let decryptor = age::Decryptor::new_buffered(&slot.age_file[..]).expect("age");
    let mut out = Vec::new();
    let mut reader = decryptor
        .decrypt(std::iter::once(identity.as_ref()))
        .expect("age");
    std::io::Read::read_to_end(&mut reader, &mut out).expect("age");
    let key: VaultKey = VaultKey::from_age_slot_plaintext(&out).expect("layout");
    vault_format::testing::plaintext_of(file, &key)
        .expect("authentic")
        .to_vec()
}

/// A vault written by a key holder (under [`KNOWN_KEY`]) with this plaintext.
fn with_plaintext(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let file = x25519_vault(vec![refresh_record("gmail", "1//vector-refresh")]);
    let mut plain = plaintext(&file);
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

fn specs() -> Vec<Spec> {
    let identity = json!({"identities": ["keys/identity.txt"]});
    let other = json!({"identities": ["keys/other_identity.txt"]});
    let known = json!({"vault_key": hex(&KNOWN_KEY)});
    vec![
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
            name: "x25519-many-kinds",
            file: "x25519_many_kinds.tokvault",
            comment: "refresh-token and service-account records, refresh history, a non-critical extension",
            unlock: identity.clone(),
            expect: "success",
            make: || {
                x25519_vault(vec![
                    refresh_record("gmail", "1//a"),
                    service_account_record("robot"),
                    refresh_record("sheets@work", "1//b"),
                ])
            },
        },
        Spec {
            name: "ssh-ed25519",
            file: "ssh_ed25519.tokvault",
            comment: "ssh-ed25519 slot",
            unlock: json!({"identities": ["keys/ssh_ed25519"]}),
            expect: "success",
            make: || {
                sealed(
                    &[SlotSpec::Recipient(&recipient_of("ssh_ed25519"))],
                    vec![refresh_record("gmail", "1//ssh")],
                )
            },
        },
        Spec {
            name: "ssh-rsa",
            file: "ssh_rsa.tokvault",
            comment: "ssh-rsa 2048 slot",
            unlock: json!({"identities": ["keys/ssh_rsa"]}),
            expect: "success",
            make: || {
                sealed(
                    &[SlotSpec::Recipient(&recipient_of("ssh_rsa"))],
                    vec![refresh_record("gmail", "1//rsa")],
                )
            },
        },
        Spec {
            name: "passphrase-floor",
            file: "passphrase_floor.tokvault",
            comment: "X25519 slot plus passphrase slot at the floor; opened by passphrase",
            unlock: json!({"passphrase": PASSPHRASE}),
            expect: "success",
            make: || {
                sealed(
                    &[
                        SlotSpec::Recipient(&recipient_of("identity")),
                        SlotSpec::Passphrase {
                            passphrase: &SecretString::copy_from(PASSPHRASE),
                            params: KdfParams::FLOOR,
                        },
                    ],
                    vec![refresh_record("gmail", "1//pass")],
                )
            },
        },
        Spec {
            name: "passphrase-floor-by-identity",
            file: "passphrase_floor.tokvault",
            comment: "the same vault opened by its age slot",
            unlock: identity.clone(),
            expect: "success",
            make: Vec::new,
        },
        Spec {
            name: "known-key-recovery",
            file: "known_key.tokvault",
            comment: "opened with the raw vault key, as after an emergency `age -d` of a slot",
            unlock: known.clone(),
            expect: "success",
            make: || with_plaintext(|_| ()),
        },
        Spec {
            name: "wrong-identity",
            file: "x25519_one_record.tokvault",
            comment: "another X25519 identity",
            unlock: other,
            expect: "cannot-decrypt",
            make: Vec::new,
        },
        Spec {
            name: "wrong-passphrase",
            file: "passphrase_floor.tokvault",
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
            make: || {
                let f = x25519_vault(vec![]);
                match parse(&f).expect("parses").header.slots.into_iter().next() {
                    Some(Slot::Age(s)) => s.age_file,
                    _ => panic!("age slot"),
                }
            },
        },
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
            name: "kdf-below-floor",
            file: "kdf_below_floor.tokvault",
            comment: "authentic passphrase slot with m = 8 MiB",
            unlock: json!({"passphrase": PASSPHRASE, "vault_key": hex(&KNOWN_KEY)}),
            expect: "kdf-policy",
            make: || kdf_vault(8 * 1024, 3, 1),
        },
        Spec {
            name: "kdf-absurd",
            file: "kdf_absurd.tokvault",
            comment: "authentic passphrase slot with m = u32::MAX KiB",
            unlock: json!({"passphrase": PASSPHRASE, "vault_key": hex(&KNOWN_KEY)}),
            expect: "kdf-policy",
            make: || kdf_vault(u32::MAX, 3, 1),
        },
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
            name: "payload-critical-extension",
            file: "payload_critical_extension.tokvault",
            comment: "key holder: vault-level critical extension 1",
            unlock: known,
            expect: "unsupported",
            make: || with_plaintext(add_critical_vault_extension),
        },
    ]
}

/// The body ends with the vault-level extension count (0): make it 1 and
/// append extension {tag 1, critical, no data}, keeping the padded size.
fn add_critical_vault_extension(plain: &mut Vec<u8>) {
    let len = u32::from_le_bytes(plain[..4].try_into().expect("4")) as usize;
    assert_eq!(plain[3 + len], 0, "no vault extensions yet");
    plain[3 + len] = 1;
    plain.splice(4 + len..4 + len, [1, 1, 0]);
    plain.truncate(plain.len() - 3);
    plain[..4].copy_from_slice(&((len + 3) as u32).to_le_bytes());
}

fn kdf_vault(memory_kib: u32, iterations: u32, parallelism: u32) -> Vec<u8> {
    let file = sealed(
        &[SlotSpec::Passphrase {
            passphrase: &SecretString::copy_from(PASSPHRASE),
            params: KdfParams::FLOOR,
        }],
        vec![],
    );
    let parsed = parse(&file).expect("parses");
    let mut header = parsed.header.clone();
    if let Slot::Passphrase(slot) = &mut header.slots[0] {
        slot.params = KdfParams {
            memory_kib,
            iterations,
            parallelism,
        };
    }
    reseal(&header, &vec![0u8; 4096], &vault_key(KNOWN_KEY))
}

fn ensure_keys() {
    let keys = dir().join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir");
    for name in ["identity", "other_identity"] {
        let path = keys.join(format!("{name}.txt"));
        if !path.exists() {
            let identity = age::x25519::Identity::generate();
            use age::secrecy::ExposeSecret;
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
    let existing: Vec<String> = manifest["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_owned())
        .collect();
    for spec in specs() {
        if existing.iter().any(|n| n == spec.name) {
            continue;
        }
        let path = dir().join(spec.file);
        if !path.exists() {
            std::fs::write(&path, (spec.make)()).expect("write vector");
        }
        let mut entry = json!({
            "name": spec.name, "file": spec.file, "comment": spec.comment,
            "unlock": spec.unlock, "expect": spec.expect,
        });
        if spec.expect == "success" {
            // Record what the vector holds now; from here on it is fixed.
            let bytes = std::fs::read(&path).expect("read");
            let identities: Vec<Box<dyn age::Identity>> = spec.unlock["identities"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|p| load_identity(&dir().join(p.as_str().expect("p"))))
                        .collect()
                })
                .unwrap_or_default();
            let passphrase = spec.unlock["passphrase"]
                .as_str()
                .map(SecretString::copy_from);
            let key = spec.unlock["vault_key"]
                .as_str()
                .map(|_| vault_key(KNOWN_KEY));
            let mut unlock = Unlock::new();
            for identity in &identities {
                unlock = unlock.identity(identity.as_ref());
            }
            if let Some(p) = &passphrase {
                unlock = unlock.passphrase(p);
            }
            if let Some(k) = &key {
                unlock = unlock.vault_key(k);
            }
            let vault = Vault::open(&bytes, &unlock).expect("success vector opens");
            entry["generation"] = vault.generation().into();
            entry["records"] = vault
                .records()
                .iter()
                .map(summary)
                .collect::<Vec<_>>()
                .into();
        }
        manifest["vectors"]
            .as_array_mut()
            .expect("vectors")
            .push(entry);
    }
    let text = serde_json::to_string_pretty(&manifest).expect("json");
    std::fs::write(&manifest_path, text + "\n").expect("write manifest");
}
