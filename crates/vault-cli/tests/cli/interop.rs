//! Token files from and for google-auth (Python), the library most tokens to
//! import come from: what `Credentials.to_json()` writes, tokvault imports
//! and refreshes; what `tokvault export --format google` writes, google-auth
//! loads and refreshes. Against oidc-provider with rotation off, since both
//! sides refresh the same grant.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::Sandbox;
use crate::e2e::{assert_secret_code, listed, runtime, server_stats, stat, utf8};
use crate::peers::{OidcProvider, POST_CLIENT, peer};

/// `create OUT`: reads {refresh_token, token_uri, client_id, client_secret,
/// refresh} from stdin, builds google-auth Credentials (refreshing them
/// first if asked) and writes `to_json()` to OUT, created 0600.
/// `refresh FILE TOKEN_URI`: loads FILE with `from_authorized_user_file`,
/// points it at TOKEN_URI and refreshes. Both print a non-secret summary.
const GOOGLE_AUTH: &str = r#"
import json, os, sys
import google.auth.transport.requests
from google.oauth2.credentials import Credentials

def summary(creds):
    return {
        "has_token": bool(creds.token),
        "valid": creds.valid,
        "expiry": creds.expiry.isoformat() + "Z" if creds.expiry else None,
        "client_id": creds.client_id,
        "scopes": creds.scopes,
        "token_uri": creds.token_uri,
    }

mode = sys.argv[1]
if mode == "create":
    info = json.load(sys.stdin)
    creds = Credentials(
        token=None,
        refresh_token=info["refresh_token"],
        token_uri=info["token_uri"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        scopes=["offline_access"],
    )
    if info["refresh"]:
        creds.refresh(google.auth.transport.requests.Request())
    fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(creds.to_json())
    print(json.dumps(summary(creds)))
elif mode == "refresh":
    path, token_uri = sys.argv[2], sys.argv[3]
    creds = Credentials.from_authorized_user_file(path)
    # from_authorized_user_info always sets Google's endpoint, whatever the file says.
    loaded_token_uri = creds.token_uri
    with open(path) as f:
        assert json.load(f)["token_uri"] == token_uri, "the file names our endpoint"
    creds = creds.with_token_uri(token_uri)
    creds.refresh(google.auth.transport.requests.Request())
    out = summary(creds)
    out["loaded_token_uri"] = loaded_token_uri
    print(json.dumps(out))
else:
    sys.exit("unknown mode " + mode)
"#;

/// Runs the google-auth script; secrets only on stdin. Returns its summary.
fn google_auth(python: &Path, args: &[&str], stdin: &Value) -> Value {
    let mut child = Command::new(python)
        .args(["-c", GOOGLE_AUTH])
        .args(args)
        // Loopback only, whatever proxy the environment names.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.to_string().as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("python finishes");
    assert!(
        output.status.success(),
        "google-auth {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

/// Mints a refresh token and has google-auth write its `to_json()` file
/// (after a refresh of its own when `refresh`). Returns the file and
/// google-auth's summary.
fn google_auth_file(
    python: &Path,
    server: &OidcProvider,
    rt: &tokio::runtime::Runtime,
    sandbox: &Sandbox,
    refresh: bool,
) -> (std::path::PathBuf, Value) {
    let minted = rt.block_on(server.mint(POST_CLIENT.0, "offline_access", 1));
    let file = sandbox.path("google.json");
    let summary = google_auth(
        python,
        &["create", utf8(&file)],
        &json!({
            "refresh_token": minted[0],
            "token_uri": server.token_endpoint,
            "client_id": POST_CLIENT.0,
            "client_secret": POST_CLIENT.1,
            "refresh": refresh,
        }),
    );
    (file, summary)
}

fn start() -> Option<(std::path::PathBuf, OidcProvider)> {
    let python = peer("TOKVAULT_TEST_PYTHON", "the google-auth virtualenv")?;
    let server = OidcProvider::start(false, 3600)?;
    Some((python, server))
}

#[test]
fn google_auth_to_json_imports_and_refreshes() {
    let Some((python, server)) = start() else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let (file, summary) = google_auth_file(&python, &server, &rt, &sandbox, false);
    assert_eq!(summary["has_token"], false, "{summary}");

    sandbox
        .run(&["import", "--name", "g", utf8(&file)])
        .assert_code(0);
    let record = listed(&sandbox, "g");
    assert_eq!(
        record["token_endpoint"],
        server.token_endpoint.as_str(),
        "{record}"
    );
    assert_eq!(record["scopes"], json!(["offline_access"]), "{record}");
    assert_eq!(record["provider"], "generic", "{record}");
    let run = sandbox.run(&["refresh", "--force"]);
    run.assert_code(0);
    assert!(run.stdout.contains("g: refreshed"), "{}", run.stdout);
    assert_eq!(
        listed(&sandbox, "g")["last_refresh"]["outcome"],
        "refreshed"
    );
    let stats = server_stats(&rt, &server);
    assert_eq!(stat(&stats, "refreshes_ok"), 1, "{stats}");
}

#[test]
fn google_auth_to_json_with_a_live_token_is_served_without_a_refresh() {
    let Some((python, server)) = start() else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    sandbox.init_server();
    // google-auth refreshes first: to_json() then holds the access token and
    // an expiry with microseconds ("2026-11-24T07:59:59.463025Z").
    let (file, summary) = google_auth_file(&python, &server, &rt, &sandbox, true);
    assert_eq!(summary["has_token"], true, "{summary}");
    assert!(
        summary["expiry"].as_str().is_some_and(|e| e.contains('.')),
        "{summary}"
    );
    let written: Value = serde_json::from_slice(&crate::common::read(&file)).expect("json");

    sandbox
        .run(&["import", "--name", "g", utf8(&file)])
        .assert_code(0);
    let record = listed(&sandbox, "g");
    assert_eq!(record["access_token_valid"], true, "{record}");
    let expires_at = record["access_token_expires_at"]
        .as_u64()
        .expect("expiry kept");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        (now + 3500..=now + 3600).contains(&expires_at),
        "expiry {expires_at}, now {now}"
    );

    let token = sandbox.run(&["token", "g"]);
    assert_secret_code(&token, 0);
    assert!(
        written["token"]
            .as_str()
            .is_some_and(|t| token.stdout == format!("{t}\n")),
        "token serves google-auth's access token"
    );
    let stats = server_stats(&rt, &server);
    assert_eq!(
        stat(&stats, "refreshes_ok"),
        1,
        "only google-auth refreshed: {stats}"
    );
}

#[test]
fn export_google_loads_and_refreshes_in_google_auth() {
    let Some((python, server)) = start() else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    sandbox.init_server();
    crate::e2e::import_minted(&rt, &server, &sandbox, "g");
    sandbox.run(&["refresh"]).assert_code(0);

    let out = sandbox.path("out.json");
    let run = sandbox.run(&["export", "g", "--format", "google", "-o", utf8(&out)]);
    run.assert_code(0);
    let summary = google_auth(
        &python,
        &["refresh", utf8(&out), &server.token_endpoint],
        &json!({}),
    );
    assert_eq!(
        summary["loaded_token_uri"], "https://oauth2.googleapis.com/token",
        "google-auth replaced the endpoint on load: {summary}"
    );
    assert_eq!(
        summary["token_uri"],
        server.token_endpoint.as_str(),
        "{summary}"
    );
    assert_eq!(summary["has_token"], true, "{summary}");
    assert_eq!(summary["valid"], true, "{summary}");
    assert_eq!(summary["client_id"], POST_CLIENT.0, "{summary}");
    assert_eq!(summary["scopes"], json!(["offline_access"]), "{summary}");

    let stats = server_stats(&rt, &server);
    assert_eq!(
        stat(&stats, "refreshes_ok"),
        2,
        "tokvault, then google-auth: {stats}"
    );
    assert_eq!(stat(&stats, "refresh_errors"), 0, "{stats}");
    // Without rotation the grant is shared: tokvault still refreshes.
    sandbox.run(&["refresh", "--force"]).assert_code(0);
    std::fs::remove_file(&out).expect("remove the plaintext export");
}
