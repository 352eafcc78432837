//! Real test peers: panva's oidc-provider (Node) and google-auth (Python),
//! set up by `scripts/test`, which exports `TOKVAULT_TEST_NODE` and
//! `TOKVAULT_TEST_PYTHON`. Without them a test skips with a message, except
//! under CI, where a missing peer fails the run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The peer's program, or `None` (skip) outside CI when it is not set up.
#[allow(clippy::print_stderr)] // a skipped test says why
pub fn peer(variable: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(variable) {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("CI").is_some() => {
            panic!("{variable} is not set and CI is: run the tests through scripts/test ({what})")
        }
        None => {
            eprintln!("skipping: {variable} is not set; run scripts/test to set up {what}");
            None
        }
    }
}

/// Debian's `age` (scripts/peers.sh installs it), or `None` outside CI when
/// it is not installed. In CI (`CI` set) a missing peer is a failure.
#[allow(clippy::print_stderr)] // a skipped test says why
pub fn age_binary() -> Option<&'static str> {
    let found = Command::new("age")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: the age binary is missing (scripts/test installs it)"
        );
        eprintln!("skipping: the age binary is not installed (scripts/test installs it)");
        return None;
    }
    Some("age")
}

/// A confidential client authenticating with HTTP Basic: id and secret.
pub const BASIC_CLIENT: (&str, &str) = ("basic-client", "basic-client-secret-0123456789abcdef");
/// A confidential client authenticating in the body: id and secret.
pub const POST_CLIENT: (&str, &str) = ("post-client", "post-client-secret-0123456789abcdef");
/// A public client (no secret).
pub const PUBLIC_CLIENT: &str = "public-client";

/// A running oidc-provider on loopback; killed on drop (and it exits by
/// itself when our end of its stdin closes).
pub struct OidcProvider {
    child: Child,
    _stdin: ChildStdin,
    /// Its token endpoint.
    pub token_endpoint: String,
    /// Its RFC 7009 revocation endpoint.
    pub revocation_endpoint: String,
    /// Its authorization endpoint.
    pub authorization_endpoint: String,
    /// Its device authorization endpoint.
    pub device_authorization_endpoint: String,
    /// Its RFC 7662 introspection endpoint.
    pub introspection_endpoint: String,
    issuer: String,
    http: reqwest::Client,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcProvider {
    /// Starts a provider with refresh-token rotation on or off and the given
    /// access-token lifetime, or `None` when the peer is not set up.
    pub fn start(rotation: bool, access_token_ttl: u32) -> Option<Self> {
        Self::launch(rotation, access_token_ttl, "lenient")
    }

    /// [`OidcProvider::start`] for a spec-strict OpenID Provider (OIDC Core
    /// §11): an authorization request for `offline_access` without
    /// `prompt=consent` gets no refresh token. By default the launcher adds
    /// `prompt=consent` to such requests (`--offline-access` in
    /// `tests/oidc-provider/launcher.mjs`).
    pub fn start_spec_strict(rotation: bool, access_token_ttl: u32) -> Option<Self> {
        Self::launch(rotation, access_token_ttl, "strict")
    }

    fn launch(rotation: bool, access_token_ttl: u32, offline_access: &str) -> Option<Self> {
        let node = peer("TOKVAULT_TEST_NODE", "the oidc-provider test peer")?;
        let launcher = repo_root().join("tests/oidc-provider/launcher.mjs");
        let verbose = std::env::var_os("TOKVAULT_TEST_VERBOSE").is_some();
        let mut child = Command::new(node)
            .arg(launcher)
            .args(["--rotation", if rotation { "on" } else { "off" }])
            .args(["--access-token-ttl", &access_token_ttl.to_string()])
            // Device-flow tests poll every second instead of the default 5 s.
            .args(["--device-interval", "1"])
            .args(["--offline-access", offline_access])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if verbose {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn the oidc-provider launcher");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the launcher's ready line");
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!("the launcher did not start (set TOKVAULT_TEST_VERBOSE=1 to see why): {line:?}")
        });
        let text = |key: &str| ready[key].as_str().expect("ready line field").to_owned();
        Some(Self {
            token_endpoint: text("token_endpoint"),
            revocation_endpoint: text("revocation_endpoint"),
            authorization_endpoint: text("authorization_endpoint"),
            device_authorization_endpoint: text("device_authorization_endpoint"),
            introspection_endpoint: text("introspection_endpoint"),
            issuer: text("issuer"),
            child,
            _stdin: stdin,
            // Tests never leave loopback, whatever proxy the environment names.
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        })
    }

    async fn post_json(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.issuer))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("launcher answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("json")
    }

    /// Mints `count` refresh tokens (each with its own grant) for `client_id`
    /// the way a completed authorization would, without a browser.
    pub async fn mint(&self, client_id: &str, scope: &str, count: usize) -> Vec<String> {
        let minted = self
            .post_json(
                "/test/mint",
                serde_json::json!({"client_id": client_id, "scope": scope, "count": count}),
            )
            .await;
        minted["refresh_tokens"]
            .as_array()
            .expect("refresh_tokens")
            .iter()
            .map(|t| t.as_str().expect("token").to_owned())
            .collect()
    }

    /// The server's counters: token_requests, refreshes_ok, refresh_errors,
    /// replays_detected, grants_revoked.
    pub async fn stats(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/test/stats", self.issuer))
            .send()
            .await
            .expect("launcher answers");
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("json")
    }

    /// Whether the provider holds `token` active (RFC 7662 introspection,
    /// as the resource server would check it).
    pub async fn is_active(&self, (client_id, secret): (&str, &str), token: &str) -> bool {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .finish();
        let response = self
            .http
            .post(&self.introspection_endpoint)
            .basic_auth(client_id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("introspection endpoint answers");
        assert_eq!(response.status().as_u16(), 200, "introspection answered");
        let answer: Value =
            serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
        answer["active"] == Value::Bool(true)
    }

    /// Revokes a refresh token at the RFC 7009 endpoint, as a client would.
    pub async fn revoke(&self, (client_id, secret): (&str, &str), refresh_token: &str) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", refresh_token)
            .append_pair("token_type_hint", "refresh_token")
            .finish();
        let response = self
            .http
            .post(&self.revocation_endpoint)
            .basic_auth(client_id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("revocation endpoint answers");
        assert_eq!(response.status().as_u16(), 200, "revocation accepted");
    }
}
