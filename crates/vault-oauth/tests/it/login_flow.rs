//! Whole logins through `LoginPlan::authorize` with a scripted person: a
//! browser that approves by following the redirect to the loopback
//! listener, and a device code shown, then approved; both against the
//! fault server as the token endpoint.

use std::io::{Read as _, Write as _};
use std::sync::Mutex;
use std::time::Duration;

use url::Url;
use vault_format::{ClientAuth, Provider};
use vault_oauth::{
    Flow, FlowOptions, LoginError, LoginPlan, LoginPrompt, LoginUi, OAuthClient, Refreshed,
};
use zeroize::Zeroizing;

use crate::common::{fast_retry, refresher};
use crate::fault_server::{Action, FaultServer};

const TOKENS: &str =
    r#"{"access_token":"at","token_type":"Bearer","expires_in":60,"refresh_token":"rt"}"#;

fn plan(token_endpoint: String, device_endpoint: Option<String>) -> LoginPlan {
    LoginPlan {
        provider: Provider::Generic,
        token_endpoint,
        authorization_endpoint: "https://auth.example/authorize".to_owned(),
        device_endpoint,
        client: OAuthClient {
            client_id: "cli".to_owned(),
            client_secret: None,
            client_auth: ClientAuth::None,
        },
        scopes: vec!["offline_access".to_owned()],
        extra_params: Vec::new(),
        fixed_redirect: None,
    }
}

fn query(url: &Url, key: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A person with a browser that approves at once, and eyes that note
/// every prompt.
#[derive(Default)]
struct Approver {
    shown: Mutex<Vec<String>>,
}

impl LoginUi for Approver {
    fn open_browser(&self, url: &Url) -> bool {
        let redirect = Url::parse(&query(url, "redirect_uri")).expect("redirect URI");
        let target = format!(
            "{}?code=the-code&state={}",
            redirect.path(),
            query(url, "state")
        );
        let port = redirect.port().expect("loopback port");
        std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("listener");
            let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            stream.write_all(request.as_bytes()).expect("request sent");
            let _ = stream.read_to_end(&mut Vec::new());
        });
        true
    }

    fn show(&self, prompt: LoginPrompt<'_>) {
        let line = match prompt {
            LoginPrompt::Device(device) => format!("device {}", device.user_code),
            LoginPrompt::Browser { opened, .. } => format!("browser opened={opened}"),
            other => format!("{other:?}"),
        };
        self.shown.lock().expect("lock").push(line);
    }

    async fn read_pasted_line(&self) -> Result<Zeroizing<String>, LoginError> {
        Err(LoginError::NoAnswer("this person never pastes".to_owned()))
    }
}

fn refresh_token(tokens: &Refreshed) -> Option<&str> {
    tokens.refresh_token.as_ref().map(|t| t.expose_secret())
}

#[tokio::test]
async fn a_loopback_login_opens_the_browser_takes_the_redirect_and_redeems_the_code() {
    let token_server = FaultServer::scripted(vec![Action::json(200, TOKENS)]).await;
    let ui = Approver::default();
    let options = FlowOptions {
        flow: Flow::Loopback,
        port: None,
        timeout: Some(Duration::from_secs(20)),
    };
    let tokens = plan(token_server.url("/token"), None)
        .authorize(&refresher(fast_retry(1)), options, &ui)
        .await
        .expect("approved");
    assert_eq!(refresh_token(&tokens), Some("rt"));
    assert_eq!(*ui.shown.lock().expect("lock"), ["browser opened=true"]);
    let sent = &token_server.requests()[0];
    assert_eq!(
        sent.form("grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(sent.form("code").as_deref(), Some("the-code"));
    assert!(sent.form("code_verifier").is_some_and(|v| v.len() >= 43));
    let redirect = sent.form("redirect_uri").unwrap_or_default();
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
}

#[tokio::test]
async fn a_device_login_shows_the_code_then_polls_until_approved() {
    let device_server = FaultServer::scripted(vec![Action::json(
        200,
        r#"{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"http://127.0.0.1:1/device","expires_in":60,"interval":1}"#,
    )])
    .await;
    let token_server = FaultServer::scripted(vec![
        Action::json(400, r#"{"error":"authorization_pending"}"#),
        Action::json(200, TOKENS),
    ])
    .await;
    let ui = Approver::default();
    let options = FlowOptions {
        flow: Flow::Device,
        port: None,
        timeout: None,
    };
    let tokens = plan(
        token_server.url("/token"),
        Some(device_server.url("/device")),
    )
    .authorize(&refresher(fast_retry(1)), options, &ui)
    .await
    .expect("approved");
    assert_eq!(refresh_token(&tokens), Some("rt"));
    assert_eq!(*ui.shown.lock().expect("lock"), ["device ABCD-EFGH"]);
    assert_eq!(token_server.requests().len(), 2, "pending, then tokens");
}
