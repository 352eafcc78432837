//! The engine against `MemoryBackend`: the one transaction, compare-and-
//! swap, a busy or expired lease, the rollback pin, the rescue file, a
//! refresh run that only met temporary failures leaving the vault as it
//! was, and the operations built on them (a login's checks and saves, a
//! rekey, inspect).

#![allow(missing_docs)]

use std::time::Duration;

use vault_engine::input::{ImportOptions, Input, RecordOptions};
use vault_engine::{
    EngineError, ErrorKind, IfWriteFails, MemoryBackend, NoUi, Selection, Session, SessionOptions,
    UnlockMaterial,
};
use vault_format::{
    ClientAuth, Credential, PinStatus, Provider, Record, RefreshTokenCredential, SecretString,
    Slot, SlotSpec, Vault,
};
use vault_oauth::{Refreshed, Refresher, RefresherConfig, RetryPolicy};
use zeroize::Zeroizing;

struct Fixture {
    backend: MemoryBackend,
    identity: age::x25519::Identity,
    state: tempfile::TempDir,
}

fn record(name: &str, token_endpoint: &str) -> Record {
    Record::new(
        name,
        Provider::Generic,
        token_endpoint,
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "client".to_owned(),
            client_secret: None,
            client_auth: ClientAuth::None,
            refresh_token: SecretString::copy_from("refresh"),
            refresh_token_issued_at: None,
            authorization_endpoint: None,
        }),
        0,
    )
}

impl Fixture {
    /// A memory vault holding `records`, sealed to a new identity.
    fn new(records: Vec<Record>) -> Self {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let mut vault = Vault::create(&[SlotSpec::Recipient(&recipient)]).expect("vault");
        vault.records_mut().extend(records);
        let backend = MemoryBackend::new("memory://vault");
        backend.set_bytes(vault.seal(1).expect("seal"));
        Self {
            backend,
            identity,
            state: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn session(&self, accept_rollback: bool) -> Session<MemoryBackend> {
        let identity: Box<dyn age::Identity + Send + Sync> = Box::new(self.identity.clone());
        Session::new(
            self.backend.clone(),
            self.state.path().to_path_buf(),
            UnlockMaterial::new(vec![identity], None),
            Box::new(NoUi),
            SessionOptions {
                accept_rollback,
                lock_wait: Duration::from_millis(50),
            },
        )
    }
}

fn add(vault: &mut Vault, name: &str) -> Result<(), EngineError> {
    vault
        .records_mut()
        .push(record(name, "https://auth.example/token"));
    Ok(())
}

#[tokio::test]
async fn an_update_commits_once_and_moves_the_pin() {
    let fixture = Fixture::new(Vec::new());
    let session = fixture.session(false);
    session
        .update(IfWriteFails::Fail, |v| add(v, "one"))
        .await
        .expect("update");
    assert_eq!(fixture.backend.commits(), 1);
    let vault = session.open().await.expect("open");
    assert!(vault.record("one").is_some());
    let pin = session.state().load_pin().expect("pin").expect("a pin");
    assert_eq!(pin.generation, vault.generation());
}

#[tokio::test]
async fn a_change_that_fails_writes_nothing() {
    let fixture = Fixture::new(Vec::new());
    let before = fixture.backend.bytes();
    let session = fixture.session(false);
    let error = session
        .update(IfWriteFails::Fail, |_| {
            Err::<(), _>(EngineError::usage("no such change"))
        })
        .await
        .expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::Usage);
    assert_eq!(fixture.backend.commits(), 0);
    assert_eq!(fixture.backend.bytes(), before);
}

#[tokio::test]
async fn a_vault_changed_behind_the_lease_is_never_overwritten() {
    let fixture = Fixture::new(Vec::new());
    let before = fixture.backend.bytes();
    fixture.backend.conflict_next();
    let session = fixture.session(false);
    let error = session
        .update(IfWriteFails::Fail, |v| add(v, "one"))
        .await
        .expect_err("conflict");
    assert!(matches!(error, EngineError::Conflict { .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::Temporary);
    assert_eq!(fixture.backend.bytes(), before);
}

#[tokio::test]
async fn a_busy_lease_is_waited_for_then_reported() {
    let fixture = Fixture::new(Vec::new());
    fixture.backend.hold();
    let session = fixture.session(false);
    let error = session
        .update(IfWriteFails::Fail, |v| add(v, "one"))
        .await
        .expect_err("busy");
    assert!(matches!(error, EngineError::Busy { .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::Temporary);
    fixture.backend.release();
    session
        .update(IfWriteFails::Fail, |v| add(v, "one"))
        .await
        .expect("free again");
}

#[tokio::test]
async fn an_expired_lease_commits_nothing() {
    let fixture = Fixture::new(Vec::new());
    let before = fixture.backend.bytes();
    fixture.backend.lease_ttl(Duration::ZERO);
    let session = fixture.session(false);
    let error = session
        .update(IfWriteFails::Fail, |v| add(v, "one"))
        .await
        .expect_err("expired");
    assert_eq!(error.kind(), ErrorKind::Temporary);
    assert!(error.to_string().contains("expired"), "{error}");
    assert_eq!(fixture.backend.bytes(), before);
}

#[tokio::test]
async fn a_replayed_old_vault_is_refused_unless_accepted() {
    let fixture = Fixture::new(Vec::new());
    let old = fixture.backend.bytes().expect("bytes");
    let session = fixture.session(false);
    session
        .update(IfWriteFails::Fail, |v| add(v, "one"))
        .await
        .expect("update");
    fixture.backend.set_bytes(old);
    let error = session.open().await.expect_err("rollback");
    assert_eq!(error.kind(), ErrorKind::Untrusted);
    assert!(
        error.to_string().contains("older than generation"),
        "{error}"
    );
    let accepting = fixture.session(true);
    let vault = accepting.open().await.expect("accepted on purpose");
    assert!(vault.record("one").is_none(), "the old vault, as asked");
    session.open().await.expect("the pin moved to it");
}

#[tokio::test]
async fn a_failed_write_with_rotated_tokens_goes_to_the_rescue_file_and_comes_back() {
    let fixture = Fixture::new(Vec::new());
    let before = fixture.backend.bytes();
    fixture.backend.fail_writes(1);
    let session = fixture.session(false);
    let error = session
        .update(IfWriteFails::Rescue, |v| add(v, "one"))
        .await
        .expect_err("not saved in the vault");
    assert_eq!(error.kind(), ErrorKind::NotSaved);
    assert!(session.state().has_rescue());
    assert_eq!(fixture.backend.bytes(), before, "the vault is untouched");
    // A reader sees the rescued change; the next writer puts it back.
    let vault = session.open().await.expect("open");
    assert!(vault.record("one").is_some(), "read from the rescue file");
    assert!(!session.state().has_rescue(), "put back under the lease");
    assert_eq!(fixture.backend.commits(), 1);
    session
        .update(IfWriteFails::Fail, |v| add(v, "two"))
        .await
        .expect("update");
    let vault = session.open().await.expect("open");
    assert!(vault.record("one").is_some() && vault.record("two").is_some());
}

#[tokio::test]
async fn an_old_rescue_file_is_not_put_back_over_a_newer_pin() {
    let fixture = Fixture::new(Vec::new());
    let session = fixture.session(false);
    fixture.backend.fail_writes(1);
    let _ = session
        .update(IfWriteFails::Rescue, |v| add(v, "one"))
        .await;
    let old_rescue = std::fs::read(session.state().rescue_path()).expect("a rescue file");
    session.open().await.expect("put back");
    for name in ["two", "three"] {
        session
            .update(IfWriteFails::Fail, |v| add(v, name))
            .await
            .expect("update");
    }
    // The old rescue file reappears while the vault is damaged.
    std::fs::write(session.state().rescue_path(), &old_rescue).expect("plant");
    fixture.backend.set_bytes(b"damaged".to_vec());
    let error = session.open().await.expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::Untrusted);
    assert!(error.to_string().contains("the rescue file"), "{error}");
    assert_eq!(fixture.backend.bytes().as_deref(), Some(&b"damaged"[..]));
}

#[tokio::test]
async fn a_rescue_file_overtaken_by_another_vault_is_kept_aside_not_deleted() {
    let fixture = Fixture::new(Vec::new());
    let original = fixture.backend.bytes().expect("bytes");
    let session = fixture.session(false);
    fixture.backend.fail_writes(1);
    let _ = session
        .update(IfWriteFails::Rescue, |v| add(v, "one"))
        .await;
    let rescued = std::fs::read(session.state().rescue_path()).expect("a rescue file");
    // Another writer, ignoring the rescue file, wrote the same generation
    // with other contents.
    let mut other = session.decrypt(&original).expect("open");
    add(&mut other, "other").expect("add");
    fixture.backend.set_bytes(other.seal(2).expect("seal"));
    let vault = session.open().await.expect("open");
    assert!(vault.record("other").is_some() && vault.record("one").is_none());
    assert!(!session.state().has_rescue());
    let dir = session.state().rescue_path();
    let dir = dir.parent().expect("rescue dir");
    let kept: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".superseded-"))
        .collect();
    assert_eq!(kept.len(), 1, "the rescued tokens were deleted");
    assert_eq!(std::fs::read(kept[0].path()).expect("read"), rescued);
}

#[tokio::test]
async fn a_failed_write_of_a_plain_change_leaves_no_rescue_file() {
    let fixture = Fixture::new(Vec::new());
    fixture.backend.fail_writes(1);
    let session = fixture.session(false);
    let error = session
        .update(IfWriteFails::Fail, |v| add(v, "one"))
        .await
        .expect_err("not saved");
    assert_eq!(error.kind(), ErrorKind::Failure);
    assert!(!session.state().has_rescue());
}

/// A token endpoint on loopback that refuses connections.
fn refused_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/token")
}

fn refresher() -> Refresher {
    Refresher::new(RefresherConfig {
        retry: RetryPolicy::none(),
        ..RefresherConfig::default()
    })
    .expect("client")
}

#[tokio::test]
async fn a_run_that_only_met_temporary_failures_keeps_the_vault_byte_identical() {
    let fixture = Fixture::new(vec![record("down", &refused_endpoint())]);
    let before = fixture.backend.bytes();
    let session = fixture.session(false);
    let selection = Selection {
        names: Vec::new(),
        min_valid: Duration::from_secs(600),
        force: true,
    };
    let run = session.begin_refresh(selection).await.expect("begin");
    assert_eq!(run.requests().len(), 1);
    let summary = run
        .run(&refresher(), Duration::from_secs(30))
        .await
        .expect("run");
    assert_eq!(summary.kind(), Some(ErrorKind::Temporary));
    assert!(!summary.wrote);
    assert_eq!(fixture.backend.commits(), 0);
    assert_eq!(fixture.backend.bytes(), before);
}

#[tokio::test]
async fn a_lease_about_to_expire_sends_no_request() {
    // With 5 s left and a 10 s margin, no token request may start: a
    // holder whose lease ran out must not present a refresh token that
    // another host may be presenting too.
    let fixture = Fixture::new(vec![record("mail", &refused_endpoint())]);
    fixture.backend.lease_ttl(Duration::from_secs(5));
    let session = fixture.session(false);
    let selection = Selection {
        names: Vec::new(),
        min_valid: Duration::from_secs(600),
        force: true,
    };
    let run = session.begin_refresh(selection).await.expect("begin");
    let summary = run
        .run(&refresher(), Duration::from_secs(120))
        .await
        .expect("run");
    let result = summary.result("mail").expect("a result");
    assert_eq!(result.attempts, 0, "{}", result.message);
    assert!(result.message.contains("not sent"), "{}", result.message);
}

#[tokio::test]
async fn a_full_store_stops_a_run_before_anything_is_sent() {
    let fixture = Fixture::new(vec![record("mail", &refused_endpoint())]);
    fixture.backend.fail_reservations(1);
    let session = fixture.session(false);
    let selection = Selection {
        names: Vec::new(),
        min_valid: Duration::from_secs(600),
        force: true,
    };
    let error = session
        .begin_refresh(selection)
        .await
        .err()
        .expect("no room");
    assert_eq!(error.kind(), ErrorKind::Temporary);
    assert!(
        error.to_string().contains("nothing was refreshed"),
        "{error}"
    );
}

const ENDPOINT: &str = "https://auth.example/token";

fn refresh_token(vault: &Vault, name: &str) -> Option<String> {
    match &vault.record(name)?.credential {
        Credential::RefreshToken(c) => Some(c.refresh_token.expose_secret().to_owned()),
        _ => None,
    }
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
    let fixture = Fixture::new(vec![record("mail", ENDPOINT)]);
    let session = fixture.session(false);
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
    let fixture = Fixture::new(Vec::new());
    let session = fixture.session(false);
    session
        .save_login(record("mail", ENDPOINT), false)
        .await
        .expect("saved");
    let vault = session.open().await.expect("open");
    assert_eq!(refresh_token(&vault, "mail").as_deref(), Some("refresh"));
    fixture.backend.fail_writes(1);
    let error = session
        .save_login(record("drive", ENDPOINT), false)
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
    let fixture = Fixture::new(vec![record("mail", ENDPOINT)]);
    let session = fixture.session(false);
    let plan = session
        .plan_for("mail", &[], None, None)
        .await
        .expect("plan");
    assert_eq!(plan.token_endpoint, ENDPOINT);
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
    let fixture = Fixture::new(vec![record("mail", ENDPOINT)]);
    let session = fixture.session(false);
    let first = fixture.identity.to_public().to_string();
    let error = session
        .rekey(std::slice::from_ref(&first), Vec::new(), |_, _| {
            Ok::<_, EngineError>(None)
        })
        .await
        .expect_err("no slot would remain");
    assert_eq!(error.kind(), ErrorKind::Usage);
    let added = vec![age::x25519::Identity::generate().to_public().to_string()];
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
    assert_eq!(refresh_token(&vault, "mail").as_deref(), Some("refresh"));
}

#[tokio::test]
async fn inspect_reads_the_header_without_a_key_and_follows_the_pin() {
    let fixture = Fixture::new(vec![record("mail", ENDPOINT)]);
    let session = fixture.session(false);
    let recipient = fixture.identity.to_public().to_string();
    let first = session.inspect().await.expect("inspect");
    assert_eq!(first.pin, PinStatus::New, "never opened here");
    let bytes = fixture.backend.bytes().expect("a vault");
    assert_eq!(first.file_size, bytes.len());
    assert!(matches!(&first.header.slots[..], [Slot::Age(age)] if age.recipient == recipient));
    session.open().await.expect("open pins it");
    assert_eq!(
        session.inspect().await.expect("inspect").pin,
        PinStatus::Same
    );
    let mut garbled = bytes;
    garbled[0] ^= 0xff;
    fixture.backend.set_bytes(garbled);
    let error = session.inspect().await.expect_err("no header");
    assert_eq!(error.kind(), ErrorKind::Untrusted);
}

fn input(bytes: &[u8]) -> Input {
    Input {
        path: std::path::PathBuf::from("token.json"),
        bytes: Zeroizing::new(bytes.to_vec()),
        modified: None,
    }
}

fn named(name: &str) -> ImportOptions<'_> {
    ImportOptions {
        record: RecordOptions {
            name: Some(name),
            ..RecordOptions::default()
        },
        ..ImportOptions::default()
    }
}

#[tokio::test]
async fn import_adds_a_token_file_or_another_vault_s_records_and_keeps_taken_names() {
    let fixture = Fixture::new(vec![record("mail", ENDPOINT)]);
    let session = fixture.session(false);
    let json = input(
        br#"{"client_id":"id","client_secret":"s","refresh_token":"rt","token_uri":"https://auth.example/token"}"#,
    );
    let imported = session
        .import(&json, &named("drive"))
        .await
        .expect("imported");
    assert_eq!(
        (imported.names, imported.plaintext, imported.records),
        (vec!["drive".to_owned()], true, 2)
    );
    let taken = session.import(&json, &named("mail")).await;
    assert_eq!(taken.expect_err("taken").kind(), ErrorKind::Failure);
    // Another vault the same identity opens: its records come over as they are.
    let recipient = fixture.identity.to_public().to_string();
    let mut other = Vault::create(&[SlotSpec::Recipient(&recipient)]).expect("vault");
    other.records_mut().push(record("calendar", ENDPOINT));
    let sealed = input(&other.seal(1).expect("seal"));
    let named_vault = session.import(&sealed, &named("x")).await;
    assert_eq!(named_vault.expect_err("--name").kind(), ErrorKind::Usage);
    let imported = session
        .import(&sealed, &ImportOptions::default())
        .await
        .expect("imported");
    assert_eq!(
        (imported.names, imported.plaintext, imported.records),
        (vec!["calendar".to_owned()], false, 3)
    );
    let vault = session.open().await.expect("open");
    let names: Vec<&str> = vault.records().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["mail", "drive", "calendar"]);
}

fn age_encrypted(recipient: &age::x25519::Recipient, plaintext: &[u8]) -> Vec<u8> {
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
            .expect("recipients");
    let mut out = Vec::new();
    let mut writer = encryptor.wrap_output(&mut out).expect("wrap");
    std::io::Write::write_all(&mut writer, plaintext).expect("write");
    writer.finish().expect("finish");
    out
}

fn issued_at(vault: &Vault, name: &str) -> Option<u64> {
    match &vault.record(name).expect("the record").credential {
        Credential::RefreshToken(c) => c.refresh_token_issued_at,
        _ => panic!("a refresh token"),
    }
}

#[tokio::test]
async fn import_decrypts_an_age_file_names_it_after_the_file_and_dates_its_refresh_token() {
    let fixture = Fixture::new(Vec::new());
    let session = fixture.session(false);
    let json = br#"{"client_id":"id","client_secret":"s","refresh_token":"rt-canary","token_uri":"https://auth.example/token"}"#;
    let file = Input {
        path: std::path::PathBuf::from("laptop/token_gmail.json.age"),
        bytes: Zeroizing::new(age_encrypted(&fixture.identity.to_public(), json)),
        modified: Some(1_000),
    };
    let imported = session
        .import(&file, &ImportOptions::default())
        .await
        .expect("imported");
    assert_eq!(imported.names, ["gmail"]);
    assert!(imported.age && !imported.plaintext, "{imported:?}");
    let vault = session.open().await.expect("open");
    assert_eq!(
        issued_at(&vault, "gmail"),
        Some(1_000),
        "no later than the file"
    );

    // What the caller knows wins; a file time in the future counts as now.
    let known = ImportOptions {
        record: RecordOptions {
            name: Some("known"),
            refresh_token_issued_at: Some(500),
            ..RecordOptions::default()
        },
        ..ImportOptions::default()
    };
    session.import(&file, &known).await.expect("imported");
    let future = Input {
        modified: Some(u64::MAX / 2),
        path: std::path::PathBuf::from("future.json.age"),
        bytes: file.bytes.clone(),
    };
    session
        .import(&future, &ImportOptions::default())
        .await
        .expect("imported");
    let vault = session.open().await.expect("open");
    assert_eq!(issued_at(&vault, "known"), Some(500));
    let now = vault_engine::unix_now();
    assert!(issued_at(&vault, "future").is_some_and(|at| at <= now));

    // Another server's file: nothing written, and the recipient to use named.
    let before = fixture.backend.bytes();
    let other = Input {
        bytes: Zeroizing::new(age_encrypted(
            &age::x25519::Identity::generate().to_public(),
            json,
        )),
        ..future
    };
    let error = session
        .import(&other, &named("other"))
        .await
        .expect_err("another recipient");
    assert_eq!(error.kind(), ErrorKind::Failure);
    assert!(error.to_string().contains("different recipient"), "{error}");
    assert!(!error.to_string().contains("canary"), "{error}");
    assert!(fixture.backend.bytes() == before, "nothing written");
}

#[tokio::test]
async fn import_into_no_vault_says_to_create_one_before_reading_the_input() {
    let fixture = Fixture::new(Vec::new());
    let empty = MemoryBackend::new("memory://none");
    let identity: Box<dyn age::Identity + Send + Sync> = Box::new(fixture.identity.clone());
    let session = Session::new(
        empty,
        fixture.state.path().to_path_buf(),
        UnlockMaterial::new(vec![identity], None),
        Box::new(NoUi),
        SessionOptions {
            accept_rollback: false,
            lock_wait: Duration::from_millis(50),
        },
    );
    let error = session
        .import(&input(b"not even json"), &named("x"))
        .await
        .expect_err("no vault");
    assert_eq!(error.to_string(), session.no_vault().to_string());
}
