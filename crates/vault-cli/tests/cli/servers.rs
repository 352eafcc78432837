//! The local credential servers (`exec --gce-server`, `exec
//! --azure-server`, `serve`): the real client libraries, unmodified, get
//! tokens that are active at oidc-provider (rotation on), and every
//! refusal the contract names is made.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Run, Sandbox};
use crate::e2e::{
    Story, assert_no_replay_or_error, assert_secret_code, current_refresh_token, import_minted_at,
    server_stats, stat,
};
use crate::fault_server::{Action, FaultServer};
use crate::peers::{BASIC_CLIENT, peer, repo_root};

fn python() -> Option<PathBuf> {
    peer("TOKVAULT_TEST_PYTHON", "google-auth and azure-identity")
}

fn script(name: &str) -> PathBuf {
    repo_root().join("tests/python").join(name)
}

/// `tokvault exec demo OPTIONS -- COMMAND...` in the story's sandbox, with
/// an empty gcloud config (so no ADC file of this machine shadows ours).
fn exec(story: &Story, options: &[&str], command: &[&std::ffi::OsStr]) -> Run {
    let gcloud = story.sandbox.path("gcloud");
    std::fs::create_dir_all(&gcloud).expect("gcloud dir");
    story
        .sandbox
        .command_at(&story.sandbox.vault())
        .args(["exec", "demo"])
        .args(options)
        .arg("--")
        .args(command)
        .env("CLOUDSDK_CONFIG", &gcloud)
        .output()
        .expect("run tokvault exec")
        .into()
}

/// The JSON lines a client script printed.
fn lines(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn is_active(story: &Story, token: &Value) -> bool {
    let token = token.as_str().expect("a token string");
    story
        .rt
        .block_on(story.server.is_active(BASIC_CLIENT, token))
}

/// Neither the refresh token nor anything that unlocks the vault reached
/// the job.
fn assert_no_secret_leaked(story: &Story, run: &Run) {
    let refresh_token = current_refresh_token(&story.sandbox, "demo");
    for (what, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains(&refresh_token),
            "the refresh token is in {what}"
        );
    }
}

/// The job exited 0 and printed one JSON line whose token is active at
/// the provider; nothing secret leaked and the provider saw no replay.
fn one_active_token(story: &Story, run: &Run) -> Vec<Value> {
    assert_secret_code(run, 0);
    let got = lines(run);
    assert_eq!(got.len(), 1, "{}", run.stderr);
    assert!(
        is_active(story, &got[0]["token"]),
        "the served token is active"
    );
    assert_no_secret_leaked(story, run);
    assert_no_replay_or_error(&server_stats(&story.rt, &story.server));
    got
}

#[test]
fn google_auth_default_gets_active_tokens_from_exec_gce_server() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let Some(python) = python() else { return };
    let run = exec(
        &story,
        &["--gce-server", "--project-id", "tokvault-demo"],
        &[python.as_os_str(), script("gce_client.py").as_os_str()],
    );
    let got = one_active_token(&story, &run);
    assert_eq!(
        got[0]["class"], "google.auth.compute_engine.credentials.Credentials",
        "google.auth.default() chose the metadata server"
    );
    assert_eq!(got[0]["project"], "tokvault-demo");
    assert_eq!(got[0]["email"], "demo@tokvault.invalid");
}

#[test]
fn google_auth_library_for_node_gets_active_tokens_from_exec_gce_server() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let Some(node) = peer("TOKVAULT_TEST_NODE", "google-auth-library (Node)") else {
        return;
    };
    let client = repo_root().join("tests/node-clients/gce_client.mjs");
    let run = exec(
        &story,
        &["--gce-server"],
        &[node.as_os_str(), client.as_os_str()],
    );
    let got = one_active_token(&story, &run);
    assert_eq!(
        got[0]["class"], "Compute",
        "GoogleAuth chose the metadata server"
    );
    assert_eq!(got[0]["email"], "demo@tokvault.invalid");
}

#[test]
fn azure_identity_gets_active_tokens_from_exec_azure_server() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let Some(python) = python() else { return };
    let client = script("azure_client.py");
    let graph = "https://graph.microsoft.com";
    let run = exec(
        &story,
        &["--azure-server", "--azure-resource", graph],
        &[
            python.as_os_str(),
            client.as_os_str(),
            "https://graph.microsoft.com/.default".as_ref(),
        ],
    );
    let got = one_active_token(&story, &run);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(got[0]["expires_on"].as_u64().expect("expires_on") > now + 300);
    // Another resource is refused, with the served ones named.
    let run = exec(
        &story,
        &["--azure-server", "--azure-resource", graph],
        &[
            python.as_os_str(),
            client.as_os_str(),
            "https://management.azure.com/.default".as_ref(),
        ],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("is not served here"), "{}", run.stderr);
    assert!(run.stderr.contains(graph), "{}", run.stderr);
    assert_no_secret_leaked(&story, &run);
    assert_no_replay_or_error(&server_stats(&story.rt, &story.server));
}

#[test]
fn exec_with_a_server_sets_the_discovery_variables_and_withholds_the_rest() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let printenv = std::ffi::OsStr::new("env");
    let mut command = story.sandbox.command_at(&story.sandbox.vault());
    command
        .args(["exec", "demo", "--gce-server", "--azure-server"])
        .args(["--azure-resource", "https://graph.microsoft.com", "--"])
        .arg(printenv)
        .env("GOOGLE_APPLICATION_CREDENTIALS", "/elsewhere.json")
        .env("MSI_ENDPOINT", "http://169.254.169.254/")
        .env("AZURE_CLIENT_SECRET", "not-for-the-job")
        .env("NO_PROXY", "corp.example")
        .env("CREDENTIALS_DIRECTORY", story.sandbox.path("home"));
    let run: Run = command.output().expect("run").into();
    assert_secret_code(&run, 0);
    let env: std::collections::BTreeMap<&str, &str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .collect();
    let host = env["GCE_METADATA_HOST"];
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    assert_eq!(env["GCE_METADATA_IP"], host);
    assert_eq!(env["GCE_METADATA_ROOT"], host);
    assert_eq!(env["METADATA_SERVER_DETECTION"], "assume-present");
    assert_eq!(env["NO_PROXY"], "corp.example,127.0.0.1,localhost");
    assert_eq!(env["no_proxy"], "127.0.0.1,localhost");
    assert_eq!(env["IDENTITY_ENDPOINT"], format!("http://{host}/msi/token"));
    assert_eq!(env["IDENTITY_HEADER"].len(), 64);
    for withheld in [
        "GOOGLE_APPLICATION_CREDENTIALS",
        "MSI_ENDPOINT",
        "AZURE_CLIENT_SECRET",
        "CREDENTIALS_DIRECTORY",
        "TOKVAULT_IDENTITY",
        "TOKVAULT_ACCESS_TOKEN",
    ] {
        assert!(!env.contains_key(withheld), "{withheld} reached the job");
    }
    assert_no_secret_leaked(&story, &run);
}

#[test]
fn exec_with_a_server_warns_about_a_gcloud_file_that_would_shadow_it() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let adc = story
        .sandbox
        .write("gcloud/application_default_credentials.json", "{}");
    let run = exec(&story, &["--gce-server"], &["true".as_ref()]);
    assert_secret_code(&run, 0);
    assert!(
        run.stderr.contains(&adc.display().to_string()) && run.stderr.contains("move it aside"),
        "{}",
        run.stderr
    );
}

/// SIGTERM to tokvault reaches the job, whose exit status is tokvault's.
#[test]
fn exec_with_a_server_passes_stop_signals_to_the_job() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let ready = story.sandbox.path("ready");
    let script = format!(
        "trap 'exit 42' TERM; touch '{}'; while :; do sleep 0.1; done",
        ready.display()
    );
    let gcloud = story.sandbox.path("gcloud");
    std::fs::create_dir_all(&gcloud).expect("gcloud dir");
    let mut child = story
        .sandbox
        .command_at(&story.sandbox.vault())
        .args(["exec", "demo", "--gce-server", "--", "sh", "-c", &script])
        .env("CLOUDSDK_CONFIG", &gcloud)
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = child.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(42),
        "the job's trap ran and its status is ours"
    );
}

#[test]
fn exec_with_a_server_exits_as_its_command_does() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let sh = std::ffi::OsStr::new("sh");
    let run = exec(
        &story,
        &["--gce-server"],
        &[sh, "-c".as_ref(), "exit 7".as_ref()],
    );
    assert_secret_code(&run, 7);
    let run = exec(
        &story,
        &["--gce-server"],
        &[sh, "-c".as_ref(), "kill -TERM $$".as_ref()],
    );
    assert_secret_code(&run, 128 + 15);
    let run = exec(
        &story,
        &["--gce-server"],
        &["no-such-program-here".as_ref()],
    );
    assert_secret_code(&run, 127);
    assert!(
        run.stderr.contains("no-such-program-here"),
        "{}",
        run.stderr
    );
}

/// `tokvault serve` in the background, killed on drop.
struct Serving {
    child: Child,
    port: u16,
    /// Its stderr: JSON log lines, one per request.
    log: PathBuf,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    /// Starts `serve --listen 127.0.0.1:0 ARGS` and waits for its
    /// `listening on` line.
    fn start(sandbox: &Sandbox, args: &[&str]) -> Self {
        let log = sandbox.path("serve.log");
        let mut child = sandbox
            .command_at(&sandbox.vault())
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn tokvault serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the first line");
        let port = line
            .trim()
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not a listening line: {line:?}"));
        Self { child, port, log }
    }

    /// What it logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).expect("the log")
    }
}

/// A raw HTTP/1.1 GET: status, headers (lowercase names) and body.
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    parse_response(&response)
}

fn parse_response(response: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn serve_refuses_what_the_contract_refuses() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let serving = Serving::start(&story.sandbox, &["--gce", "demo"]);
    let port = serving.port;
    let host = format!("127.0.0.1:{port}");
    let token_path = "/computeMetadata/v1/instance/service-accounts/default/token";
    let flavor = ("Metadata-Flavor", "Google");

    let (status, headers, body) = get(port, token_path, &[("Host", &host), flavor]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(header(&headers, "metadata-flavor"), Some("Google"));
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    let token: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_in"].as_u64().expect("expires_in") > 300);
    assert!(is_active(&story, &token["access_token"]));

    let refusals: [(&str, Vec<(&str, &str)>); 4] = [
        ("no flavor", vec![("Host", &host)]),
        ("a foreign Host", vec![("Host", "evil.example:80"), flavor]),
        (
            "a relayed request",
            vec![("Host", &host), flavor, ("X-Forwarded-For", "10.0.0.1")],
        ),
        ("no Host", vec![flavor]),
    ];
    for (what, headers) in refusals {
        let (status, response_headers, body) = get(port, token_path, &headers);
        assert_eq!(status, 403, "{what}: {body}");
        assert_eq!(
            header(&response_headers, "metadata-flavor"),
            Some("Google"),
            "{what}: errors carry the flavor too"
        );
        assert!(!body.contains("access_token"), "{what}: {body}");
    }
    let (status, _, body) = get(
        port,
        "/computeMetadata/v1/instance/service-accounts/default/identity?audience=x",
        &[("Host", &host), flavor],
    );
    assert_eq!(status, 404);
    assert!(body.contains("ID tokens are not served"), "{body}");

    // One JSON line per request, with its status; never a token.
    let log = serving.log();
    let requests: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 6, "{log}");
    assert_eq!(requests[0]["status"], 200, "{log}");
    assert_eq!(requests[0]["record"], "demo", "{log}");
    let access = token["access_token"].as_str().expect("token");
    assert!(!log.contains(access), "the access token is in the log");
    assert!(!log.contains(&current_refresh_token(&story.sandbox, "demo")));
}

/// Another local user (nobody) is refused, as root can arrange here.
#[test]
#[allow(clippy::print_stderr)] // a skipped test says why
fn serve_refuses_another_local_user_unless_allowed() {
    if !rustix_is_root() {
        eprintln!("skipping: switching to another user needs root");
        return;
    }
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    // The same request as nobody: refused, then answered once nobody's
    // uid is allowed.
    let refused = Serving::start(&story.sandbox, &["--gce", "demo"]);
    let (status, _, body) = get_as_nobody(refused.port);
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("access_token"));
    drop(refused);
    let allowed = Serving::start(&story.sandbox, &["--gce", "demo", "--allow-uid", "65534"]);
    let (status, _, body) = get_as_nobody(allowed.port);
    assert_eq!(status, 200, "--allow-uid 65534 lets nobody in");
    assert!(body.contains("access_token"));
}

/// The token request, sent by a process running as nobody (uid 65534).
fn get_as_nobody(port: u16) -> (u16, Vec<(String, String)>, String) {
    let request = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port}; \
         printf 'GET /computeMetadata/v1/instance/service-accounts/default/token HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\nMetadata-Flavor: Google\\r\\nConnection: close\\r\\n\\r\\n' >&3; \
         cat <&3"
    );
    let as_nobody = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "-c",
        ])
        .arg(&request)
        .output()
        .expect("run setpriv");
    parse_response(&String::from_utf8_lossy(&as_nobody.stdout))
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn serve_checks_the_identity_header_and_answers_azure() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let header_file = story
        .sandbox
        .write("server/identity-header", "s3cr3t-header-value\n");
    std::fs::set_permissions(
        &header_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let header_path = header_file.to_str().expect("utf-8");
    let serving = Serving::start(
        &story.sandbox,
        &[
            "--azure",
            "demo",
            "--azure-resource",
            "https://graph.microsoft.com",
            "--azure-header-file",
            header_path,
        ],
    );
    let host = format!("127.0.0.1:{}", serving.port);
    let path = "/msi/token?api-version=2019-08-01&resource=https://graph.microsoft.com";
    for wrong in ["", "s3cr3t-header-valu", "s3cr3t-header-value2"] {
        let mut headers = vec![("Host", host.as_str()), ("Metadata", "true")];
        if !wrong.is_empty() {
            headers.push(("X-IDENTITY-HEADER", wrong));
        }
        let (status, _, body) = get(serving.port, path, &headers);
        assert_eq!(status, 403, "{wrong:?}: {body}");
        assert!(!body.contains("access_token"));
    }
    let (status, headers, body) = get(
        serving.port,
        path,
        &[
            ("Host", &host),
            ("X-IDENTITY-HEADER", "s3cr3t-header-value"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    let token: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(token["resource"], "https://graph.microsoft.com");
    assert!(is_active(&story, &token["access_token"]));
}

/// SIGTERM while a refresh is out: `serve` saves the rotated token before
/// it exits, so the next refresh is no replay.
#[test]
fn serve_stopped_during_a_refresh_saves_the_rotated_token_first() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let upstream = story.server.token_endpoint.clone();
    let slow = story.rt.block_on(FaultServer::with(move |_| {
        Action::Delayed(
            Duration::from_secs(3),
            Box::new(Action::Forward {
                url: upstream.clone(),
                rewrite: str::to_owned,
            }),
        )
    }));
    import_minted_at(
        &story.rt,
        &story.server,
        &story.sandbox,
        "slow",
        &slow.url("/token"),
    );
    // No access token yet: serve refreshes at once, through the slow proxy.
    let serving = Serving::start(&story.sandbox, &["--gce", "slow"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while slow.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no refresh was sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = serving.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut serving = serving;
    let status = serving.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "serve exits 0 after SIGTERM");
    // The answer was saved: the stored refresh token is the rotated one, so
    // refreshing again (directly) is no replay.
    let stats = server_stats(&story.rt, &story.server);
    assert_eq!(stat(&stats, "refreshes_ok"), 1, "{stats}");
    let run = story.sandbox.run(&["refresh", "--force", "slow"]);
    assert_secret_code(&run, 0);
    assert_no_replay_or_error(&server_stats(&story.rt, &story.server));
}

/// Eight google-auth jobs for a minute (`TOKVAULT_SERVE_LOAD_SECONDS`)
/// on 20-second tokens with rotation on: every token they get is active
/// when they get it, the provider sees no replay, and refreshes are
/// bounded by the lifetime (one per half lifetime), not by requests.
#[test]
fn eight_google_auth_jobs_on_short_tokens_share_lifetime_bounded_refreshes() {
    let Some(story) = Story::start(true, 20) else {
        return;
    };
    let Some(python) = python() else { return };
    let seconds = crate::common::env_count("TOKVAULT_SERVE_LOAD_SECONDS", 60);
    let serving = Serving::start(&story.sandbox, &["--gce", "demo"]);
    let host = format!("127.0.0.1:{}", serving.port);
    let gcloud = story.sandbox.path("gcloud");
    std::fs::create_dir_all(&gcloud).expect("gcloud dir");
    let (sender, tokens) = std::sync::mpsc::channel::<String>();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let mut child = Command::new(&python)
                .arg(script("gce_client.py"))
                .arg(seconds.to_string())
                .env_clear()
                .env("GCE_METADATA_HOST", &host)
                .env("GCE_METADATA_IP", &host)
                .env("CLOUDSDK_CONFIG", &gcloud)
                .env("HOME", story.sandbox.path("home"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a google-auth job");
            let stdout = child.stdout.take().expect("stdout");
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let line: Value = serde_json::from_str(&line.expect("a line")).expect("JSON");
                    let token = line["token"].as_str().expect("token").to_owned();
                    if sender.send(token).is_err() {
                        return;
                    }
                }
            });
            child
        })
        .collect();
    drop(sender);
    let mut seen = std::collections::HashSet::new();
    for token in tokens {
        if seen.insert(token.clone()) {
            assert!(
                is_active(&story, &Value::String(token)),
                "a served token is not active at the provider"
            );
        }
    }
    for mut client in clients {
        assert!(client.wait().expect("wait").success(), "a job failed");
    }
    let stats = server_stats(&story.rt, &story.server);
    assert_no_replay_or_error(&stats);
    let refreshes = stat(&stats, "refreshes_ok");
    let bound = seconds as u64 / 10 + 2;
    crate::common::figure(&format!(
        "serve-load jobs=8 seconds={seconds} token_lifetime=20 distinct_tokens={} provider_refreshes={refreshes} bound={bound}",
        seen.len()
    ));
    assert!(seen.len() >= 2, "the jobs saw a token change");
    assert!(
        refreshes <= bound,
        "{refreshes} refreshes in {seconds} s: {stats}"
    );
    drop(serving);
}

/// A revoked grant: the job gets a 502 that names the record and the
/// command that fixes it; the hook runs and /metrics says so, as after
/// `tokvault refresh`.
#[test]
fn serve_reports_a_revoked_grant_like_refresh_does() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let refresh_token = current_refresh_token(&story.sandbox, "demo");
    story.rt.block_on(
        story
            .server
            .revoke(crate::peers::POST_CLIENT, &refresh_token),
    );
    let hook_log = story.sandbox.path("hook.log");
    let hook = format!("echo \"$TOKVAULT_RECORD\" >> '{}'", hook_log.display());
    let serving = Serving::start(
        &story.sandbox,
        &["--gce", "demo", "--on-reauth-needed", &hook],
    );
    let host = format!("127.0.0.1:{}", serving.port);
    let flavor = ("Metadata-Flavor", "Google");
    let token_path = "/computeMetadata/v1/instance/service-accounts/default/token";
    let (status, _, body) = get(serving.port, token_path, &[("Host", &host), flavor]);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("demo"), "{body}");
    assert!(body.contains("tokvault login demo"), "{body}");
    let (status, _, metrics) = get(serving.port, "/metrics", &[("Host", &host)]);
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l == "tokvault_serve_reauthorization_required{record=\"demo\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l
            .starts_with("tokvault_serve_requests_total{endpoint=\"gce_token\",status=\"502\"}")),
        "{metrics}"
    );
    let hooked = std::fs::read_to_string(&hook_log).expect("the hook ran");
    assert_eq!(hooked.lines().next(), Some("demo"), "{hooked}");
    // And the record says so to `list`, as after a refresh run.
    let listed = crate::e2e::listed(&story.sandbox, "demo");
    assert_eq!(
        listed["last_refresh"]["outcome"], "reauthorization-required",
        "{listed}"
    );

    // Asking again does not ask the provider again (nor run the hook)...
    let before = stat(&server_stats(&story.rt, &story.server), "token_requests");
    for _ in 0..3 {
        let (status, _, _) = get(serving.port, token_path, &[("Host", &host), flavor]);
        assert_eq!(status, 502);
    }
    let after = stat(&server_stats(&story.rt, &story.server), "token_requests");
    assert_eq!(
        after, before,
        "a rejected grant is not retried while the vault is unchanged"
    );
    // ...until a person logs in again: the new grant is served at once.
    let minted = story.rt.block_on(story.server.mint(
        crate::peers::POST_CLIENT.0,
        "offline_access",
        1,
    ));
    let file = story.sandbox.write(
        "in/again.json",
        &crate::common::google_token_json(
            &story.server.token_endpoint,
            crate::peers::POST_CLIENT.0,
            crate::peers::POST_CLIENT.1,
            &minted[0],
        ),
    );
    story
        .sandbox
        .run(&[
            "import",
            "--replace",
            "--name",
            "demo",
            file.to_str().expect("utf-8"),
        ])
        .assert_code(0);
    let (status, _, body) = get(serving.port, token_path, &[("Host", &host), flavor]);
    assert_eq!(status, 200, "{body}");
    let token: Value = serde_json::from_str(&body).expect("JSON");
    assert!(is_active(&story, &token["access_token"]));
    let hooked = std::fs::read_to_string(&hook_log).expect("the hook ran");
    assert_eq!(hooked.lines().count(), 1, "the hook ran once: {hooked}");
}

/// A grant rejected before the job starts: exit 3, and the job never runs.
#[test]
fn exec_with_a_server_does_not_start_the_job_on_a_rejected_grant() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let refresh_token = current_refresh_token(&story.sandbox, "demo");
    story.rt.block_on(
        story
            .server
            .revoke(crate::peers::POST_CLIENT, &refresh_token),
    );
    let marker = story.sandbox.path("job-ran");
    let touch = format!("touch '{}'", marker.display());
    let run = exec(
        &story,
        &["--gce-server"],
        &["sh".as_ref(), "-c".as_ref(), touch.as_ref()],
    );
    assert_secret_code(&run, 3);
    assert!(run.stderr.contains("tokvault login demo"), "{}", run.stderr);
    assert!(!marker.exists(), "the job ran");
}

/// SIGTERM while `exec --gce-server` refreshes the first token: the answer
/// is saved, the job never starts, and the exit status says why.
#[test]
fn exec_stopped_during_its_first_refresh_saves_it_and_never_starts_the_job() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let upstream = story.server.token_endpoint.clone();
    let slow = story.rt.block_on(FaultServer::with(move |_| {
        Action::Delayed(
            Duration::from_secs(2),
            Box::new(Action::Forward {
                url: upstream.clone(),
                rewrite: str::to_owned,
            }),
        )
    }));
    import_minted_at(
        &story.rt,
        &story.server,
        &story.sandbox,
        "slow",
        &slow.url("/token"),
    );
    let marker = story.sandbox.path("job-ran");
    let touch = format!("touch '{}'", marker.display());
    let mut child = story
        .sandbox
        .command_at(&story.sandbox.vault())
        .args(["exec", "slow", "--gce-server", "--", "sh", "-c", &touch])
        .env("CLOUDSDK_CONFIG", story.sandbox.path("home"))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while slow.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no refresh was sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(128 + 15));
    assert!(!marker.exists(), "the job started after the stop");
    let stats = server_stats(&story.rt, &story.server);
    assert_eq!(stat(&stats, "refreshes_ok"), 1, "{stats}");
    let run = story.sandbox.run(&["refresh", "--force", "slow"]);
    assert_secret_code(&run, 0);
    assert_no_replay_or_error(&server_stats(&story.rt, &story.server));
}
