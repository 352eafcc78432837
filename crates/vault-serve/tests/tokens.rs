//! The token cache against `MemoryBackend` and an in-process token
//! endpoint: one refresh for many callers, a caller that hangs up does not
//! cancel a refresh, a temporary failure keeps serving a still-valid token,
//! and a short provider lifetime bounds how often a refresh is sent.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use tokvault_test_support::fault_server::{Action, FaultServer};
use vault_engine::{
    ErrorKind, MemoryBackend, NoUi, Session, SessionOptions, UnlockMaterial, unix_now,
};
use vault_format::{
    AccessToken, ClientAuth, Credential, Provider, Record, RefreshTokenCredential, SecretString,
    SlotSpec, Vault,
};
use vault_oauth::{Refresher, RefresherConfig, RetryPolicy};
use vault_serve::{TokenSettings, Tokens};

struct Fixture {
    backend: MemoryBackend,
    tokens: Arc<Tokens<MemoryBackend>>,
    _state: tempfile::TempDir,
}

/// A vault with one record, `mail`, at `endpoint`, whose access token
/// expires at `expires_at` (none if `None`), served with `min_valid`.
fn fixture(endpoint: &str, expires_at: Option<u64>, min_valid: u64) -> Fixture {
    let identity = age::x25519::Identity::generate();
    let mut vault =
        Vault::create(&[SlotSpec::Recipient(&identity.to_public().to_string())]).expect("vault");
    let mut record = Record::new(
        "mail",
        Provider::Generic,
        endpoint,
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "client".to_owned(),
            client_secret: None,
            client_auth: ClientAuth::None,
            refresh_token: SecretString::copy_from("refresh"),
            refresh_token_issued_at: None,
            authorization_endpoint: None,
        }),
        0,
    );
    record.access_token = expires_at.map(|at| AccessToken {
        token: SecretString::copy_from("old"),
        expires_at: Some(at),
    });
    vault.records_mut().push(record);
    let backend = MemoryBackend::new("memory://vault");
    backend.set_bytes(vault.seal(1).expect("seal"));
    let state = tempfile::tempdir().expect("state dir");
    let key: Box<dyn age::Identity + Send + Sync> = Box::new(identity);
    let session = Session::new(
        backend.clone(),
        state.path().to_path_buf(),
        UnlockMaterial::new(vec![key], None),
        Box::new(NoUi),
        SessionOptions {
            accept_rollback: false,
            lock_wait: Duration::from_secs(5),
        },
    );
    let refresher = Refresher::new(RefresherConfig {
        retry: RetryPolicy::none(),
        ..RefresherConfig::default()
    })
    .expect("client");
    let settings = TokenSettings {
        min_valid: Duration::from_secs(min_valid),
        max_run_time: Duration::from_secs(60),
        retry_after: Duration::from_secs(30),
    };
    let tokens = Tokens::new(
        Arc::new(session),
        refresher,
        settings,
        ["mail".to_owned()],
        Arc::new(|_| {}),
    )
    .expect("worker");
    Fixture {
        backend,
        tokens,
        _state: state,
    }
}

fn token_with_lifetime(access: &str, seconds: u64) -> Action {
    Action::json(
        200,
        &format!(r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":{seconds}}}"#),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_share_one_refresh() {
    let server = FaultServer::with(|_| {
        Action::Delayed(Duration::from_millis(300), Box::new(Action::token("fresh")))
    })
    .await;
    let f = fixture(&server.url("/token"), None, 300);
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let tokens = Arc::clone(&f.tokens);
            tokio::spawn(async move { tokens.get("mail").await })
        })
        .collect();
    for caller in callers {
        let served = caller.await.expect("task").expect("a token");
        assert_eq!(served.token.expose_secret(), "fresh");
    }
    assert_eq!(server.requests().len(), 1, "one refresh for ten callers");
    assert_eq!(f.backend.commits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_hangs_up_does_not_cancel_the_refresh() {
    let server = FaultServer::with(|_| {
        Action::Delayed(Duration::from_millis(500), Box::new(Action::token("fresh")))
    })
    .await;
    let f = fixture(&server.url("/token"), None, 300);
    let tokens = Arc::clone(&f.tokens);
    let caller = tokio::spawn(async move { tokens.get("mail").await });
    while server.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    caller.abort();
    // The answer is still saved, and served without another request.
    f.tokens.drain().await;
    assert_eq!(f.backend.commits(), 1, "the refresh finished and was saved");
    let served = f.tokens.get("mail").await.expect("a token");
    assert_eq!(served.token.expose_secret(), "fresh");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_failure_serves_a_still_valid_token_else_fails_temporarily() {
    let server =
        FaultServer::with(|_| Action::json(503, r#"{"error":"temporarily_unavailable"}"#)).await;
    // Below min_valid but with two minutes left: served while refreshing fails.
    let f = fixture(&server.url("/token"), Some(unix_now() + 120), 300);
    let served = f.tokens.get("mail").await.expect("the older token");
    assert_eq!(served.token.expose_secret(), "old");
    assert_eq!(server.requests().len(), 1);
    // Within the retry interval: no new request, the same token.
    let served = f.tokens.get("mail").await.expect("the older token");
    assert_eq!(served.token.expose_secret(), "old");
    assert_eq!(server.requests().len(), 1, "no retry within retry_after");
    // Almost expired: a temporary failure, never an expiring token.
    let f = fixture(&server.url("/token"), Some(unix_now() + 10), 300);
    let failure = f
        .tokens
        .get("mail")
        .await
        .expect_err("nothing valid to serve");
    assert_eq!(failure.kind, ErrorKind::Temporary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lifetime_is_served_for_half_of_it_not_refreshed_per_request() {
    let server = FaultServer::with(|_| token_with_lifetime("short", 20)).await;
    // min_valid 5 min, but the provider's tokens live 20 s.
    let f = fixture(&server.url("/token"), None, 300);
    for _ in 0..20 {
        let served = f.tokens.get("mail").await.expect("a token");
        assert_eq!(served.token.expose_secret(), "short");
        assert!(served.expires_at >= unix_now() + 10);
    }
    assert_eq!(server.requests().len(), 1, "one refresh per half lifetime");
}

/// After `drain` (a stopping server), a request that would need a refresh
/// starts none: the process may end right after, and a refresh cut short
/// there would lose a rotated token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_cache_starts_no_refresh() {
    let server = FaultServer::with(|_| Action::token("fresh")).await;
    let f = fixture(&server.url("/token"), None, 300);
    f.tokens.drain().await;
    let failure = f.tokens.get("mail").await.expect_err("stopping");
    assert_eq!(failure.kind, ErrorKind::Temporary);
    assert!(
        server.requests().is_empty(),
        "a refresh started after the drain"
    );
    assert_eq!(f.backend.commits(), 0);
}
