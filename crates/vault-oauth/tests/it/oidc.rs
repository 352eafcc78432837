//! Refresh and rotation against a real authorization server: panva's
//! oidc-provider, which rotates refresh tokens and revokes the whole grant
//! when a used one is replayed.

use vault_format::{ClientAuth, RefreshClass};
use vault_oauth::{Misconfiguration, RefreshOutcome, RetryPolicy};

use crate::common::{refresh_record, refresh_token_of, refresher, request};
use crate::peers::{BASIC_CLIENT, OidcProvider, POST_CLIENT, PUBLIC_CLIENT};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[tokio::test]
async fn refresh_works_for_basic_post_and_public_clients() {
    let Some(server) = OidcProvider::start(true, 60) else {
        return;
    };
    let clients = [
        (
            BASIC_CLIENT.0,
            Some(BASIC_CLIENT.1),
            ClientAuth::ClientSecretBasic,
        ),
        (
            POST_CLIENT.0,
            Some(POST_CLIENT.1),
            ClientAuth::ClientSecretPost,
        ),
        (PUBLIC_CLIENT, None, ClientAuth::None),
    ];
    let refresher = refresher(RetryPolicy::none());
    for (client_id, secret, auth) in clients {
        let minted = server.mint(client_id, "openid offline_access", 1).await;
        let mut record = refresh_record(
            client_id,
            &server.token_endpoint,
            client_id,
            secret,
            auth,
            &minted[0],
        );
        let before = now();
        let report = refresher.refresh(&request(&record)).await;
        let RefreshOutcome::Refreshed(refreshed) = report.outcome else {
            panic!("{client_id}: {:?}", report.outcome);
        };
        let expires_at = refreshed
            .expires_at
            .expect("oidc-provider sends expires_in");
        assert!(
            (before + 55..=now() + 60).contains(&expires_at),
            "{client_id}: 60 s lifetime"
        );
        assert!(
            refreshed.id_token.is_some(),
            "openid scope yields an ID token"
        );
        assert_eq!(
            refreshed.scopes.as_deref(),
            Some(&["openid".to_owned(), "offline_access".to_owned()][..])
        );
        let rotated = refreshed
            .refresh_token
            .as_ref()
            .expect("rotation is on")
            .expose_secret()
            .to_owned();
        assert_ne!(rotated, minted[0]);
        RefreshOutcome::Refreshed(refreshed).apply_to(&mut record, before);
        assert_eq!(
            refresh_token_of(&record),
            rotated,
            "the rotated token replaces the old one"
        );
        assert!(record.access_token.is_some());
        assert_eq!(
            record.last_refresh.as_ref().map(|s| s.class),
            Some(RefreshClass::Refreshed)
        );
    }
    let stats = server.stats().await;
    assert_eq!(stats["refreshes_ok"], 3, "{stats}");
    assert_eq!(stats["refresh_errors"], 0, "{stats}");
}

#[tokio::test]
async fn fifty_rotations_always_use_the_newest_refresh_token() {
    let Some(server) = OidcProvider::start(true, 60) else {
        return;
    };
    let minted = server.mint(POST_CLIENT.0, "offline_access", 1).await;
    let mut record = refresh_record(
        "rotating",
        &server.token_endpoint,
        POST_CLIENT.0,
        Some(POST_CLIENT.1),
        ClientAuth::ClientSecretPost,
        &minted[0],
    );
    let refresher = refresher(RetryPolicy::none());
    let mut seen = std::collections::HashSet::from([minted[0].clone()]);
    for round in 0..50 {
        let report = refresher.refresh(&request(&record)).await;
        assert_eq!(
            report.outcome.class(),
            RefreshClass::Refreshed,
            "round {round}: {:?}",
            report.outcome
        );
        report.outcome.apply_to(&mut record, now());
        assert!(
            seen.insert(refresh_token_of(&record).to_owned()),
            "round {round}: every rotation yields a new token"
        );
    }
    let stats = server.stats().await;
    assert_eq!(stats["refreshes_ok"], 50, "{stats}");
    assert_eq!(
        stats["replays_detected"], 0,
        "the server never saw a used token again: {stats}"
    );
    assert_eq!(stats["grants_revoked"], 0, "{stats}");
}

#[tokio::test]
async fn replaying_a_used_refresh_token_is_detected_and_needs_reauthorization() {
    let Some(server) = OidcProvider::start(true, 60) else {
        return;
    };
    let minted = server.mint(BASIC_CLIENT.0, "offline_access", 1).await;
    let mut record = refresh_record(
        "replay",
        &server.token_endpoint,
        BASIC_CLIENT.0,
        Some(BASIC_CLIENT.1),
        ClientAuth::ClientSecretBasic,
        &minted[0],
    );
    let stale = record.clone();
    let refresher = refresher(RetryPolicy::default());
    refresher
        .refresh(&request(&record))
        .await
        .outcome
        .apply_to(&mut record, now());
    assert_ne!(refresh_token_of(&record), refresh_token_of(&stale));

    // A writer that lost the rotated token presents the old one.
    let report = refresher.refresh(&request(&stale)).await;
    let RefreshOutcome::ReauthorizationRequired(error) = &report.outcome else {
        panic!("replay must need re-authorization: {:?}", report.outcome);
    };
    assert_eq!(error.code, "invalid_grant");
    assert_eq!(report.attempts, 1, "a permanent error is never retried");
    let stats = server.stats().await;
    assert_eq!(stats["replays_detected"], 1, "{stats}");
    assert_eq!(stats["grants_revoked"], 1, "{stats}");

    // RFC 9700 reuse detection revoked the whole grant: the newest token is dead too.
    let report = refresher.refresh(&request(&record)).await;
    assert_eq!(
        report.outcome.class(),
        RefreshClass::ReauthorizationRequired,
        "{:?}",
        report.outcome
    );
}

#[tokio::test]
async fn a_revoked_grant_needs_reauthorization() {
    let Some(server) = OidcProvider::start(true, 60) else {
        return;
    };
    let minted = server.mint(BASIC_CLIENT.0, "offline_access", 1).await;
    server.revoke(BASIC_CLIENT, &minted[0]).await;
    let mut record = refresh_record(
        "revoked",
        &server.token_endpoint,
        BASIC_CLIENT.0,
        Some(BASIC_CLIENT.1),
        ClientAuth::ClientSecretBasic,
        &minted[0],
    );
    let report = refresher(RetryPolicy::default())
        .refresh(&request(&record))
        .await;
    assert_eq!(
        report.outcome.class(),
        RefreshClass::ReauthorizationRequired,
        "{:?}",
        report.outcome
    );
    assert_eq!(report.attempts, 1);
    let at = now();
    report.outcome.apply_to(&mut record, at);
    let status = record.last_refresh.as_ref().expect("status recorded");
    assert_eq!(
        (status.class, status.error_code.as_deref(), status.at),
        (
            RefreshClass::ReauthorizationRequired,
            Some("invalid_grant"),
            at
        )
    );
    assert_eq!(
        refresh_token_of(&record),
        minted[0],
        "a failure never drops the stored token"
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_misconfiguration_and_loses_nothing() {
    let Some(server) = OidcProvider::start(true, 60) else {
        return;
    };
    let minted = server.mint(BASIC_CLIENT.0, "offline_access", 1).await;
    let refresher = refresher(RetryPolicy::default());
    for auth in [ClientAuth::ClientSecretBasic, ClientAuth::ClientSecretPost] {
        let record = refresh_record(
            "wrong-secret",
            &server.token_endpoint,
            BASIC_CLIENT.0,
            Some("not-the-secret"),
            auth,
            &minted[0],
        );
        let report = refresher.refresh(&request(&record)).await;
        let RefreshOutcome::Misconfigured(Misconfiguration::Rejected(error)) = &report.outcome
        else {
            panic!("{auth:?}: {:?}", report.outcome);
        };
        assert_eq!((error.code.as_str(), error.status), ("invalid_client", 401));
        assert_eq!(report.attempts, 1);
        assert!(!report.outcome.to_string().contains("not-the-secret"));
    }
    // The refresh token was not consumed by the failed attempts.
    let record = refresh_record(
        "right-secret",
        &server.token_endpoint,
        BASIC_CLIENT.0,
        Some(BASIC_CLIENT.1),
        ClientAuth::ClientSecretBasic,
        &minted[0],
    );
    assert_eq!(
        refresher.refresh(&request(&record)).await.outcome.class(),
        RefreshClass::Refreshed
    );
}

#[tokio::test]
async fn rotation_off_keeps_the_original_refresh_token() {
    let Some(server) = OidcProvider::start(false, 60) else {
        return;
    };
    let minted = server.mint(POST_CLIENT.0, "offline_access", 1).await;
    let mut record = refresh_record(
        "static",
        &server.token_endpoint,
        POST_CLIENT.0,
        Some(POST_CLIENT.1),
        ClientAuth::ClientSecretPost,
        &minted[0],
    );
    record.access_token = None;
    let refresher = refresher(RetryPolicy::none());
    let mut access_tokens = std::collections::HashSet::new();
    for round in 0..5 {
        let report = refresher.refresh(&request(&record)).await;
        assert_eq!(
            report.outcome.class(),
            RefreshClass::Refreshed,
            "round {round}: {:?}",
            report.outcome
        );
        report.outcome.apply_to(&mut record, now());
        assert_eq!(refresh_token_of(&record), minted[0], "round {round}");
        let access = record.access_token.as_ref().expect("access token stored");
        assert!(
            access_tokens.insert(access.token.expose_secret().to_owned()),
            "a new access token each time"
        );
    }
    let vault_format::Credential::RefreshToken(credential) = &record.credential else {
        unreachable!()
    };
    assert_eq!(
        credential.refresh_token_issued_at, None,
        "an echoed token is not a rotation"
    );
    let stats = server.stats().await;
    assert_eq!(
        (
            stats["refreshes_ok"].as_u64(),
            stats["replays_detected"].as_u64()
        ),
        (Some(5), Some(0)),
        "{stats}"
    );
}

#[tokio::test]
async fn the_real_server_accepts_our_authorization_request_and_device_authorization() {
    let Some(server) = OidcProvider::start(true, 3600) else {
        return;
    };
    // The authorization URL (PKCE S256, state, loopback redirect) is one the
    // server, which requires PKCE, takes to its login page rather than
    // bouncing back to the client with an error.
    let request = vault_oauth::AuthorizationRequest {
        authorization_endpoint: server.authorization_endpoint.clone(),
        client_id: PUBLIC_CLIENT.to_owned(),
        scopes: vec!["openid".to_owned(), "offline_access".to_owned()],
        extra_params: Vec::new(),
    };
    let pending = vault_oauth::PendingAuthorization::new(&request, "http://127.0.0.1:9/")
        .expect("valid request");
    let response = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(pending.url().as_str())
        .send()
        .await
        .expect("authorization endpoint answers");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert!(location.starts_with("/interaction/"), "{location}");

    // The device flow starts, and polling before approval keeps waiting
    // until our own timeout.
    let refresher = refresher(RetryPolicy::none());
    let client = vault_oauth::OAuthClient {
        client_id: PUBLIC_CLIENT.to_owned(),
        client_secret: None,
        client_auth: ClientAuth::None,
    };
    let device = refresher
        .start_device_authorization(
            &server.device_authorization_endpoint,
            &client,
            &["openid".to_owned(), "offline_access".to_owned()],
        )
        .await
        .expect("device authorization");
    assert!(device.verification_uri.starts_with("http://127.0.0.1:"));
    assert_eq!(device.interval, std::time::Duration::from_secs(1));
    let endpoint = vault_oauth::TokenEndpoint::parse(&server.token_endpoint).expect("endpoint");
    let error = refresher
        .poll_device_authorization(
            &endpoint,
            client,
            &device,
            std::time::Duration::from_secs(3),
        )
        .await
        .expect_err("nobody approved");
    assert!(
        matches!(error, vault_oauth::LoginError::TimedOut(_)),
        "{error:?}"
    );
}
