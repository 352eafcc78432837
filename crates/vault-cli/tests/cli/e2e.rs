//! The laptop-to-server story against a real authorization server (panva's
//! oidc-provider): seal on a laptop that holds no private key, import and
//! refresh on the server, rotation across many runs, a revoked grant, and a
//! server that is down.

use std::path::Path;

use serde_json::Value;

use crate::common::{Run, Sandbox, google_token_json, read};
use crate::peers::{OidcProvider, POST_CLIENT};

/// A runtime for the peer harness's async calls in sync tests. Multi-thread
/// (one worker) so that pooled connections to the launcher keep being
/// polled between calls: on a current-thread runtime nothing notices that
/// Node closed an idle keep-alive connection (after 5 s), and the next call
/// fails with `IncompleteMessage` on the dead connection.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub(crate) fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Asserts the exit code of a run whose stdout may hold a secret: on
/// failure only stderr is shown.
pub(crate) fn assert_secret_code(run: &Run, code: i32) {
    assert_eq!(
        run.code, code,
        "exit code (stdout withheld: it may hold a token)\nstderr: {}",
        run.stderr
    );
}

/// The server's counters.
pub(crate) fn server_stats(rt: &tokio::runtime::Runtime, server: &OidcProvider) -> Value {
    rt.block_on(server.stats())
}

pub(crate) fn stat(stats: &Value, key: &str) -> u64 {
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("stats field {key}: {stats}"))
}

/// Mints a refresh token for the post client (scope offline_access) and
/// imports it into `sandbox`'s vault as `name` (a google-auth JSON file
/// that is deleted again). The vault must exist.
pub(crate) fn import_minted(
    rt: &tokio::runtime::Runtime,
    server: &OidcProvider,
    sandbox: &Sandbox,
    name: &str,
) {
    import_minted_at(rt, server, sandbox, name, &server.token_endpoint);
}

/// [`import_minted`] with another token endpoint (a proxy in front of the
/// server).
pub(crate) fn import_minted_at(
    rt: &tokio::runtime::Runtime,
    server: &OidcProvider,
    sandbox: &Sandbox,
    name: &str,
    token_uri: &str,
) {
    let minted = rt.block_on(server.mint(POST_CLIENT.0, "offline_access", 1));
    let file = sandbox.write(
        &format!("in/{name}.json"),
        &google_token_json(token_uri, POST_CLIENT.0, POST_CLIENT.1, &minted[0]),
    );
    sandbox
        .run(&["import", "--name", name, utf8(&file)])
        .assert_code(0);
    std::fs::remove_file(&file).expect("remove the plaintext token file");
}

/// A provider, a runtime for its harness, and a server sandbox whose vault
/// holds one minted record, `demo`.
pub(crate) struct Story {
    pub(crate) server: OidcProvider,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) sandbox: Sandbox,
}

impl Story {
    /// `None` when the oidc-provider peer is not set up (outside CI).
    pub(crate) fn start(rotation: bool, access_token_ttl: u32) -> Option<Self> {
        let server = OidcProvider::start(rotation, access_token_ttl)?;
        let rt = runtime();
        let sandbox = Sandbox::new();
        sandbox.init_server();
        import_minted(&rt, &server, &sandbox, "demo");
        Some(Self {
            server,
            rt,
            sandbox,
        })
    }
}

/// The server saw no replay, no failed refresh and revoked no grant.
pub(crate) fn assert_no_replay_or_error(stats: &Value) {
    for key in ["replays_detected", "refresh_errors", "grants_revoked"] {
        assert_eq!(stat(stats, key), 0, "{key}: {stats}");
    }
}

/// The record's current refresh token, via `export --format json` (stdout).
pub(crate) fn current_refresh_token(sandbox: &Sandbox, name: &str) -> String {
    let run = sandbox.run(&["export", name, "--format", "json"]);
    assert_secret_code(&run, 0);
    let record: Value = serde_json::from_str(&run.stdout).expect("export prints JSON");
    record["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

/// `list --json`'s entry for `name`.
pub(crate) fn listed(sandbox: &Sandbox, name: &str) -> Value {
    let run = sandbox.run(&["list", "--json"]);
    run.assert_code(0);
    let list: Value = serde_json::from_str(&run.stdout).expect("list --json prints JSON");
    list["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} is listed: {list}"))
        .clone()
}

#[test]
fn laptop_seals_without_a_key_and_the_server_imports_refreshes_and_serves() {
    let Some(server) = OidcProvider::start(true, 3600) else {
        return;
    };
    let rt = runtime();
    let sandbox = Sandbox::new();
    let recipient = sandbox.init_server();

    // The laptop: its own directories, no identity anywhere.
    let laptop = Sandbox::new();
    let minted = rt.block_on(server.mint(POST_CLIENT.0, "offline_access", 1));
    let token_file = laptop.write(
        "token.json",
        &google_token_json(
            &server.token_endpoint,
            POST_CLIENT.0,
            POST_CLIENT.1,
            &minted[0],
        ),
    );
    let sealed = laptop.path("laptop.tokvault");
    let run = laptop.run_bare(&[
        "seal",
        "--name",
        "demo",
        "-r",
        &recipient,
        "-o",
        utf8(&sealed),
        utf8(&token_file),
    ]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("plaintext"),
        "seal warns about the plaintext input: {}",
        run.stderr
    );
    assert!(
        !laptop.path("config/tokvault/identity.txt").exists(),
        "the laptop has no identity"
    );
    let sealed_bytes = read(&sealed);
    assert!(
        !sealed_bytes
            .windows(minted[0].len())
            .any(|w| w == minted[0].as_bytes()),
        "the sealed file does not hold the refresh token in the clear"
    );
    // ... and the laptop cannot open what it sealed.
    let run = laptop.run_bare(&["--vault", utf8(&sealed), "verify"]);
    run.assert_code(5);

    // The server.
    let run = sandbox.run(&["import", utf8(&sealed)]);
    run.assert_code(0);
    let record = listed(&sandbox, "demo");
    assert_eq!(record["kind"], "refresh-token", "{record}");
    assert!(
        record["last_refresh"].is_null(),
        "never refreshed yet: {record}"
    );

    let run = sandbox.run(&["refresh"]);
    run.assert_code(0);
    assert!(run.stdout.contains("demo: refreshed"), "{}", run.stdout);
    assert!(run.stdout.contains("rotated"), "{}", run.stdout);

    let token = sandbox.run(&["token", "demo"]);
    assert_secret_code(&token, 0);
    let lines: Vec<&str> = token.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "token prints one line");
    assert!(
        !lines[0].is_empty() && !lines[0].contains(char::is_whitespace),
        "token prints a bare token"
    );
    let exported = sandbox.run(&["export", "demo", "--format", "json"]);
    assert_secret_code(&exported, 0);
    let exported: Value = serde_json::from_str(&exported.stdout).expect("json");
    assert!(
        exported["access_token"].as_str() == Some(lines[0]),
        "token prints the stored access token"
    );
    assert!(
        exported["refresh_token"].as_str() != Some(minted[0].as_str()),
        "the rotated refresh token was saved"
    );

    let header = sandbox.run(&["header", "demo"]);
    assert_secret_code(&header, 0);
    assert!(
        header.stdout == format!("Authorization: Bearer {}\n", lines[0]),
        "header line"
    );

    let run = sandbox.run(&[
        "exec",
        "demo",
        "--",
        "sh",
        "-c",
        r#"test -n "$TOKVAULT_ACCESS_TOKEN" && exit 7"#,
    ]);
    assert_secret_code(&run, 7);
    // The variable really holds the token, and --env renames it (the
    // expected value goes through a 0600 file, not argv).
    let expected = sandbox.path("expected-token");
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&expected)
            .expect("create the expected-token file");
        std::io::Write::write_all(&mut file, lines[0].as_bytes()).expect("write");
    }
    let run = sandbox.run(&[
        "exec",
        "demo",
        "--env",
        "API_TOKEN",
        "--",
        "sh",
        "-c",
        r#"test "$API_TOKEN" = "$(cat "$0")" && test -z "$TOKVAULT_ACCESS_TOKEN" && exit 9"#,
        utf8(&expected),
    ]);
    assert_secret_code(&run, 9);

    let list = sandbox.run(&["list", "--json"]);
    list.assert_code(0);
    assert!(
        !list.stdout.contains(lines[0]),
        "list shows no access token"
    );
    let record = listed(&sandbox, "demo");
    assert_eq!(record["last_refresh"]["outcome"], "refreshed", "{record}");
    assert_eq!(record["access_token_valid"], true, "{record}");
    assert_eq!(
        record["token_endpoint"],
        server.token_endpoint.as_str(),
        "{record}"
    );

    let stats = server_stats(&rt, &server);
    assert_eq!(
        stat(&stats, "refreshes_ok"),
        1,
        "one refresh; token, header and exec used the stored token: {stats}"
    );
    assert_eq!(stat(&stats, "replays_detected"), 0, "{stats}");
}

#[test]
fn rotated_refresh_tokens_persist_across_twenty_forced_refreshes() {
    let Some(Story {
        server,
        rt,
        sandbox,
    }) = Story::start(true, 3600)
    else {
        return;
    };
    let mut previous = current_refresh_token(&sandbox, "demo");
    for round in 1..=20 {
        let run = sandbox.run(&["refresh", "--force"]);
        assert_eq!(
            run.code, 0,
            "round {round}\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        assert!(
            run.stdout.contains("demo: refreshed") && run.stdout.contains("rotated"),
            "round {round}: {}",
            run.stdout
        );
        let current = current_refresh_token(&sandbox, "demo");
        assert!(
            current != previous,
            "round {round}: a new refresh token was saved"
        );
        previous = current;
    }
    let stats = server_stats(&rt, &server);
    assert_eq!(stat(&stats, "refreshes_ok"), 20, "{stats}");
    assert_no_replay_or_error(&stats);
    sandbox.run(&["verify"]).assert_code(0);
}

#[test]
fn a_revoked_grant_exits_3_names_the_record_and_keeps_it() {
    let Some(Story {
        server,
        rt,
        sandbox,
    }) = Story::start(true, 3600)
    else {
        return;
    };
    sandbox.run(&["refresh"]).assert_code(0);

    let refresh_token = current_refresh_token(&sandbox, "demo");
    rt.block_on(server.revoke(POST_CLIENT, &refresh_token));
    assert_eq!(stat(&server_stats(&rt, &server), "grants_revoked"), 1);

    let run = sandbox.run(&["refresh", "--force"]);
    run.assert_code(3);
    // The failure is a diagnostic on stderr too, with -q as well.
    assert!(
        run.stderr.contains("tokvault: error: demo: ") && run.stderr.contains("re-authoriz"),
        "{}",
        run.stderr
    );
    let quiet = sandbox.run(&["-q", "refresh", "--force"]);
    quiet.assert_code(3);
    assert!(
        quiet.stderr.contains("tokvault: error: demo: "),
        "{}",
        quiet.stderr
    );
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("demo"), "names the record: {said}");
    assert!(said.contains("re-authoriz"), "says to re-authorize: {said}");
    assert!(
        said.contains("tokvault login demo --again"),
        "says how to re-authorize the record: {said}"
    );

    let record = listed(&sandbox, "demo");
    assert_eq!(
        record["last_refresh"]["outcome"], "reauthorization-required",
        "{record}"
    );
    assert_eq!(
        record["last_refresh"]["error_code"], "invalid_grant",
        "{record}"
    );
    sandbox.run(&["verify"]).assert_code(0);
    // The refresh token is kept as it was (a person decides what to do).
    assert!(
        current_refresh_token(&sandbox, "demo") == refresh_token,
        "record kept"
    );
    // A token that must be refreshed first is refused with the same code,
    // and nothing is printed on stdout.
    let run = sandbox.run(&["token", "demo", "--min-valid", "2h"]);
    assert_secret_code(&run, 3);
    assert!(run.stdout.is_empty(), "no token printed");
    assert!(run.stderr.contains("demo"), "{}", run.stderr);
}

#[test]
fn a_server_that_is_down_exits_4_and_leaves_the_vault_byte_identical() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let token_uri = format!("http://127.0.0.1:{port}/token");
    let file = sandbox.write(
        "in/down.json",
        &google_token_json(
            &token_uri,
            POST_CLIENT.0,
            POST_CLIENT.1,
            "refresh-token-for-a-closed-port",
        ),
    );
    sandbox
        .run(&["import", "--name", "down", utf8(&file)])
        .assert_code(0);

    let before = read(&sandbox.vault());
    let started = std::time::Instant::now();
    let run = sandbox.run(&["refresh", "--force"]);
    run.assert_code(4);
    assert!(
        run.stdout.contains("down: temporary failure"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("tokvault: warning: down: temporary failure"),
        "{}",
        run.stderr
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "gives up in time"
    );
    let after = read(&sandbox.vault());
    assert!(before == after, "the vault file is byte-identical");

    // No stored access token: `token` cannot serve one and says retry later.
    let run = sandbox.run(&["token", "down"]);
    assert_secret_code(&run, 4);
    assert!(run.stdout.is_empty());
    assert!(read(&sandbox.vault()) == before, "still byte-identical");
    let record = listed(&sandbox, "down");
    assert!(
        record["last_refresh"].is_null(),
        "a transient failure is not recorded: {record}"
    );
    sandbox.run(&["verify"]).assert_code(0);
}

/// `token --json` says how long the token lasts, `exec` tells the job in
/// `VAR_EXPIRES_AT`/`VAR_EXPIRES_IN`, and a provider lifetime shorter than
/// `--min-valid` is warned about.
#[test]
fn token_json_and_exec_say_when_the_token_expires() {
    let Some(story) = Story::start(true, 120) else {
        return;
    };
    let run = story
        .sandbox
        .run(&["token", "demo", "--json", "--min-valid", "5m"]);
    assert_secret_code(&run, 0);
    let token: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["scopes"][0], "offline_access");
    let expires_in = token["expires_in"].as_u64().expect("expires_in");
    assert!((100..=120).contains(&expires_in), "{expires_in}");
    let expires_at = token["expires_at"].as_str().expect("expires_at");
    assert!(
        expires_at.ends_with('Z') && expires_at.contains('T'),
        "{expires_at}"
    );
    assert!(
        run.stderr.contains("less than --min-valid"),
        "a 2-minute token under a 5-minute --min-valid is warned about: {}",
        run.stderr
    );
    let run = story.sandbox.run(&[
        "exec",
        "demo",
        "--min-valid",
        "1m",
        "--",
        "sh",
        "-c",
        "echo \"$TOKVAULT_ACCESS_TOKEN_EXPIRES_AT $TOKVAULT_ACCESS_TOKEN_EXPIRES_IN\"",
    ]);
    assert_secret_code(&run, 0);
    let (at, secs) = run.stdout.trim().split_once(' ').expect("two values");
    assert_eq!(at, expires_at, "the same token, the same expiry");
    assert!(secs.parse::<u64>().expect("seconds") <= expires_in);
    let run = story.sandbox.run(&["header", "demo", "--json"]);
    run.assert_code(2);
    // A command that does not exist: 127, as a shell says.
    let run = story
        .sandbox
        .run(&["exec", "demo", "--", "no-such-program-here"]);
    run.assert_code(127);
    assert!(
        run.stderr.contains("no-such-program-here"),
        "{}",
        run.stderr
    );
}

/// The README's refresh-handler recipe: unmodified google-auth in a job
/// that tokvault does not start, through several refreshes (rotation on).
/// google-auth refuses a token with less than 225 s left, so the tokens
/// live 240 s and `--min-valid` is 235 s: google-auth asks again after
/// 15 s, and gets a new one.
#[test]
fn the_refresh_handler_recipe_keeps_google_auth_going_across_expiries() {
    let Some(story) = Story::start(true, 240) else {
        return;
    };
    let Some(python) = crate::peers::peer("TOKVAULT_TEST_PYTHON", "google-auth") else {
        return;
    };
    let seconds = crate::common::env_count("TOKVAULT_RECIPE_SECONDS", 35);
    let vault = story.sandbox.vault();
    let identity = story.sandbox.identity();
    let output = story
        .sandbox
        .command()
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .fold(std::process::Command::new(&python), |mut c, (k, v)| {
            c.env(k, v);
            c
        })
        .env("MIN_VALID", "235s")
        .arg(crate::peers::repo_root().join("tests/python/refresh_handler_job.py"))
        .arg(seconds.to_string())
        .arg("demo")
        .arg(crate::common::TOKVAULT)
        .arg("--vault")
        .arg(&vault)
        .arg("-i")
        .arg(&identity)
        .output()
        .expect("run the recipe");
    let run: Run = output.into();
    assert_secret_code(&run, 0);
    let tokens: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            let line: Value = serde_json::from_str(l).expect("a JSON line");
            line["token"].as_str().expect("token").to_owned()
        })
        .collect();
    assert!(
        tokens.len() >= 3,
        "at least two refreshes: {} tokens",
        tokens.len()
    );
    let last = tokens.last().expect("a token");
    assert!(
        story
            .rt
            .block_on(story.server.is_active(crate::peers::BASIC_CLIENT, last)),
        "the current token is active"
    );
    assert_no_replay_or_error(&server_stats(&story.rt, &story.server));
}
