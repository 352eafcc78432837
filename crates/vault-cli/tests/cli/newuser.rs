//! The README's steps for a google-auth user, run as they are written: the
//! shell block between the `new-user-steps` markers, in a fresh `HOME`
//! with nothing but `tokvault` and Python on `PATH`, then the job (an
//! unmodified google-auth `google.auth.default()` loop) across several
//! token expiries at a rotating provider.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::Value;
use tokvault_test_support::peers::{OidcProvider, POST_CLIENT, peer, repo_root};

use crate::common::{Run, TOKVAULT, google_token_json};
use crate::e2e::{assert_no_replay_or_error, assert_secret_code, runtime, server_stats};

/// The shell block between the markers in README.md.
fn readme_steps() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let (_, rest) = readme
        .split_once("<!-- new-user-steps: begin -->")
        .expect("the begin marker in README.md");
    let (block, _) = rest
        .split_once("<!-- new-user-steps: end -->")
        .expect("the end marker in README.md");
    let block = block.trim();
    let body = block
        .strip_prefix("```sh\n")
        .and_then(|b| b.strip_suffix("```"))
        .expect("one ```sh block between the markers");
    body.to_owned()
}

/// A `bin` directory with `tokvault` and `python3` (the test venv's, with
/// google-auth), put first on `PATH`.
fn bin_dir(home: &Path, python: &Path) -> std::path::PathBuf {
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    std::os::unix::fs::symlink(TOKVAULT, bin.join("tokvault")).expect("link tokvault");
    // A venv's python finds its packages only when called by its own path.
    let wrapper = bin.join("python3");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec '{}' \"$@\"\n", python.display()),
    )
    .expect("write python3");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

#[test]
fn the_readme_steps_take_a_google_auth_job_across_token_expiries() {
    let Some(server) = OidcProvider::start(true, 20) else {
        return;
    };
    let Some(python) = peer("TOKVAULT_TEST_PYTHON", "google-auth") else {
        return;
    };
    let seconds = crate::common::env_count("TOKVAULT_NEWUSER_SECONDS", 45);
    let rt = runtime();
    let home = tempfile::tempdir().expect("temp HOME");
    let home = home.path();
    let minted = rt.block_on(server.mint(POST_CLIENT.0, "offline_access", 1));
    let token_file = home.join("token_gmail.json");
    std::fs::write(
        &token_file,
        google_token_json(
            &server.token_endpoint,
            POST_CLIENT.0,
            POST_CLIENT.1,
            &minted[0],
        ),
    )
    .expect("write token_gmail.json");
    // The job: google.auth.default() and a token before every request,
    // for `seconds` (tests/python/gce_client.py).
    let client = repo_root().join("tests/python/gce_client.py");
    std::fs::write(
        home.join("send_report.py"),
        format!(
            "import runpy, sys\nsys.argv = [{client:?}, \"{seconds}\"]\nrunpy.run_path({client:?}, run_name=\"__main__\")\n",
            client = client.display().to_string()
        ),
    )
    .expect("write send_report.py");
    let bin = bin_dir(home, &python);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run: Run = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &readme_steps()])
        .current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the README steps")
        .into();
    assert_secret_code(&run, 0);

    assert!(!token_file.exists(), "the plaintext token file is gone");
    assert!(home.join(".local/share/tokvault/vault.tokvault").exists());
    let tokens: Vec<String> = run
        .stdout
        .lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).expect("a JSON line from the job");
            line["token"].as_str().expect("a token").to_owned()
        })
        .collect();
    assert!(
        tokens.len() >= 3,
        "two expiries or more: {} tokens\n{}",
        tokens.len(),
        run.stderr
    );
    let last = tokens.last().expect("a token");
    assert!(
        rt.block_on(server.is_active(POST_CLIENT, last)),
        "the job's last token is active"
    );
    assert!(!run.stdout.contains(&minted[0]) && !run.stderr.contains(&minted[0]));
    assert_no_replay_or_error(&server_stats(&rt, &server));
}
