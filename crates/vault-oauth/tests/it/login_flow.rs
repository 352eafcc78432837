//! Whole logins through `LoginPlan::authorize` with a scripted person, the
//! fault server as the token and device endpoints: a browser that approves
//! by following the redirect to the loopback listener, pasted redirects
//! (this login's `state`, a forged one, none at all), a device code shown
//! then approved, and plans that lack the endpoint a flow needs.

use std::io::{Read as _, Write as _};
use std::sync::Mutex;
use std::time::Duration;

use url::Url;
use vault_format::{ClientAuth, Provider};
use vault_oauth::{
    Flow, FlowError, FlowOptions, LoginError, LoginPlan, LoginPrompt, LoginUi, OAuthClient,
    PlanError, Refreshed,
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

/// A scripted person: a browser that approves at once, or a paste made
/// from the URL shown (`paste`; `None`: the input ends), and eyes that
/// note every prompt.
struct Person {
    paste: Option<fn(&Url) -> String>,
    pasted: Mutex<Option<String>>,
    shown: Mutex<Vec<String>>,
}

impl Person {
    fn pasting(paste: Option<fn(&Url) -> String>) -> Self {
        Self {
            paste,
            pasted: Mutex::new(None),
            shown: Mutex::new(Vec::new()),
        }
    }

    fn shown(&self) -> Vec<String> {
        self.shown.lock().expect("lock").clone()
    }
}

impl LoginUi for Person {
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
            LoginPrompt::Paste { url, redirect_uri } => {
                assert_eq!(query(url, "redirect_uri"), redirect_uri);
                *self.pasted.lock().expect("lock") = self.paste.map(|paste| paste(url));
                "paste".to_owned()
            }
            other => format!("{other:?}"),
        };
        self.shown.lock().expect("lock").push(line);
    }

    async fn read_pasted_line(&self) -> Result<Zeroizing<String>, LoginError> {
        let line = self.pasted.lock().expect("lock").take();
        line.map(Zeroizing::new)
            .ok_or_else(|| LoginError::NoAnswer("the input ended".to_owned()))
    }
}

fn options(flow: Flow) -> FlowOptions {
    FlowOptions {
        flow,
        port: None,
        timeout: Some(Duration::from_secs(20)),
    }
}

async fn login(plan: &LoginPlan, flow: Flow, person: &Person) -> Result<Refreshed, FlowError> {
    plan.authorize(&refresher(fast_retry(1)), options(flow), person)
        .await
}

fn refresh_token(tokens: &Refreshed) -> Option<&str> {
    tokens.refresh_token.as_ref().map(|t| t.expose_secret())
}

#[tokio::test]
async fn a_loopback_login_opens_the_browser_takes_the_redirect_and_redeems_the_code() {
    let token_server = FaultServer::scripted(vec![Action::json(200, TOKENS)]).await;
    let person = Person::pasting(None);
    let tokens = login(
        &plan(token_server.url("/token"), None),
        Flow::Loopback,
        &person,
    )
    .await
    .expect("approved");
    assert_eq!(refresh_token(&tokens), Some("rt"));
    assert_eq!(person.shown(), ["browser opened=true"]);
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
async fn a_pasted_redirect_with_this_login_s_state_is_redeemed_without_a_browser() {
    let token_server = FaultServer::scripted(vec![Action::json(200, TOKENS)]).await;
    let person = Person::pasting(Some(|url| {
        format!(
            "http://127.0.0.1:1/?code=pasted&state={}",
            query(url, "state")
        )
    }));
    let tokens = login(
        &plan(token_server.url("/token"), None),
        Flow::Paste,
        &person,
    )
    .await
    .expect("approved");
    assert_eq!(refresh_token(&tokens), Some("rt"));
    assert_eq!(person.shown(), ["paste"], "no browser on a paste");
    let sent = &token_server.requests()[0];
    assert_eq!(sent.form("code").as_deref(), Some("pasted"));
}

#[tokio::test]
async fn a_pasted_redirect_with_another_state_or_no_paste_stops_before_any_exchange() {
    let token_server = FaultServer::scripted(vec![Action::json(200, TOKENS)]).await;
    let plan = plan(token_server.url("/token"), None);
    let forged = Person::pasting(Some(|_| {
        "http://127.0.0.1:1/?code=abc&state=forged".to_owned()
    }));
    let error = login(&plan, Flow::Paste, &forged)
        .await
        .expect_err("forged state");
    assert!(
        matches!(
            error,
            FlowError::Login(LoginError::StateMismatch("does not match"))
        ),
        "{error:?}"
    );
    let error = login(&plan, Flow::Paste, &Person::pasting(None))
        .await
        .expect_err("no answer");
    assert!(
        matches!(error, FlowError::Login(LoginError::NoAnswer(_))),
        "{error:?}"
    );
    assert!(token_server.requests().is_empty(), "nothing was redeemed");
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
    let person = Person::pasting(None);
    let plan = plan(
        token_server.url("/token"),
        Some(device_server.url("/device")),
    );
    let tokens = login(&plan, Flow::Device, &person).await.expect("approved");
    assert_eq!(refresh_token(&tokens), Some("rt"));
    assert_eq!(person.shown(), ["device ABCD-EFGH"]);
    assert_eq!(token_server.requests().len(), 2, "pending, then tokens");
}

#[tokio::test]
async fn a_flow_whose_endpoint_the_plan_lacks_is_a_usage_error_before_anything_is_shown() {
    let mut no_auth_url = plan("http://127.0.0.1:9/token".to_owned(), None);
    no_auth_url.authorization_endpoint.clear();
    let person = Person::pasting(None);
    for (plan, flow, option) in [
        (&no_auth_url, Flow::Paste, "--auth-url"),
        (&no_auth_url, Flow::Loopback, "--auth-url"),
        (&no_auth_url, Flow::Device, "--device-url"),
    ] {
        let error = login(plan, flow, &person).await.expect_err("no endpoint");
        assert!(
            matches!(&error, FlowError::Plan(PlanError::Usage(m)) if m.contains(option)),
            "{flow:?}: {error:?}"
        );
    }
    assert!(person.shown().is_empty(), "nothing shown");
}
