//! No rotated refresh token is ever dropped. Against oidc-provider with
//! rotation on (which retires a refresh token the moment it answers and
//! revokes the whole grant when a retired one comes back), each way a grant
//! used to be lost: a neighbour's long error text, a full disk, a vault that
//! is a bind mount, a slow record holding the save back, a sloppy 200, and
//! two spellings of one vault path. Each test ends by refreshing again and
//! checking the server's counters: no replay, no revoked grant.
//!
//! Tests that mount a tmpfs or a bind mount skip, loudly, where mounting is
//! not permitted.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Run, Sandbox, env_count, figure, read};
use crate::e2e::{
    Story, assert_no_replay_or_error, current_refresh_token, import_minted_at, server_stats, stat,
    utf8,
};
use crate::fault_server::{Action, FaultServer};
use crate::reliability::vault_for;

/// Runs `command` to its end, or kills it and fails after `limit`: for what
/// used to hang (a read of `/dev/zero`, a lock without timeout, a hook's
/// grandchild holding a pipe).
fn output_within(mut command: Command, limit: Duration, what: &str) -> Run {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id().to_string();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(child.wait_with_output());
    });
    match receive.recv_timeout(limit) {
        Ok(output) => output.expect("wait").into(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("{what}: still running after {limit:?}");
        }
    }
}

/// `tokvault --vault VAULT -i IDENTITY ARGS` for a vault elsewhere than the
/// sandbox's own.
fn run_at(sandbox: &Sandbox, vault: &Path, args: &[&str]) -> Run {
    sandbox
        .command_at(vault)
        .args(args)
        .output()
        .expect("run tokvault")
        .into()
}

/// The server saw no replay and revoked no grant (refresh errors may come
/// from records that point elsewhere).
fn assert_no_replay(story: &Story) {
    let stats = server_stats(&story.rt, &story.server);
    assert_eq!(stat(&stats, "replays_detected"), 0, "{stats}");
    assert_eq!(stat(&stats, "grants_revoked"), 0, "{stats}");
}

/// Rounds of each fault class: `TOKVAULT_RELIABILITY_GRANT_ROUNDS`
/// (scripts/reliability), else 1.
fn rounds() -> usize {
    env_count("TOKVAULT_RELIABILITY_GRANT_ROUNDS", 1)
}

/// The figure of one fault class for docs/ASSURANCE.md, printed before the
/// final check so that a failing run still shows it.
fn grant_figure(story: &Story, class: &str, rounds: usize, extra: &str) {
    let stats = server_stats(&story.rt, &story.server);
    figure(&format!(
        "grant-faults class={class} rounds={rounds} token_requests={} replays_detected={} grants_revoked={}{extra}",
        stat(&stats, "token_requests"),
        stat(&stats, "replays_detected"),
        stat(&stats, "grants_revoked"),
    ));
}

fn token_requests(story: &Story) -> u64 {
    stat(&server_stats(&story.rt, &story.server), "token_requests")
}

/// The generation in a vault's header (no key needed).
fn generation(vault: &Path) -> u64 {
    vault_format::inspect(&read(vault))
        .expect("a vault")
        .0
        .generation
}

/// A mount made for a test, undone on drop.
struct Mount(PathBuf);

impl Mount {
    /// `mount ARGS... TARGET`, or `None` with a loud message where this
    /// machine does not allow it.
    #[allow(clippy::print_stderr)] // a skipped test says why
    fn new(args: &[&str], target: &Path, test: &str) -> Option<Self> {
        let output = Command::new("mount")
            .args(args)
            .arg(target)
            .output()
            .expect("run mount");
        if output.status.success() {
            return Some(Self(target.to_path_buf()));
        }
        let error = String::from_utf8_lossy(&output.stderr).to_lowercase();
        let refused = [
            "permission denied",
            "not permitted",
            "must be superuser",
            "only root",
        ];
        assert!(
            refused.iter().any(|r| error.contains(r)),
            "mount {args:?} {}: {error}",
            target.display()
        );
        eprintln!(
            "SKIPPED {test}: mounting is not permitted here ({}); this test needs root and mount(8)",
            error.trim()
        );
        None
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Way 1: One record's endpoint answers with 257 four-byte characters of error
/// text: the whole vault used to fail to seal, and the other record's
/// rotation of that run was lost.
#[test]
fn a_neighbours_long_error_text_cannot_stop_a_rotation_being_saved() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let description = "😀".repeat(257);
    let noisy = story.rt.block_on(FaultServer::scripted(vec![Action::json(
        400,
        &format!(r#"{{"error":"invalid_grant","error_description":"{description}"}}"#),
    )]));
    let file = story.sandbox.write(
        "in/noisy.json",
        &crate::common::google_token_json(&noisy.url("/token"), "c", "s", "rt"),
    );
    story
        .sandbox
        .run(&["import", "--name", "noisy", utf8(&file)])
        .assert_code(0);
    let rounds = rounds();
    for round in 0..rounds {
        let before = current_refresh_token(&story.sandbox, "demo");
        story.sandbox.run(&["refresh", "--force"]).assert_code(3);
        assert_ne!(
            current_refresh_token(&story.sandbox, "demo"),
            before,
            "round {round}: demo's rotated refresh token was not saved"
        );
    }
    let listed = crate::e2e::listed(&story.sandbox, "noisy");
    let stored = listed["last_refresh"]["error_description"]
        .as_str()
        .unwrap_or_default();
    assert!(stored.len() <= 1024 && stored.ends_with('…'), "{stored}");
    story
        .sandbox
        .run(&["refresh", "--force", "demo"])
        .assert_code(0);
    grant_figure(&story, "neighbour-error-text", rounds, "");
    assert_no_replay(&story);
}

/// Fills the file system at `dir` to the last byte, then frees `keep`
/// bytes; returns the filler.
fn fill(dir: &Path, keep: u64) -> PathBuf {
    use std::io::Write as _;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("create filler");
    let chunk = vec![0x5au8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.flush();
    let len = std::fs::metadata(&filler).expect("stat").len();
    file.set_len(len.saturating_sub(keep)).expect("truncate");
    filler
}

/// A copy of the story's vault on a fresh tmpfs of `size` (mode 0700).
fn vault_on_tmpfs(story: &Story, size: &str, test: &str) -> Option<(Mount, PathBuf)> {
    let dir = story.sandbox.path("disk");
    std::fs::create_dir(&dir).expect("mkdir");
    let mount = Mount::new(
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ],
        &dir,
        test,
    )?;
    let vault = dir.join("vault.tokvault");
    std::fs::copy(story.sandbox.vault(), &vault).expect("copy the vault");
    Some((mount, vault))
}

/// Way 2a: A full disk: the old writability probe (an empty file) passed, the
/// token was rotated, the write failed and the next run replayed. Now the
/// space is reserved before the first request: nothing is sent.
#[test]
fn a_full_disk_stops_the_run_before_any_token_is_rotated() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let Some((_mount, vault)) = vault_on_tmpfs(&story, "1m", "a_full_disk_stops_the_run") else {
        return;
    };
    let rounds = rounds();
    let mut sent_while_full = 0;
    for round in 0..rounds {
        let filler = fill(vault.parent().expect("dir"), 0);
        let before = read(&vault);
        let requests = token_requests(&story);
        let run = run_at(&story.sandbox, &vault, &["refresh", "--force"]);
        run.assert_code(4);
        assert!(
            run.stderr.contains("nothing was refreshed") && run.stderr.contains("free space"),
            "round {round}: {}",
            run.stderr
        );
        sent_while_full += token_requests(&story) - requests;
        assert_eq!(read(&vault), before, "round {round}: the vault changed");
        std::fs::remove_file(&filler).expect("free the space");
        run_at(&story.sandbox, &vault, &["refresh", "--force"]).assert_code(0);
    }
    run_at(&story.sandbox, &vault, &["refresh", "--force"]).assert_code(0);
    grant_figure(
        &story,
        "full-disk",
        rounds,
        &format!(" requests_sent_while_full={sent_while_full}"),
    );
    assert_eq!(
        sent_while_full, 0,
        "a token request was sent on a full disk"
    );
    assert_no_replay(&story);
}

/// Way 2b: The reserved space is not enough for what came back (a second
/// record's 60 KB tokens): the write fails after the rotation, so the
/// sealed vault goes to the rescue file (exit 6). While the disk is still
/// full, the next run sends nothing and reads still work; once there is
/// room, the rescue file is put back and the grant lives on.
#[test]
fn a_write_that_fails_after_a_rotation_keeps_the_tokens_in_a_rescue_file() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let big = "b".repeat(60_000);
    let big_server = story
        .rt
        .block_on(FaultServer::with(move |_| {
            Action::json(
                200,
                &format!(
                    r#"{{"access_token":"{big}","token_type":"Bearer","expires_in":3600,"refresh_token":"r{big}"}}"#
                ),
            )
        }));
    let file = story.sandbox.write(
        "in/big.json",
        &crate::common::google_token_json(&big_server.url("/token"), "c", "s", "rt"),
    );
    story
        .sandbox
        .run(&["import", "--name", "big", utf8(&file)])
        .assert_code(0);
    let Some((_mount, vault)) = vault_on_tmpfs(&story, "2m", "a_write_that_fails_after_a_rotation")
    else {
        return;
    };
    let rescue_dir = story.sandbox.path("state/tokvault/rescue");
    let rounds = rounds();
    let (mut rescued, mut sent_while_full) = (0, 0);
    for round in 0..rounds {
        // Room for the reservation (the vault, 64 KiB, 1 KiB a record) and
        // a little more, not for a vault that grows by 120 KB.
        let vault_len = std::fs::metadata(&vault).expect("stat").len();
        let filler = fill(vault.parent().expect("dir"), vault_len + 96 * 1024);
        let before = current_refresh_token_at(&story.sandbox, &vault, "demo");
        let run = run_at(&story.sandbox, &vault, &["refresh", "--force"]);
        run.assert_code(6);
        assert!(
            run.stderr.contains("rescue file"),
            "round {round}: {}",
            run.stderr
        );
        rescued += crate::common::files_named(&rescue_dir, ".tokvault");

        // Still full: no request, exit 6 again; reads use the rescue file.
        let requests = token_requests(&story);
        let again = run_at(&story.sandbox, &vault, &["refresh", "--force", "demo"]);
        again.assert_code(6);
        assert!(
            again.stderr.contains("nothing was refreshed"),
            "round {round}: {}",
            again.stderr
        );
        sent_while_full += token_requests(&story) - requests;
        assert_ne!(
            current_refresh_token_at(&story.sandbox, &vault, "demo"),
            before,
            "round {round}: the rescue file does not hold the rotated token"
        );

        std::fs::remove_file(&filler).expect("free the space");
        let restored = run_at(&story.sandbox, &vault, &["refresh", "--force", "demo"]);
        restored.assert_code(0);
        assert!(
            restored.stderr.contains("was updated from the rescue file"),
            "round {round}: {}",
            restored.stderr
        );
        assert_eq!(crate::common::files_named(&rescue_dir, ".tokvault"), 0);
        // Small again, so that the next round's answer outgrows its room.
        run_at(
            &story.sandbox,
            &vault,
            &["import", "--replace", "--name", "big", utf8(&file)],
        )
        .assert_code(0);
    }
    run_at(&story.sandbox, &vault, &["refresh", "--force", "demo"]).assert_code(0);
    grant_figure(
        &story,
        "write-fails-after-rotation",
        rounds,
        &format!(" rescued={rescued} requests_sent_while_full={sent_while_full}"),
    );
    assert_eq!(rescued, rounds, "each failed write left one rescue file");
    assert_eq!(
        sent_while_full, 0,
        "a request was sent before the rescue was put back"
    );
    assert_no_replay(&story);
}

/// The record's refresh token in the vault at `vault` (or its rescue file),
/// read with `export`.
fn current_refresh_token_at(sandbox: &Sandbox, vault: &Path, name: &str) -> String {
    let export = run_at(sandbox, vault, &["export", name, "--format", "json"]);
    crate::e2e::assert_secret_code(&export, 0);
    let record: Value = serde_json::from_str(&export.stdout).expect("json");
    record["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

/// Way 2c: A vault that is a single-file bind mount (`docker -v
/// vault.tokvault:/...`): rename onto it fails with EBUSY, after the token
/// was rotated. Now it is written in place, with the rescue file as its
/// journal.
#[test]
fn a_vault_that_is_a_bind_mount_is_written_in_place() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let source = story.sandbox.path("host/vault.tokvault");
    std::fs::create_dir_all(source.parent().expect("dir")).expect("mkdir");
    std::fs::copy(story.sandbox.vault(), &source).expect("copy");
    let Some(_mount) = Mount::new(
        &["--bind", utf8(&source)],
        &story.sandbox.vault(),
        "a_vault_that_is_a_bind_mount_is_written_in_place",
    ) else {
        return;
    };
    let generation_before = generation(&source);
    let rounds = rounds() + 1;
    for _ in 0..rounds {
        story.sandbox.run(&["refresh", "--force"]).assert_code(0);
    }
    grant_figure(&story, "bind-mounted-vault", rounds, "");
    assert_eq!(
        generation(&source),
        generation_before + rounds as u64,
        "the file behind the mount holds every save"
    );
    assert_eq!(
        crate::common::files_named(&story.sandbox.path("state/tokvault/rescue"), ".tokvault"),
        0,
        "the journal was removed"
    );
    assert_no_replay(&story);
}

/// Way 3: A record that rotated in milliseconds used to wait in memory for the
/// slowest record of the run (here one whose server never answers), and a
/// SIGKILL meanwhile (systemd after TimeoutStopSec) lost it. Now it is on
/// disk as soon as it arrives.
#[test]
fn a_rotation_is_saved_at_once_not_after_the_slowest_record() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let stalled = story
        .rt
        .block_on(FaultServer::scripted(vec![Action::Stall]));
    let file = story.sandbox.write(
        "in/slow.json",
        &crate::common::google_token_json(&stalled.url("/token"), "c", "s", "rt"),
    );
    story
        .sandbox
        .run(&["import", "--name", "slow", utf8(&file)])
        .assert_code(0);
    let rounds = rounds();
    for round in 0..rounds {
        let before = current_refresh_token(&story.sandbox, "demo");
        let mut child = crate::crash::spawn_refresh(&story.sandbox, Stdio::null());
        let deadline = Instant::now() + Duration::from_secs(25);
        while current_refresh_token(&story.sandbox, "demo") == before {
            assert!(
                child.try_wait().expect("try_wait").is_none(),
                "round {round}: the refresh ended before it saved demo"
            );
            assert!(
                Instant::now() < deadline,
                "round {round}: demo's rotation was not saved while the slow record was out"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "round {round}: the slow record should still be out"
        );
        // What systemd does after TimeoutStopSec.
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
    story
        .sandbox
        .run(&["refresh", "--force", "demo"])
        .assert_code(0);
    grant_figure(&story, "slow-neighbour-then-sigkill", rounds, "");
    assert_no_replay(&story);
}

/// The run's time limit: against a server that never answers, a run with
/// `--max-run-time 2s` ends by itself (exit 4, the request timed out), and
/// the vault is unchanged; without it the run would wait 30 s per attempt.
#[test]
fn a_run_ends_within_its_time_limit_whatever_the_server_does() {
    let rt = crate::e2e::runtime();
    let stalled = rt.block_on(FaultServer::scripted(vec![Action::Stall]));
    let sandbox = vault_for(&stalled.url("/token"));
    let before = read(&sandbox.vault());
    let mut command = sandbox.command_at(&sandbox.vault());
    command.args(["refresh", "--force", "--max-run-time", "2s"]);
    // Far below the 90 s (3 attempts of 30 s) the run took before.
    let run = output_within(
        command,
        Duration::from_secs(25),
        "refresh --max-run-time 2s",
    );
    run.assert_code(4);
    assert!(run.stdout.contains("timed out"), "{}", run.stdout);
    assert_eq!(stalled.requests().len(), 1, "no retry fits in 2 s");
    assert_eq!(read(&sandbox.vault()), before);
    sandbox
        .run(&["refresh", "--max-run-time", "0s"])
        .assert_code(2);
}

/// A change to a real server's answer.
type Rewrite = fn(&str) -> String;

/// Rewrites of a real token response that honest but sloppy servers send.
fn drop_token_type(body: &str) -> String {
    edit(body, |o| {
        o.remove("token_type");
    })
}
fn negative_expiry(body: &str) -> String {
    edit(body, |o| {
        o.insert("expires_in".into(), Value::from(-1));
    })
}
fn decimal_string_expiry(body: &str) -> String {
    edit(body, |o| {
        o.insert("expires_in".into(), Value::from("3600.0"));
    })
}
fn quoted_scope(body: &str) -> String {
    edit(body, |o| {
        o.insert("scope".into(), Value::from("offline_access \"x\""));
    })
}
fn dpop_token_type(body: &str) -> String {
    edit(body, |o| {
        o.insert("token_type".into(), Value::from("DPoP"));
    })
}
fn no_access_token(body: &str) -> String {
    edit(body, |o| {
        o.remove("access_token");
    })
}

fn edit(body: &str, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut value: Value = serde_json::from_str(body).expect("the server answers JSON");
    if let Some(object) = value.as_object_mut()
        && object.contains_key("refresh_token")
    {
        change(object);
    }
    value.to_string()
}

/// Way 4: A 200 that carries a new refresh token was refused whole for a
/// missing `token_type`, `expires_in` of -1 or `"3600.0"`, or a quote in
/// `scope`, and the old token was kept: the next refresh replayed it. Now
/// those answers are used; one whose access token is unusable still has
/// its refresh token kept (exit 1: misconfigured).
#[test]
fn a_sloppy_success_never_loses_the_refresh_token_it_carries() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let cases: [(&str, Rewrite, i32); 6] = [
        ("no-token-type", drop_token_type, 0),
        ("negative-expiry", negative_expiry, 0),
        ("decimal-expiry", decimal_string_expiry, 0),
        ("quoted-scope", quoted_scope, 0),
        ("dpop", dpop_token_type, 1),
        ("no-access-token", no_access_token, 1),
    ];
    let mut proxies = Vec::new();
    for (name, rewrite, _) in cases {
        let upstream = story.server.token_endpoint.clone();
        let proxy = story
            .rt
            .block_on(FaultServer::with(move |_| Action::Forward {
                url: upstream.clone(),
                rewrite,
            }));
        import_minted_at(
            &story.rt,
            &story.server,
            &story.sandbox,
            name,
            &proxy.url("/token"),
        );
        proxies.push(proxy);
    }
    let rounds = 3 * rounds();
    for (name, _, code) in cases {
        for round in 0..rounds {
            let before = current_refresh_token(&story.sandbox, name);
            let run = story.sandbox.run(&["refresh", "--force", name]);
            assert_eq!(
                run.code, code,
                "{name}, round {round}\nstdout: {}\nstderr: {}",
                run.stdout, run.stderr
            );
            assert_ne!(
                current_refresh_token(&story.sandbox, name),
                before,
                "{name}, round {round}: the rotated refresh token was not kept"
            );
        }
    }
    let dpop = crate::e2e::listed(&story.sandbox, "dpop");
    assert_eq!(dpop["last_refresh"]["outcome"], "misconfigured", "{dpop}");
    let note = dpop["last_refresh"]["error_description"]
        .as_str()
        .unwrap_or_default();
    assert!(note.contains("was kept"), "{note}");
    let scope = crate::e2e::listed(&story.sandbox, "quoted-scope");
    assert_eq!(scope["last_refresh"]["outcome"], "refreshed", "{scope}");
    assert!(
        scope["last_refresh"]["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("scope")),
        "what was ignored is recorded: {scope}"
    );
    grant_figure(
        &story,
        "sloppy-success",
        rounds * cases.len(),
        &format!(" variants={}", cases.len()),
    );
    assert_no_replay(&story);
}

/// Way 5a: Through a symlink, the target is refreshed and the symlink stays.
#[test]
fn a_vault_reached_through_a_symlink_stays_one_vault() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let link = story.sandbox.path("link.tokvault");
    std::os::unix::fs::symlink(story.sandbox.vault(), &link).expect("symlink");
    let before = generation(&story.sandbox.vault());
    run_at(&story.sandbox, &link, &["refresh", "--force"]).assert_code(0);
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("stat")
            .file_type()
            .is_symlink(),
        "the symlink was replaced by a file"
    );
    assert_eq!(generation(&story.sandbox.vault()), before + 1);
    story.sandbox.run(&["refresh", "--force"]).assert_code(0);
    assert_no_replay(&story);
}

/// Way 5b: Refreshes racing through three spellings of one vault (the path, a
/// symlink, `dir/../dir/vault`) take one lock: none presents a retired
/// token. (Before, one run of 60 saw 60 replays.)
#[test]
fn refreshes_racing_through_different_spellings_share_one_lock() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let link = story.sandbox.path("link.tokvault");
    std::os::unix::fs::symlink(story.sandbox.vault(), &link).expect("symlink");
    let dotted = story.sandbox.path("server/../server/vault.tokvault");
    let spellings = [story.sandbox.vault(), link, dotted];
    let processes = 24 * rounds();
    let children: Vec<_> = (0..processes)
        .map(|i| {
            story
                .sandbox
                .command_at(&spellings[i % spellings.len()])
                .args(["--lock-timeout", "120s", "refresh", "--force"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().expect("wait");
        assert_eq!(
            output.status.code(),
            Some(0),
            "refresh {i}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    grant_figure(&story, "racing-path-spellings", processes, " spellings=3");
    assert_no_replay_or_error(&server_stats(&story.rt, &story.server));
    assert!(
        !story.sandbox.path("link.tokvault.lock").exists(),
        "a second lock file was made for the symlink"
    );
}

/// Way 5c: A restored old copy is refused under every spelling of the path:
/// `dir/../dir/vault` used to have no pin of its own.
#[test]
fn a_restored_old_copy_is_refused_under_every_spelling() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let old = read(&story.sandbox.vault());
    story.sandbox.run(&["refresh", "--force"]).assert_code(0);
    std::fs::write(story.sandbox.vault(), &old).expect("restore the old copy");
    let dotted = story.sandbox.path("server/../server/vault.tokvault");
    let run = run_at(&story.sandbox, &dotted, &["list"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("older than generation"),
        "{}",
        run.stderr
    );
    story.sandbox.run(&["list"]).assert_code(5);
}

/// `exec` hands the job its token and nothing that unlocks the vault.
#[test]
fn exec_passes_the_job_no_way_to_the_keys() {
    let Some(story) = Story::start(true, 3600) else {
        return;
    };
    let passphrase = story.sandbox.write("secret/passphrase", "a passphrase\n");
    std::fs::set_permissions(&passphrase, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let credentials = story.sandbox.path("credentials");
    std::fs::create_dir_all(&credentials).expect("mkdir");
    let output = story
        .sandbox
        .shell("exec \"$TOKVAULT\" exec demo -- env")
        .env("TOKVAULT_PASSPHRASE_FILE", &passphrase)
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .output()
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let env = String::from_utf8_lossy(&output.stdout);
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(names.contains(&"TOKVAULT_ACCESS_TOKEN"));
    for hidden in [
        "TOKVAULT_IDENTITY",
        "TOKVAULT_PASSPHRASE_FILE",
        "CREDENTIALS_DIRECTORY",
    ] {
        assert!(!names.contains(&hidden), "the job got {hidden}");
    }
}

/// A lock file that is a symlink is refused, and its target untouched.
#[test]
fn a_lock_file_planted_as_a_symlink_is_refused() {
    let rt = crate::e2e::runtime();
    let server = rt.block_on(FaultServer::scripted(vec![Action::token("at")]));
    let sandbox = vault_for(&server.url("/token"));
    let victim = sandbox.write("elsewhere/victim", "precious");
    let lock = sandbox.path("server/vault.tokvault.lock");
    let _ = std::fs::remove_file(&lock);
    std::os::unix::fs::symlink(&victim, &lock).expect("symlink");
    let run = sandbox.run(&["refresh", "--force"]);
    run.assert_code(5);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert!(server.requests().is_empty(), "a request was sent");
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
}

/// The health file's lock waits no longer than `--lock-timeout`: a held
/// one used to hang every later refresh.
#[test]
fn a_held_health_lock_does_not_hang_a_refresh() {
    let rt = crate::e2e::runtime();
    let server = rt.block_on(FaultServer::scripted(vec![Action::token("at")]));
    let sandbox = vault_for(&server.url("/token"));
    sandbox.run(&["refresh", "--force"]).assert_code(0);
    let health = sandbox.path("state/tokvault/health");
    let lock = std::fs::read_dir(&health)
        .expect("health dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "lock"))
        .expect("a health lock file");
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock)
        .expect("open");
    held.lock().expect("hold the health lock");
    let mut command = sandbox.command_at(&sandbox.vault());
    command.args(["--lock-timeout", "1s", "refresh", "--force"]);
    let run = output_within(
        command,
        Duration::from_secs(30),
        "refresh with a held health lock",
    );
    run.assert_code(0);
    assert!(run.stderr.contains("health is not kept"), "{}", run.stderr);
}

/// A hook that leaves a grandchild behind is killed with it at its
/// timeout; the grandchild used to keep our stderr open.
#[test]
fn a_hook_is_killed_with_everything_it_started() {
    let rt = crate::e2e::runtime();
    let server = rt.block_on(FaultServer::scripted(vec![Action::json(
        400,
        r#"{"error":"invalid_grant"}"#,
    )]));
    let sandbox = vault_for(&server.url("/token"));
    let mut command = sandbox.command_at(&sandbox.vault());
    command.args([
        "refresh",
        "--on-reauth-needed",
        "sleep 300 & sleep 300",
        "--on-reauth-needed-timeout",
        "1s",
    ]);
    let run = output_within(
        command,
        Duration::from_secs(30),
        "refresh with a hanging hook",
    );
    run.assert_code(3);
    assert!(run.stderr.contains("was killed"), "{}", run.stderr);
}

/// `import` of an endless input stops at the vault's size limit, from a
/// path or from stdin; it used to read until memory ran out.
#[test]
fn an_endless_input_is_refused_at_the_size_limit() {
    let sandbox = Sandbox::new();
    sandbox.init_server();
    let mut from_path = sandbox.command_at(&sandbox.vault());
    from_path.args(["import", "--name", "x", "/dev/zero"]);
    let run = output_within(from_path, Duration::from_secs(60), "import /dev/zero");
    run.assert_code(1);
    assert!(run.stderr.contains("more than 64 MiB"), "{}", run.stderr);
    let run: Run = sandbox
        .shell("exec \"$TOKVAULT\" import --name x - < /dev/zero")
        .output()
        .expect("run")
        .into();
    run.assert_code(1);
    assert!(run.stderr.contains("more than 64 MiB"), "{}", run.stderr);
}

/// A killed `export -o` leaves the finished file or nothing: never a
/// plaintext temp file, never a partial output.
#[test]
fn a_killed_export_leaves_no_plaintext_behind() {
    let rt = crate::e2e::runtime();
    let server = rt.block_on(FaultServer::scripted(vec![Action::token("at")]));
    let sandbox = vault_for(&server.url("/token"));
    let out_dir = sandbox.path("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let whole = sandbox.run(&["export", "demo", "--format", "json"]);
    crate::e2e::assert_secret_code(&whole, 0);
    let mut rng = crate::common::Rng::from_clock();
    for round in 0..30 {
        let out = out_dir.join(format!("token-{round}.json"));
        let mut child = sandbox
            .command_at(&sandbox.vault())
            .args(["export", "demo", "--format", "json", "-o", utf8(&out)])
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(rng.below(40_000)));
        let _ = child.kill();
        let _ = child.wait();
        if let Ok(text) = std::fs::read_to_string(&out) {
            assert_eq!(
                text.trim(),
                whole.stdout.trim(),
                "round {round}: a partial file"
            );
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !(name.starts_with("token-") && name.ends_with(".json")))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

/// Directories anyone else can write are refused with a chmod hint.
#[test]
fn group_or_world_writable_directories_are_refused() {
    let rt = crate::e2e::runtime();
    let server = rt.block_on(FaultServer::scripted(vec![Action::token("at")]));
    let sandbox = vault_for(&server.url("/token"));
    let state = sandbox.path("state/tokvault");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let run = sandbox.run(&["list"]);
    run.assert_code(5);
    assert!(run.stderr.contains("chmod go-w"), "{}", run.stderr);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    sandbox.run(&["list"]).assert_code(0);
    let server_dir = sandbox.path("server");
    std::fs::set_permissions(&server_dir, std::fs::Permissions::from_mode(0o775)).expect("chmod");
    let run = sandbox.run(&["refresh", "--force"]);
    run.assert_code(5);
    assert!(run.stderr.contains("chmod go-w"), "{}", run.stderr);
    assert!(server.requests().is_empty(), "a request was sent");
}

/// `token` waiting for a lock that a refresh holds uses the token that
/// refresh saves meanwhile, instead of waiting for the lock (here held by a
/// record whose server never answers) until `--lock-timeout`.
#[test]
fn token_uses_what_the_lock_holder_just_saved() {
    let rt = crate::e2e::runtime();
    let server = rt.block_on(FaultServer::with(|received| {
        if received.head.starts_with("POST /slow") {
            Action::Stall
        } else {
            Action::Delayed(
                Duration::from_millis(800),
                Box::new(Action::token("saved-by-refresh")),
            )
        }
    }));
    let sandbox = vault_for(&server.url("/token"));
    let file = sandbox.write(
        "in/slow.json",
        &crate::common::google_token_json(&server.url("/slow"), "c", "s", "rt"),
    );
    sandbox
        .run(&["import", "--name", "slow", utf8(&file)])
        .assert_code(0);
    let mut refresh = crate::crash::spawn_refresh(&sandbox, Stdio::null());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server
        .requests()
        .iter()
        .any(|r| r.head.starts_with("POST /token"))
    {
        assert!(Instant::now() < deadline, "the refresh sent nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut token = sandbox.command_at(&sandbox.vault());
    token.args(["--lock-timeout", "20s", "token", "demo"]);
    let run = output_within(
        token,
        Duration::from_secs(30),
        "token while refresh holds the lock",
    );
    let refresh_still_running = refresh.try_wait().expect("try_wait").is_none();
    let _ = refresh.kill();
    let _ = refresh.wait();
    crate::e2e::assert_secret_code(&run, 0);
    assert_eq!(run.stdout.trim(), "saved-by-refresh");
    assert!(
        refresh_still_running,
        "the token came only after the lock was free"
    );
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.head.starts_with("POST /token"))
            .count(),
        1,
        "token refreshed again instead of using the saved token"
    );
}
