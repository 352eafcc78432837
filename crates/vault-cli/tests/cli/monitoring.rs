//! Operating tokvault: the metrics file (checked by Prometheus' own Python
//! parser), the re-authorization hook, early warnings, logs that never
//! carry a secret at any verbosity, completions and man pages.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use serde_json::Value;

use crate::common::{Sandbox, google_token_json};
use crate::e2e::{Story, assert_secret_code, current_refresh_token, utf8};
use crate::peers::{POST_CLIENT, peer};

/// The samples of a metrics file as Prometheus' parser reads them:
/// `[{name, labels, value}]` plus the family types.
fn parse_metrics(python: &std::path::Path, path: &std::path::Path) -> (Vec<Value>, Value) {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples, types = [], {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    types[family.name] = family.type
    for s in family.samples:
        samples.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps({"samples": samples, "types": types}))
"#;
    let output = Command::new(python)
        .args(["-c", script, utf8(path)])
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "prometheus_client rejected the metrics file: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    (
        parsed["samples"].as_array().expect("samples").clone(),
        parsed["types"].clone(),
    )
}

fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
}

#[test]
fn metrics_hook_and_warnings_follow_the_records() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let Some(python) = peer("TOKVAULT_TEST_PYTHON", "the Python test virtualenv") else {
        return;
    };
    let Story {
        server,
        rt,
        sandbox,
    } = story;
    let metrics = sandbox.path("metrics/tokvault.prom");
    std::fs::create_dir_all(metrics.parent().expect("dir")).expect("mkdir");
    let metrics_arg = format!("--metrics-file={}", utf8(&metrics));

    sandbox
        .run(&["refresh", "--force", &metrics_arg])
        .assert_code(0);
    let mode = std::fs::metadata(&metrics)
        .expect("metrics written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "readable by node_exporter");
    let (samples, types) = parse_metrics(&python, &metrics);
    assert_eq!(types["tokvault_refresh_outcomes"], "counter", "{types}");
    let demo = [("record", "demo")];
    assert_eq!(
        sample(&samples, "tokvault_last_run_exit_code", &[]),
        Some(0.0)
    );
    assert_eq!(sample(&samples, "tokvault_records", &[]), Some(1.0));
    assert_eq!(
        sample(
            &samples,
            "tokvault_last_refresh_outcome",
            &[("record", "demo"), ("outcome", "refreshed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &samples,
            "tokvault_refresh_outcomes_total",
            &[("record", "demo"), ("outcome", "refreshed")]
        ),
        Some(1.0)
    );
    let expiry = sample(
        &samples,
        "tokvault_access_token_expiry_timestamp_seconds",
        &demo,
    )
    .expect("expiry");
    let ran = sample(&samples, "tokvault_last_run_timestamp_seconds", &[]).expect("run time");
    assert!(expiry > ran, "a fresh access token expires in the future");
    assert!(sample(&samples, "tokvault_refresh_token_age_seconds", &demo).expect("age") < 60.0);

    // The grant is revoked: the hook runs with the record's name and the
    // server's error, without the key's location; its failure is not fatal.
    let refresh_token = current_refresh_token(&sandbox, "demo");
    rt.block_on(server.revoke(POST_CLIENT, &refresh_token));
    let hook_out = sandbox.path("hook.out");
    let hook = format!(
        "printf '%s|%s|%s|%s\\n' \"$TOKVAULT_RECORD\" \"$TOKVAULT_ERROR\" \"$TOKVAULT_FIRST_ALERT\" \"${{TOKVAULT_IDENTITY:-no-identity}}\" >> '{}'; exit 7",
        utf8(&hook_out)
    );
    for _ in 0..2 {
        let run = sandbox.run(&[
            "refresh",
            "--force",
            &metrics_arg,
            "--on-reauth-needed",
            &hook,
        ]);
        run.assert_code(3);
        assert!(run.stderr.contains("hook failed"), "{}", run.stderr);
    }
    let lines = std::fs::read_to_string(&hook_out).expect("the hook ran");
    assert_eq!(
        lines, "demo|invalid_grant|1|no-identity\ndemo|invalid_grant|0|no-identity\n",
        "once per record and run; the first alert is marked"
    );
    let (samples, _) = parse_metrics(&python, &metrics);
    assert_eq!(
        sample(&samples, "tokvault_last_run_exit_code", &[]),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &samples,
            "tokvault_last_refresh_outcome",
            &[("record", "demo"), ("outcome", "reauthorization-required")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &samples,
            "tokvault_refresh_outcomes_total",
            &[("record", "demo"), ("outcome", "reauthorization-required")]
        ),
        Some(2.0)
    );

    // Refresh-token age warnings on list and refresh.
    let run = sandbox.run(&["list", "--warn-refresh-age", "0s"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("demo: the refresh token is"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("tokvault login demo --again"),
        "{}",
        run.stderr
    );
    let run = sandbox.run(&["list", "--warn-refresh-age", "30d"]);
    assert!(!run.stderr.contains("refresh token is"), "{}", run.stderr);
}

#[test]
fn a_token_endpoint_that_keeps_failing_is_warned_about() {
    let Some(python) = peer("TOKVAULT_TEST_PYTHON", "the Python test virtualenv") else {
        return;
    };
    let sandbox = Sandbox::new();
    sandbox.init_server();
    // Nothing listens on port 1: every attempt is a refused connection.
    let token = sandbox.write(
        "in/down.json",
        &google_token_json("http://127.0.0.1:1/token", "c", "s", "rt"),
    );
    sandbox
        .run(&["import", "--name", "down", utf8(&token)])
        .assert_code(0);
    let metrics = sandbox.path("down.prom");
    let metrics_arg = format!("--metrics-file={}", utf8(&metrics));
    let vault_before = std::fs::read(sandbox.vault()).expect("vault");
    for round in 1..=3 {
        let run = sandbox.run(&["refresh", "--warn-transient-failures", "3", &metrics_arg]);
        run.assert_code(4);
        let warned = run.stderr.contains("failed temporarily 3 times in a row");
        assert_eq!(warned, round == 3, "round {round}: {}", run.stderr);
    }
    assert_eq!(std::fs::read(sandbox.vault()).expect("vault"), vault_before);
    let (samples, _) = parse_metrics(&python, &metrics);
    assert_eq!(
        sample(
            &samples,
            "tokvault_transient_failures_in_a_row",
            &[("record", "down")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&samples, "tokvault_last_run_exit_code", &[]),
        Some(4.0)
    );
}

#[test]
fn no_log_level_or_format_ever_shows_a_secret() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let sandbox = &story.sandbox;
    let first = current_refresh_token(sandbox, "demo");
    let mut stderr = String::new();
    for format in ["text", "json"] {
        for verbosity in ["-q", "-v", "-vv", "-vvv"] {
            let run = sandbox.run(&["--log-format", format, verbosity, "refresh", "--force"]);
            run.assert_code(0);
            stderr.push_str(&run.stderr);
            let token = sandbox.run(&["--log-format", format, verbosity, "token", "demo"]);
            assert_secret_code(&token, 0);
            stderr.push_str(&token.stderr);
            let access = token.stdout.trim().to_owned();
            let exec = sandbox.run(&[
                "--log-format",
                format,
                verbosity,
                "exec",
                "demo",
                "--",
                "true",
            ]);
            exec.assert_code(0);
            stderr.push_str(&exec.stderr);
            let current = current_refresh_token(sandbox, "demo");
            for (what, secret) in [
                ("access token", access.as_str()),
                ("refresh token", current.as_str()),
                ("first refresh token", first.as_str()),
                ("client secret", POST_CLIENT.1),
            ] {
                assert!(!secret.is_empty());
                assert!(
                    !stderr.contains(secret),
                    "the {what} is in the {format} {verbosity} logs"
                );
            }
        }
    }
    // JSON logs: one object per line, each refresh with its fields.
    let run = sandbox.run(&["--log-format", "json", "refresh", "--force"]);
    run.assert_code(0);
    let events: Vec<Value> = run
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let refresh = events
        .iter()
        .find(|e| e["record"] == "demo")
        .unwrap_or_else(|| panic!("a refresh event: {}", run.stderr));
    assert_eq!(refresh["outcome"], "refreshed");
    assert_eq!(refresh["level"], "INFO");
    assert!(refresh["timestamp"].is_string(), "{refresh}");
    assert_eq!(refresh["rotated"], true);
}

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let token = sandbox.write(
        "in/token.json",
        &google_token_json("https://127.0.0.1:1/token", "id", "secret", "1//refresh"),
    );
    for name in ["gmail", "sheets"] {
        sandbox
            .run(&["import", "--name", name, utf8(&token)])
            .assert_code(0);
    }
    let bash = sandbox.run_bare(&["completions", "bash"]);
    bash.assert_code(0);
    let script = sandbox.write("tokvault.bash", &bash.stdout);
    let check = Command::new("bash")
        .args(["-n", utf8(&script)])
        .status()
        .expect("bash");
    assert!(check.success(), "the bash completion script does not parse");
    // What bash offers at a TAB, through the installed script and the
    // binary on PATH: commands, options, and the vault's record names
    // (with the vault and identity from the variables or typed on the line).
    let tab = |words: &[&str], env: &[(&str, String)]| -> Vec<String> {
        let bin = std::path::Path::new(crate::common::TOKVAULT)
            .parent()
            .expect("bin dir");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let shell = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_TYPE=9; \
             _clap_complete_tokvault tokvault \"${{COMP_WORDS[COMP_CWORD]}}\" x; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            utf8(&script),
            quoted.join(" "),
            words.len() - 1
        );
        let mut command = sandbox.command();
        // A job's own COMPLETE does not turn tokvault into a completer.
        command.env("PATH", path).env("COMPLETE", "true");
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let output = command
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .fold(Command::new("bash"), |mut c, (k, v)| {
                c.env(k, v);
                c
            })
            .args(["-c", &shell])
            .output()
            .expect("bash");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        tab(&["tokvault", "re"], &[]),
        ["refresh", "remove", "rekey"]
    );
    let from_variables = [
        ("TOKVAULT_VAULT", utf8(&sandbox.vault()).to_owned()),
        ("TOKVAULT_IDENTITY", utf8(&sandbox.identity()).to_owned()),
    ];
    let names = tab(&["tokvault", "token", ""], &from_variables);
    assert!(
        names.starts_with(&["gmail".to_owned(), "sheets".to_owned()]),
        "{names:?}"
    );
    let vault = sandbox.vault();
    let identity = sandbox.identity();
    let typed = [
        "tokvault",
        "--vault",
        utf8(&vault),
        "-i",
        utf8(&identity),
        "exec",
        "s",
    ];
    assert_eq!(tab(&typed, &[]), ["sheets"]);
    // No identity: no names, and no prompt or error on the terminal.
    assert!(!tab(&["tokvault", "remove", ""], &[]).contains(&"gmail".to_owned()));
    // A vault in a bucket: no names, and no connection to its endpoint
    // (the completer reads local files only; this guards against one that
    // opens the vault through the session's backend).
    let endpoint = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    endpoint.set_nonblocking(true).expect("nonblocking");
    let bucket = [
        (
            "TOKVAULT_VAULT",
            "s3://tokvault-completion/vault.tokvault".to_owned(),
        ),
        ("TOKVAULT_IDENTITY", utf8(&sandbox.identity()).to_owned()),
        (
            "AWS_ENDPOINT_URL",
            format!("http://{}", endpoint.local_addr().expect("addr")),
        ),
        ("AWS_ACCESS_KEY_ID", "id".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "secret".to_owned()),
    ];
    assert!(
        tab(&["tokvault", "token", ""], &bucket)
            .iter()
            .all(|c| c.starts_with('-'))
    );
    assert!(
        matches!(endpoint.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a TAB connected to the bucket's endpoint"
    );
    // zsh: sourced, it registers; autoloaded from fpath as _tokvault (the
    // package's place), it completes the first TAB too.
    let zsh = sandbox.run_bare(&["completions", "zsh"]);
    assert!(
        zsh.stdout.starts_with("#compdef tokvault")
            && zsh.stdout.contains("== _tokvault ]]; then")
            && zsh
                .stdout
                .contains("    compdef _clap_dynamic_completer_tokvault tokvault"),
        "{}",
        zsh.stdout
    );
    if let Some(zsh_binary) = peer("TOKVAULT_TEST_ZSH", "zsh") {
        let fpath = sandbox.path("zsh-functions");
        std::fs::create_dir_all(&fpath).expect("mkdir");
        std::fs::write(fpath.join("_tokvault"), &zsh.stdout).expect("write _tokvault");
        let bin = std::path::Path::new(crate::common::TOKVAULT)
            .parent()
            .expect("bin dir");
        let run: crate::common::Run = sandbox
            .command()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("TOKVAULT_VAULT", sandbox.vault())
            .env("TOKVAULT_IDENTITY", sandbox.identity())
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .fold(Command::new(&zsh_binary), |mut c, (k, v)| {
                c.env(k, v);
                c
            })
            .arg("-f")
            .arg(crate::peers::repo_root().join("tests/zsh/first_tab.zsh"))
            .arg(&fpath)
            .output()
            .expect("zsh")
            .into();
        assert_eq!(run.stdout.trim(), "COMPLETED", "{}", run.stderr);
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let run = sandbox.run_bare(&["completions", shell]);
        run.assert_code(0);
        assert!(
            run.stdout.contains("tokvault") && run.stdout.contains("TOKVAULT_COMPLETE"),
            "{shell}"
        );
    }
    sandbox.run_bare(&["completions", "tcsh"]).assert_code(2);

    let page = sandbox.run_bare(&["man"]);
    page.assert_code(0);
    assert!(
        page.stdout.contains(".TH tokvault 1"),
        "{}",
        &page.stdout[..200.min(page.stdout.len())]
    );
    let login = sandbox.run_bare(&["man", "login"]);
    login.assert_code(0);
    assert!(login.stdout.contains(".TH tokvault-login 1"));
    assert!(login.stdout.contains("\\-\\-no\\-browser"));
    assert!(login.stdout.contains("tokvault\\-login \\-"), "NAME");
    let global = login.stdout.find(".SH \"GLOBAL OPTIONS\"");
    let vault = login.stdout.find("\\fB\\-\\-vault\\fR \\fI<PATH>");
    let exit = login.stdout.find(".SH \"EXIT STATUS\"");
    assert!(
        global.is_some() && global < vault && vault < exit,
        "the global options, then the exit codes: {}",
        login.stdout
    );
    assert!(login.stdout.contains("re\\-authorization required"));
    sandbox.run_bare(&["man", "nosuch"]).assert_code(2);
    // groff, where installed, renders it without warnings.
    if let Ok(output) = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(page.stdout.as_bytes())?;
            child.wait_with_output()
        })
    {
        assert!(output.status.success());
        assert!(
            output.stderr.is_empty(),
            "groff warnings: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
