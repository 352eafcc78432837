//! Operations against `MemoryBackend`: the vault side of a login (a taken
//! name fails before the browser, a login's record is saved or rescued,
//! a re-authorization renews the stored record) and a rekey.

#![allow(missing_docs)]

use std::time::Duration;

use vault_engine::{
    EngineError, ErrorKind, MemoryBackend, NoUi, Session, SessionOptions, UnlockMaterial,
};
use vault_format::{
    ClientAuth, Credential, PinStatus, Provider, Record, RefreshTokenCredential, SecretString,
    Slot, SlotSpec, Vault,
};
use vault_oauth::Refreshed;

fn record(name: &str, refresh_token: &str) -> Record {
    Record::new(
        name,
        Provider::Generic,
        "https://auth.example/token",
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "client".to_owned(),
            client_secret: None,
            client_auth: ClientAuth::None,
            refresh_token: SecretString::copy_from(refresh_token),
            refresh_token_issued_at: None,
            authorization_endpoint: Some("https://auth.example/authorize".to_owned()),
        }),
        0,
    )
}

fn refresh_token(vault: &Vault, name: &str) -> Option<String> {
    match &vault.record(name)?.credential {
        Credential::RefreshToken(c) => Some(c.refresh_token.expose_secret().to_owned()),
        _ => None,
    }
}

/// A memory vault holding `records`, a session on it, and its state
/// directory and recipient.
fn session(
    records: Vec<Record>,
) -> (
    MemoryBackend,
    Session<MemoryBackend>,
    tempfile::TempDir,
    String,
) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let mut vault = Vault::create(&[SlotSpec::Recipient(&recipient)]).expect("vault");
    vault.records_mut().extend(records);
    let backend = MemoryBackend::new("memory://vault");
    backend.set_bytes(vault.seal(1).expect("seal"));
    let state = tempfile::tempdir().expect("temp dir");
    let identity: Box<dyn age::Identity + Send + Sync> = Box::new(identity);
    let session = Session::new(
        backend.clone(),
        state.path().to_path_buf(),
        UnlockMaterial::new(vec![identity], None),
        Box::new(NoUi),
        SessionOptions {
            accept_rollback: false,
            lock_wait: Duration::from_millis(50),
        },
    );
    (backend, session, state, recipient)
}

fn tokens(refresh_token: &str) -> Refreshed {
    Refreshed {
        access_token: SecretString::copy_from("access"),
        expires_at: Some(4_000),
        refresh_token: Some(SecretString::copy_from(refresh_token)),
        scopes: None,
        id_token: None,
        obtained_at: 1_000,
        ignored: Vec::new(),
    }
}

#[tokio::test]
async fn a_taken_name_fails_before_the_login_unless_replaced() {
    let (_backend, session, _state, _) = session(vec![record("mail", "old")]);
    session
        .check_login_target()
        .await
        .expect("a writable vault");
    let error = session
        .check_name_free("mail", false)
        .await
        .expect_err("taken");
    assert_eq!(error.kind(), ErrorKind::Failure);
    assert!(error.to_string().contains("--again"), "{error}");
    session
        .check_name_free("mail", true)
        .await
        .expect("replace");
    session.check_name_free("drive", false).await.expect("free");
}

#[tokio::test]
async fn a_login_s_record_is_saved_or_rescued_never_lost() {
    let (backend, session, _state, _) = session(Vec::new());
    session
        .save_login(record("mail", "one"), false)
        .await
        .expect("saved");
    let vault = session.open().await.expect("open");
    assert_eq!(refresh_token(&vault, "mail").as_deref(), Some("one"));
    backend.fail_writes(1);
    let error = session
        .save_login(record("drive", "two"), false)
        .await
        .expect_err("the write fails");
    assert_eq!(error.kind(), ErrorKind::NotSaved);
    assert!(
        session.state().has_rescue(),
        "the tokens wait in the rescue file"
    );
}

#[tokio::test]
async fn a_reauthorization_renews_the_stored_record_or_names_the_missing_one() {
    let (_backend, session, _state, _) = session(vec![record("mail", "old")]);
    let plan = session
        .plan_for("mail", &[], None, None)
        .await
        .expect("plan");
    assert_eq!(
        plan.authorization_endpoint,
        "https://auth.example/authorize"
    );
    let saved = session
        .save_reauthorization("mail", &plan, tokens("new"), 1_000)
        .await
        .expect("saved");
    assert_eq!(saved.name, "mail");
    let vault = session.open().await.expect("open");
    assert_eq!(refresh_token(&vault, "mail").as_deref(), Some("new"));
    let missing = session
        .save_reauthorization("gone", &plan, tokens("x"), 1_000)
        .await
        .expect_err("no such record");
    assert!(missing.to_string().contains("was removed"), "{missing}");
    let error = session
        .plan_for("gone", &[], None, None)
        .await
        .expect_err("none");
    assert!(
        error.to_string().starts_with("no record named \"gone\""),
        "{error}"
    );
}

#[tokio::test]
async fn a_rekey_swaps_recipients_keeps_the_records_and_never_leaves_no_slot() {
    let (_backend, session, _state, first) = session(vec![record("mail", "rt")]);
    let error = session
        .rekey(std::slice::from_ref(&first), Vec::new(), |_, _| {
            Ok::<_, EngineError>(None)
        })
        .await
        .expect_err("no slot would remain");
    assert_eq!(error.kind(), ErrorKind::Usage);
    let second = age::x25519::Identity::generate();
    let added = vec![second.to_public().to_string()];
    let (count, with_passphrase) = session
        .rekey(&[], added, |vault, current| {
            assert!(!vault.has_passphrase_slot() && current.is_none());
            Ok::<_, EngineError>(None)
        })
        .await
        .expect("rekeyed");
    assert_eq!((count, with_passphrase), (2, false));
    let vault = session.open().await.expect("still opens");
    assert_eq!(vault.recipients().count(), 2);
    assert_eq!(refresh_token(&vault, "mail").as_deref(), Some("rt"));
}

#[tokio::test]
async fn inspect_reads_the_header_without_a_key_and_follows_the_pin() {
    let (backend, session, _state, recipient) = session(vec![record("mail", "rt")]);
    let first = session.inspect().await.expect("inspect");
    assert_eq!(first.pin, PinStatus::New, "never opened here");
    let bytes = backend.bytes().expect("a vault");
    assert_eq!(first.file_size, bytes.len());
    assert!(matches!(&first.header.slots[..], [Slot::Age(age)] if age.recipient == recipient));
    session.open().await.expect("open pins it");
    assert_eq!(
        session.inspect().await.expect("inspect").pin,
        PinStatus::Same
    );
    let mut garbled = bytes;
    garbled[0] ^= 0xff;
    backend.set_bytes(garbled);
    let error = session.inspect().await.expect_err("no header");
    assert_eq!(error.kind(), ErrorKind::Untrusted);
}
