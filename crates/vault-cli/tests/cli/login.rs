//! `tokvault login` end to end against oidc-provider (PKCE required, dev
//! login and consent pages), the test playing the browser: the loopback
//! redirect, the pasted URL, the device code, sealing for a server,
//! re-authorization after a revoked grant, and the failures (forged state,
//! denial, timeout) that must leave the vault untouched.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::browser;
use crate::common::{Run, Sandbox, read};
use crate::e2e::{
    assert_secret_code, current_refresh_token, listed, runtime, server_stats, stat, utf8,
};
use crate::peers::{OidcProvider, POST_CLIENT, PUBLIC_CLIENT};

/// A `tokvault login` in progress, its stderr read line by line.
struct Login {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Login {
    fn spawn(sandbox: &Sandbox, args: &[String], envs: &[(&str, String)], paste: bool) -> Self {
        let mut command = sandbox.command();
        command
            .arg("--vault")
            .arg(sandbox.vault())
            .arg("-i")
            .arg(sandbox.identity())
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
        Self::start(command, paste, false)
    }

    /// Runs `command`, reading its stderr (or its stdout, for `script`,
    /// whose terminal merges both) line by line.
    fn start(mut command: std::process::Command, paste: bool, read_stdout: bool) -> Self {
        command
            .stdin(if paste { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn tokvault login");
        let stderr: Box<dyn std::io::Read + Send> = if read_stdout {
            Box::new(child.stdout.take().expect("piped stdout"))
        } else {
            Box::new(child.stderr.take().expect("piped stderr"))
        };
        let (sender, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stderr: Vec::new(),
            reader: Some(reader),
        }
    }

    /// The first stderr line (trimmed) that `wanted` accepts.
    fn line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if wanted(line.trim()) {
                        return line.trim().to_owned();
                    }
                }
                Err(_) => panic!(
                    "tokvault printed no {what}; stderr so far:\n{}",
                    self.stderr.join("\n")
                ),
            }
        }
    }

    fn paste(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{text}").expect("write to tokvault's stdin");
    }

    fn finish(mut self) -> Run {
        drop(self.child.stdin.take());
        let output = self.child.wait_with_output().expect("wait for tokvault");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
        self.stderr.extend(self.lines.try_iter());
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: self.stderr.join("\n"),
        }
    }
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

fn secret_file(sandbox: &Sandbox, secret: &str) -> PathBuf {
    let path = sandbox.write("laptop/client-secret", secret);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    path
}

/// `login NAME` for the post client, with the endpoints as flags.
fn generic_login(
    server: &OidcProvider,
    sandbox: &Sandbox,
    name: &str,
    extra: &[&str],
) -> Vec<String> {
    let secret = secret_file(sandbox, POST_CLIENT.1);
    let mut args: Vec<String> = owned(&[
        "login",
        name,
        "--provider",
        "generic",
        "--client-id",
        POST_CLIENT.0,
        "--client-secret-file",
        utf8(&secret),
        "--client-auth",
        "post",
        "--auth-url",
        &server.authorization_endpoint,
        "--token-url",
        &server.token_endpoint,
        "--scope",
        "openid",
        "--scope",
        "offline_access",
    ]);
    args.extend(owned(extra));
    args
}

/// Starts `login mail` for the post client (see [`generic_login`]) and
/// returns it with the authorization URL it printed.
fn start_generic_login(
    server: &OidcProvider,
    sandbox: &Sandbox,
    extra: &[&str],
    envs: &[(&str, String)],
    paste: bool,
) -> (Login, String) {
    let mut login = Login::spawn(
        sandbox,
        &generic_login(server, sandbox, "mail", extra),
        envs,
        paste,
    );
    let url = login.line("authorization URL", is_auth_url(server));
    (login, url)
}

fn is_auth_url(server: &OidcProvider) -> impl Fn(&str) -> bool + '_ {
    move |line: &str| line.starts_with(&format!("{}?", server.authorization_endpoint))
}

fn query_param(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url)
        .expect("URL")
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn assert_works(sandbox: &Sandbox, name: &str) {
    let before = current_refresh_token(sandbox, name);
    let run = sandbox.run(&["refresh", "--force", name]);
    run.assert_code(0);
    assert!(run.stdout.contains("refreshed"), "{}", run.stdout);
    let after = current_refresh_token(sandbox, name);
    assert_ne!(
        before, after,
        "the server rotated the refresh token and it was kept"
    );
    let token = sandbox.run(&["token", name]);
    assert_secret_code(&token, 0);
}

#[test]
fn login_in_a_browser_stores_a_working_refresh_token() {
    let Some(server) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    sandbox.init_server();
    // $BROWSER is what tokvault opens: a script that records the URL.
    let opened = sandbox.path("laptop/opened-url");
    let fake_browser = sandbox.write(
        "laptop/browser.sh",
        &format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", utf8(&opened)),
    );
    std::fs::set_permissions(&fake_browser, std::fs::Permissions::from_mode(0o700)).expect("chmod");

    let (login, url) = start_generic_login(
        &server,
        &sandbox,
        &[],
        &[("BROWSER", utf8(&fake_browser).to_owned())],
        false,
    );
    assert_eq!(
        query_param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let redirect_uri = query_param(&url, "redirect_uri").expect("redirect_uri");
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:"),
        "{redirect_uri}"
    );
    let port = url::Url::parse(&redirect_uri)
        .expect("URL")
        .port()
        .expect("port");

    let final_url = rt.block_on(browser::authorize(&url, "alice"));
    assert!(final_url.starts_with(&redirect_uri), "{final_url}");
    let (status, page) = rt.block_on(browser::deliver(&final_url));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("close this tab"), "{page}");
    let run = login.finish();
    run.assert_code(0);
    assert!(run.stderr.contains("Authorized \"mail\""), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "login prints nothing on stdout");
    assert_eq!(
        std::fs::read_to_string(&opened).expect("the browser was opened"),
        url,
        "the browser got the printed URL"
    );
    // The listener closed after the redirect.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    let record = listed(&sandbox, "mail");
    assert_eq!(record["provider"], "generic");
    assert_eq!(record["last_refresh"]["outcome"], "refreshed");
    // The client secret went into the vault with the tokens.
    let exported = sandbox.run(&["export", "mail", "--format", "json"]);
    assert_secret_code(&exported, 0);
    let json: Value = serde_json::from_str(&exported.stdout).expect("JSON");
    assert_eq!(json["client_secret"], POST_CLIENT.1);
    assert_eq!(
        json["authorization_endpoint"],
        server.authorization_endpoint.as_str()
    );
    assert_works(&sandbox, "mail");
    let stats = server_stats(&rt, &server);
    assert_eq!(stat(&stats, "replays_detected"), 0, "{stats}");
}

#[test]
fn login_without_a_browser_takes_the_pasted_url_and_again_reauthorizes() {
    let Some(server) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let (mut login, url) = start_generic_login(&server, &sandbox, &["--no-browser"], &[], true);
    let redirect_uri = query_param(&url, "redirect_uri").expect("redirect_uri");
    let port = url::Url::parse(&redirect_uri)
        .expect("URL")
        .port()
        .expect("port");
    // Nothing listens: on a server the redirect goes nowhere.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let final_url = rt.block_on(browser::authorize(&url, "alice"));
    login.paste(&final_url);
    login.finish().assert_code(0);
    assert_works(&sandbox, "mail");

    // The grant is revoked: refresh says so, with the way out.
    let refresh_token = current_refresh_token(&sandbox, "mail");
    rt.block_on(server.revoke(POST_CLIENT, &refresh_token));
    let run = sandbox.run(&["refresh", "--force", "--reauthorize"]);
    run.assert_code(3);
    assert!(
        run.stdout.contains("tokvault login mail --again"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("--reauthorize needs a terminal"),
        "{}",
        run.stderr
    );

    // login --again with the stored client and endpoints.
    let mut again = Login::spawn(
        &sandbox,
        &[
            "login".to_owned(),
            "mail".to_owned(),
            "--again".to_owned(),
            "--no-browser".to_owned(),
        ],
        &[],
        true,
    );
    let url = again.line("authorization URL", is_auth_url(&server));
    assert_eq!(
        query_param(&url, "client_id").as_deref(),
        Some(POST_CLIENT.0)
    );
    let final_url = rt.block_on(browser::authorize(&url, "alice"));
    again.paste(&final_url);
    let run = again.finish();
    run.assert_code(0);
    assert!(
        run.stderr.contains("Re-authorized \"mail\""),
        "{}",
        run.stderr
    );
    assert_ne!(current_refresh_token(&sandbox, "mail"), refresh_token);
    assert_works(&sandbox, "mail");
    assert_eq!(
        listed(&sandbox, "mail")["last_refresh"]["outcome"],
        "refreshed"
    );
}

#[test]
fn login_with_a_device_code() {
    let Some(server) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let args: Vec<String> = owned(&[
        "login",
        "graph",
        "--provider",
        "generic",
        "--client-id",
        PUBLIC_CLIENT,
        "--token-url",
        &server.token_endpoint,
        "--device-url",
        &server.device_authorization_endpoint,
        "--device",
        "--scope",
        "openid",
        "--scope",
        "offline_access",
    ]);
    let mut login = Login::spawn(&sandbox, &args, &[], false);
    let complete = login.line("verification URL", |line| {
        line.starts_with("http://127.0.0.1:") && line.contains("user_code=")
    });
    rt.block_on(browser::approve_device(&complete, None, "bob"));
    let run = login.finish();
    run.assert_code(0);
    assert!(run.stderr.contains("enter the code"), "{}", run.stderr);
    let record = listed(&sandbox, "graph");
    assert_eq!(record["provider"], "generic");
    assert_works(&sandbox, "graph");
}

#[test]
fn login_on_a_laptop_seals_for_the_server_with_the_google_preset() {
    let Some(server) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = runtime();
    let server_box = Sandbox::new();
    let recipient = server_box.keygen();
    let laptop = Sandbox::new();
    // The client JSON as the Google Cloud console downloads it, pointing at
    // the test server.
    let client_file = laptop.write(
        "laptop/client_secret.json",
        &serde_json::json!({"installed": {
            "client_id": POST_CLIENT.0,
            "project_id": "tokvault-test",
            "auth_uri": server.authorization_endpoint,
            "token_uri": server.token_endpoint,
            "client_secret": POST_CLIENT.1,
            "redirect_uris": ["http://localhost"],
        }})
        .to_string(),
    );
    let out = laptop.path("laptop/gmail.tokvault");
    let args: Vec<String> = owned(&[
        "login",
        "gmail",
        "--client-secrets",
        utf8(&client_file),
        "--scope",
        "openid",
        "--scope",
        "offline_access",
        "--no-browser",
        "--seal-to",
        &recipient,
        "-o",
        utf8(&out),
    ]);
    // The laptop has no identity and no vault.
    let mut login = Login::spawn(&laptop, &args, &[], true);
    let url = login.line("authorization URL", is_auth_url(&server));
    assert_eq!(query_param(&url, "access_type").as_deref(), Some("offline"));
    assert_eq!(query_param(&url, "prompt").as_deref(), Some("consent"));
    let final_url = rt.block_on(browser::authorize(&url, "carol"));
    login.paste(&final_url);
    let run = login.finish();
    run.assert_code(0);
    assert!(!laptop.identity().exists() && !laptop.vault().exists());
    assert_eq!(
        std::fs::metadata(&out)
            .expect("sealed vault")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Only the server identity opens it.
    let other = Sandbox::new();
    other.keygen();
    let refused = other.run_bare(&["--vault", utf8(&out), "-i", utf8(&other.identity()), "list"]);
    refused.assert_code(5);
    std::fs::create_dir_all(server_box.vault().parent().expect("dir")).expect("mkdir");
    std::fs::copy(&out, server_box.vault()).expect("copy to the server");
    let record = listed(&server_box, "gmail");
    assert_eq!(record["provider"], "google");
    assert_works(&server_box, "gmail");
}

#[test]
fn failed_logins_name_the_problem_and_leave_the_vault_alone() {
    let Some(server) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let before = read(&sandbox.vault());

    // A redirect whose state is not this login's (a forged or stale one).
    let (login, url) = start_generic_login(&server, &sandbox, &[], &[], false);
    let final_url = rt.block_on(browser::authorize(&url, "alice"));
    let state = query_param(&final_url, "state").expect("state");
    let forged = final_url.replace(&format!("state={state}"), "state=forged");
    let (status, _) = rt.block_on(browser::deliver(&forged));
    assert_eq!(status, 400);
    let run = login.finish();
    run.assert_code(1);
    assert!(
        run.stderr.contains("state does not match"),
        "{}",
        run.stderr
    );

    // The user refuses.
    let (login, url) = start_generic_login(&server, &sandbox, &[], &[], false);
    let denied = rt.block_on(browser::deny(&url));
    assert_eq!(
        query_param(&denied, "error").as_deref(),
        Some("access_denied")
    );
    rt.block_on(browser::deliver(&denied));
    let run = login.finish();
    run.assert_code(1);
    assert!(
        run.stderr.contains("refused: access_denied"),
        "{}",
        run.stderr
    );

    // Nobody comes back.
    let login = Login::spawn(
        &sandbox,
        &generic_login(&server, &sandbox, "mail", &["--timeout", "1s"]),
        &[],
        false,
    );
    let run = login.finish();
    run.assert_code(1);
    assert!(
        run.stderr.contains("no authorization arrived within 1 s"),
        "{}",
        run.stderr
    );

    // A pasted URL from another login.
    let (mut login, _) = start_generic_login(&server, &sandbox, &["--no-browser"], &[], true);
    login.paste(&final_url);
    let run = login.finish();
    run.assert_code(1);
    assert!(
        run.stderr.contains("state does not match"),
        "{}",
        run.stderr
    );

    assert_eq!(
        read(&sandbox.vault()),
        before,
        "the vault is byte-identical"
    );
    let stats = server_stats(&rt, &server);
    assert_eq!(
        stat(&stats, "token_requests"),
        0,
        "no code was redeemed: {stats}"
    );
}

#[test]
fn login_refuses_before_the_browser_when_it_cannot_save() {
    let sandbox = Sandbox::new();
    let secret = secret_file(&sandbox, "s");
    let base = |name: &str| -> Vec<String> {
        owned(&[
            "login",
            name,
            "--client-id",
            "c",
            "--client-secret-file",
            utf8(&secret),
            "--auth-url",
            "http://127.0.0.1:9/auth",
            "--token-url",
            "http://127.0.0.1:9/token",
        ])
    };
    // No vault yet.
    let run = Login::spawn(&sandbox, &base("mail"), &[], false).finish();
    run.assert_code(1);
    assert!(run.stderr.contains("tokvault init"), "{}", run.stderr);
    // A name that is taken.
    sandbox.init_server();
    let token = sandbox.write(
        "in/t.json",
        &crate::common::google_token_json("http://127.0.0.1:9/token", "c", "s", "rt"),
    );
    sandbox
        .run(&["import", "--name", "mail", utf8(&token)])
        .assert_code(0);
    let run = Login::spawn(&sandbox, &base("mail"), &[], false).finish();
    run.assert_code(1);
    assert!(run.stderr.contains("--again"), "{}", run.stderr);
    // Plain http off loopback, a Google device flow, a readable secret file.
    let mut args = base("new");
    let at = args.iter().position(|a| a == "--auth-url").expect("flag") + 1;
    args[at] = "http://auth.example/authorize".to_owned();
    let run = Login::spawn(&sandbox, &args, &[], false).finish();
    run.assert_code(2);
    assert!(run.stderr.contains("authorization URL"), "{}", run.stderr);
    let run = sandbox.run(&[
        "login",
        "g",
        "--provider",
        "google",
        "--client-id",
        "c",
        "--scope",
        "s",
        "--device",
    ]);
    run.assert_code(2);
    assert!(run.stderr.contains("--no-browser"), "{}", run.stderr);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = Login::spawn(&sandbox, &base("other"), &[], false).finish();
    run.assert_code(1);
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
}

#[test]
fn refresh_reauthorize_runs_the_login_when_a_person_is_at_the_terminal() {
    let Some(server) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let (mut login, url) = start_generic_login(&server, &sandbox, &["--no-browser"], &[], true);
    login.paste(&rt.block_on(browser::authorize(&url, "alice")));
    login.finish().assert_code(0);
    let revoked = current_refresh_token(&sandbox, "mail");
    rt.block_on(server.revoke(POST_CLIENT, &revoked));

    // No $BROWSER and no display, so it asks for the pasted URL.
    let mut refresh = Login::start(reauthorize_at_a_terminal(&sandbox), true, true);
    let url = refresh.line("authorization URL", is_auth_url(&server));
    refresh.paste(&rt.block_on(browser::authorize(&url, "alice")));
    refresh.line("re-authorized result", |line| {
        line.contains("Re-authorized \"mail\"")
    });
    let run = refresh.finish();
    run.assert_code(0);
    assert!(
        run.stderr.contains("re-authorized, new tokens saved"),
        "{}",
        run.stderr
    );
    assert_ne!(current_refresh_token(&sandbox, "mail"), revoked);
    assert_works(&sandbox, "mail");
}

/// `refresh --force --reauthorize` with a terminal, which `script` gives it.
fn reauthorize_at_a_terminal(sandbox: &Sandbox) -> std::process::Command {
    let inner = format!(
        "exec '{}' --vault '{}' -i '{}' refresh --force --reauthorize",
        crate::common::TOKVAULT,
        utf8(&sandbox.vault()),
        utf8(&sandbox.identity())
    );
    let envs: Vec<_> = sandbox
        .command()
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let mut command = std::process::Command::new("script");
    command
        .env_clear()
        .envs(envs)
        .args(["-q", "-e", "-c", &inner, "/dev/null"]);
    command
}

/// A record imported from a token file stores no authorization endpoint,
/// and `refresh` has no `--auth-url`: `--reauthorize` says which command
/// gives it, instead of naming an option `refresh` does not have.
#[test]
fn refresh_reauthorize_of_an_imported_record_names_the_login_that_can() {
    let Some(story) = crate::e2e::Story::start(true, 3600) else {
        return;
    };
    let refresh_token = current_refresh_token(&story.sandbox, "demo");
    story
        .rt
        .block_on(story.server.revoke(POST_CLIENT, &refresh_token));
    let refresh = Login::start(reauthorize_at_a_terminal(&story.sandbox), true, true);
    // `script`'s terminal: stdout and stderr together, read as lines.
    let said = refresh.finish();
    said.assert_code(3);
    assert!(
        said.stderr.contains(
            "the record stores no authorization endpoint; run `tokvault login demo --again \
             --auth-url AUTHORIZATION_URL`"
        ),
        "{}",
        said.stderr
    );
    assert!(
        !said
            .stderr
            .contains("give the server's authorization endpoint with --auth-url")
    );
}

/// Runs `login NAME` (the post client, `openid offline_access`, `--no-browser`
/// plus `extra`) against `server` as alice, and returns the authorization
/// URL it printed with the finished run.
fn pasted_login(
    rt: &tokio::runtime::Runtime,
    server: &OidcProvider,
    sandbox: &Sandbox,
    name: &str,
    extra: &[&str],
) -> (String, Run) {
    let mut args = vec!["--no-browser"];
    args.extend_from_slice(extra);
    let mut login = Login::spawn(
        sandbox,
        &generic_login(server, sandbox, name, &args),
        &[],
        true,
    );
    let url = login.line("authorization URL", is_auth_url(server));
    login.paste(&rt.block_on(browser::authorize(&url, "alice")));
    (url, login.finish())
}

fn params_named(url: &str, key: &str) -> Vec<String> {
    url::Url::parse(url)
        .expect("URL")
        .query_pairs()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Issue 17: a spec-strict OpenID Provider (OIDC Core §11; the launcher's
/// `--offline-access strict`) drops `offline_access` from a request without
/// `prompt=consent`, so the login ends with no refresh token. tokvault sends
/// `prompt=consent` for generic servers when `offline_access` is asked for;
/// `--prompt` and `--auth-param prompt=` replace it.
#[test]
fn a_spec_strict_server_issues_a_refresh_token_only_when_consent_is_prompted() {
    let Some(server) = OidcProvider::start_spec_strict(true, 3600) else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let before = read(&sandbox.vault());

    // No prompt (what tokvault sent before): the code is redeemed, and the
    // answer has no refresh token; the causes come in order.
    let (url, run) = pasted_login(&rt, &server, &sandbox, "mail", &["--prompt", ""]);
    assert_eq!(params_named(&url, "prompt"), Vec::<String>::new());
    run.assert_code(1);
    let causes = [
        "the provider issued no refresh token. Likely causes, most likely first: \
         (1) consent was not prompted: this login sent no prompt",
        "add --prompt consent; (2) scope: this login asked for offline_access",
        "; (3) the client: its registration must allow the refresh_token grant",
    ];
    for cause in causes {
        assert!(run.stderr.contains(cause), "{cause:?}: {}", run.stderr);
    }
    assert_eq!(read(&sandbox.vault()), before, "nothing was saved");
    let stats = server_stats(&rt, &server);
    assert_eq!(
        stat(&stats, "token_requests"),
        1,
        "one code redeemed: {stats}"
    );

    // The default, --prompt consent, and --auth-param prompt=consent (which
    // replaces the default rather than sending prompt twice).
    let logins: [(&str, &[&str], &[&str]); 3] = [
        ("mail", &[], &[]),
        ("mail2", &["--prompt", "consent"], &[]),
        (
            "mail3",
            &[
                "--auth-param",
                "prompt=consent",
                "--auth-param",
                "login_hint=alice",
            ],
            &["alice"],
        ),
    ];
    for (name, extra, login_hint) in logins {
        let (url, run) = pasted_login(&rt, &server, &sandbox, name, extra);
        assert_eq!(params_named(&url, "prompt"), ["consent"], "{name}");
        assert_eq!(params_named(&url, "login_hint"), login_hint, "{name}");
        run.assert_code(0);
        assert_works(&sandbox, name);
    }

    // The server: 1 + 3 codes redeemed and 3 refreshes, all answered; no
    // error, replay or revocation.
    let stats = server_stats(&rt, &server);
    assert_eq!(stat(&stats, "token_requests"), 7, "{stats}");
    assert_eq!(stat(&stats, "refreshes_ok"), 3, "{stats}");
    crate::e2e::assert_no_replay_or_error(&stats);
}

/// `--auth-param` and `--prompt` mistakes are usage errors (exit 2) before
/// any vault, browser or server is involved.
#[test]
fn auth_params_that_would_break_the_flow_are_refused() {
    let sandbox = Sandbox::new();
    let base = [
        "login",
        "mail",
        "--client-id",
        "c",
        "--auth-url",
        "http://127.0.0.1:9/auth",
        "--token-url",
        "http://127.0.0.1:9/token",
        "--scope",
        "offline_access",
    ];
    let cases: [(&[&str], &str); 9] = [
        (&["--auth-param", "state=x"], "tokvault sets state itself"),
        (
            &["--auth-param", "redirect_uri=http://x"],
            "sets redirect_uri itself",
        ),
        (
            &["--auth-param", "code_challenge=x"],
            "sets code_challenge itself",
        ),
        (&["--auth-param", "scope=x"], "--scope SCOPE"),
        (&["--auth-param", "prompt"], "expected KEY=VALUE"),
        (
            &["--prompt", "consent", "--auth-param", "prompt=login"],
            "give one of them",
        ),
        (
            &["--prompt", "consnet"],
            "not an OpenID Connect prompt value",
        ),
        (&["--prompt", "none consent"], "none only alone"),
        (
            &[
                "--prompt",
                "consent",
                "--device",
                "--device-url",
                "http://127.0.0.1:9/device",
            ],
            "the device flow (RFC 8628) sends none",
        ),
    ];
    for (extra, said) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let run = sandbox.run(&args);
        run.assert_code(2);
        assert!(run.stderr.contains(said), "{extra:?}: {}", run.stderr);
    }
    assert!(!sandbox.vault().exists(), "no vault was touched");
}

/// Issue 17: the re-authorization hint of an imported generic record, which
/// stores no authorization endpoint, says what to put in its placeholder;
/// filled in, the login works (on a spec-strict server too: the record's
/// offline_access brings prompt=consent), and the endpoint is stored, so the
/// next hint is a command to run as it is.
#[test]
fn an_imported_record_is_told_which_authorization_endpoint_to_give() {
    let Some(server) = OidcProvider::start_spec_strict(true, 3600) else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    sandbox.init_server();
    crate::e2e::import_minted(&rt, &server, &sandbox, "demo");
    let revoke_and_refresh = || {
        let refresh_token = current_refresh_token(&sandbox, "demo");
        rt.block_on(server.revoke(POST_CLIENT, &refresh_token));
        let run = sandbox.run(&["refresh", "--force", "demo"]);
        run.assert_code(3);
        run.stdout
    };

    let said = revoke_and_refresh();
    assert!(
        said.contains("`tokvault login demo --again --auth-url AUTHORIZATION_URL`"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "for AUTHORIZATION_URL give that of the server whose token endpoint is {}",
            server.token_endpoint
        )),
        "{said}"
    );

    let args = owned(&[
        "login",
        "demo",
        "--again",
        "--no-browser",
        "--auth-url",
        &server.authorization_endpoint,
    ]);
    let mut again = Login::spawn(&sandbox, &args, &[], true);
    let url = again.line("authorization URL", is_auth_url(&server));
    assert_eq!(params_named(&url, "prompt"), ["consent"]);
    again.paste(&rt.block_on(browser::authorize(&url, "alice")));
    again.finish().assert_code(0);
    assert_works(&sandbox, "demo");

    let said = revoke_and_refresh();
    assert!(
        said.contains("`tokvault login demo --again` (--no-browser on a machine without one)"),
        "{said}"
    );
    assert!(!said.contains("AUTHORIZATION_URL"), "{said}");

    // The server: two revoked grants, one refresh after the login, no replay.
    let stats = server_stats(&rt, &server);
    assert_eq!(stat(&stats, "grants_revoked"), 2, "{stats}");
    assert_eq!(stat(&stats, "refreshes_ok"), 1, "{stats}");
    assert_eq!(stat(&stats, "replays_detected"), 0, "{stats}");
}
