//! The engine against `MemoryBackend`: the one transaction, compare-and-
//! swap, a busy or expired lease, the rollback pin, the rescue file, and a
//! refresh run that only met temporary failures leaving the vault as it was.

#![allow(missing_docs)]

use std::time::Duration;

use vault_engine::{
    EngineError, ErrorKind, IfWriteFails, MemoryBackend, NoUi, Selection, Session, SessionOptions,
    UnlockMaterial,
};
use vault_format::{
    ClientAuth, Credential, Provider, Record, RefreshTokenCredential, SecretString, SlotSpec, Vault,
};
use vault_oauth::{Refresher, RefresherConfig, RetryPolicy};

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
