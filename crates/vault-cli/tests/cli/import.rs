//! `tokvault import`: token files encrypted on the laptop with stock `age`
//! (Debian's package; binary, `-a` armored, on stdin), refused age files
//! (another recipient, a passphrase, truncated), the record name taken from
//! the file's name, a missing vault, the line printed on success and the
//! refresh token's age.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::common::{Run, Sandbox, read};
use crate::e2e::{listed, utf8};
use crate::peers::age_binary;

/// An access token valid for years, so `tokvault token` shows what was
/// imported without a token endpoint.
const ACCESS_TOKEN: &str = "ya29.access-canary-7f3e";
const REFRESH_TOKEN: &str = "1//refresh-canary-9a1c";

/// google-auth's `to_json()` with a refresh token and a long-valid access
/// token, at `relative` in the sandbox.
fn token_file(sandbox: &Sandbox, relative: &str) -> std::path::PathBuf {
    let json = serde_json::json!({
        "token": ACCESS_TOKEN,
        "refresh_token": REFRESH_TOKEN,
        "token_uri": "https://oauth2.googleapis.com/token",
        "client_id": "client-id.apps.googleusercontent.com",
        "client_secret": "client-secret-canary",
        "scopes": ["https://www.googleapis.com/auth/gmail.send"],
        "universe_domain": "googleapis.com",
        "account": "",
        "expiry": "2099-01-01T00:00:00Z",
    });
    sandbox.write(relative, &json.to_string())
}

/// Sets `path`'s mtime to `ago` before now.
fn written_ago(path: &Path, ago: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now() - ago))
        .expect("set mtime");
}

/// `age ARGS -o OUT IN` with Debian's age; OUT must not exist.
fn age_encrypt(age: &str, args: &[&str], input: &Path, output: &Path) {
    let run: Run = Command::new(age)
        .args(args)
        .arg("-o")
        .arg(output)
        .arg(input)
        .output()
        .expect("run age")
        .into();
    run.assert_code(0);
}

/// No secret of the token file in what a run printed.
fn assert_no_secret(run: &Run) {
    for secret in [ACCESS_TOKEN, REFRESH_TOKEN, "canary"] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{secret} shown\nstdout: {}\nstderr: {}",
            run.stdout,
            run.stderr
        );
    }
}

/// The record holds what the laptop encrypted: its access token is served
/// and its refresh token exported.
fn assert_holds_the_token(sandbox: &Sandbox, name: &str) {
    let token = sandbox.run(&["token", name]);
    assert_eq!(token.assert_code(0).stdout, format!("{ACCESS_TOKEN}\n"));
    let exported = sandbox.run(&["export", name, "--format", "json"]);
    let json: Value = serde_json::from_str(&exported.assert_code(0).stdout).expect("json");
    assert_eq!(json["refresh_token"], REFRESH_TOKEN);
    assert_eq!(listed(sandbox, name)["provider"], "google");
}

#[test]
fn an_age_file_for_the_server_s_recipient_imports_without_tokvault_on_the_laptop() {
    let Some(age) = age_binary() else { return };
    let server = Sandbox::new();
    let recipient = server.init_server();
    let laptop = Sandbox::new();
    let plain = token_file(&laptop, "token_gmail.json");
    let sealed = laptop.path("token_gmail.json.age");
    age_encrypt(age, &["-r", &recipient], &plain, &sealed);
    assert!(
        !read(&sealed).windows(7).any(|w| w == b"canary-"),
        "encrypted"
    );

    let run = server.run(&["import", utf8(&sealed)]);
    run.assert_code(0);
    assert_no_secret(&run);
    let vault = server.vault();
    // What was done goes to stderr; stdout stays for data.
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!("imported gmail into {} (1 record)\n", vault.display())
    );
    assert!(
        !run.stderr.contains("plaintext"),
        "an age file is no plaintext to delete: {}",
        run.stderr
    );
    assert_holds_the_token(&server, "gmail");

    // Armored (`age -a`), named after its file; then --replace.
    let armored = laptop.path("work.json.age");
    age_encrypt(age, &["-a", "-r", &recipient], &plain, &armored);
    assert!(read(&armored).starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    let run = server.run(&["import", utf8(&armored)]);
    assert_eq!(
        run.assert_code(0).stderr,
        format!("imported work into {} (2 records)\n", vault.display())
    );
    assert_holds_the_token(&server, "work");
    let run = server.run(&["import", "--replace", utf8(&armored)]);
    assert_eq!(
        run.assert_code(0).stderr,
        format!("replaced work in {} (2 records)\n", vault.display())
    );
}

#[test]
fn an_age_file_on_stdin_needs_only_a_name() {
    let Some(age) = age_binary() else { return };
    let server = Sandbox::new();
    let recipient = server.init_server();
    let plain = token_file(&server, "laptop/token_gmail.json");
    let sealed = server.path("laptop/token_gmail.json.age");
    age_encrypt(age, &["-r", &recipient], &plain, &sealed);
    let pipe = |args: &str| -> Run {
        let script = format!(r#"cat "$1" | "$TOKVAULT" import {args} -"#);
        server
            .shell(&script)
            .arg("sh")
            .arg(&sealed)
            .output()
            .expect("sh")
            .into()
    };
    let unnamed = pipe("");
    unnamed.assert_code(2);
    assert!(
        unnamed.stderr.contains("stdin needs --name NAME"),
        "{}",
        unnamed.stderr
    );
    let run = pipe("--name piped");
    run.assert_code(0);
    assert_no_secret(&run);
    assert!(
        run.stderr.starts_with("imported piped into "),
        "{}",
        run.stderr
    );
    assert_holds_the_token(&server, "piped");
}

#[test]
fn an_age_file_that_does_not_open_here_leaves_the_vault_as_it_was() {
    let Some(age) = age_binary() else { return };
    let server = Sandbox::new();
    let recipient = server.init_server();
    let plain = token_file(&server, "laptop/token_gmail.json");
    let before = read(&server.vault());

    // Encrypted to another machine's recipient: say which one to use.
    let other = Sandbox::new().keygen();
    let elsewhere = server.path("laptop/elsewhere.json.age");
    age_encrypt(age, &["-r", &other], &plain, &elsewhere);
    let run = server.run(&["import", utf8(&elsewhere)]);
    run.assert_code(1);
    assert_no_secret(&run);
    assert!(
        run.stderr.contains("different recipient")
            && run.stderr.contains(&format!("age -r {recipient} ")),
        "{}",
        run.stderr
    );

    // Truncated in transit, binary or armored.
    let sealed = server.path("laptop/gmail.json.age");
    age_encrypt(age, &["-r", &recipient], &plain, &sealed);
    let armored = server.path("laptop/gmail.json.asc");
    age_encrypt(age, &["-a", "-r", &recipient], &plain, &armored);
    for (file, cut) in [(&sealed, 100), (&sealed, 250), (&armored, 200)] {
        let bytes = read(file);
        let truncated = server.path("laptop/truncated.json.age");
        std::fs::write(&truncated, &bytes[..cut.min(bytes.len() - 1)]).expect("write");
        let run = server.run(&["import", "--name", "cut", utf8(&truncated)]);
        run.assert_code(1);
        assert_no_secret(&run);
        assert!(
            run.stderr.contains("damaged or truncated age file"),
            "{}",
            run.stderr
        );
    }

    // A passphrase (age -p) would have to be typed here: refused with
    // what to do instead.
    let mut scrypt = age::scrypt::Recipient::new("correct horse".to_owned().into());
    scrypt.set_work_factor(2);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&scrypt as &dyn age::Recipient))
            .expect("scrypt");
    let mut bytes = Vec::new();
    let mut writer = encryptor.wrap_output(&mut bytes).expect("wrap");
    std::io::Write::write_all(&mut writer, &read(&plain)).expect("write");
    writer.finish().expect("finish");
    let with_passphrase = server.path("laptop/pass.json.age");
    std::fs::write(&with_passphrase, bytes).expect("write");
    let run = server.run(&["import", utf8(&with_passphrase)]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("encrypted with a passphrase (age -p)")
            && run.stderr.contains("age -r RECIPIENT"),
        "{}",
        run.stderr
    );
    assert!(
        read(&server.vault()) == before,
        "the vault is byte-identical"
    );
}

#[test]
fn a_missing_vault_gets_the_same_advice_as_list() {
    let sandbox = Sandbox::new();
    sandbox.keygen();
    let input = token_file(&sandbox, "laptop/token_gmail.json");
    for vault in [sandbox.vault(), sandbox.path("no/such/dir/vault.tokvault")] {
        let at = |args: &[&str]| -> Run {
            sandbox
                .command_at(&vault)
                .args(args)
                .output()
                .expect("run")
                .into()
        };
        let list = at(&["list"]);
        list.assert_code(1);
        assert!(list.stderr.contains("tokvault init"), "{}", list.stderr);
        let import = at(&["import", "--name", "gmail", utf8(&input)]);
        import.assert_code(1);
        assert_eq!(import.stderr, list.stderr, "the same error");
        // The writers too, also when the vault's directory is missing.
        let other = Sandbox::new().keygen();
        for writer in [
            &["remove", "gmail"][..],
            &["rekey", "-r", &other],
            &["refresh"],
        ] {
            let run = at(writer);
            run.assert_code(1);
            assert_eq!(run.stderr, list.stderr, "{writer:?}: the same error");
        }
        assert!(!vault.exists());
    }
}

#[test]
fn the_record_name_comes_from_the_file_s_name() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    for (file, name) in [
        ("in/token_gmail.json", "gmail"),
        ("in/drive.json", "drive"),
        ("in/token-sheets.json", "sheets"),
    ] {
        let input = token_file(&sandbox, file);
        let run = sandbox.run(&["import", utf8(&input)]);
        run.assert_code(0);
        assert!(
            run.stderr.starts_with(&format!("imported {name} into ")),
            "{file}: {}",
            run.stderr
        );
        assert_eq!(listed(&sandbox, name)["name"], name);
    }
    for (file, says) in [
        (
            "in/token.json",
            "cannot tell a record name from the file name token.json",
        ),
        (
            "in/my mail.json",
            "gives the record name \"my mail\", which is not valid",
        ),
    ] {
        let input = token_file(&sandbox, file);
        let run = sandbox.run(&["import", utf8(&input)]);
        run.assert_code(2);
        assert!(
            run.stderr.contains(says) && run.stderr.contains("--name NAME"),
            "{file}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    // --name still wins.
    let input = token_file(&sandbox, "in/token.json");
    let run = sandbox.run(&["import", "--name", "mail", utf8(&input)]);
    assert!(run.assert_code(0).stderr.starts_with("imported mail into "));
}

#[test]
fn an_imported_refresh_token_is_at_least_as_old_as_its_file() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let input = token_file(&sandbox, "in/token_gmail.json");
    let five_days = Duration::from_secs(5 * 86_400);
    written_ago(&input, five_days);
    sandbox
        .run(&["import", "--name", "gmail", utf8(&input)])
        .assert_code(0);
    let age = listed(&sandbox, "gmail")["refresh_token_age_seconds"]
        .as_u64()
        .expect("an age");
    assert!(
        (five_days.as_secs()..five_days.as_secs() + 60).contains(&age),
        "{age}"
    );
    let warned = sandbox.run(&["list", "--warn-refresh-age", "4d"]);
    assert!(
        warned
            .assert_code(0)
            .stderr
            .contains("gmail: the refresh token is 5d"),
        "{}",
        warned.stderr
    );

    // The person who knows better says when.
    for (when, expected) in [("2d", 2 * 86_400), ("2020-01-01T00:00:00Z", 0)] {
        let run = sandbox.run(&[
            "import",
            "--replace",
            "--refresh-token-issued",
            when,
            utf8(&input),
        ]);
        run.assert_code(0);
        let record = listed(&sandbox, "gmail");
        if expected == 0 {
            assert_eq!(record["refresh_token_issued_at"], 1_577_836_800_u64);
        } else {
            let age = record["refresh_token_age_seconds"].as_u64().expect("age");
            assert!((expected..expected + 60).contains(&age), "{when}: {age}");
        }
    }
    let run = sandbox.run(&[
        "import",
        "--replace",
        "--refresh-token-issued",
        "2999-01-01T00:00:00Z",
        utf8(&input),
    ]);
    run.assert_code(2);
    assert!(run.stderr.contains("in the future"), "{}", run.stderr);
}

#[test]
fn seal_names_and_dates_the_record_as_import_does() {
    let server = Sandbox::new();
    let recipient = server.init_server();
    let laptop = Sandbox::new();
    let input = token_file(&laptop, "in/token_gmail.json");
    let five_days = Duration::from_secs(5 * 86_400);
    written_ago(&input, five_days);
    let sealed = laptop.path("gmail.tokvault");
    let run = laptop.run_bare(&["seal", "-r", &recipient, "-o", utf8(&sealed), utf8(&input)]);
    assert!(
        run.assert_code(0).stderr.contains(&format!(
            "sealed gmail into {} for 1 key slot",
            utf8(&sealed)
        )),
        "{}",
        run.stderr
    );
    server.run(&["import", utf8(&sealed)]).assert_code(0);
    let age = listed(&server, "gmail")["refresh_token_age_seconds"]
        .as_u64()
        .expect("an age");
    assert!(
        (five_days.as_secs()..five_days.as_secs() + 60).contains(&age),
        "dated by the file: {age}"
    );

    let dated = laptop.path("dated.tokvault");
    let run = laptop.run_bare(&[
        "seal",
        "--name",
        "mail",
        "--refresh-token-issued",
        "2020-01-01T00:00:00Z",
        "-r",
        &recipient,
        "-o",
        utf8(&dated),
        utf8(&input),
    ]);
    run.assert_code(0);
    server.run(&["import", utf8(&dated)]).assert_code(0);
    assert_eq!(
        listed(&server, "mail")["refresh_token_issued_at"],
        1_577_836_800_u64
    );
    let stdin: Run = laptop
        .shell(r#""$TOKVAULT" seal -r "$1" -o "$2" - < "$3""#)
        .arg("sh")
        .arg(&recipient)
        .arg(laptop.path("piped.tokvault"))
        .arg(&input)
        .output()
        .expect("sh")
        .into();
    assert!(
        stdin.assert_code(2).stderr.contains("stdin needs --name"),
        "{}",
        stdin.stderr
    );
}
