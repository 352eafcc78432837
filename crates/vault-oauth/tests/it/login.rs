//! Login building blocks over real sockets: the loopback listener (binds
//! 127.0.0.1 only, ignores what is not the redirect, ends at the first
//! answer and closes its port) and the device flow's polling against a
//! scripted server (pending, slow_down, then tokens).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use vault_format::ClientAuth;
use vault_oauth::{
    AuthorizationRequest, LoginError, LoopbackListener, OAuthClient, PendingAuthorization,
    TokenEndpoint,
};

use crate::common::{fast_retry, refresher};
use crate::fault_server::{Action, FaultServer};

fn pending_for(listener: &LoopbackListener) -> PendingAuthorization {
    let request = AuthorizationRequest {
        authorization_endpoint: "https://auth.example/authorize".to_owned(),
        client_id: "cli".to_owned(),
        scopes: vec!["offline_access".to_owned()],
        extra_params: Vec::new(),
    };
    PendingAuthorization::new(&request, listener.redirect_uri()).expect("valid request")
}

fn state_of(pending: &PendingAuthorization) -> String {
    pending
        .url()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state in the URL")
}

fn port_of(listener: &LoopbackListener) -> u16 {
    url::Url::parse(listener.redirect_uri())
        .expect("redirect URI parses")
        .port()
        .expect("explicit port")
}

/// A raw GET as a browser would send it; returns the status line and body.
async fn get(port: u16, target: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("listener accepts");
    stream
        .write_all(format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .await
        .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response read");
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn the_listener_takes_one_valid_redirect_then_closes() {
    let listener = LoopbackListener::bind(0, "/").await.expect("bind");
    assert!(listener.redirect_uri().starts_with("http://127.0.0.1:"));
    let port = port_of(&listener);
    let pending = pending_for(&listener);
    let state = state_of(&pending);

    let browser = async {
        // An idle pre-connection must not hold up the real redirect.
        let _idle = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("idle connect");
        // Bound to 127.0.0.1 only: another loopback address is refused.
        assert!(
            TcpStream::connect(("127.0.0.2", port)).await.is_err(),
            "the listener must not accept on 127.0.0.2"
        );
        let (status, _) = get(port, "/favicon.ico").await;
        assert!(status.contains("404"), "{status}");
        let (status, _) = get(port, "/").await;
        assert!(
            status.contains("404"),
            "a request without an answer is not the redirect: {status}"
        );
        let (status, body) = get(port, &format!("/?code=the-code&state={state}")).await;
        assert!(status.contains("200"), "{status}");
        assert!(body.contains("close this tab"), "{body}");
    };
    let (code, ()) = tokio::join!(
        listener.wait_for_code(&pending, Duration::from_secs(20)),
        browser
    );
    assert_eq!(code.expect("code").expose_secret(), "the-code");
    // The listener is gone: the port refuses connections.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "the port must be closed after the first valid redirect"
    );
}

#[tokio::test]
async fn a_forged_state_or_a_denial_ends_the_wait_with_that_error() {
    for (query, expect_state_error) in [
        ("code=x&state=forged".to_owned(), true),
        ("error=access_denied".to_owned(), true),
    ] {
        let listener = LoopbackListener::bind(0, "/").await.expect("bind");
        let port = port_of(&listener);
        let pending = pending_for(&listener);
        let target = format!("/?{query}");
        let (result, (status, body)) = tokio::join!(
            listener.wait_for_code(&pending, Duration::from_secs(20)),
            get(port, &target)
        );
        assert!(status.contains("400"), "{status}");
        assert!(
            !body.contains("forged"),
            "the page does not echo input: {body}"
        );
        assert_eq!(
            matches!(result, Err(LoginError::StateMismatch(_))),
            expect_state_error,
            "{query}: {result:?}"
        );
    }
    let listener = LoopbackListener::bind(0, "/").await.expect("bind");
    let port = port_of(&listener);
    let pending = pending_for(&listener);
    let state = state_of(&pending);
    let target = format!("/?error=access_denied&error_description=User+said+no&state={state}");
    let (result, _) = tokio::join!(
        listener.wait_for_code(&pending, Duration::from_secs(20)),
        get(port, &target)
    );
    match result {
        Err(LoginError::Denied(error)) => {
            assert_eq!(error.code, "access_denied");
            assert_eq!(error.description.as_deref(), Some("User said no"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_listener_gives_up_after_its_timeout() {
    let listener = LoopbackListener::bind(0, "/").await.expect("bind");
    let port = port_of(&listener);
    let pending = pending_for(&listener);
    let result = listener
        .wait_for_code(&pending, Duration::from_millis(300))
        .await;
    assert!(matches!(result, Err(LoginError::TimedOut(_))), "{result:?}");
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
}

#[tokio::test]
async fn device_polling_honours_interval_and_slow_down() {
    let device_server = FaultServer::scripted(vec![Action::json(
        200,
        r#"{"device_code":"dev-code","user_code":"WXYZ-1234","verification_uri":"http://127.0.0.1:1/device","expires_in":120,"interval":1}"#,
    )])
    .await;
    let token_server = FaultServer::scripted(vec![
        Action::json(400, r#"{"error":"authorization_pending"}"#),
        Action::json(400, r#"{"error":"slow_down"}"#),
        Action::json(
            200,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":60,"refresh_token":"rt"}"#,
        ),
    ])
    .await;
    let refresher = refresher(fast_retry(1));
    let client = OAuthClient {
        client_id: "dev-client".to_owned(),
        client_secret: None,
        client_auth: ClientAuth::None,
    };
    let device = refresher
        .start_device_authorization(
            &device_server.url("/device/auth"),
            &client,
            &["openid".to_owned(), "offline_access".to_owned()],
        )
        .await
        .expect("device authorization");
    assert_eq!(device.user_code, "WXYZ-1234");
    assert_eq!(device.interval, Duration::from_secs(1));
    let sent = &device_server.requests()[0];
    assert_eq!(sent.form("client_id").as_deref(), Some("dev-client"));
    assert_eq!(sent.form("scope").as_deref(), Some("openid offline_access"));

    let endpoint = TokenEndpoint::parse(&token_server.url("/token")).expect("endpoint");
    let started = Instant::now();
    let tokens = refresher
        .poll_device_authorization(&endpoint, client, &device, Duration::from_secs(60))
        .await
        .expect("approved");
    let elapsed = started.elapsed();
    assert_eq!(
        tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
        Some("rt")
    );
    let polls = token_server.requests();
    assert_eq!(polls.len(), 3, "pending, slow_down, success");
    for poll in &polls {
        assert_eq!(
            poll.form("grant_type").as_deref(),
            Some("urn:ietf:params:oauth:grant-type:device_code")
        );
        assert_eq!(poll.form("device_code").as_deref(), Some("dev-code"));
    }
    // 1 s, 1 s, then 1 + 5 s after slow_down: never faster than asked.
    assert!(
        elapsed >= Duration::from_secs(8),
        "polled faster than the interval and slow_down allow: {elapsed:?}"
    );
}

#[tokio::test]
async fn device_flow_denial_and_expiry_are_named() {
    let device_server = FaultServer::scripted(vec![Action::json(
        200,
        r#"{"device_code":"d","user_code":"U","verification_uri":"http://127.0.0.1:1/device","expires_in":60,"interval":1}"#,
    )])
    .await;
    let refresher = refresher(fast_retry(1));
    let client = OAuthClient {
        client_id: "c".to_owned(),
        client_secret: None,
        client_auth: ClientAuth::None,
    };
    let device = refresher
        .start_device_authorization(&device_server.url("/d"), &client, &[])
        .await
        .expect("device authorization");
    for (body, check) in [
        (
            r#"{"error":"access_denied"}"#,
            (|e: &LoginError| matches!(e, LoginError::Denied(_))) as fn(&LoginError) -> bool,
        ),
        (r#"{"error":"expired_token"}"#, |e| {
            matches!(e, LoginError::DeviceExpired)
        }),
    ] {
        let server = FaultServer::scripted(vec![Action::json(400, body)]).await;
        let endpoint = TokenEndpoint::parse(&server.url("/token")).expect("endpoint");
        let error = refresher
            .poll_device_authorization(&endpoint, client.clone(), &device, Duration::from_secs(30))
            .await
            .expect_err(body);
        assert!(check(&error), "{body}: {error:?}");
        assert_eq!(server.requests().len(), 1, "no poll after {body}");
    }
    // A device endpoint that refuses the client is a misconfiguration.
    let refusing =
        FaultServer::scripted(vec![Action::json(401, r#"{"error":"invalid_client"}"#)]).await;
    let error = refresher
        .start_device_authorization(&refusing.url("/d"), &client, &[])
        .await
        .expect_err("invalid_client");
    assert!(matches!(error, LoginError::Misconfigured(_)), "{error:?}");
}
