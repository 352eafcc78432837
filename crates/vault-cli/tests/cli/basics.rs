//! Offline commands, flags and exit codes, including bad input.

use std::os::unix::fs::PermissionsExt as _;

use crate::common::{Run, Sandbox, google_token_json, read};

const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

fn token_file(sandbox: &Sandbox, name: &str, refresh_token: &str) -> std::path::PathBuf {
    sandbox.write(
        name,
        &google_token_json(
            TOKEN_URI,
            "client-id",
            "client-secret-canary",
            refresh_token,
        ),
    )
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn keygen_writes_a_private_identity_and_refuses_to_overwrite() {
    let sandbox = Sandbox::new();
    let recipient = sandbox.keygen();
    assert!(recipient.starts_with("age1"), "{recipient}");
    assert_eq!(mode(&sandbox.identity()), 0o600);
    let text = std::fs::read_to_string(sandbox.identity()).expect("identity");
    assert!(text.contains("AGE-SECRET-KEY-1") && text.contains(&recipient));
    let again = sandbox.run_bare(&["keygen", "-o", sandbox.identity().to_str().expect("utf-8")]);
    again.assert_code(1);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(sandbox.identity()).expect("identity"),
        text,
        "untouched"
    );
}

#[test]
fn init_import_list_export_remove() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    assert_eq!(mode(&sandbox.vault()), 0o600);
    sandbox
        .run(&[
            "init",
            "-r",
            "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
        ])
        .assert_code(1);

    let input = token_file(&sandbox, "laptop/token_gmail.json", "refresh-canary-1");
    let run = sandbox.run(&["import", "--name", "gmail", input.to_str().expect("utf-8")]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("plaintext"),
        "warns to delete the input: {}",
        run.stderr
    );

    // A name clash fails unless --replace.
    let clash = sandbox.run(&["import", "--name", "gmail", input.to_str().expect("utf-8")]);
    clash.assert_code(1);
    assert!(clash.stderr.contains("--replace"), "{}", clash.stderr);
    sandbox
        .run(&[
            "import",
            "--name",
            "gmail",
            "--replace",
            input.to_str().expect("utf-8"),
        ])
        .assert_code(0);

    let list = sandbox.run(&["list", "--json"]);
    list.assert_code(0);
    assert!(!list.stdout.contains("canary"), "no secret in list");
    let listed: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    assert_eq!(listed["records"][0]["name"], "gmail");
    assert_eq!(listed["records"][0]["kind"], "refresh-token");
    assert_eq!(listed["records"][0]["provider"], "google");
    let text = sandbox.run(&["list"]);
    text.assert_code(0);
    assert!(text.stdout.contains("gmail") && !text.stdout.contains("canary"));

    let exported = sandbox.path("out/gmail.json");
    std::fs::create_dir_all(exported.parent().expect("parent")).expect("mkdir");
    let run = sandbox.run(&[
        "export",
        "gmail",
        "--format",
        "google",
        "-o",
        exported.to_str().expect("utf-8"),
    ]);
    run.assert_code(0);
    assert!(run.stderr.contains("PLAINTEXT"), "{}", run.stderr);
    assert_eq!(mode(&exported), 0o600);
    let google: serde_json::Value = serde_json::from_slice(&read(&exported)).expect("json");
    assert_eq!(google["refresh_token"], "refresh-canary-1");
    assert_eq!(google["client_secret"], "client-secret-canary");
    assert_eq!(google["token_uri"], TOKEN_URI);
    // -o never overwrites.
    sandbox
        .run(&["export", "gmail", "-o", exported.to_str().expect("utf-8")])
        .assert_code(1);
    // tokvault JSON round trip through import.
    let json = sandbox.run(&["export", "gmail", "--format", "json"]);
    json.assert_code(0);
    let copy = sandbox.write("copy.json", &json.stdout);
    sandbox
        .run(&[
            "import",
            "--name",
            "gmail-copy",
            copy.to_str().expect("utf-8"),
        ])
        .assert_code(0);

    sandbox.run(&["remove", "gmail"]).assert_code(0);
    sandbox.run(&["remove", "gmail"]).assert_code(1);
    let list = sandbox.run(&["list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    assert_eq!(listed["records"].as_array().map(Vec::len), Some(1));
    sandbox.run(&["verify"]).assert_code(0);
}

#[test]
fn seal_needs_only_the_recipient_and_never_overwrites() {
    let server = Sandbox::new();
    let recipient = server.init_server();
    let laptop = Sandbox::new();
    let input = token_file(&laptop, "token.json", "refresh-canary-2");
    let output = laptop.path("for-server.tokvault");
    let args = [
        "seal",
        "--name",
        "mail",
        "-r",
        &recipient,
        "-o",
        output.to_str().expect("utf-8"),
        input.to_str().expect("utf-8"),
    ];
    laptop.run_bare(&args).assert_code(0);
    assert!(
        !read(&output).windows(14).any(|w| w == b"refresh-canary"),
        "sealed, not plaintext"
    );
    laptop.run_bare(&args).assert_code(1);
    // The laptop cannot open what it sealed; the server can import it.
    let laptop_open = laptop
        .command()
        .arg("--vault")
        .arg(&output)
        .arg("list")
        .output()
        .expect("run");
    assert_eq!(laptop_open.status.code(), Some(5));
    server
        .run(&["import", output.to_str().expect("utf-8")])
        .assert_code(0);
    let listed = server.run(&["list", "--json"]);
    assert!(listed.stdout.contains("\"mail\""), "{}", listed.stdout);
}

#[test]
fn a_new_vault_in_a_missing_directory_fails_before_any_work() {
    let server = Sandbox::new();
    let recipient = server.init_server();
    let laptop = Sandbox::new();
    let input = token_file(&laptop, "token_mail.json", "refresh-canary-3");
    let output = laptop.path("missing/for-server.tokvault");
    let output = output.to_str().expect("utf-8");
    let seal = laptop.run_bare(&[
        "seal",
        "-r",
        &recipient,
        "-o",
        output,
        input.to_str().expect("utf-8"),
    ]);
    assert!(
        seal.assert_code(1).stderr.contains("in the directory"),
        "{}",
        seal.stderr
    );
    // A login fails before the browser: nobody authorizes for nothing.
    let login = laptop.run_bare(&[
        "login",
        "mail",
        "--client-id",
        "c",
        "--auth-url",
        "https://auth.example/authorize",
        "--token-url",
        "https://auth.example/token",
        "--no-browser",
        "--seal-to",
        &recipient,
        "-o",
        output,
    ]);
    login.assert_code(1);
    assert!(
        login.stderr.contains("in the directory"),
        "{}",
        login.stderr
    );
    assert!(
        !login.stderr.contains("auth.example/authorize?"),
        "{}",
        login.stderr
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let cases = [
        ("not json {", "not valid JSON"),
        ("[1, 2]", "JSON array"),
        (r#"{"hello": "world"}"#, "not a token file"),
        (
            r#"{"refresh_token": "x", "client_id": "c"}"#,
            "client_secret",
        ),
        (
            r#"{"refresh_token": "x", "client_id": "c", "client_secret": "s", "token_uri": "http://example.com/token"}"#,
            "https",
        ),
        (
            r#"{"refresh_token": "x", "client_id": "c", "client_secret": "s", "expiry": "tomorrow"}"#,
            "expiry",
        ),
        (
            r#"{"type": "service_account", "client_email": "a@b", "private_key": "nope"}"#,
            "PRIVATE KEY",
        ),
        // Fuzz finding (token_file): a year this large overflowed the day
        // count; now it is an ordinary bad expiry.
        (
            r#"{"refresh_token": "x", "client_id": "c", "client_secret": "s", "expiry": "8819048870308624611-11-24T07:59:59Z"}"#,
            "expiry",
        ),
        (
            r#"{"tokvault_record": 1, "token_endpoint": "https://a.example/t", "client_id": "c", "refresh_token": "r", "access_token": "a", "access_token_expires_at": "soon"}"#,
            "access_token_expires_at",
        ),
    ];
    for (contents, expected) in cases {
        let input = sandbox.write("bad.json", contents);
        let run = sandbox.run(&["import", "--name", "bad", input.to_str().expect("utf-8")]);
        run.assert_code(1);
        assert!(run.stderr.contains(expected), "{contents}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"));
    }
    // A file name that gives no record name (google-auth's usual
    // token.json) needs --name.
    let input = token_file(&sandbox, "token.json", "rt");
    let run = sandbox.run(&["import", input.to_str().expect("utf-8")]);
    run.assert_code(2);
    assert!(run.stderr.contains("--name"), "{}", run.stderr);
    let run = sandbox.run(&[
        "import",
        "--name",
        "bad name!",
        input.to_str().expect("utf-8"),
    ]);
    run.assert_code(2);
}

#[test]
fn unknown_records_missing_vaults_and_usage_errors() {
    let sandbox = Sandbox::new();
    let run = sandbox.run_bare(&["--vault", sandbox.vault().to_str().expect("utf-8"), "list"]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("no vault") && run.stderr.contains("init"),
        "{}",
        run.stderr
    );
    sandbox.init_server();
    for args in [
        &["token", "nope"][..],
        &["export", "nope"],
        &["remove", "nope"],
        &["refresh", "nope"],
    ] {
        let run = sandbox.run(args);
        run.assert_code(1);
        assert!(
            run.stderr.contains("no record named"),
            "{args:?}: {}",
            run.stderr
        );
    }
    sandbox.run(&["frobnicate"]).assert_code(2);
    sandbox
        .run(&["refresh", "--min-valid", "ten minutes"])
        .assert_code(2);
    sandbox.run(&["exec", "x"]).assert_code(2);
    sandbox.run(&["--help"]).assert_code(0);
}

#[test]
fn wrong_identity_wrong_passphrase_and_group_readable_secrets() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let other = Sandbox::new();
    other.keygen();
    let wrong = sandbox
        .command()
        .arg("--vault")
        .arg(sandbox.vault())
        .arg("-i")
        .arg(other.identity())
        .arg("list")
        .output()
        .expect("run");
    assert_eq!(wrong.status.code(), Some(5));
    // A wrong identity points at the identity, then at a backup.
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("cannot decrypt") && said.contains("restore the vault from a backup"));

    std::fs::set_permissions(sandbox.identity(), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    let run = sandbox.run(&["list"]);
    run.assert_code(1);
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    std::fs::set_permissions(sandbox.identity(), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");

    // A passphrase-only vault: right and wrong passphrase files.
    let pass = sandbox.write("pass.txt", "correct horse battery staple\n");
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let vault = sandbox.path("pp.tokvault");
    let with = |file: &std::path::Path, args: &[&str]| -> crate::common::Run {
        sandbox
            .command()
            .arg("--vault")
            .arg(&vault)
            .arg("--passphrase-file")
            .arg(file)
            .args(args)
            .output()
            .expect("run")
            .into()
    };
    with(&pass, &["init", "--passphrase"]).assert_code(0);
    with(&pass, &["verify"]).assert_code(0);
    let bad = sandbox.write("bad-pass.txt", "wrong\n");
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    with(&bad, &["verify"]).assert_code(5);
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = with(&pass, &["verify"]);
    run.assert_code(1);
    assert!(run.stderr.contains("chmod 600"));
}

#[test]
fn a_tampered_vault_exits_5_and_stays_untouched() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let input = token_file(&sandbox, "t.json", "rt");
    sandbox
        .run(&["import", "--name", "a", input.to_str().expect("utf-8")])
        .assert_code(0);
    let mut bytes = read(&sandbox.vault());
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(sandbox.vault(), &bytes).expect("tamper");
    for args in [
        &["list"][..],
        &["verify"],
        &["refresh", "--force"],
        &["token", "a"],
        &["remove", "a"],
    ] {
        sandbox.run(args).assert_code(5);
        assert_eq!(
            read(&sandbox.vault()),
            bytes,
            "{args:?} left the file untouched"
        );
    }
    // inspect needs no key and still reads the header.
    let run = sandbox.run(&["inspect", "--json"]);
    run.assert_code(0);
    assert!(run.stdout.contains("\"generation\""));
}

#[test]
fn rollback_is_refused_unless_accepted() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let backup = read(&sandbox.vault());
    let input = token_file(&sandbox, "t.json", "rt");
    sandbox
        .run(&["import", "--name", "a", input.to_str().expect("utf-8")])
        .assert_code(0);
    std::fs::write(sandbox.vault(), &backup).expect("restore old copy");
    let run = sandbox.run(&["list"]);
    run.assert_code(5);
    assert!(run.stderr.contains("--accept-rollback"), "{}", run.stderr);
    let inspect = sandbox.run(&["inspect"]);
    assert!(inspect.stdout.contains("rollback"), "{}", inspect.stdout);
    sandbox.run(&["--accept-rollback", "list"]).assert_code(0);
    sandbox.run(&["list"]).assert_code(0);
}

#[test]
fn rekey_adds_and_removes_recipients_and_keeps_one_slot() {
    let sandbox = Sandbox::new();
    let first = sandbox.init_server();
    let second_box = Sandbox::new();
    let second = second_box.keygen();
    sandbox.run(&["rekey", "-r", &second]).assert_code(0);
    let opened = second_box
        .command()
        .arg("--vault")
        .arg(sandbox.vault())
        .arg("-i")
        .arg(second_box.identity())
        .arg("--state-dir")
        .arg(second_box.path("state2"))
        .arg("verify")
        .output()
        .expect("run");
    assert_eq!(
        opened.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let run = sandbox.run(&[
        "rekey",
        "--remove-recipient",
        &first,
        "--remove-recipient",
        &second,
    ]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("without any key slot"),
        "{}",
        run.stderr
    );
    sandbox
        .run(&["rekey", "--remove-recipient", &second])
        .assert_code(0);
    let inspect = sandbox.run(&["inspect", "--json"]);
    let header: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    assert_eq!(header["slots"].as_array().map(Vec::len), Some(1));
    assert_eq!(header["slots"][0]["recipient"], first.as_str());
}

#[test]
fn a_held_lock_is_a_temporary_failure_and_changes_nothing() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let input = token_file(&sandbox, "t.json", "rt");
    let mut lock_path = sandbox.vault().into_os_string();
    lock_path.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("lock file");
    lock.lock()
        .expect("hold the lock like another tokvault would");
    let before = read(&sandbox.vault());
    let run = sandbox.run(&[
        "--lock-timeout",
        "1s",
        "import",
        "--name",
        "a",
        input.to_str().expect("utf-8"),
    ]);
    run.assert_code(4);
    assert!(run.stderr.contains("lock"), "{}", run.stderr);
    sandbox
        .run(&["--lock-timeout", "1s", "refresh", "--force"])
        .assert_code(4);
    assert_eq!(read(&sandbox.vault()), before);
    lock.unlock().expect("release");
    sandbox
        .run(&["import", "--name", "a", input.to_str().expect("utf-8")])
        .assert_code(0);
}

#[test]
fn header_token_and_recipients_files() {
    let server = Sandbox::new();
    let recipient = server.keygen();
    let other = Sandbox::new();
    let other_recipient = other.keygen();
    let file = server.write(
        "recipients.txt",
        &format!("# the server\n{recipient}\n\n# a backup key\n{other_recipient}\n"),
    );
    server
        .run(&["init", "-R", file.to_str().expect("utf-8")])
        .assert_code(0);
    let inspect = server.run(&["inspect", "--json"]);
    let header: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    assert_eq!(header["slots"].as_array().map(Vec::len), Some(2));

    // A token that stays valid: served without a refresh (no network here).
    let valid = server.write(
        "valid.json",
        &serde_json::json!({
            "token": "ya29.still-valid",
            "refresh_token": "rt",
            "client_id": "c",
            "client_secret": "s",
            "expiry": "2099-01-01T00:00:00Z",
        })
        .to_string(),
    );
    server
        .run(&["import", "--name", "mail", valid.to_str().expect("utf-8")])
        .assert_code(0);
    let before = read(&server.vault());
    assert_eq!(
        server.run(&["token", "mail"]).assert_code(0).stdout,
        "ya29.still-valid\n"
    );
    assert_eq!(
        server.run(&["header", "mail"]).assert_code(0).stdout,
        "Authorization: Bearer ya29.still-valid\n"
    );
    assert_eq!(
        read(&server.vault()),
        before,
        "the read path writes nothing"
    );
    // ... and takes no lock: it works while another process holds it.
    let mut lock_path = server.vault().into_os_string();
    lock_path.push(".lock");
    let lock = std::fs::File::open(&lock_path).expect("lock file exists after writes");
    lock.lock().expect("hold the lock");
    let run = server.run(&["--lock-timeout", "1s", "token", "mail"]);
    assert_eq!(run.assert_code(0).stdout, "ya29.still-valid\n");
    lock.unlock().expect("release");
    // Core dumps are off: started with a core limit above zero, tokvault
    // lowers it, and the child of `exec` inherits the lowered limit.
    let control = server
        .shell("ulimit -c 1024 && ulimit -c")
        .output()
        .expect("sh");
    if String::from_utf8_lossy(&control.stdout).trim() == "1024" {
        let script = r#"ulimit -c 1024 && exec "$TOKVAULT" exec mail -- sh -c 'ulimit -c'"#;
        let run: crate::common::Run = server.shell(script).output().expect("sh").into();
        assert_eq!(run.assert_code(0).stdout.trim(), "0", "core dumps disabled");
    }
    let bad = server.write("bad-recipients.txt", "age1notarecipient\n");
    let run = server.run(&["rekey", "-R", bad.to_str().expect("utf-8")]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("bad-recipients.txt:1"),
        "{}",
        run.stderr
    );
}

#[test]
fn commands_that_change_the_vault_say_what_they_did_on_stderr() {
    let sandbox = Sandbox::new();
    let recipient = sandbox.keygen();
    let vault = sandbox.vault();
    let location = vault.display().to_string();
    let said = |run: &Run, expected: &str| {
        run.assert_code(0);
        assert_eq!(run.stdout, "", "stdout stays for data");
        assert_eq!(run.stderr.trim_end(), expected);
    };
    said(
        &sandbox.run(&["init", "-r", &recipient]),
        &format!("created {location} with 1 key slot"),
    );
    let token = sandbox.write(
        "token.json",
        &google_token_json("https://127.0.0.1:1/token", "id", "secret", "1//refresh"),
    );
    let token = token.to_str().expect("utf-8");
    let quiet = sandbox.run(&["-q", "import", "--name", "quiet", token]);
    said(&quiet, "");
    let json = sandbox.run(&["--log-format", "json", "import", "--name", "json", token]);
    json.assert_code(0);
    let imported = format!("imported json into {location} (2 records)");
    let events: Vec<serde_json::Value> = json
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON lines only"))
        .collect();
    assert!(
        events.iter().any(|e| e["message"] == imported.as_str()),
        "{}",
        json.stderr
    );
    said(
        &sandbox.run(&["remove", "quiet"]),
        &format!("removed quiet from {location}"),
    );
    let second = Sandbox::new().keygen();
    said(
        &sandbox.run(&["rekey", "-r", &second]),
        &format!("rekeyed {location}: a new vault key, sealed to 2 recipients"),
    );
}

#[test]
fn no_identity_is_said_first_and_no_backup_is_suggested() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let run: Run = sandbox
        .command()
        .arg("--vault")
        .arg(sandbox.vault())
        .arg("list")
        .output()
        .expect("run tokvault")
        .into();
    run.assert_code(5);
    assert!(
        run.stderr.contains("no identity or passphrase was given")
            && run.stderr.contains("-i PATH"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("backup"), "{}", run.stderr);
}

#[test]
fn read_only_commands_leave_nothing_beside_a_backup() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let backup = sandbox.path("backups/vault.tokvault");
    std::fs::create_dir_all(backup.parent().expect("parent")).expect("mkdir");
    std::fs::copy(sandbox.vault(), &backup).expect("copy");
    for args in [&["verify"][..], &["list", "--json"], &["inspect"]] {
        let run: Run = sandbox
            .command_at(&backup)
            .args(args)
            .output()
            .expect("run tokvault")
            .into();
        run.assert_code(0);
    }
    let left: Vec<_> = std::fs::read_dir(sandbox.path("backups"))
        .expect("read dir")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(
        left,
        ["vault.tokvault"],
        "read-only commands create nothing"
    );
}

#[test]
fn an_empty_variable_counts_as_unset() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    for variable in [
        "TOKVAULT_IDENTITY",
        "TOKVAULT_PASSPHRASE_FILE",
        "TOKVAULT_STATE_DIR",
        "TOKVAULT_WARN_REFRESH_AGE",
    ] {
        let run: Run = sandbox
            .command_at(&sandbox.vault())
            .env(variable, "")
            .args(["list", "--json"])
            .output()
            .expect("run tokvault")
            .into();
        run.assert_code(0);
    }
    // An empty TOKVAULT_VAULT means the default vault, which is missing.
    let run: Run = sandbox
        .command()
        .env("TOKVAULT_VAULT", "")
        .arg("list")
        .output()
        .expect("run tokvault")
        .into();
    run.assert_code(1);
    assert!(run.stderr.contains("tokvault init"), "{}", run.stderr);
}

#[test]
fn every_command_help_shows_an_example() {
    let sandbox = Sandbox::new();
    let commands = [
        "keygen", "init", "seal", "import", "list", "refresh", "token", "header", "exec", "export",
        "remove", "rekey", "inspect", "verify", "serve",
    ];
    for command in commands {
        let run = sandbox.run_bare(&[command, "--help"]);
        run.assert_code(0);
        assert!(
            run.stdout.contains("Example: "),
            "{command} --help: {}",
            run.stdout
        );
        // The command's own options first, then the global ones.
        let own = run.stdout.find("\nOptions:\n");
        let global = run.stdout.find("\nGlobal options:\n");
        let vault = run.stdout.find("--vault <PATH>");
        assert!(
            own.is_some() && own < global && global < vault,
            "{command} --help: {}",
            run.stdout
        );
    }
    let export = sandbox.run_bare(&["export", "--help"]);
    assert!(
        export.stdout.contains("Not for a live job") && export.stdout.contains("tokvault exec"),
        "export --help warns against loading it into a job: {}",
        export.stdout
    );
    let top = sandbox.run_bare(&["--help"]);
    for command in commands {
        assert!(top.stdout.contains(command), "{command} listed in --help");
    }
    assert!(top.stdout.contains("Exit codes"), "{}", top.stdout);
}

#[test]
fn a_systemd_credential_with_an_acl_mode_is_accepted_only_in_the_credentials_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let sandbox = Sandbox::new();
    sandbox.init_server();
    // systemd writes credentials 0400 plus an ACL for the service user,
    // which stat reports as 0440.
    let credentials = sandbox.path("credentials");
    std::fs::create_dir_all(&credentials).expect("mkdir");
    let identity = credentials.join("tokvault-identity");
    std::fs::copy(sandbox.identity(), &identity).expect("copy identity");
    std::fs::set_permissions(&identity, std::fs::Permissions::from_mode(0o440)).expect("chmod");
    let listed = sandbox
        .command()
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .arg("--vault")
        .arg(sandbox.vault())
        .arg("list")
        .output()
        .expect("run tokvault");
    assert_eq!(
        listed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    // The same mode anywhere else is refused.
    let elsewhere = sandbox.path("identity-0440.txt");
    std::fs::copy(sandbox.identity(), &elsewhere).expect("copy identity");
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o440)).expect("chmod");
    let refused = sandbox
        .command()
        .arg("--vault")
        .arg(sandbox.vault())
        .arg("-i")
        .arg(&elsewhere)
        .arg("list")
        .output()
        .expect("run tokvault");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("chmod 600"));
}
